"""Keyed lookups on PostgreSQL (of journal ids here; measures, reservations and allocations are
read by the same statement) are planned on the whole key index even for an environment the
table's statistics have not seen yet: a new environment filling fast must not have each of its
keys looked up by scanning its rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url

from ringfence.domain.operations import OperationKind
from ringfence.storage.engine import open_database
from ringfence.storage.migrate import upgrade
from ringfence.storage.repositories import SqlJournalRepository
from tests.conftest import create_postgresql_database, drop_postgresql_database

pytestmark = pytest.mark.asyncio

ENTRIES = 20_000


@pytest.fixture
def database() -> Iterator[str]:
    url = create_postgresql_database("ringfence_keyed")
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgresql_database(url)


def fill(libpq: str, environment_id: str) -> None:
    with psycopg.connect(libpq) as connection:
        connection.execute(
            """
            INSERT INTO journal (environment_id, organization_id, product_id, kind,
                                 operation_id, fingerprint, request, effects, result, actor,
                                 recorded_at)
            SELECT %(environment)s, 'usmf', 'P-' || (n %% 100), %(kind)s, 'op-' || n, 'f',
                   '{}', '[]', '{}', 'test', now()
            FROM generate_series(1, %(entries)s) AS n
            """,
            {
                "environment": environment_id,
                "kind": OperationKind.ALLOCATE.value,
                "entries": ENTRIES,
            },
        )


def indexes_used(plan: Any) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", ()):
        found |= indexes_used(child)
    return found


async def test_ids_of_an_environment_unseen_by_the_statistics_are_found_by_their_key(
    database: str,
) -> None:
    libpq = make_url(database).set(drivername="postgresql").render_as_string(False)
    fill(libpq, "known")
    with psycopg.connect(libpq, autocommit=True) as connection:
        connection.execute("ANALYZE journal")
    fill(libpq, "new")  # faster than autovacuum analyzes: the statistics know only "known"
    ids = [f"op-{n}" for n in range(1, ENTRIES, ENTRIES // 128)]

    opened = open_database(database)
    try:
        async with opened.writer.connect() as connection:
            read = SqlJournalRepository(connection).find_read("new", OperationKind.ALLOCATE, ids)
            ((statement, parameters),) = read.statements
            compiled = statement.compile(dialect=connection.dialect)
            explained = await connection.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON) {compiled}", {**compiled.params, **parameters}
            )
            plan = explained.scalar_one()
            found = await connection.execute(statement, parameters)
            rows = found.all()
    finally:
        await opened.dispose()

    assert {row.operation_id for row in rows} == set(ids)
    assert indexes_used(plan[0]["Plan"]) == {"uq_journal_environment_id_kind_operation_id"}
