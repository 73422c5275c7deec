"""SQL repositories: every query Ringfence runs, each behind a named method.

All of them work on one :class:`~sqlalchemy.ext.asyncio.AsyncConnection` inside the transaction
of a unit of work, and speak both SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import orjson
import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    literal_column,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ringfence.domain.access import Role
from ringfence.domain.configuration import MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.ledger import (
    AllocationKey,
    AllocationState,
    Group,
    GroupPath,
    LevelScope,
    Reservation,
)
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.operations import JournalEntry, OperationKind, PartitionKey
from ringfence.domain.quantity import MAX_QUANTITY, from_units, to_units
from ringfence.domain.query import AggregateRow, OnHandSelection
from ringfence.jsoncodec import dumps, loads
from ringfence.services.ports import (
    ChangedAtOnce,
    ChangesAtOnce,
    ConfigurationStamp,
    ConsumeAtOnce,
    ConsumedAtOnce,
    DuplicateOperation,
    GroupConsumed,
    JournalFilter,
    ReservationFilter,
    SessionRecord,
    StoredConfiguration,
    TokenRecord,
)
from ringfence.storage.engine import take_deferred_begin
from ringfence.storage.tables import (
    allocations,
    configurations,
    environments,
    journal,
    onhand_measures,
    partitions,
    reservations,
    sessions,
    tokens,
)

__all__ = [
    "SqlAllocationRepository",
    "SqlConfigurationRepository",
    "SqlEnvironmentRepository",
    "SqlJournalRepository",
    "SqlOnHandRepository",
    "SqlPartitionRepository",
    "SqlReservationRepository",
    "SqlSessionRepository",
    "SqlTokenRepository",
]

_CHUNK = 500
T = TypeVar("T")


def _nothing(_: list[list[Any]]) -> None:
    return None


def _utc(value: datetime | None) -> datetime | None:
    """A stored time in UTC (as the column type gives it; the driver, in the session's zone)."""
    return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(dialect: str, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@dataclass(frozen=True)
class _Read(Generic[T]):
    """A read as data: statements with their parameters, and what their rows make.

    Repositories run it at once (:meth:`_Repository._run`); a batch's reads under its locks are
    sent together by :class:`~ringfence.storage.unit_of_work.SqlUnitOfWork` (PostgreSQL).
    """

    statements: tuple[tuple[Any, Any], ...]
    convert: Callable[[list[list[Any]]], T]
    """Rows of each statement, in order -> the answer."""


def _rows_of(rows: list[list[Any]]) -> list[Any]:
    return [row for statement_rows in rows for row in statement_rows]


@functools.lru_cache(maxsize=256)
def _compiled(statement: Any, dialect: Any) -> Any:
    return statement.compile(dialect=dialect)


@contextmanager
def driver_errors(driver: psycopg.AsyncConnection[Any] | None = None) -> Iterator[None]:
    """The driver's errors raised as SQLAlchemy raises those of its statements, so that a lost
    database answers 503 and a duplicate key is an ``IntegrityError``; ``driver``, if given,
    tells whether an error left its connection broken (a failure to connect is an
    ``OperationalError`` already)."""
    try:
        yield
    except psycopg.Error as error:
        broken = driver is not None and driver.broken
        raise DBAPIError.instance(
            "pipeline", None, error, psycopg.Error, connection_invalidated=broken
        ) from error


@asynccontextmanager
async def _driver(
    connection: AsyncConnection,
) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], list[psycopg.AsyncCursor[Any]]]]:
    """The connection's driver, and a list for the cursors opened on it (closed on the way out),
    its errors raised as SQLAlchemy's (:func:`driver_errors`)."""
    raw = await connection.get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    cursors: list[psycopg.AsyncCursor[Any]] = []
    try:
        with driver_errors(driver):
            yield driver, cursors
    finally:
        for cursor in cursors:
            await cursor.close()


async def _begin_if_deferred(
    connection: AsyncConnection,
    driver: psycopg.AsyncConnection[Any],
    cursors: list[psycopg.AsyncCursor[Any]],
) -> None:
    """Queue the transaction's BEGIN first in the pipeline if the unit of work still owes it
    (:func:`~ringfence.storage.engine.defer_begin`)."""
    if take_deferred_begin(connection.sync_connection.info):  # type: ignore[union-attr]
        cursor = driver.cursor()
        cursors.append(cursor)
        await cursor.execute("BEGIN")


async def _queued(
    connection: AsyncConnection,
    driver: psycopg.AsyncConnection[Any],
    cursors: list[psycopg.AsyncCursor[Any]],
    statement: Any,
    parameters: Any,
) -> psycopg.AsyncCursor[Any]:
    """Send a built statement on the driver (in a pipeline: queued); its cursor."""
    compiled = _compiled(statement, connection.dialect)
    cursor = driver.cursor(row_factory=namedtuple_row)
    cursors.append(cursor)
    await cursor.execute(compiled.string, compiled.construct_params(parameters))
    return cursor


async def pipelined(connection: AsyncConnection, *reads: _Read[Any]) -> list[Any]:
    """Run ``reads`` in one round trip (PostgreSQL pipeline mode), in order; their answers.

    The statements are SQLAlchemy's, compiled once per shape; the driver parses their rows with
    the engine's own adapters (JSON as :func:`ringfence.jsoncodec.loads` does).
    """
    async with _driver(connection) as (driver, cursors):
        sent: list[list[psycopg.AsyncCursor[Any]]] = []
        async with driver.pipeline():  # leaving it sends everything and waits for every answer
            await _begin_if_deferred(connection, driver, cursors)
            for read in reads:
                sent.append(
                    [
                        await _queued(connection, driver, cursors, statement, parameters)
                        for statement, parameters in read.statements
                    ]
                )
        answers = []
        for read, mine in zip(reads, sent, strict=True):
            rows = [await c.fetchall() if c.description is not None else [] for c in mine]
            answers.append(read.convert(rows))
    return answers


@dataclass(frozen=True)
class _Write:
    """Rows to write to ``table``: inserted, or upserted on its primary key when ``updated``
    names the columns a conflict updates."""

    table: Table
    rows: list[dict[str, Any]]
    updated: tuple[str, ...] | None = None

    def statement(self, dialect: str) -> Any:
        """The statement run once per row (where there is no set-based form)."""
        if self.updated is None:
            return _plain_insert(self.table)
        return _upsert(dialect, self.table, self.updated)


@functools.cache
def _plain_insert(table: Table) -> Any:
    """``inline``: a generated key is not returned (it would be, row by row)."""
    return table.insert().inline()


@functools.lru_cache(maxsize=64)
def _set_write(
    table: Table, keys: tuple[str, ...], updated: tuple[str, ...] | None, dialect: Any
) -> tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
    """One statement writing every row of a :class:`_Write` (PostgreSQL), and the conversions
    some values need first (the columns' bind processing: times checked to be in UTC).

    The rows travel as one JSON array of objects (``rows``), which ``json_populate_recordset``
    turns into rows of the table's own type, in order: the driver no longer takes a round of
    its own per row (a batch of 64 consumes wrote 64 journal rows; a bulk request, thousands
    of measures). JSON columns keep their value's text as written.
    """
    rows = func.json_populate_recordset(
        literal_column(f"NULL::{table.name}"),
        cast(bindparam("rows", type_=Text), postgresql.JSON),
    )
    given = rows.table_valued(*table.columns.keys(), with_ordinality="ordinality").alias("given")
    source = select(*(given.c[name] for name in keys)).order_by(given.c.ordinality)
    statement = postgresql.insert(table).from_select(list(keys), source)
    if updated is not None:
        statement = _updating(statement, table, updated)
    conversions = tuple(
        (name, process)
        for name in keys
        if not isinstance(table.c[name].type, JSON)
        and (process := table.c[name].type.bind_processor(dialect)) is not None
    )
    return str(statement.compile(dialect=dialect)), conversions


