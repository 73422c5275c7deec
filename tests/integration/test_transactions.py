"""A writing unit of work on PostgreSQL is one transaction, though it sends its own BEGIN with
its first statement (in the same pipeline as the batch's lock and reads): the locks it takes
hold until it ends, and nothing it wrote is seen before it commits or kept if it does not."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError

from ringfence.domain.configuration import MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.ledger import Needs
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.operations import OperationKind, PartitionKey
from ringfence.services.ports import BatchReads, UnitOfWork, UnitOfWorkFactory
from ringfence.storage.repositories import NativeStatement, in_one_round_trip
from ringfence.storage.unit_of_work import SqlUnitOfWork

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


def sql(work: UnitOfWork) -> SqlUnitOfWork:
    assert isinstance(work, SqlUnitOfWork)
    return work


SAME_TRANSACTION = NativeStatement.of(
    "SELECT count(*) FROM partitions WHERE environment_id = %(environment_id)s "
    "AND product_id = 'new-product' AND xmin = pg_current_xact_id()::xid"
)


async def test_a_lock_and_a_statement_sent_alone_are_one_transaction(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    """With nothing sent before, they go without BEGIN and COMMIT: the statement runs in the
    transaction that inserted the lock's row, which is committed once the call returns."""
    async with uow() as work:
        connection = sql(work)._connection
        lock = sql(work).partitions.lock_read(environment_id, [NEW])
        (count,) = await in_one_round_trip(
            connection, lock, SAME_TRANSACTION, {"environment_id": environment_id}
        )
        assert count == 1
        assert not locked(other, environment_id)
    row = other.execute(
        "SELECT count(*) FROM partitions WHERE environment_id = %s AND product_id = %s",
        (environment_id, NEW.product_id),
    ).fetchone()
    assert row == (1,)


async def test_a_statement_that_fails_takes_its_lock_with_it(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    async def divide_by_zero_after_the_lock() -> None:  # the server's error
        async with uow() as work:
            lock = sql(work).partitions.lock_read(environment_id, [NEW])
            await in_one_round_trip(
                sql(work)._connection,
                lock,
                NativeStatement.of(
                    "SELECT 1 / (count(*) - 1) FROM partitions WHERE environment_id = %(e)s "
                    "AND product_id = 'new-product'"
                ),
                {"e": environment_id},
            )

    with pytest.raises(DBAPIError):
        await divide_by_zero_after_the_lock()
    row = other.execute(
        "SELECT count(*) FROM partitions WHERE environment_id = %s AND product_id = %s",
        (environment_id, NEW.product_id),
    ).fetchone()
    assert row == (0,)
    async with uow() as work:  # the connection serves the next unit
        await work.lock_and_read(reads(environment_id))
        assert locked(other, environment_id)


async def test_in_an_open_transaction_the_round_trip_commits_it(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    async with uow() as work:
        await work.onhand.save(environment_id, [(KEY, MeasureState(Decimal(3)))])  # BEGIN sent
        lock = sql(work).partitions.lock_read(environment_id, [NEW])
        (count,) = await in_one_round_trip(
            sql(work)._connection,
            lock,
            SAME_TRANSACTION,
            {"environment_id": environment_id},
        )
        assert count == 1
    assert stored(other, environment_id) == 1
    assert not locked(other, environment_id)


async def test_a_failure_on_this_side_mid_way_takes_the_lock_with_it(
    uow: UnitOfWorkFactory, environment_id: str, other: psycopg.Connection
) -> None:
    """The lock is sent, then the statement cannot be (a value the driver cannot send, as a
    cancelled request would stop it): leaving the pipeline must not commit the lock alone."""

    async def unsendable_after_the_lock() -> None:
        async with uow() as work:
            lock = sql(work).partitions.lock_read(environment_id, [NEW])
            await in_one_round_trip(
                sql(work)._connection,
                lock,
                NativeStatement.of("SELECT %(value)s"),
                {"value": object()},
            )

    with pytest.raises(DBAPIError, match="cannot adapt"):
        await unsendable_after_the_lock()
    row = other.execute(
        "SELECT count(*) FROM partitions WHERE environment_id = %s AND product_id = %s",
        (environment_id, NEW.product_id),
    ).fetchone()
    assert row == (0,)
