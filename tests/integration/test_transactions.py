"""A writing unit of work on PostgreSQL is one transaction, though it sends its own BEGIN with
its first statement (in the same pipeline as the batch's lock and reads): the locks it takes
hold until it ends, and nothing it wrote is seen before it commits or kept if it does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ringfence.domain.configuration import MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.ledger import Needs
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.operations import OperationKind, PartitionKey
from ringfence.services.ports import BatchReads, UnitOfWorkFactory
from ringfence.storage.engine import DriverPool
from ringfence.storage.repositories import NativeStatement, in_one_round_trip, partition_lock
from ringfence.storage.unit_of_work import SqlUnitOfWorkFactory

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

PARTITION = PartitionKey("usmf", "T-shirt")
KEY = MeasureKey(PARTITION, Dimensions((("siteId", "1"),)), MeasureRef("pos", "inbound"))


@pytest.fixture
def other(database_url: str) -> Iterator[psycopg.Connection]:
    """Another session on the same database, as another server process would be."""
    libpq = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(libpq, autocommit=True) as connection:
        yield connection


def stored(other: psycopg.Connection, environment_id: str) -> int:
    row = other.execute(
        "SELECT count(*) FROM onhand_measures WHERE environment_id = %s", (environment_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def locked(other: psycopg.Connection, environment_id: str) -> bool:
    try:
        other.execute(
            "SELECT 1 FROM partitions WHERE environment_id = %s FOR UPDATE NOWAIT",
            (environment_id,),
        )
    except psycopg.errors.LockNotAvailable:
        return True
    return False


@pytest.fixture
async def environment_id(environment_id: str, uow: UnitOfWorkFactory) -> str:
    """The test's environment with the partition's row in place (a first lock inserts it, and
    a row not yet committed is not there for another session to find locked)."""
    async with uow() as work:
        await work.partitions.lock(environment_id, [PARTITION])
        await work.commit()
    return environment_id


def reads(environment_id: str) -> BatchReads:
    return BatchReads(
        environment_id=environment_id,
        kind=OperationKind.ONHAND_CHANGE,
        partitions=[PARTITION],
        operation_ids={"op-1"},
        needs=Needs(),
        below=(),
    )


async def test_the_batch_lock_holds_until_commit(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    async with uow() as work:
        await work.lock_and_read(reads(environment_id))  # BEGIN, the lock and reads: one trip
        assert locked(other, environment_id)
        await work.onhand.save(environment_id, [(KEY, MeasureState(Decimal(3)))])
        assert stored(other, environment_id) == 0
        await work.commit()

    assert not locked(other, environment_id)
    assert stored(other, environment_id) == 1


async def test_what_is_not_committed_is_not_kept(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    async with uow() as work:
        await work.partitions.lock(environment_id, [PARTITION])  # a statement of its own first
        await work.onhand.save(environment_id, [(KEY, MeasureState(Decimal(3)))])
        assert locked(other, environment_id)

    assert not locked(other, environment_id)
    assert stored(other, environment_id) == 0


async def test_a_unit_that_fails_keeps_nothing_and_its_connection_serves_the_next(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    async def fail_mid_way() -> None:
        async with uow() as work:
            await work.onhand.save(environment_id, [(KEY, MeasureState(Decimal(3)))])
            raise RuntimeError("the caller fails mid-way")

    with pytest.raises(RuntimeError):
        await fail_mid_way()

    for _ in range(3):  # whichever pooled connection comes next begins its own transaction
        async with uow() as work:
            await work.lock_and_read(reads(environment_id))
            assert locked(other, environment_id)
    assert stored(other, environment_id) == 0


# -- one round trip: a lock and one statement, as a hot batch sends them ---------------------


NEW = PartitionKey("usmf", "new-product")


def driver_pool(uow: UnitOfWorkFactory) -> DriverPool:
    assert isinstance(uow, SqlUnitOfWorkFactory)
    assert uow.database.driver is not None
    return uow.database.driver


SAME_TRANSACTION = NativeStatement.of(
    "SELECT count(*) FROM partitions WHERE environment_id = %(environment_id)s "
    "AND product_id = 'new-product' AND xmin = pg_current_xact_id()::xid"
)


def new_rows(other: psycopg.Connection, environment_id: str) -> int:
    row = other.execute(
        "SELECT count(*) FROM partitions WHERE environment_id = %s AND product_id = %s",
        (environment_id, NEW.product_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_lock_and_a_statement_sent_alone_are_one_transaction(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    """They go without BEGIN and COMMIT: the statement runs in the transaction that inserted
    the lock's row, which is committed once the call returns."""
    async with driver_pool(uow).connection() as driver:
        (count,) = await in_one_round_trip(
            driver,
            partition_lock(environment_id, [NEW]),
            (SAME_TRANSACTION, {"environment_id": environment_id}),
        )
        assert count == 1
        assert not locked(other, environment_id)
    assert new_rows(other, environment_id) == 1