async def written(connection: AsyncConnection, *writes: _Write, commit: bool = False) -> None:
    """Run ``writes`` in order, then commit if asked.

    On PostgreSQL all of it is one round trip (pipeline mode, COMMIT included) of one statement
    per write (:func:`_set_write`), answered once the server committed; SQLAlchemy's own commit
    then finds the transaction ended. Elsewhere, statement after statement.
    """
    pending = [write for write in writes if write.rows]
    dialect = connection.dialect
    if dialect.name != "postgresql":
        for write in pending:
            for chunk in _chunks(write.rows):
                await connection.execute(write.statement(dialect.name), list(chunk))
        if commit:
            await connection.commit()
        return
    async with _driver(connection) as (driver, cursors), driver.pipeline():
        await _begin_if_deferred(connection, driver, cursors)
        for write in pending:
            keys = tuple(write.rows[0])
            sql, conversions = _set_write(write.table, keys, write.updated, dialect)
            for row in write.rows:  # rows are the write's own: converted in place
                for name, convert in conversions:
                    row[name] = convert(row[name])
            cursor = driver.cursor()
            cursors.append(cursor)
            await cursor.execute(sql, {"rows": dumps(write.rows).decode()})
        if commit:
            await driver.commit()
    if commit:
        await connection.commit()


@dataclass(frozen=True)
class NativeStatement:
    """A statement written with named parameters, kept in PostgreSQL's own form (``$1``, ...).

    The driver turns ``%(name)s`` into ``$n`` by scanning the statement's text at every
    execution, unless the text is short enough for its cache (4,096 characters): the statements
    that decide a batch at once are longer, and were scanned again for every batch. Converted
    once here, they go through the driver's raw cursor, which sends them as they are.
    """

    sql: bytes
    names: tuple[str, ...]

    @classmethod
    def of(cls, sql: str) -> NativeStatement:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        native = re.sub(r"%\((\w+)\)s", number, sql)
        if "%" in native.replace("%%", ""):
            raise ValueError("a statement's parameters are written %(name)s")
        return cls(native.replace("%%", "%").encode(), tuple(names))

    def values(self, parameters: Mapping[str, Any]) -> list[Any]:
        return [parameters[name] for name in self.names]


_CREATED_BY_THE_LOCK = "p.version = 1"
"""A partition row the batch's lock statement inserted: of the batch's partitions, every row
that was there before now has a version of 2 or more, since the lock raised it. A statement
that writes nothing deletes them: its transaction commits all the same (in the same round
trip), and refusals alone leave no trace, as when a batch is decided in Python, whose
transaction then rolls back."""

_KNOWN_AND_STAMP = """
known AS (
  SELECT l.ord, l.id, match.fingerprint, match.result
  FROM lines l CROSS JOIN LATERAL (
    SELECT journal.fingerprint, journal.result::text AS result FROM journal
    WHERE journal.environment_id = l.environment_id AND journal.kind = l.kind
      AND journal.operation_id = l.id
    OFFSET 0
  ) AS match
),
checks AS (
  SELECT coalesce((
    SELECT c.version = %(version)s AND c.created_at = %(created_at)s
    FROM environments e JOIN configurations c
      ON c.environment_id = e.environment_id AND c.version = e.configuration_version
    WHERE e.environment_id = %(env)s
  ), false) AS current,
  %(token)s::text IS NULL OR EXISTS (
    SELECT 1 FROM tokens t WHERE t.token_id = %(token)s::text AND t.revoked_at IS NULL
  ) AS authorized
),
stamp AS (SELECT current, authorized, current AND authorized AS allowed FROM checks),
"""
"""What the statements deciding a batch at once read first: ``known``, the batch's ``lines``
already journaled (their fingerprint and result), and ``stamp``: whether the configuration
assumed is still the environment's (``current``), whether the batch's token, if it has one
to confirm, is not revoked (``authorized``), and both (``allowed``: else nothing is
written)."""

_CONSUMED_AT_ONCE = NativeStatement.of(
    """
WITH lines AS (
  SELECT * FROM json_to_recordset(%(lines)s::json) AS l(
    ord int, g int, environment_id text, kind text, id text, fp text, request json, result json)
),
groups AS (
  SELECT * FROM json_to_recordset(%(groups)s::json) AS x(
    g int, environment_id text, org text, product text, dk text, gp text, dims json, q bigint,
    path_effect json)
),
"""
    + _KNOWN_AND_STAMP
    + """held AS (
  SELECT x.g, coalesce(a.allocated, 0) AS allocated
  FROM groups x LEFT JOIN LATERAL (
    SELECT allocations.allocated FROM allocations
    WHERE allocations.environment_id = x.environment_id
      AND allocations.organization_id = x.org AND allocations.product_id = x.product
      AND allocations.dimensions_key = x.dk AND allocations.group_path = x.gp
    OFFSET 0
  ) AS a ON true
),
moved AS (
  SELECT m.g, m.pos, m.ds, m.m, m.name, m.sign, coalesce(o.quantity, 0) AS base
  FROM json_to_recordset(%(measures)s::json) AS m(
    g int, pos int, ds text, m text, name text, sign int)
  JOIN groups x ON x.g = m.g
  LEFT JOIN LATERAL (
    SELECT onhand_measures.quantity FROM onhand_measures
    WHERE onhand_measures.environment_id = x.environment_id
      AND onhand_measures.organization_id = x.org AND onhand_measures.product_id = x.product
      AND onhand_measures.dimensions_key = x.dk AND onhand_measures.data_source = m.ds
      AND onhand_measures.measure = m.m
    OFFSET 0
  ) AS o ON true
),
fresh AS (
  SELECT l.*, row_number() OVER (PARTITION BY l.g ORDER BY l.ord) AS rank FROM lines l
  WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.ord = l.ord)
),
decided AS (
  SELECT x.g, x.q, CASE WHEN (SELECT allowed FROM stamp) THEN greatest(0, least(
    (SELECT count(*) FROM fresh f WHERE f.g = x.g),
    h.allocated / x.q,
    (SELECT min(CASE WHEN m.sign > 0 THEN (%(max)s - m.base) ELSE (m.base + %(max)s) END) / x.q
     FROM moved m WHERE m.g = x.g)
  )) ELSE 0 END AS applied
  FROM groups x JOIN held h ON h.g = x.g
),
applied AS (
  SELECT f.* FROM fresh f JOIN decided d ON d.g = f.g WHERE f.rank <= d.applied
),
path AS (
  UPDATE allocations SET
    allocated = allocated - d.applied * d.q,
    consumed = consumed + d.applied * d.q,
    cumulative_consumed = cumulative_consumed + d.applied * d.q
  FROM groups x JOIN decided d ON d.g = x.g
  WHERE d.applied > 0 AND allocations.environment_id = x.environment_id
    AND allocations.organization_id = x.org AND allocations.product_id = x.product
    AND allocations.dimensions_key = x.dk AND allocations.group_path = x.gp
  RETURNING 1
),
measures_written AS (
  INSERT INTO onhand_measures (environment_id, organization_id, product_id, dimensions_key,
    data_source, measure, dimensions, quantity, set_at)
  SELECT %(env)s, x.org, x.product, x.dk, m.ds, m.m, x.dims::jsonb,
    m.base + m.sign * d.applied * d.q, NULL::timestamptz
  FROM moved m JOIN groups x ON x.g = m.g JOIN decided d ON d.g = m.g WHERE d.applied > 0
  ON CONFLICT (environment_id, organization_id, product_id, dimensions_key, data_source, measure)
  DO UPDATE SET quantity = EXCLUDED.quantity
  RETURNING 1
),
effects AS (
  SELECT a.ord, json_agg(e.effect ORDER BY e.pos) AS effects
  FROM applied a JOIN groups x ON x.g = a.g CROSS JOIN LATERAL (
    SELECT m.pos, json_build_object(
      'dimensions', x.dims, 'measure', m.name,
      'delta', trim_scale(m.sign * x.q * 0.000001),
      'value', trim_scale((m.base + m.sign * a.rank * x.q) * 0.000001)) AS effect
    FROM moved m WHERE m.g = a.g
    UNION ALL SELECT 2147483647, x.path_effect
  ) AS e
  GROUP BY a.ord
),
entries AS (
  INSERT INTO journal (environment_id, organization_id, product_id, kind, operation_id,
    fingerprint, request, effects, result, actor, recorded_at)
  SELECT %(env)s, x.org, x.product, a.kind, a.id, a.fp, a.request, e.effects, a.result,
    %(actor)s, %(at)s
  FROM applied a JOIN groups x ON x.g = a.g JOIN effects e ON e.ord = a.ord
  ORDER BY a.ord
  RETURNING 1
),
unlocked AS (
  DELETE FROM partitions p
  USING (SELECT DISTINCT environment_id, org, product FROM groups) x
  WHERE NOT EXISTS (SELECT 1 FROM decided WHERE applied > 0)
    AND p.environment_id = x.environment_id AND p.organization_id = x.org
    AND p.product_id = x.product AND """
    + _CREATED_BY_THE_LOCK
    + """
  RETURNING 1
)
SELECT (SELECT current FROM stamp), (SELECT authorized FROM stamp),
  (SELECT json_agg(json_build_array(d.applied, h.allocated,
     (SELECT json_agg(m.base ORDER BY m.pos) FROM moved m WHERE m.g = d.g)) ORDER BY d.g)
   FROM decided d JOIN held h ON h.g = d.g)::text,
  (SELECT json_agg(json_build_array(id, fingerprint, result)) FROM known)::text
"""
)
"""A :class:`~ringfence.services.ports.ConsumeAtOnce` batch decided and written in one
statement (PostgreSQL), after its partitions' locks: see :func:`consumed_at_once`."""


