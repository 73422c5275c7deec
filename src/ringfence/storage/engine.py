"""Database engines per dialect: the embedded SQLite file (default) and PostgreSQL.

SQLite: WAL journal, ``synchronous=FULL`` (an acknowledged commit survives a crash of the
process or the machine), and writers start with ``BEGIN IMMEDIATE`` through a single pooled
connection per process, so writers queue instead of failing on a busy database; several
processes wait for each other through ``busy_timeout``.
PostgreSQL: psycopg 3, a small pool, autocommit for reads; writers run READ COMMITTED
transactions whose BEGIN they send themselves, with their first statement (:func:`defer_begin`);
partitions serialize on their row lock. Statements that are a transaction of their own (a batch
decided at once) run on the bare driver, from a pool of its own (:class:`DriverPool`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import URL, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from ringfence.jsoncodec import dumps, loads

__all__ = [
    "Database",
    "DriverPool",
    "async_url",
    "defer_begin",
    "open_database",
    "sync_url",
    "take_deferred_begin",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _json_dumps(value: Any) -> str:
    return dumps(value).decode()


def async_url(text: str | URL) -> URL:
    """The URL with an asyncio driver: ``sqlite`` -> aiosqlite, ``postgresql`` -> psycopg."""
    url = make_url(text)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    raise ValueError(
        f"unsupported database {url.drivername!r}: use sqlite:///FILE or postgresql+psycopg://..."
    )


def sync_url(text: str | URL) -> URL:
    """The URL with a blocking driver (for migrations): pysqlite or psycopg."""
    url = async_url(text)
    return url.set(drivername="sqlite") if url.get_backend_name() == "sqlite" else url


@dataclass(frozen=True)
class Database:
    """The engines of one database: ``reader`` for read-only units, ``writer`` for the rest."""

    url: URL
    reader: AsyncEngine
    writer: AsyncEngine
    deferred_begin: bool = False
    """Whether writers send their own BEGIN (:func:`defer_begin`): PostgreSQL."""
    driver: DriverPool | None = None
    """Connections on the bare driver for statements that are a transaction of their own
    (PostgreSQL)."""

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader.pool is not self.writer.pool:
            await self.reader.dispose()
        if self.driver is not None:
            await self.driver.close()

    async def schema_revision(self) -> str | None:
        """The Alembic revision of the schema (None without one); fails if unreachable."""
        async with self.reader.connect() as connection:
            try:
                result = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            except DBAPIError:
                return None
            return result.scalar()


def _sqlite_engine(url: URL, *, write: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=loads,
        pool_size=1 if write else pool_size,
        max_overflow=0,
        pool_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, open transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def open_database(url_text: str | URL, *, pool_size: int = 8) -> Database:
    """Engines for the database at ``url_text`` (nothing connects until first use)."""
    url = async_url(url_text)
    if url.get_backend_name() == "sqlite":
        return Database(
            url,
            reader=_sqlite_engine(url, write=False, pool_size=pool_size),
            writer=_sqlite_engine(url, write=True, pool_size=pool_size),
        )
    # Every connection is in autocommit mode, set once when it is opened: reads need no
    # transaction of their own (each statement sees committed data, and a read-only unit of
    # work costs its statements' round trips, not BEGIN and ROLLBACK too), and writers begin
    # their transactions themselves, with their first statement (see defer_begin): the driver
    # would send BEGIN on its own and wait for its answer, a round trip of its own even in
    # pipeline mode. Set on the engine rather than as an execution option of its connections,
    # it is not set again and reset at every checkout (two calls into the driver each time).
    engine = create_async_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=loads,
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        # A few extra connections for bursts; more would be opened and closed again under load.
        max_overflow=max(pool_size // 4, 2),
        pool_recycle=1800,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(_PAGE_COST)
        cursor.close()
        dbapi_connection.commit()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _begin_first(connection: Any, cursor: Any, *_: Any) -> None:
        if take_deferred_begin(connection.info):
            cursor.execute("BEGIN")

    driver = DriverPool(
        url.set(drivername="postgresql").render_as_string(hide_password=False), pool_size
    )
    return Database(url, reader=engine, writer=engine, deferred_begin=True, driver=driver)


class DriverPool:
    """PostgreSQL connections on the bare driver (psycopg, autocommit mode), for statements
    that are a transaction of their own: a batch decided at once is one round trip, and a unit
    of work of the engine around it costs several times the CPU of the round trip itself
    (``python -m bench.unit_of_work``).

    At most ``size`` connections are lent at once; a caller waits for one up to ``timeout``
    seconds (then :class:`sqlalchemy.exc.TimeoutError`, as the engine's pool raises). Idle
    connections are kept and lent again, the most recently used first; one that is broken, in
    a transaction or older than ``recycle`` seconds is closed instead. A connection that cannot
    be opened fails its caller at once (psycopg's error), as the engine's pool does, so that a
    database that is down answers 503 without delay; psycopg_pool would make callers wait
    while it reconnects in the background.
    """

    def __init__(
        self, conninfo: str, size: int, *, timeout: float = 30.0, recycle: float = 1800.0
    ) -> None:
        self._conninfo = conninfo
        self._slots = asyncio.Semaphore(size)
        self._timeout = timeout
        self._recycle = recycle
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []
        self._closed = False

    @property
    def idle(self) -> int:
        """How many connections wait to be lent."""
        return len(self._idle)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection, given back (or closed) on the way out."""
        if self._closed:
            raise PoolTimeout("the database's connections are closed")
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeout(
                    f"no database connection free after {self._timeout:g} s"
                ) from None
        else:
            await self._slots.acquire()
        try:
            connection, opened = await self._take()
            try:
                yield connection
            finally:
                await self._give_back(connection, opened)
        finally:
            self._slots.release()

    async def _take(self) -> tuple[psycopg.AsyncConnection[Any], float]:
        now = time.monotonic()
        while self._idle:
            connection, opened = self._idle.pop()
            if not connection.broken and now - opened < self._recycle:
                return connection, opened
            await connection.close()
        connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            await connection.execute(_PAGE_COST)
        except BaseException:
            await connection.close()
            raise
        return connection, now

    async def _give_back(self, connection: psycopg.AsyncConnection[Any], opened: float) -> None:
        if (
            self._closed
            or connection.broken
            or connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        ):
            await connection.close()
        else:
            self._idle.append((connection, opened))

    async def close(self) -> None:
        """Close the idle connections; those lent are closed when given back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            await connection.close()


_PAGE_COST = (
    "SELECT set_config('random_page_cost',"
    " least(current_setting('random_page_cost')::float8, 1.1)::text, false)"
)
"""Ringfence's sessions price a random page read at most 1.1 sequential ones, PostgreSQL's own
advice for data in memory or on SSDs (its default, 4, prices disks that seek). Every query here
follows a primary key's prefix; with the default, an index query over 1,000 of 10,000 products
(10% of a 1,000,000-row table, clustered by that key) was planned as a parallel scan of the
whole table and a sort spilling to disk: 220-300 ms on the server, against 110-140 ms along
the key. A lower value set on the server, database or role is kept."""


_DEFERRED_BEGIN = "ringfence.deferred_begin"


def defer_begin(info: dict[Any, Any], deferred: bool = True) -> None:
    """Mark a PostgreSQL writer's connection (its ``info``) as owing BEGIN: the next statement
    sends it first (in the same pipeline when there is one). ``False`` clears the mark."""
    if deferred:
        info[_DEFERRED_BEGIN] = True
    else:
        info.pop(_DEFERRED_BEGIN, None)


def take_deferred_begin(info: dict[Any, Any]) -> bool:
    """Whether BEGIN is owed (and, if so, no longer: the caller sends it)."""
    return info.pop(_DEFERRED_BEGIN, False) is True
