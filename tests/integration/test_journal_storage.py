"""The journal's storage on SQLite and PostgreSQL: what is appended reads back the same (JSON,
times, exact quantities), an id journaled twice is refused and nothing of its batch is kept; and
a connection lost in the driver's own pipelines still answers 503."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import make_url

from ringfence.domain.configuration import MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.operations import JournalEntry, OperationKind, PartitionKey
from ringfence.domain.quantity import MAX_QUANTITY
from ringfence.services.ports import (
    BatchWrites,
    DuplicateOperation,
    JournalFilter,
    UnitOfWorkFactory,
)
from tests.integration.support import Api, assert_problem, event

pytestmark = pytest.mark.asyncio

# One entry, a batch's worth, a bulk call's, and beyond SQLite's 500-row chunks.
SIZES = [1, 32, 512, 600]


def entries(prefix: str, count: int) -> list[JournalEntry]:
    recorded_at = datetime(2026, 12, 2, 10, 30, 0, 123456, tzinfo=UTC)
    return [
        JournalEntry(
            kind=OperationKind.ONHAND_CHANGE,
            operation_id=f"{prefix}-{index}",
            partition=PartitionKey("usmf", f"P-{index % 7}"),
            fingerprint=f"{index:064x}",
            request={
                "id": f"{prefix}-{index}",
                "note": 'tab\there, "quoted", back\\slash, newline\n, ünïcode',
                "quantities": {"pos": {"inbound": Decimal("0.000001") * (index + 1)}},
            },
            effects=({"measure": "pos.inbound", "delta": Decimal("-2.5"), "empty": None},),
            result={"id": f"{prefix}-{index}", "statusCode": 200, "fractions": [Decimal("1.5")]},
            actor="journal-test",
            recorded_at=recorded_at,
        )
        for index in range(count)
    ]


async def append(uow: UnitOfWorkFactory, environment_id: str, written: list[JournalEntry]) -> None:
    async with uow() as work:
        await work.journal.append(environment_id, written)
        await work.commit()


async def read_back(uow: UnitOfWorkFactory, environment_id: str) -> list[JournalEntry]:
    async with uow(read_only=True) as work:
        return await work.journal.list_entries(environment_id, JournalFilter(limit=1000))


@pytest.mark.parametrize("count", SIZES)
async def test_appended_entries_read_back_exactly_in_order(
    uow: UnitOfWorkFactory, environment_id: str, count: int
) -> None:
    written = entries("kept", count)
    await append(uow, environment_id, written)

    read = await read_back(uow, environment_id)

    assert read == written
    sequences = [entry.sequence for entry in read if entry.sequence is not None]
    assert len(sequences) == count
    assert sequences == sorted(sequences)


@pytest.mark.parametrize("count", SIZES)
async def test_an_id_journaled_twice_is_refused_and_nothing_of_the_second_append_is_kept(
    uow: UnitOfWorkFactory, environment_id: str, count: int
) -> None:
    first = entries("twice", count)
    await append(uow, environment_id, first)
    # Fresh ids around one already journaled (under another partition: no lock would meet).
    second = [*entries("fresh", count), first[-1]]

    async with uow() as work:
        with pytest.raises(DuplicateOperation):
            await work.journal.append(environment_id, second)

    assert await read_back(uow, environment_id) == first


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "table",
    [
        "partitions",  # the batch's lock, sent with its reads in one pipeline
        "journal",  # the batch's writes, its entries and COMMIT, in one pipeline
    ],
)
async def test_a_connection_lost_mid_batch_answers_503_and_keeps_nothing(
    api: Api, environment_id: str, database_url: str, table: str
) -> None:
    libpq = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    trigger = f"lost_{environment_id.replace('-', '_')}"
    with psycopg.connect(libpq, autocommit=True) as connection:
        # The server's answer when an administrator shuts it down, to this environment's rows.
        connection.execute(
            f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'terminating connection' USING ERRCODE = 'admin_shutdown'; END $$"
        )
        connection.execute(
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON {table} FOR EACH ROW "
            f"WHEN (NEW.environment_id = '{environment_id}') EXECUTE FUNCTION {trigger}()"
        )
    bulk = [event(f"lost-{index}", {"pos": {"inbound": 1}}) for index in range(3)]
    try:
        response = await api.post("/onhand/bulk", bulk)
    finally:
        with psycopg.connect(libpq, autocommit=True) as connection:
            connection.execute(f"DROP TRIGGER {trigger} ON {table}")
            connection.execute(f"DROP FUNCTION {trigger}()")

    assert_problem(response, 503, "database-unavailable")
    assert response.headers["Retry-After"] == "2"
    assert await api.measure("pos.inbound") == 0
    assert await api.journal() == []
    retried = await api.post("/onhand/bulk", bulk)
    assert retried.status_code == 200, retried.text
    assert await api.measure("pos.inbound") == 3


async def test_a_batch_whose_journal_id_is_taken_keeps_none_of_its_writes(
    uow: UnitOfWorkFactory, environment_id: str
) -> None:
    taken = entries("taken", 1)
    await append(uow, environment_id, taken)
    key = MeasureKey(
        PartitionKey("usmf", "P-9"),
        Dimensions([("siteId", "1"), ("locationId", "11")]),
        MeasureRef("pos", "inbound"),
    )
    batch = BatchWrites(
        environment_id=environment_id,
        measures=[(key, MeasureState(Decimal(5)))],
        allocations=[],
        reservations=[],
        entries=[*entries("new", 3), taken[0]],
    )

    async with uow() as work:
        with pytest.raises(DuplicateOperation):
            await work.write_and_commit(batch)

    async with uow(read_only=True) as work:
        assert await work.onhand.load(environment_id, [key]) == {}
    assert await read_back(uow, environment_id) == taken


@pytest.mark.parametrize("count", SIZES)
async def test_measures_upserted_together_read_back_exactly(
    uow: UnitOfWorkFactory, environment_id: str, count: int
) -> None:
    """One statement writes a whole batch's measures on PostgreSQL: each row keeps its own
    values (the largest quantity, a time to the microsecond, none), and a second write of the
    same keys updates them in place."""
    counted = datetime(2026, 12, 2, 10, 30, 0, 654321, tzinfo=UTC)
    keys = [
        MeasureKey(
            PartitionKey("usmf", f"P-{index % 13}"),
            Dimensions({"siteId": "1", "locationId": str(index)}.items()),
            MeasureRef("pos", "inbound"),
        )
        for index in range(count)
    ]
    first = {
        key: MeasureState(
            MAX_QUANTITY if index % 2 else -MAX_QUANTITY, counted if index % 3 else None
        )
        for index, key in enumerate(keys)
    }
    second = {key: MeasureState(Decimal("0.000001") * index) for index, key in enumerate(keys)}
    for states in (first, second):
        async with uow() as work:
            await work.onhand.save(environment_id, states.items())
            await work.commit()

        async with uow(read_only=True) as work:
            assert await work.onhand.load(environment_id, keys) == states