def _batch_parameters(batch: ConsumeAtOnce | ChangesAtOnce) -> dict[str, Any]:
    """What both statements deciding a batch at once take besides its rows: the environment,
    the supported range, the configuration assumed, the token to confirm, who and when."""
    return {
        "env": batch.environment_id,
        "max": to_units(MAX_QUANTITY),
        "version": batch.configuration.version,
        "created_at": batch.configuration.created_at,
        "actor": batch.actor,
        "at": batch.recorded_at,
        "token": batch.token_id,
    }


async def consumed_at_once(
    driver: psycopg.AsyncConnection[Any], batch: ConsumeAtOnce
) -> ConsumedAtOnce:
    """Take the batch's partitions' locks, decide and write ``batch``, and commit: one round
    trip, on ``driver`` (in autocommit mode, nothing else sent: :func:`in_one_round_trip`).

    The statement reads each group's allocated quantity, its measures' values and the lines'
    journal entries after the locks are granted (each statement of a transaction at READ
    COMMITTED sees what was committed before it started), applies each group's first lines
    that those allow, and journals them, their effects' values computed line by line. Keys are
    compared with values carried by each row where statistics could mislead the planner (see
    :func:`_keyed_lookup`).
    """
    environment = batch.environment_id
    kind = OperationKind.CONSUME.value
    lines: list[dict[str, object]] = []
    groups: list[dict[str, object]] = []
    measures: list[dict[str, object]] = []
    for number, group in enumerate(batch.groups):
        key = group.key
        groups.append(
            {
                "g": number,
                "environment_id": environment,
                "org": key.partition.organization_id,
                "product": key.partition.product_id,
                "dk": key.dimensions.key,
                "gp": key.path.key,
                "dims": key.dimensions.as_dict(),
                "q": to_units(group.quantity),
                "path_effect": group.path_effect,
            }
        )
        measures.extend(
            {
                "g": number,
                "pos": n,
                "ds": ref.data_source,
                "m": ref.measure,
                "name": str(ref),
                "sign": sign,
            }
            for n, (ref, sign) in enumerate(group.measures)
        )
        lines.extend(
            {
                "ord": line.position,
                "g": number,
                "environment_id": environment,
                "kind": kind,
                "id": line.operation_id,
                "fp": line.fingerprint,
                "request": line.request,
                "result": line.result,
            }
            for line in group.lines
        )
    parameters = {
        "lines": dumps(lines).decode(),
        "groups": dumps(groups).decode(),
        "measures": dumps(measures).decode(),
        **_batch_parameters(batch),
    }
    current, authorized, outcomes, known = await in_one_round_trip(
        driver,
        partition_lock(environment, batch.partitions),
        (_CONSUMED_AT_ONCE, parameters),
    )
    return ConsumedAtOnce(
        current=bool(current),
        authorized=bool(authorized),
        groups=tuple(
            GroupConsumed(
                held=from_units(held),
                values=tuple(from_units(value) for value in values),
                applied=int(applied),
            )
            for applied, held, values in orjson.loads(outcomes)
        ),
        known=_known(known),
    )


async def in_one_round_trip(
    driver: psycopg.AsyncConnection[Any],
    *statements: tuple[NativeStatement, Mapping[str, Any]],
) -> Any:
    """Send ``statements`` in one pipeline, as one transaction; the last one's row, once the
    server committed.

    ``driver`` is in autocommit mode with no transaction open, and the statements go without
    BEGIN and COMMIT: the statements a pipeline sends before its synchronization point (which
    leaving the pipeline sends) are one transaction, committed there, each statement still
    seeing what was committed before it started (a lock's waits included). Two statements
    fewer for the driver to queue and the server to run, in every hot batch.
    """
    cursors: list[psycopg.AsyncRawCursor[Any]] = []
    try:
        async with driver.pipeline():
            try:
                for statement, parameters in statements:
                    cursor = psycopg.AsyncRawCursor(driver)
                    cursors.append(cursor)
                    await cursor.execute(statement.sql, statement.values(parameters))
            except BaseException as error:
                # Leaving the pipeline sends its synchronization point, which would commit
                # what was sent before a failure on this side (a cancelled request, a value
                # the driver cannot send): roll it back first. The server's own errors have
                # aborted the transaction already.
                if getattr(error, "sqlstate", None) is None:
                    await driver.cursor().execute("ROLLBACK")
                raise
        row = await cursors[-1].fetchone()
    finally:
        for cursor in cursors:
            await cursor.close()
    assert row is not None
    return row


def _known(text: str | None) -> dict[str, tuple[str, Any]]:
    """Journaled lines, as the statements return them: id -> (fingerprint, result)."""
    return {
        operation_id: (digest, loads(result))
        for operation_id, digest, result in (orjson.loads(text) if text else ())
    }


_CHANGED_AT_ONCE = NativeStatement.of(
    """
WITH lines AS (
  SELECT * FROM json_to_recordset(%(lines)s::json) AS l(
    ord int, environment_id text, kind text, id text, org text, product text, fp text,
    request json, result json)
),
changes AS (
  SELECT * FROM json_to_recordset(%(changes)s::json) AS c(
    ord int, pos int, environment_id text, org text, product text, dk text, dims json,
    ds text, m text, name text, delta bigint)
),
"""
    + _KNOWN_AND_STAMP
    + """fresh AS (
  SELECT c.* FROM changes c WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.ord = c.ord)
),
running AS (
  SELECT f.*, coalesce(o.quantity, 0) + sum(f.delta) OVER (
    PARTITION BY f.org, f.product, f.dk, f.ds, f.m ORDER BY f.ord ROWS UNBOUNDED PRECEDING
  ) AS value
  FROM fresh f LEFT JOIN LATERAL (
    SELECT onhand_measures.quantity FROM onhand_measures
    WHERE onhand_measures.environment_id = f.environment_id
      AND onhand_measures.organization_id = f.org AND onhand_measures.product_id = f.product
      AND onhand_measures.dimensions_key = f.dk AND onhand_measures.data_source = f.ds
      AND onhand_measures.measure = f.m
    OFFSET 0
  ) AS o ON true
),
decided AS (
  SELECT (SELECT allowed FROM stamp)
    AND coalesce((SELECT bool_and(abs(value) <= %(max)s) FROM running), true) AS applied
),
measures_written AS (
  INSERT INTO onhand_measures (environment_id, organization_id, product_id, dimensions_key,
    data_source, measure, dimensions, quantity, set_at)
  SELECT DISTINCT ON (r.org, r.product, r.dk, r.ds, r.m)
    %(env)s, r.org, r.product, r.dk, r.ds, r.m, r.dims::jsonb, r.value, NULL::timestamptz
  FROM running r, decided d WHERE d.applied
  ORDER BY r.org, r.product, r.dk, r.ds, r.m, r.ord DESC
  ON CONFLICT (environment_id, organization_id, product_id, dimensions_key, data_source, measure)
  DO UPDATE SET quantity = EXCLUDED.quantity
  RETURNING 1
),
effects AS (
  SELECT r.ord, json_agg(json_build_object(
    'dimensions', r.dims, 'measure', r.name,
    'delta', trim_scale(r.delta * 0.000001), 'value', trim_scale(r.value * 0.000001)
  ) ORDER BY r.pos) AS effects
  FROM running r GROUP BY r.ord
),
entries AS (
  INSERT INTO journal (environment_id, organization_id, product_id, kind, operation_id,
    fingerprint, request, effects, result, actor, recorded_at)
  SELECT %(env)s, l.org, l.product, l.kind, l.id, l.fp, l.request, e.effects,
    l.result, %(actor)s, %(at)s
  FROM lines l JOIN effects e ON e.ord = l.ord, decided d
  WHERE d.applied
  ORDER BY l.ord
  RETURNING 1
),
unlocked AS (
  DELETE FROM partitions p
  USING (SELECT DISTINCT environment_id, org, product FROM lines) l
  WHERE NOT ((SELECT applied FROM decided) AND EXISTS (SELECT 1 FROM fresh))
    AND p.environment_id = l.environment_id AND p.organization_id = l.org
    AND p.product_id = l.product AND """
    + _CREATED_BY_THE_LOCK
    + """
  RETURNING 1
)
SELECT (SELECT current FROM stamp), (SELECT authorized FROM stamp),
  (SELECT applied FROM decided),
  (SELECT json_agg(json_build_array(id, fingerprint, result)) FROM known)::text
"""
)
"""A :class:`~ringfence.services.ports.ChangesAtOnce` batch decided and written in one
statement (PostgreSQL), after its partitions' locks: see :func:`changed_at_once`."""


