"""What a unit of work costs around one statement: ``python -m bench.unit_of_work``.

A batch decided at once is one unit of work around one round trip: a connection from the
engine's pool, the driver's connection under it, the statement, the commit, the connection
given back. This runs that cycle with a trivial statement (``BENCH_CYCLES`` times, default
3,000, after a warm-up), and the same statement on a bare psycopg connection, in turns, and
prints the CPU time of this process per cycle for each: the unit of work's own cost, the part
of a batch's cost that is neither the statement nor the server's.
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
from ringfence.storage.unit_of_work import SqlUnitOfWork

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
    bare = await psycopg.AsyncConnection.connect(database, autocommit=True)

    async def in_a_unit_of_work(number: int) -> None:
        async with uow() as work:
            assert isinstance(work, SqlUnitOfWork)
            connection = work._connection
            async with _driver(connection) as (driver, _):
                await _send(driver, number)
            await connection.commit()

    async def on_the_driver(number: int) -> None:
        await _send(bare, number)

    try:
        for cycle in (in_a_unit_of_work, on_the_driver):
            await _run(cycle, cycles // 10)  # warm-up: pool, prepared statements
        for _ in range(2):
            for name, cycle in (
                ("unit of work", in_a_unit_of_work),
                ("bare driver", on_the_driver),
            ):
                print(f"{name}: {await _run(cycle, cycles):.0f} µs of CPU per cycle")  # noqa: T201
    finally:
        await bare.close()


if __name__ == "__main__":
    with postgresql_database("uow") as database:
        asyncio.run(main(database, int(os.environ.get("BENCH_CYCLES", "3000"))))
