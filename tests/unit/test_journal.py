"""Reading the journal on the in-memory unit of work: order, filters, pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ringfence.domain.access import Principal, Role
from ringfence.domain.errors import Forbidden, Invalid
from ringfence.domain.operations import OperationKind
from ringfence.services.journal import MAX_PAGE_SIZE, list_journal
from ringfence.services.onhand import post_onhand_changes
from ringfence.services.ports import JournalFilter
from ringfence.storage.memory import MemoryUnitOfWorkFactory
from tests.unit.conftest import change


async def post(
    uow: MemoryUnitOfWorkFactory, principal: Principal, environment_id: str, count: int
) -> None:
    """``count`` change events ``e1``..``eN``, one call each, odd ones for product ``Shoe``."""
    for number in range(1, count + 1):
        product = "Shoe" if number % 2 else "T-shirt"
        await post_onhand_changes(
            uow, principal, environment_id, [change(f"e{number}", product=product)]
        )


async def ids(
    uow: MemoryUnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    journal_filter: JournalFilter,
) -> list[str]:
    page = await list_journal(uow, principal, environment_id, journal_filter)
    return [entry.operation_id for entry in page.entries]


async def test_list_journal_returns_accepted_mutations_in_order(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post(uow, writer, environment_id, 3)

    page = await list_journal(uow, writer, environment_id, JournalFilter())

    assert [entry.operation_id for entry in page.entries] == ["e1", "e2", "e3"]
    sequences = [entry.sequence or 0 for entry in page.entries]
    assert sequences[0] < sequences[1] < sequences[2]
    assert page.next_cursor is None
    first = page.entries[0]
    assert first.kind is OperationKind.ONHAND_CHANGE
    assert first.actor == writer.actor
    assert first.request["quantities"] == {"pos": {"inbound": Decimal("1")}}
    assert first.effects[0]["measure"] == "pos.inbound"


async def test_list_journal_leaves_out_refused_and_replayed_operations(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post_onhand_changes(
        uow,
        writer,
        environment_id,
        [change("e1"), change("bad", {"pos": {"returned": 1}}), change("e1")],
    )
    await post_onhand_changes(uow, writer, environment_id, [change("e1")])

    assert await ids(uow, writer, environment_id, JournalFilter()) == ["e1"]


async def test_list_journal_filters_by_product(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post(uow, writer, environment_id, 5)

    assert await ids(uow, writer, environment_id, JournalFilter(product_id="T-shirt")) == [
        "e2",
        "e4",
    ]
    assert await ids(uow, writer, environment_id, JournalFilter(product_id="Hat")) == []


async def test_list_journal_filters_by_organization_and_operation_id(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post_onhand_changes(
        uow, writer, environment_id, [change("a"), change("b", organization="usrt")]
    )

    assert await ids(uow, writer, environment_id, JournalFilter(organization_id="usrt")) == ["b"]
    assert await ids(uow, writer, environment_id, JournalFilter(operation_id="a")) == ["a"]


async def test_list_journal_pages_with_next_cursor(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post(uow, writer, environment_id, 5)

    pages: list[list[str]] = []
    cursor: int | None = None
    while True:
        page = await list_journal(uow, writer, environment_id, JournalFilter(limit=2, after=cursor))
        pages.append([entry.operation_id for entry in page.entries])
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.entries[-1].sequence
        cursor = page.next_cursor

    assert pages == [["e1", "e2"], ["e3", "e4"], ["e5"]]


async def test_list_journal_has_no_next_cursor_when_the_last_page_is_full(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post(uow, writer, environment_id, 4)

    first = await list_journal(uow, writer, environment_id, JournalFilter(limit=2))
    second = await list_journal(
        uow, writer, environment_id, JournalFilter(limit=2, after=first.next_cursor)
    )

    assert [entry.operation_id for entry in second.entries] == ["e3", "e4"]
    assert second.next_cursor is None


async def test_list_journal_pages_in_descending_order(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post(uow, writer, environment_id, 5)

    first = await list_journal(uow, writer, environment_id, JournalFilter(limit=3, descending=True))
    second = await list_journal(
        uow,
        writer,
        environment_id,
        JournalFilter(limit=3, descending=True, after=first.next_cursor),
    )

    assert [entry.operation_id for entry in first.entries] == ["e5", "e4", "e3"]
    assert [entry.operation_id for entry in second.entries] == ["e2", "e1"]
    assert second.next_cursor is None


async def test_list_journal_filters_by_time_reading_times_without_zone_as_utc(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    await post(uow, writer, environment_id, 2)
    after = datetime.now(UTC) + timedelta(minutes=5)
    naive_before = before.replace(tzinfo=None)

    assert await ids(uow, writer, environment_id, JournalFilter(since=naive_before)) == [
        "e1",
        "e2",
    ]
    assert await ids(uow, writer, environment_id, JournalFilter(since=after)) == []
    assert await ids(uow, writer, environment_id, JournalFilter(until=before)) == []
    assert await ids(uow, writer, environment_id, JournalFilter(until=after)) == ["e1", "e2"]


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1])
async def test_list_journal_refuses_a_limit_out_of_bounds(
    uow: MemoryUnitOfWorkFactory, environment_id: str, reader: Principal, limit: int
) -> None:
    with pytest.raises(Invalid) as caught:
        await list_journal(uow, reader, environment_id, JournalFilter(limit=limit))

    assert caught.value.code == "invalid-query"
    assert caught.value.issues[0].path == "limit"


@pytest.mark.parametrize("limit", [1, MAX_PAGE_SIZE])
async def test_list_journal_accepts_limits_within_bounds(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal, limit: int
) -> None:
    await post(uow, writer, environment_id, 2)

    page = await list_journal(uow, writer, environment_id, JournalFilter(limit=limit))

    assert len(page.entries) == min(limit, 2)


async def test_list_journal_shows_a_scoped_token_only_its_organizations(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post_onhand_changes(
        uow, writer, environment_id, [change("a"), change("b", organization="usrt")]
    )
    scoped = Principal(environment_id, Role.READER, "scoped", organizations=frozenset({"usrt"}))

    assert await ids(uow, scoped, environment_id, JournalFilter()) == ["b"]
    with pytest.raises(Forbidden):
        await list_journal(uow, scoped, environment_id, JournalFilter(organization_id="usmf"))


async def test_list_journal_needs_a_principal_of_the_environment(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    with pytest.raises(Forbidden):
        await list_journal(
            uow, Principal("elsewhere", Role.ADMIN, "eve"), environment_id, JournalFilter()
        )