async def changed_at_once(
    driver: psycopg.AsyncConnection[Any], batch: ChangesAtOnce
) -> ChangedAtOnce:
    """Take the batch's partitions' locks, apply ``batch`` and commit: one round trip, on
    ``driver`` (in autocommit mode, nothing else sent: :func:`in_one_round_trip`).

    The statement reads the lines' journal entries and the measures' values after the locks
    are granted, computes every measure's value after each event (a running sum per measure,
    in the lines' order), and, unless one leaves the supported range (or the configuration is
    no longer the one assumed), writes each measure's last value and a journal entry per event
    not journaled before, its effects' values as they were after it.
    """
    environment = batch.environment_id
    kind = OperationKind.ONHAND_CHANGE.value
    lines: list[dict[str, object]] = []
    changes: list[dict[str, object]] = []
    for line in batch.lines:
        organization, product = line.partition.organization_id, line.partition.product_id
        lines.append(
            {
                "ord": line.position,
                "environment_id": environment,
                "kind": kind,
                "id": line.operation_id,
                "org": organization,
                "product": product,
                "fp": line.fingerprint,
                "request": line.request,
                "result": line.result,
            }
        )
        dimensions, key = line.dimensions.as_dict(), line.dimensions.key
        for position, (ref, delta) in enumerate(line.deltas):
            changes.append(
                {
                    "ord": line.position,
                    "pos": position,
                    "environment_id": environment,
                    "org": organization,
                    "product": product,
                    "dk": key,
                    "dims": dimensions,
                    "ds": ref.data_source,
                    "m": ref.measure,
                    "name": str(ref),
                    "delta": to_units(delta),
                }
            )
    parameters = {
        "lines": dumps(lines).decode(),
        "changes": dumps(changes).decode(),
        **_batch_parameters(batch),
    }
    current, authorized, applied, known = await in_one_round_trip(
        driver,
        partition_lock(environment, batch.partitions),
        (_CHANGED_AT_ONCE, parameters),
    )
    return ChangedAtOnce(
        current=bool(current),
        applied=bool(applied),
        known=_known(known),
        authorized=bool(authorized),
    )


@contextmanager
def journal_keys() -> Iterator[None]:
    """Around writes that include journal rows: a key violation is the journal's (kind, id),
    the only key they do not upsert, raised as :class:`DuplicateOperation`."""
    try:
        yield
    except IntegrityError as error:
        raise DuplicateOperation(str(error.orig)) from error


class _Repository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def _run(self, read: _Read[T]) -> T:
        results: list[list[Any]] = []
        for statement, parameters in read.statements:
            result = await self._connection.execute(statement, parameters)
            results.append(list(result) if result.returns_rows else [])
        return read.convert(results)

    def _keyed_read(
        self,
        table: Table,
        environment_id: str,
        columns: Sequence[Any],
        keys: Sequence[tuple[str, ...]],
        convert: Callable[[list[Any]], T],
        *,
        where: Mapping[str, str] | None = None,
        selected: Sequence[Any] = (),
    ) -> _Read[T]:
        """The environment's rows of ``table`` whose ``columns`` take one of ``keys`` (and whose
        ``where`` columns equal the values given): the ``selected`` columns, else all."""
        dialect = self._connection.dialect.name
        filters = dict(where or {})
        statement = _keyed_lookup(
            dialect,
            table,
            tuple(c.name for c in columns),
            tuple(sorted(filters)),
            tuple(c.name for c in selected),
        )
        if not keys:
            statements: tuple[tuple[Any, Any], ...] = ()
        elif dialect == "postgresql":
            given = (environment_id, *(filters[name] for name in sorted(filters)))
            tuples = [(*key, *given) for key in keys]
            statements = ((statement, {"keys": orjson.dumps(tuples).decode()}),)
        else:
            common: dict[str, Any] = {
                "environment_id": environment_id,
                **{f"where_{name}": value for name, value in filters.items()},
            }
            statements = tuple(
                (statement, {**common, "keys": list(chunk)}) for chunk in _chunks(keys)
            )
        return _Read(statements, lambda rows: convert(_rows_of(rows)))


def _json_tuples(parameter: str, name: str, *, ordinality: bool = False) -> Any:
    """The rows of one JSON array of tuples of text, sent as the text parameter ``parameter``
    (PostgreSQL): column ``item`` (and ``position``, from 1, with ``ordinality``).

    One array per column would be as fast on the server, but the driver builds array
    parameters element by element in Python: 5 ms of the 10 ms that 500 keys of five columns
    took, against one string for JSON (written by orjson).
    """
    rows = func.json_array_elements(cast(bindparam(parameter, type_=Text), postgresql.JSON))
    if ordinality:
        return rows.table_valued("item", with_ordinality="position").render_derived(name)
    return rows.table_valued("item").render_derived(name)


def _item(rows: Any, index: int) -> ColumnElement[str]:
    """Text ``index`` of the tuple in column ``item`` of :func:`_json_tuples` rows."""
    return rows.c.item.op("->>")(literal_column(str(index)))  # type: ignore[no-any-return]


@functools.cache
def _keyed_lookup(
    dialect: str,
    table: Table,
    columns: tuple[str, ...],
    filters: tuple[str, ...],
    selected: tuple[str, ...],
) -> Select[Any]:
    """The statement of :meth:`_Repository._keyed_read`, built once per shape.

    Built statements are reused: SQLAlchemy then keeps their compiled form and cache key,
    which building them per call recomputed (most of a hot batch's database time was there).

    On PostgreSQL each key is looked up on its own, through a lateral subquery kept from being
    flattened (``OFFSET 0``) over the keys (:func:`_json_tuples`): the plan uses the whole
    index whatever the statistics say. A plain ``IN`` list was planned as a scan of the
    environment's rows whenever a table had grown faster than autovacuum analyzed it (the
    journal under a flash sale: 21 ms instead of 0.4 ms for 128 ids at 8,000 entries, and
    growing with the table).

    The environment and the ``filters`` values travel in each key's tuple too, after its
    columns, rather than as parameters of their own: compared with a constant, an environment
    that the statistics have not seen yet (a new one, filling fast) looked so rare that the
    planner scanned all its rows by another index for every key (9 s instead of 7 ms for 129
    journal ids among the new environment's 100,000 entries).
    """
    compared = ("environment_id", *columns, *filters)
    output: list[Any] = [table.c[name] for name in selected] or [table]
    if dialect != "postgresql":
        keyed = tuple_(*(table.c[name] for name in columns))
        return select(*output).where(
            table.c.environment_id == bindparam("environment_id"),
            *(table.c[name] == bindparam(f"where_{name}") for name in filters),
            keyed.in_(bindparam("keys", expanding=True)),
        )
    wanted = _json_tuples("keys", "wanted")
    order = (*columns, "environment_id", *filters)
    match = (
        select(*output)
        .where(*(table.c[name] == _item(wanted, order.index(name)) for name in compared))
        .offset(0)
        .lateral("match")
    )
    return select(match).select_from(wanted.join(match, true()))