async def test_a_statement_that_fails_takes_its_lock_with_it(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    pool = driver_pool(uow)
    divide_by_zero_after_the_lock = NativeStatement.of(  # the server's error
        "SELECT 1 / (count(*) - 1) FROM partitions WHERE environment_id = %(e)s "
        "AND product_id = 'new-product'"
    )
    async with pool.connection() as driver:
        with pytest.raises(psycopg.errors.DivisionByZero):
            await in_one_round_trip(
                driver,
                partition_lock(environment_id, [NEW]),
                (divide_by_zero_after_the_lock, {"e": environment_id}),
            )
        assert new_rows(other, environment_id) == 0
        # The connection serves the next transaction.
        (count,) = await in_one_round_trip(
            driver,
            partition_lock(environment_id, [NEW]),
            (SAME_TRANSACTION, {"environment_id": environment_id}),
        )
        assert count == 1


async def test_a_failure_on_this_side_mid_way_takes_the_lock_with_it(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    """The lock is sent, then the statement cannot be (a value the driver cannot send, as a
    cancelled request would stop it): leaving the pipeline must not commit the lock alone."""
    async with driver_pool(uow).connection() as driver:
        with pytest.raises(psycopg.ProgrammingError, match="cannot adapt"):
            await in_one_round_trip(
                driver,
                partition_lock(environment_id, [NEW]),
                (NativeStatement.of("SELECT %(value)s"), {"value": object()}),
            )
    assert new_rows(other, environment_id) == 0


# -- the bare driver's pool ----------------------------------------------------------------


def conninfo(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


async def backend(driver: psycopg.AsyncConnection[Any]) -> int:
    cursor = await driver.execute("SELECT pg_backend_pid()")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_the_pool_lends_its_idle_connections_again(database_url: str) -> None:
    pool = DriverPool(conninfo(database_url), 2)
    try:
        async with pool.connection() as driver:
            first = await backend(driver)
            assert driver.autocommit
        async with pool.connection() as driver:
            assert await backend(driver) == first
        assert pool.idle == 1
    finally:
        await pool.close()
    assert pool.idle == 0


async def test_a_connection_left_broken_or_in_a_transaction_is_not_lent_again(
    database_url: str, other: psycopg.Connection
) -> None:
    pool = DriverPool(conninfo(database_url), 2)
    try:
        async with pool.connection() as driver:
            first = await backend(driver)
            await driver.execute("BEGIN")  # left open, as a cancelled call could leave it
        assert pool.idle == 0
        async with pool.connection() as driver:
            second = await backend(driver)
        assert second != first
        other.execute("SELECT pg_terminate_backend(%s)", (second,))
        async with pool.connection() as driver:  # the idle one found broken: a new one
            with pytest.raises(psycopg.OperationalError):
                await backend(driver)
        async with pool.connection() as driver:
            assert await backend(driver) not in (first, second)
    finally:
        await pool.close()


async def test_no_more_than_its_size_are_lent_and_a_caller_waits_only_so_long(
    database_url: str,
) -> None:
    pool = DriverPool(conninfo(database_url), 1, timeout=0.2)
    try:
        async with pool.connection():
            with pytest.raises(PoolTimeout, match="no database connection free"):
                async with pool.connection():
                    pass
        async with pool.connection() as driver:  # the slot is back
            await backend(driver)
    finally:
        await pool.close()


async def test_a_database_that_cannot_be_reached_fails_the_caller_at_once(
    database_url: str,
) -> None:
    pool = DriverPool("postgresql://postgres@127.0.0.1:9/none?connect_timeout=5", 2)
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        async with pool.connection():
            pass
    assert time.monotonic() - started < 5
    async with asyncio.timeout(1):  # no slot was kept by the failure
        for _ in range(3):
            with pytest.raises(psycopg.OperationalError):
                async with pool.connection():
                    pass
    await pool.close()


async def test_a_closed_pool_lends_nothing_and_closes_what_comes_back(database_url: str) -> None:
    pool = DriverPool(conninfo(database_url), 2)
    async with pool.connection() as driver:
        await pool.close()
    assert driver.closed
    with pytest.raises(PoolTimeout, match="closed"):
        async with pool.connection():
            pass
