"""Ringfence's PostgreSQL sessions price random page reads for data in memory or on SSDs (at
most 1.1 sequential reads), so its primary-key lookups are planned as such; an operator's
lower setting is kept."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import make_url

from ringfence.storage.engine import open_database
from tests.conftest import create_postgresql_database, drop_postgresql_database

pytestmark = pytest.mark.asyncio


@pytest.fixture
def database() -> Iterator[str]:
    url = create_postgresql_database("ringfence_settings")
    try:
        yield url
    finally:
        drop_postgresql_database(url)


async def random_page_cost(url: str) -> str:
    database = open_database(url)
    try:
        for engine in (database.reader, database.writer):
            async with engine.connect() as connection:
                result = await connection.exec_driver_sql("SHOW random_page_cost")
                value = result.scalar_one()
        return str(value)
    finally:
        await database.dispose()


async def test_sessions_price_random_reads_for_memory_and_ssd(database: str) -> None:
    libpq = make_url(database).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(libpq) as connection:
        row = connection.execute("SHOW random_page_cost").fetchone()
    assert row is not None
    server = float(row[0])  # 4 unless the server was tuned

    assert float(await random_page_cost(database)) == min(server, 1.1)


async def test_a_lower_setting_of_the_operator_is_kept(database: str) -> None:
    libpq = make_url(database).set(drivername="postgresql").render_as_string(False)
    name = make_url(database).database
    with psycopg.connect(libpq, autocommit=True) as connection:
        connection.execute(f'ALTER DATABASE "{name}" SET random_page_cost = 1')

    assert await random_page_cost(database) == "1"