@functools.cache
def _partition_lock(dialect: str) -> Any:
    """Upsert partition rows: the update takes each row's lock, held until commit (the
    partition's serialization), in the order given (sorted, so lockers never deadlock)."""
    bump = {"version": partitions.c.version + 1}
    key = [partitions.c.environment_id, partitions.c.organization_id, partitions.c.product_id]
    if dialect != "postgresql":
        return sqlite.insert(partitions).on_conflict_do_update(index_elements=key, set_=bump)
    given = _json_tuples("partitions", "given", ordinality=True)
    rows = select(
        bindparam("environment_id", type_=Text),
        _item(given, 0),
        _item(given, 1),
        literal(1, BigInteger),
    ).order_by(given.c.position)
    return (
        postgresql.insert(partitions)
        .from_select(["environment_id", "organization_id", "product_id", "version"], rows)
        .on_conflict_do_update(index_elements=key, set_=bump)
    )


def _lock_parameters(environment_id: str, partitions_: Sequence[PartitionKey]) -> dict[str, Any]:
    pairs = [(key.organization_id, key.product_id) for key in partitions_]
    return {"environment_id": environment_id, "partitions": orjson.dumps(pairs).decode()}


@functools.cache
def _native_partition_lock() -> tuple[NativeStatement, dict[str, Any]]:
    """:func:`_partition_lock` compiled once for the driver, and the values of the constants
    SQLAlchemy made parameters of (the lock's own parameters are the caller's)."""
    dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    compiled = _partition_lock("postgresql").compile(dialect=dialect)
    constants = compiled.construct_params(_lock_parameters("", []))
    return NativeStatement.of(compiled.string), constants


def partition_lock(
    environment_id: str, partitions_: Sequence[PartitionKey]
) -> tuple[NativeStatement, dict[str, Any]]:
    """The partitions' locks (:func:`_partition_lock`) as a statement for the bare driver
    (PostgreSQL), with its parameters."""
    statement, constants = _native_partition_lock()
    return statement, {**constants, **_lock_parameters(environment_id, partitions_)}


@functools.cache
def _level_sums(below: tuple[str, ...], anchor: tuple[str, ...]) -> Select[Any]:
    """Sums of a product's measures at an anchor (values ``a0``, ``a1``.. of the ``anchor``
    dimensions), grouped by the dimensions ``below`` it: built once per shape (a batch of
    consumes reads one per product)."""
    dimensions = onhand_measures.c.dimensions
    groups = [dimensions[name].as_string().label(f"g{i}") for i, name in enumerate(below)]
    keys = (*groups, onhand_measures.c.data_source, onhand_measures.c.measure)
    return (
        select(*keys, func.sum(onhand_measures.c.quantity).label("total"))
        .where(
            onhand_measures.c.environment_id == bindparam("environment_id"),
            onhand_measures.c.organization_id == bindparam("organization_id"),
            onhand_measures.c.product_id == bindparam("product_id"),
            *(
                dimensions[name].as_string() == bindparam(f"a{n}", type_=Text)
                for n, name in enumerate(anchor)
            ),
        )
        .group_by(*keys)
    )


@functools.cache
def _upsert(dialect: str, table: Table, updated: tuple[str, ...]) -> Any:
    """INSERT .. ON CONFLICT (primary key) DO UPDATE SET ``updated`` columns, built once."""
    return _updating(_insert(dialect, table), table, updated)


def _updating(statement: Any, table: Table, updated: tuple[str, ...]) -> Any:
    """``statement`` (an INSERT of the dialect) ON CONFLICT (primary key) DO UPDATE SET the
    ``updated`` columns to the values it brought."""
    return statement.on_conflict_do_update(
        index_elements=[column.name for column in table.primary_key.columns],
        set_={name: getattr(statement.excluded, name) for name in updated},
    )


class SqlEnvironmentRepository(_Repository):
    async def exists(self, environment_id: str) -> bool:
        row = await self._connection.scalar(
            select(environments.c.environment_id).where(
                environments.c.environment_id == environment_id
            )
        )
        return row is not None

    async def create(self, environment_id: str, created_at: datetime) -> None:
        await self._connection.execute(
            environments.insert().values(
                environment_id=environment_id, configuration_version=0, created_at=created_at
            )
        )

    async def delete(self, environment_id: str) -> None:
        await self._connection.execute(
            delete(sessions).where(
                sessions.c.token_id.in_(
                    select(tokens.c.token_id).where(tokens.c.environment_id == environment_id)
                )
            )
        )
        for table in (
            onhand_measures,
            allocations,
            reservations,
            partitions,
            journal,
            tokens,
            configurations,
            environments,
        ):
            await self._connection.execute(
                delete(table).where(table.c.environment_id == environment_id)
            )


def _stored_configuration(row: Any) -> StoredConfiguration:
    return StoredConfiguration(
        environment_id=row.environment_id,
        version=row.version,
        document=row.document,
        created_at=row.created_at,
        created_by=row.created_by,
    )


_CURRENT_STAMP = (
    select(configurations.c.version, configurations.c.created_at, configurations.c.created_by)
    .join(
        environments,
        and_(
            environments.c.environment_id == configurations.c.environment_id,
            environments.c.configuration_version == configurations.c.version,
        ),
    )
    .where(environments.c.environment_id == bindparam("environment_id"))
)
"""Read by every batch: built once (see :func:`_keyed_lookup`)."""

_TOKENS_BY_ID = select(tokens).where(tokens.c.token_id.in_(bindparam("ids", expanding=True)))
"""Read for every batch of requests (their tokens): built once."""

_TOKENS_IN_JSON = select(tokens).where(
    tokens.c.token_id.in_(
        select(func.json_array_elements_text(cast(bindparam("ids", type_=Text), postgresql.JSON)))
    )
)
"""The same on PostgreSQL, its ids one JSON array (no statement rendered per list length)."""


class SqlConfigurationRepository(_Repository):
    async def current(self, environment_id: str) -> StoredConfiguration | None:
        row = (
            await self._connection.execute(
                select(configurations)
                .join(
                    environments,
                    and_(
                        environments.c.environment_id == configurations.c.environment_id,
                        environments.c.configuration_version == configurations.c.version,
                    ),
                )
                .where(environments.c.environment_id == environment_id)
            )
        ).first()
        return _stored_configuration(row) if row is not None else None

    async def current_stamp(self, environment_id: str) -> ConfigurationStamp | None:
        return await self._run(self.current_stamp_read(environment_id))

    def current_stamp_read(self, environment_id: str) -> _Read[ConfigurationStamp | None]:
        def convert(rows: list[list[Any]]) -> ConfigurationStamp | None:
            found = _rows_of(rows)
            if not found:
                return None
            row = found[0]
            return ConfigurationStamp(
                environment_id, row.version, row.created_at.astimezone(UTC), row.created_by
            )

        return _Read(((_CURRENT_STAMP, {"environment_id": environment_id}),), convert)

    async def version(self, environment_id: str, version: int) -> StoredConfiguration | None:
        row = (
            await self._connection.execute(
                select(configurations).where(
                    configurations.c.environment_id == environment_id,
                    configurations.c.version == version,
                )
            )
        ).first()
        return _stored_configuration(row) if row is not None else None

    async def history(self, environment_id: str) -> list[StoredConfiguration]:
        rows = await self._connection.execute(
            select(configurations)
            .where(configurations.c.environment_id == environment_id)
            .order_by(configurations.c.version.desc())
        )
        return [_stored_configuration(row) for row in rows]

    async def lock_current_version(self, environment_id: str) -> int | None:
        query = select(environments.c.configuration_version).where(
            environments.c.environment_id == environment_id
        )
        if self._connection.dialect.name == "postgresql":
            query = query.with_for_update()
        version = await self._connection.scalar(query)
        return int(version) if version is not None else None

    async def add(self, configuration: StoredConfiguration) -> None:
        await self._connection.execute(
            configurations.insert().values(
                environment_id=configuration.environment_id,
                version=configuration.version,
                document=dict(configuration.document),
                created_at=configuration.created_at,
                created_by=configuration.created_by,
            )
        )
        await self._connection.execute(
            update(environments)
            .where(environments.c.environment_id == configuration.environment_id)
            .values(configuration_version=configuration.version)
        )


