"""A writing unit of work on PostgreSQL is one transaction, though it sends its own BEGIN with
its first statement (in the same pipeline as the batch's lock and reads): the locks it takes
hold until it ends, and nothing it wrote is seen before it commits or kept if it does not."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import make_url

from ringfence.domain.configuration import MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.ledger import Needs
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.operations import OperationKind, PartitionKey
from ringfence.services.ports import BatchReads, UnitOfWorkFactory

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
