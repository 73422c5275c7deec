"""What a unit of work costs around one statement: ``python -m bench.unit_of_work``.

A unit of work around one round trip is a connection from the engine's pool, the driver's
connection under it, the statement, the commit, the connection given back. This runs that cycle
with a trivial statement (``BENCH_CYCLES`` times, default 3,000, after a warm-up); the same
statement on a connection lent by the driver's own pool
(:class:`~ringfence.storage.engine.DriverPool`, how a batch decided at once is sent); and on a
bare psycopg connection; in turns, and prints the CPU time of this process per cycle for each:
what each way costs besides the statement and the server's work.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import psycopg

from bench.harness import postgresql_database, sqlalchemy_url
from ringfence.bootstrap import build
from ringfence.settings import Settings
from ringfence.storage.repositories import NativeStatement, _driver
from ringfence.storage.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory

STATEMENT = NativeStatement.of("SELECT %(n)s::int")


async def _run(cycle: Callable[[int], Awaitable[None]], cycles: int) -> float:
    """CPU microseconds of this process per cycle."""
    started = time.process_time()
    for number in range(cycles):
        await cycle(number)
    return (time.process_time() - started) / cycles * 1e6


async def _send(driver: psycopg.AsyncConnection[object], number: int) -> None:
    cursor = psycopg.AsyncRawCursor(driver)
    await cursor.execute(STATEMENT.sql, STATEMENT.values({"n": number}))
    await cursor.fetchone()
    await cursor.close()


async def main(database: str, cycles: int) -> None:
    uow = build(Settings(database_url=sqlalchemy_url(database))).uow
    assert isinstance(uow, SqlUnitOfWorkFactory)
    pool = uow.database.driver
    bare = await psycopg.AsyncConnection.connect(database, autocommit=True)

    async def in_a_unit_of_work(number: int) -> None:
        async with uow() as work:
            assert isinstance(work, SqlUnitOfWork)
            connection = work._connection
            async with _driver(connection) as (driver, _):
                await _send(driver, number)
            await connection.commit()

    async def from_the_driver_pool(number: int) -> None:
        assert pool is not None
        async with pool.connection() as driver:
            await _send(driver, number)

    async def on_the_driver(number: int) -> None:
        await _send(bare, number)

    cycles_by_name = {
        "unit of work": in_a_unit_of_work,
        "driver pool": from_the_driver_pool,
        "bare driver": on_the_driver,
    }
    try:
        for cycle in cycles_by_name.values():
            await _run(cycle, cycles // 10)  # warm-up: pools, prepared statements
        for _ in range(2):
            for name, cycle in cycles_by_name.items():
                print(f"{name}: {await _run(cycle, cycles):.0f} µs of CPU per cycle")  # noqa: T201
    finally:
        await bare.close()


if __name__ == "__main__":
    with postgresql_database("uow") as database:
        asyncio.run(main(database, int(os.environ.get("BENCH_CYCLES", "3000"))))