def _token(row: Any) -> TokenRecord:
    created_at = _utc(row.created_at)
    assert created_at is not None
    return TokenRecord(
        token_id=row.token_id,
        environment_id=row.environment_id,
        name=row.name,
        role=Role(row.role),
        secret_hash=row.secret_hash,
        created_at=created_at,
        organizations=tuple(row.organizations) if row.organizations is not None else None,
        group_scope=tuple((str(name), str(value)) for name, value in row.group_scope),
        revoked_at=_utc(row.revoked_at),
    )


def _tokens(rows: list[list[Any]]) -> dict[str, TokenRecord]:
    return {row.token_id: _token(row) for row in _rows_of(rows)}


class SqlTokenRepository(_Repository):
    async def add(self, record: TokenRecord) -> None:
        await self._connection.execute(
            tokens.insert().values(
                token_id=record.token_id,
                environment_id=record.environment_id,
                name=record.name,
                role=record.role.value,
                secret_hash=record.secret_hash,
                organizations=list(record.organizations) if record.organizations else None,
                group_scope=[list(item) for item in record.group_scope],
                created_at=record.created_at,
                revoked_at=record.revoked_at,
            )
        )

    async def get(self, token_id: str) -> TokenRecord | None:
        row = (
            await self._connection.execute(select(tokens).where(tokens.c.token_id == token_id))
        ).first()
        return _token(row) if row is not None else None

    def get_many_read(self, token_ids: Sequence[str]) -> _Read[dict[str, TokenRecord]]:
        """:meth:`get_many` as a read a batch sends with its others (PostgreSQL)."""
        return _Read(((_TOKENS_IN_JSON, {"ids": orjson.dumps(list(token_ids)).decode()}),), _tokens)

    async def get_many(self, token_ids: Sequence[str]) -> dict[str, TokenRecord]:
        """Read for every batch of requests: on PostgreSQL, one statement sent on the driver
        (SQLAlchemy's execution path was half of a token check's time)."""
        if self._connection.dialect.name == "postgresql":
            [(statement, parameters)] = self.get_many_read(token_ids).statements
            async with _driver(self._connection) as (driver, cursors):
                cursor = await _queued(self._connection, driver, cursors, statement, parameters)
                return _tokens([await cursor.fetchall()])
        found = {}
        for chunk in _chunks(token_ids):
            for row in await self._connection.execute(_TOKENS_BY_ID, {"ids": list(chunk)}):
                found[row.token_id] = _token(row)
        return found

    async def get_by_name(self, environment_id: str, name: str) -> TokenRecord | None:
        row = (
            await self._connection.execute(
                select(tokens).where(
                    tokens.c.environment_id == environment_id, tokens.c.name == name
                )
            )
        ).first()
        return _token(row) if row is not None else None

    async def list_for(self, environment_id: str) -> list[TokenRecord]:
        rows = await self._connection.execute(
            select(tokens)
            .where(tokens.c.environment_id == environment_id)
            .order_by(tokens.c.created_at, tokens.c.name)
        )
        return [_token(row) for row in rows]

    async def revoke(self, token_id: str, revoked_at: datetime) -> None:
        await self._connection.execute(
            update(tokens).where(tokens.c.token_id == token_id).values(revoked_at=revoked_at)
        )


class SqlPartitionRepository(_Repository):
    async def lock(self, environment_id: str, partitions_: Sequence[PartitionKey]) -> None:
        await self._run(self.lock_read(environment_id, partitions_))

    def lock_read(self, environment_id: str, partitions_: Sequence[PartitionKey]) -> _Read[None]:
        statement = _partition_lock(self._connection.dialect.name)
        if self._connection.dialect.name == "postgresql":
            return _Read(((statement, _lock_parameters(environment_id, partitions_)),), _nothing)
        return _Read(
            tuple(
                (
                    statement,
                    [
                        {
                            "environment_id": environment_id,
                            "organization_id": key.organization_id,
                            "product_id": key.product_id,
                            "version": 1,
                        }
                        for key in chunk
                    ],
                )
                for chunk in _chunks(partitions_)
            ),
            _nothing,
        )

    async def catalog(
        self,
        environment_id: str,
        *,
        organizations: Sequence[str] | None = None,
        search: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[PartitionKey], int]:
        conditions: list[ColumnElement[bool]] = [partitions.c.environment_id == environment_id]
        if organizations is not None:
            conditions.append(partitions.c.organization_id.in_(organizations))
        if search:
            conditions.append(
                func.lower(partitions.c.product_id).contains(search.lower(), autoescape=True)
            )
        total = await self._connection.scalar(
            select(func.count()).select_from(partitions).where(*conditions)
        )
        rows = await self._connection.execute(
            select(partitions.c.organization_id, partitions.c.product_id)
            .where(*conditions)
            .order_by(partitions.c.organization_id, partitions.c.product_id)
            .offset(offset)
            .limit(limit)
        )
        return [PartitionKey(row[0], row[1]) for row in rows], int(total or 0)


_MEASURE_COLUMNS = (
    onhand_measures.c.organization_id,
    onhand_measures.c.product_id,
    onhand_measures.c.dimensions_key,
    onhand_measures.c.data_source,
    onhand_measures.c.measure,
)


class SqlOnHandRepository(_Repository):
    async def load(
        self, environment_id: str, keys: Iterable[MeasureKey]
    ) -> dict[MeasureKey, MeasureState]:
        return await self._run(self.load_read(environment_id, keys))

    def load_read(
        self, environment_id: str, keys: Iterable[MeasureKey]
    ) -> _Read[dict[MeasureKey, MeasureState]]:
        wanted = {
            (
                key.partition.organization_id,
                key.partition.product_id,
                key.dimensions.key,
                key.measure.data_source,
                key.measure.measure,
            ): key
            for key in keys
        }

        def convert(rows: list[Any]) -> dict[MeasureKey, MeasureState]:
            found: dict[MeasureKey, MeasureState] = {}
            for row in rows:
                key = wanted[
                    (
                        row.organization_id,
                        row.product_id,
                        row.dimensions_key,
                        row.data_source,
                        row.measure,
                    )
                ]
                found[key] = MeasureState(from_units(int(row.quantity)), _utc(row.set_at))
            return found

        return self._keyed_read(
            onhand_measures,
            environment_id,
            _MEASURE_COLUMNS,
            list(wanted),
            convert,
            # Not the dimensions (the keys hold them): parsing their JSON was half the time.
            selected=(*_MEASURE_COLUMNS, onhand_measures.c.quantity, onhand_measures.c.set_at),
        )

    async def save(
        self, environment_id: str, states: Iterable[tuple[MeasureKey, MeasureState]]
    ) -> None:
        await written(self._connection, self.save_write(environment_id, states))

    def save_write(
        self, environment_id: str, states: Iterable[tuple[MeasureKey, MeasureState]]
    ) -> _Write:
        rows = [
            {
                "environment_id": environment_id,
                "organization_id": key.partition.organization_id,
                "product_id": key.partition.product_id,
                "dimensions_key": key.dimensions.key,
                "data_source": key.measure.data_source,
                "measure": key.measure.measure,
                "dimensions": key.dimensions.as_dict(),
                "quantity": to_units(state.value),
                "set_at": state.set_at,
            }
            for key, state in states
        ]
        return _Write(onhand_measures, rows, updated=("quantity", "set_at"))

    async def aggregate(
        self, environment_id: str, selection: OnHandSelection
    ) -> list[AggregateRow]:
        dimensions = onhand_measures.c.dimensions
        groups = [
            dimensions[name].as_string().label(f"g{position}")
            for position, name in enumerate(selection.group_by)
        ]
        conditions: list[ColumnElement[bool]] = [onhand_measures.c.environment_id == environment_id]
        if selection.organization_ids:
            conditions.append(onhand_measures.c.organization_id.in_(selection.organization_ids))
        if selection.product_ids:
            conditions.append(onhand_measures.c.product_id.in_(selection.product_ids))
        for name, values in selection.dimension_filters.items():
            conditions.append(dimensions[name].as_string().in_(values))
        if selection.exact_dimensions:
            conditions.append(
                tuple_(*(dimensions[name].as_string() for name in selection.exact_dimensions)).in_(
                    selection.exact_values
                )
            )
        keys = (
            onhand_measures.c.organization_id,
            onhand_measures.c.product_id,
            *groups,
            onhand_measures.c.data_source,
            onhand_measures.c.measure,
        )
        rows = await self._connection.execute(
            select(*keys, func.sum(onhand_measures.c.quantity).label("total"))
            .where(*conditions)
            .group_by(*keys)
        )
        width = len(groups)
        # Sums arrive by the ten thousand, over a few measures: one MeasureRef for each.
        refs: dict[tuple[str, str], MeasureRef] = {}
        found = []
        for row in rows:
            named = (row[width + 2], row[width + 3])
            ref = refs.get(named)
            if ref is None:
                ref = refs[named] = MeasureRef(*named)
            found.append(
                AggregateRow(
                    row[0], row[1], tuple(row[2 : 2 + width]), ref, from_units(int(row[-1]))
                )
            )
        return found

    async def level_sums(
        self, environment_id: str, scopes: Iterable[LevelScope], below: Sequence[str]
    ) -> dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]]:
        return await self._run(self.level_sums_read(environment_id, scopes, below))

    def level_sums_read(
        self, environment_id: str, scopes: Iterable[LevelScope], below: Sequence[str]
    ) -> _Read[dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]]]:
        groups = len(below)
        ordered = sorted(scopes)
        statements: tuple[tuple[Any, Any], ...] = tuple(
            (
                _level_sums(tuple(below), tuple(name for name, _ in scope.anchor.items())),
                {
                    "environment_id": environment_id,
                    "organization_id": scope.partition.organization_id,
                    "product_id": scope.partition.product_id,
                    **{f"a{n}": value for n, (_, value) in enumerate(scope.anchor.items())},
                },
            )
            for scope in ordered
        )

        def convert(
            results: list[list[Any]],
        ) -> dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]]:
            found: dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]] = {}
            for scope, rows in zip(ordered, results, strict=True):
                sums: dict[Group, dict[MeasureRef, Decimal]] = {}
                for row in rows:
                    group = tuple(row[:groups])
                    ref = MeasureRef(row.data_source, row.measure)
                    sums.setdefault(group, {})[ref] = from_units(int(row.total))
                found[scope] = sums
            return found

        return _Read(statements, convert)

    async def measures_in_use(self, environment_id: str) -> set[MeasureRef]:
        rows = await self._connection.execute(
            select(onhand_measures.c.data_source, onhand_measures.c.measure)
            .where(
                onhand_measures.c.environment_id == environment_id,
                onhand_measures.c.quantity != 0,
            )
            .distinct()
        )
        return {MeasureRef(row.data_source, row.measure) for row in rows}

    async def has_rows(self, environment_id: str) -> bool:
        found = await self._connection.scalar(
            select(onhand_measures.c.product_id)
            .where(onhand_measures.c.environment_id == environment_id)
            .limit(1)
        )
        return found is not None


def _reservation(row: Any) -> Reservation:
    return Reservation(
        reservation_id=row.reservation_id,
        partition=PartitionKey(row.organization_id, row.product_id),
        dimensions=Dimensions.from_key(row.dimensions_key),
        measure=MeasureRef(row.data_source, row.measure),
        quantity=from_units(int(row.quantity)),
        offset=from_units(int(row.offset_quantity)),
        operation_id=row.operation_id,
        origin=row.origin,
        created_at=row.created_at.astimezone(UTC),
        created_by=row.created_by,
    )


class SqlReservationRepository(_Repository):
    async def load(self, environment_id: str, ids: Iterable[str]) -> dict[str, Reservation]:
        return await self._run(self.load_read(environment_id, ids))

    def load_read(self, environment_id: str, ids: Iterable[str]) -> _Read[dict[str, Reservation]]:
        return self._keyed_read(
            reservations,
            environment_id,
            [reservations.c.reservation_id],
            [(reservation_id,) for reservation_id in sorted(set(ids))],
            lambda rows: {row.reservation_id: _reservation(row) for row in rows},
        )

    async def locate(self, environment_id: str, ids: Iterable[str]) -> dict[str, PartitionKey]:
        found: dict[str, PartitionKey] = {}
        for chunk in _chunks(sorted(set(ids))):
            rows = await self._connection.execute(
                select(
                    reservations.c.reservation_id,
                    reservations.c.organization_id,
                    reservations.c.product_id,
                ).where(
                    reservations.c.environment_id == environment_id,
                    reservations.c.reservation_id.in_(chunk),
                )
            )
            found.update(
                (row.reservation_id, PartitionKey(row.organization_id, row.product_id))
                for row in rows
            )
        return found

    async def save(self, environment_id: str, changed: Iterable[Reservation]) -> None:
        await written(self._connection, self.save_write(environment_id, changed))

    def save_write(self, environment_id: str, changed: Iterable[Reservation]) -> _Write:
        rows = [
            {
                "environment_id": environment_id,
                "organization_id": r.partition.organization_id,
                "product_id": r.partition.product_id,
                "reservation_id": r.reservation_id,
                "dimensions_key": r.dimensions.key,
                "dimensions": r.dimensions.as_dict(),
                "data_source": r.measure.data_source,
                "measure": r.measure.measure,
                "quantity": to_units(r.quantity),
                "offset_quantity": to_units(r.offset),
                "origin": r.origin,
                "operation_id": r.operation_id,
                "created_at": r.created_at,
                "created_by": r.created_by,
            }
            for r in changed
        ]
        return _Write(reservations, rows, updated=("offset_quantity",))

    async def list_reservations(
        self, environment_id: str, reservation_filter: ReservationFilter
    ) -> list[Reservation]:
        f = reservation_filter
        query = select(reservations).where(reservations.c.environment_id == environment_id)
        if f.organization_id is not None:
            query = query.where(reservations.c.organization_id == f.organization_id)
        if f.organizations is not None:
            query = query.where(reservations.c.organization_id.in_(f.organizations))
        if f.product_id is not None:
            query = query.where(reservations.c.product_id == f.product_id)
        if f.open_only:
            query = query.where(reservations.c.quantity > reservations.c.offset_quantity)
        if f.after is not None:
            query = query.where(reservations.c.reservation_id > f.after)
        rows = await self._connection.execute(
            query.order_by(reservations.c.reservation_id).limit(f.limit)
        )
        return [_reservation(row) for row in rows]

    async def any_open(self, environment_id: str) -> bool:
        found = await self._connection.scalar(
            select(reservations.c.reservation_id)
            .where(
                reservations.c.environment_id == environment_id,
                reservations.c.quantity > reservations.c.offset_quantity,
            )
            .limit(1)
        )
        return found is not None


_ALLOCATION_COLUMNS = (
    allocations.c.organization_id,
    allocations.c.product_id,
    allocations.c.dimensions_key,
    allocations.c.group_path,
)


def _allocation_key(row: Any) -> AllocationKey:
    return AllocationKey(
        PartitionKey(row.organization_id, row.product_id),
        Dimensions.from_key(row.dimensions_key),
        GroupPath.from_key(row.group_path),
    )


def _allocation_state(row: Any) -> AllocationState:
    return AllocationState(
        allocated=from_units(int(row.allocated)),
        cumulative_allocated=from_units(int(row.cumulative_allocated)),
        consumed=from_units(int(row.consumed)),
        cumulative_consumed=from_units(int(row.cumulative_consumed)),
    )


class SqlAllocationRepository(_Repository):
    async def load(
        self, environment_id: str, keys: Iterable[AllocationKey]
    ) -> dict[AllocationKey, AllocationState]:
        return await self._run(self.load_read(environment_id, keys))

    def load_read(
        self, environment_id: str, keys: Iterable[AllocationKey]
    ) -> _Read[dict[AllocationKey, AllocationState]]:
        wanted = {
            (
                key.partition.organization_id,
                key.partition.product_id,
                key.dimensions.key,
                key.path.key,
            ): key
            for key in keys
        }
        return self._keyed_read(
            allocations,
            environment_id,
            _ALLOCATION_COLUMNS,
            list(wanted),
            lambda rows: {
                wanted[
                    (row.organization_id, row.product_id, row.dimensions_key, row.group_path)
                ]: _allocation_state(row)
                for row in rows
            },
        )

    async def save(
        self, environment_id: str, states: Iterable[tuple[AllocationKey, AllocationState]]
    ) -> None:
        await written(self._connection, self.save_write(environment_id, states))

    def save_write(
        self, environment_id: str, states: Iterable[tuple[AllocationKey, AllocationState]]
    ) -> _Write:
        rows = [
            {
                "environment_id": environment_id,
                "organization_id": key.partition.organization_id,
                "product_id": key.partition.product_id,
                "dimensions_key": key.dimensions.key,
                "group_path": key.path.key,
                "dimensions": key.dimensions.as_dict(),
                "allocated": to_units(state.allocated),
                "cumulative_allocated": to_units(state.cumulative_allocated),
                "consumed": to_units(state.consumed),
                "cumulative_consumed": to_units(state.cumulative_consumed),
            }
            for key, state in states
        ]
        updated = ("allocated", "cumulative_allocated", "consumed", "cumulative_consumed")
        return _Write(allocations, rows, updated=updated)

    async def at(
        self, environment_id: str, partition: PartitionKey, dimensions: Dimensions
    ) -> dict[GroupPath, AllocationState]:
        rows = await self._connection.execute(
            select(allocations).where(
                allocations.c.environment_id == environment_id,
                allocations.c.organization_id == partition.organization_id,
                allocations.c.product_id == partition.product_id,
                allocations.c.dimensions_key == dimensions.key,
            )
        )
        return {GroupPath.from_key(row.group_path): _allocation_state(row) for row in rows}

    async def for_products(
        self, environment_id: str, partitions_: Sequence[PartitionKey]
    ) -> list[tuple[AllocationKey, AllocationState]]:
        found: list[tuple[AllocationKey, AllocationState]] = []
        keys = [(p.organization_id, p.product_id) for p in partitions_]
        for chunk in _chunks(keys):
            rows = await self._connection.execute(
                select(allocations).where(
                    allocations.c.environment_id == environment_id,
                    tuple_(allocations.c.organization_id, allocations.c.product_id).in_(chunk),
                )
            )
            found.extend((_allocation_key(row), _allocation_state(row)) for row in rows)
        return found

    async def nearly_used_up(
        self, environment_id: str, *, remaining_share: Decimal, limit: int
    ) -> list[tuple[AllocationKey, AllocationState]]:
        # allocated <= share x cumulative, in whole units: allocated * 10^6 <= share_units * cum.
        share = to_units(remaining_share)
        rows = await self._connection.execute(
            select(allocations)
            .where(
                allocations.c.environment_id == environment_id,
                allocations.c.cumulative_allocated > 0,
                allocations.c.allocated * 1_000_000 <= allocations.c.cumulative_allocated * share,
            )
            .order_by(
                allocations.c.allocated,
                allocations.c.organization_id,
                allocations.c.product_id,
                allocations.c.group_path,
            )
            .limit(limit)
        )
        return [(_allocation_key(row), _allocation_state(row)) for row in rows]

    async def in_use(self, environment_id: str) -> bool:
        found = await self._connection.scalar(
            select(allocations.c.product_id)
            .where(allocations.c.environment_id == environment_id, allocations.c.allocated != 0)
            .limit(1)
        )
        return found is not None


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        session_hash=row.session_hash,
        token_id=row.token_id,
        csrf=row.csrf,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class SqlSessionRepository(_Repository):
    async def add(self, record: SessionRecord) -> None:
        await self._connection.execute(
            sessions.insert().values(
                session_hash=record.session_hash,
                token_id=record.token_id,
                csrf=record.csrf,
                created_at=record.created_at,
                expires_at=record.expires_at,
            )
        )

    async def get(self, session_hash: str) -> SessionRecord | None:
        row = (
            await self._connection.execute(
                select(sessions).where(sessions.c.session_hash == session_hash)
            )
        ).first()
        return _session(row) if row is not None else None

    async def delete(self, session_hash: str) -> None:
        await self._connection.execute(
            delete(sessions).where(sessions.c.session_hash == session_hash)
        )


def _entry(row: Any) -> JournalEntry:
    return JournalEntry(
        kind=OperationKind(row.kind),
        operation_id=row.operation_id,
        partition=PartitionKey(row.organization_id, row.product_id),
        fingerprint=row.fingerprint,
        request=row.request,
        effects=tuple(row.effects),
        result=row.result,
        actor=row.actor,
        recorded_at=row.recorded_at.astimezone(UTC),
        sequence=int(row.sequence),
    )


class SqlJournalRepository(_Repository):
    async def find(
        self, environment_id: str, kind: OperationKind, operation_ids: Iterable[str]
    ) -> dict[str, JournalEntry]:
        return await self._run(self.find_read(environment_id, kind, operation_ids))

    def find_read(
        self, environment_id: str, kind: OperationKind, operation_ids: Iterable[str]
    ) -> _Read[dict[str, JournalEntry]]:
        return self._keyed_read(
            journal,
            environment_id,
            [journal.c.operation_id],
            [(operation_id,) for operation_id in sorted(set(operation_ids))],
            lambda rows: {row.operation_id: _entry(row) for row in rows},
            where={"kind": kind.value},
        )

    async def append(self, environment_id: str, entries: Sequence[JournalEntry]) -> None:
        with journal_keys():
            await written(self._connection, self.append_write(environment_id, entries))

    def append_write(self, environment_id: str, entries: Sequence[JournalEntry]) -> _Write:
        """The entries' rows; a duplicate (kind, id) fails it with an ``IntegrityError``."""
        rows = [
            {
                "environment_id": environment_id,
                "organization_id": entry.partition.organization_id,
                "product_id": entry.partition.product_id,
                "kind": entry.kind.value,
                "operation_id": entry.operation_id,
                "fingerprint": entry.fingerprint,
                "request": entry.request,
                "effects": list(entry.effects),
                "result": entry.result,
                "actor": entry.actor,
                "recorded_at": entry.recorded_at,
            }
            for entry in entries
        ]
        return _Write(journal, rows)

    async def list_entries(
        self, environment_id: str, journal_filter: JournalFilter
    ) -> list[JournalEntry]:
        query = select(journal).where(journal.c.environment_id == environment_id)
        conditions: Mapping[Any, Any] = {
            journal.c.organization_id: journal_filter.organization_id,
            journal.c.product_id: journal_filter.product_id,
            journal.c.kind: journal_filter.kind.value if journal_filter.kind else None,
            journal.c.operation_id: journal_filter.operation_id,
        }
        for column, value in conditions.items():
            if value is not None:
                query = query.where(column == value)
        if journal_filter.organizations is not None:
            query = query.where(journal.c.organization_id.in_(journal_filter.organizations))
        if journal_filter.since is not None:
            query = query.where(journal.c.recorded_at >= journal_filter.since)
        if journal_filter.until is not None:
            query = query.where(journal.c.recorded_at < journal_filter.until)
        if journal_filter.after is not None:
            query = query.where(
                journal.c.sequence < journal_filter.after
                if journal_filter.descending
                else journal.c.sequence > journal_filter.after
            )
        order = journal.c.sequence.desc() if journal_filter.descending else journal.c.sequence
        rows = await self._connection.execute(query.order_by(order).limit(journal_filter.limit))
        return [_entry(row) for row in rows]
