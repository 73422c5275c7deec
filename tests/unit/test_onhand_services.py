"""On-hand use cases on the in-memory unit of work: change events, stock counts, queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ringfence.domain.access import Principal, Role
from ringfence.domain.errors import Forbidden, NotFound
from ringfence.domain.onhand import SetOnHandRequest
from ringfence.domain.operations import Bucket, ItemResult
from ringfence.domain.quantity import MAX_QUANTITY
from ringfence.domain.query import ExactQueryRequest, IndexQueryRequest, OnHandRow
from ringfence.services.journal import list_journal
from ringfence.services.onhand import (
    post_onhand_changes,
    query_onhand_exact,
    query_onhand_index,
    set_onhand,
)
from ringfence.services.ports import JournalFilter
from ringfence.storage.memory import MemoryUnitOfWorkFactory
from tests.unit.conftest import ORGANIZATION, PRODUCT, SITE, change

COUNTED = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def count(
    operation_id: str,
    quantity: object,
    *,
    modified_at: datetime | None = None,
    quantities: Mapping[str, Mapping[str, object]] | None = None,
) -> SetOnHandRequest:
    return SetOnHandRequest(
        id=operation_id,
        organization_id=ORGANIZATION,
        product_id=PRODUCT,
        dimensions=dict(SITE),
        quantities=quantities or {"fno": {"availphysical": quantity}},
        modified_at=modified_at,
    )


async def rows(
    uow: MemoryUnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    group_by: Sequence[str] = (),
    *,
    return_negative: bool = True,
    **filters: Sequence[str],
) -> list[OnHandRow]:
    query = IndexQueryRequest(
        {"organizationId": [ORGANIZATION], **filters}, group_by, return_negative=return_negative
    )
    return await query_onhand_index(uow, principal, environment_id, query)


async def quantities(
    uow: MemoryUnitOfWorkFactory, principal: Principal, environment_id: str
) -> Mapping[str, Mapping[str, Decimal]]:
    """The quantities of the only row of the default product and site."""
    [row] = await rows(uow, principal, environment_id, productId=[PRODUCT])
    return row.quantities


def error_code(result: ItemResult) -> str:
    assert result.error is not None, result
    return result.error.code


# -- change events -------------------------------------------------------------------------------


async def test_post_onhand_changes_applies_a_change_and_answers_like_iv(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    [result] = await post_onhand_changes(
        uow, writer, environment_id, [change("e1", {"pos": {"inbound": "10.5", "outbound": 2}})]
    )

    assert result.bucket is Bucket.SUCCESS
    assert result.error is None
    assert not result.replayed
    assert result.body == {
        "id": "e1",
        "processingStatus": "success",
        "message": "",
        "statusCode": 200,
    }
    stock = await quantities(uow, writer, environment_id)
    assert stock["pos"] == {"inbound": Decimal("10.5"), "outbound": Decimal(2)}
    assert stock["iv"] == {"onhand": Decimal("8.5")}
    assert stock["@iv"]["@available_to_allocate"] == Decimal("8.5")


async def test_post_onhand_changes_adds_up_successive_changes(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post_onhand_changes(uow, writer, environment_id, [change("e1", {"pos": {"inbound": 4}})])
    await post_onhand_changes(uow, writer, environment_id, [change("e2", {"pos": {"inbound": -1}})])

    assert (await quantities(uow, writer, environment_id))["pos"]["inbound"] == 3


async def test_post_onhand_changes_replays_the_same_id_and_body_without_changing_anything(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    [first] = await post_onhand_changes(uow, writer, environment_id, [change("e1")])
    [again] = await post_onhand_changes(
        uow, writer, environment_id, [change("e1", {"pos": {"inbound": "1.0"}})]
    )

    assert again.replayed
    assert again.bucket is Bucket.SUCCESS
    assert again.body == first.body
    assert (await quantities(uow, writer, environment_id))["pos"]["inbound"] == 1
    page = await list_journal(uow, writer, environment_id, JournalFilter())
    assert [entry.operation_id for entry in page.entries] == ["e1"]


async def test_post_onhand_changes_refuses_the_same_id_with_another_body(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post_onhand_changes(uow, writer, environment_id, [change("e1")])

    [reused] = await post_onhand_changes(
        uow, writer, environment_id, [change("e1", {"pos": {"inbound": 2}})]
    )

    assert reused.bucket is Bucket.CONFLICT
    assert error_code(reused) == "idempotency-key-reuse"
    assert not reused.replayed
    assert (await quantities(uow, writer, environment_id))["pos"]["inbound"] == 1


async def test_post_onhand_changes_refuses_a_reused_id_within_one_batch(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    results = await post_onhand_changes(
        uow, writer, environment_id, [change("e1"), change("e1", {"pos": {"inbound": 5}})]
    )

    assert [result.bucket for result in results] == [Bucket.SUCCESS, Bucket.CONFLICT]
    assert error_code(results[1]) == "idempotency-key-reuse"
    assert (await quantities(uow, writer, environment_id))["pos"]["inbound"] == 1


async def test_post_onhand_changes_fails_a_bad_item_alone_and_applies_the_others(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    results = await post_onhand_changes(
        uow,
        writer,
        environment_id,
        [
            change("e1", {"pos": {"inbound": 2}}),
            change("e2", {"pos": {"returned": 1}}),
            change("e3", {"pos": {"inbound": 3}}),
            change("e4", dimensions={"siteId": "1"}),
        ],
    )

    assert [result.id for result in results] == ["e1", "e2", "e3", "e4"]
    assert [result.index for result in results] == [0, 1, 2, 3]
    assert [result.bucket for result in results] == [
        Bucket.SUCCESS,
        Bucket.FAILURE,
        Bucket.SUCCESS,
        Bucket.FAILURE,
    ]
    assert error_code(results[1]) == "unknown-measure"
    assert error_code(results[3]) == "missing-partition-dimension"
    assert (await quantities(uow, writer, environment_id))["pos"]["inbound"] == 5


async def test_post_onhand_changes_fails_an_item_that_would_leave_the_range_alone(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    results = await post_onhand_changes(
        uow,
        writer,
        environment_id,
        [
            change("e1", {"pos": {"inbound": MAX_QUANTITY}}),
            change("e2", {"pos": {"outbound": 1, "inbound": "0.000001"}}),
            change("e3", {"pos": {"outbound": 2}}),
        ],
    )

    assert [result.bucket for result in results] == [
        Bucket.SUCCESS,
        Bucket.FAILURE,
        Bucket.SUCCESS,
    ]
    assert error_code(results[1]) == "quantity-out-of-range"
    stock = await quantities(uow, writer, environment_id)
    assert stock["pos"] == {"inbound": MAX_QUANTITY, "outbound": Decimal(2)}


async def test_post_onhand_changes_answers_in_request_order_across_partitions(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    products = ["Zebra", "Apple", "Mango", "Apple"]
    requests = [change(f"e{n}", product=product) for n, product in enumerate(products)]

    results = await post_onhand_changes(uow, writer, environment_id, requests)

    assert [result.id for result in results] == ["e0", "e1", "e2", "e3"]
    assert all(result.bucket is Bucket.SUCCESS for result in results)
    found = await rows(uow, writer, environment_id)
    assert {row.product_id: row.quantities["pos"]["inbound"] for row in found} == {
        "Apple": 2,
        "Mango": 1,
        "Zebra": 1,
    }


async def test_post_onhand_changes_needs_the_writer_role(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal, reader: Principal
) -> None:
    with pytest.raises(Forbidden) as caught:
        await post_onhand_changes(uow, reader, environment_id, [change("e1")])

    assert caught.value.code == "insufficient-role"
    assert await rows(uow, writer, environment_id) == []


@pytest.mark.parametrize("role", [Role.WRITER, Role.PLANNER, Role.ADMIN])
async def test_post_onhand_changes_is_open_to_writers_and_above(
    uow: MemoryUnitOfWorkFactory, environment_id: str, role: Role
) -> None:
    [result] = await post_onhand_changes(
        uow, Principal(environment_id, role, "someone"), environment_id, [change("e1")]
    )

    assert result.bucket is Bucket.SUCCESS


async def test_post_onhand_changes_refuses_a_principal_of_another_environment(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    stranger = Principal("elsewhere", Role.ADMIN, "eve")

    with pytest.raises(Forbidden):
        await post_onhand_changes(uow, stranger, environment_id, [change("e1")])


async def test_post_onhand_changes_refuses_organizations_outside_the_token_s_scope(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    scoped = Principal(environment_id, Role.WRITER, "scoped", organizations=frozenset({"usmf"}))

    results = await post_onhand_changes(
        uow, scoped, environment_id, [change("e1", organization="usrt"), change("e2")]
    )

    assert isinstance(results[0].error, Forbidden)
    assert error_code(results[0]) == "organization-out-of-scope"
    assert results[1].bucket is Bucket.SUCCESS
    found = await query_onhand_index(
        uow, writer, environment_id, IndexQueryRequest({"organizationId": ["usmf", "usrt"]})
    )
    assert [row.organization_id for row in found] == ["usmf"]


async def test_post_onhand_changes_to_an_unknown_environment_is_not_found(
    uow: MemoryUnitOfWorkFactory,
) -> None:
    with pytest.raises(NotFound) as caught:
        await post_onhand_changes(
            uow, Principal("nowhere", Role.ADMIN, "ada"), "nowhere", [change("e1")]
        )

    assert caught.value.code == "environment-not-found"


# -- stock counts --------------------------------------------------------------------------------


async def test_set_onhand_overwrites_the_counted_measure(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await set_onhand(uow, writer, environment_id, "fno", [count("c1", 50, modified_at=COUNTED)])

    [result] = await set_onhand(
        uow, writer, environment_id, "fno", [count("c2", 20, modified_at=COUNTED + timedelta(1))]
    )

    assert result.bucket is Bucket.SUCCESS
    assert (await quantities(uow, writer, environment_id))["fno"]["availphysical"] == 20


async def test_set_onhand_keeps_the_latest_count_when_an_older_one_arrives_later(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await set_onhand(uow, writer, environment_id, "fno", [count("c1", 50, modified_at=COUNTED)])

    [older] = await set_onhand(
        uow,
        writer,
        environment_id,
        "fno",
        [count("c0", 30, modified_at=COUNTED - timedelta(hours=1))],
    )

    assert older.bucket is Bucket.SUCCESS
    assert older.body["superseded"] == ["fno.availphysical"]
    assert "fno.availphysical" in str(older.body["message"])
    assert (await quantities(uow, writer, environment_id))["fno"]["availphysical"] == 50


async def test_set_onhand_then_a_change_event_adds_to_the_count(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await set_onhand(uow, writer, environment_id, "fno", [count("c1", 50, modified_at=COUNTED)])
    await post_onhand_changes(
        uow, writer, environment_id, [change("e1", {"fno": {"availphysical": -5}})]
    )

    assert (await quantities(uow, writer, environment_id))["fno"]["availphysical"] == 45


async def test_set_onhand_refuses_measures_of_another_data_source_than_the_path_s(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    [result] = await set_onhand(
        uow, writer, environment_id, "fno", [count("c1", 1, quantities={"pos": {"inbound": 1}})]
    )

    assert error_code(result) == "data-source-mismatch"
    assert await rows(uow, writer, environment_id) == []


async def test_set_onhand_replays_the_same_id_and_body(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await set_onhand(uow, writer, environment_id, "fno", [count("c1", 50, modified_at=COUNTED)])

    [again] = await set_onhand(
        uow, writer, environment_id, "fno", [count("c1", "50.0", modified_at=COUNTED)]
    )

    assert again.replayed
    assert again.bucket is Bucket.SUCCESS


async def test_set_onhand_replays_the_same_id_and_body_without_a_modified_time(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    # DESIGN §2.9: the same id with the same body returns the original result. A count sent
    # without modifiedDateTimeUTC is dated when received, but that must not make a retry of the
    # very same body look like another request.
    [first] = await set_onhand(uow, writer, environment_id, "fno", [count("c1", 50)])

    [again] = await set_onhand(uow, writer, environment_id, "fno", [count("c1", 50)])

    assert first.bucket is Bucket.SUCCESS
    assert again.error is None
    assert again.replayed


async def test_set_onhand_and_change_events_keep_separate_idempotency_scopes(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    [counted] = await set_onhand(
        uow, writer, environment_id, "fno", [count("same", 50, modified_at=COUNTED)]
    )
    [changed] = await post_onhand_changes(
        uow, writer, environment_id, [change("same", {"fno": {"availphysical": 1}})]
    )

    assert counted.bucket is Bucket.SUCCESS
    assert changed.bucket is Bucket.SUCCESS
    assert not changed.replayed
    assert (await quantities(uow, writer, environment_id))["fno"]["availphysical"] == 51


async def test_set_onhand_needs_the_writer_role(
    uow: MemoryUnitOfWorkFactory, environment_id: str, reader: Principal
) -> None:
    with pytest.raises(Forbidden):
        await set_onhand(uow, reader, environment_id, "fno", [count("c1", 1)])


# -- queries -------------------------------------------------------------------------------------


@pytest.fixture
async def stocked(uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal) -> str:
    """The environment with red and blue T-shirts at site 1 and red ones at site 2."""
    results = await post_onhand_changes(
        uow,
        writer,
        environment_id,
        [
            change("r1", {"pos": {"inbound": 10}}, dimensions={**SITE, "colorId": "red"}),
            change("b1", {"pos": {"inbound": 5}}, dimensions={**SITE, "colorId": "blue"}),
            change(
                "r2",
                {"pos": {"inbound": 7, "outbound": 2}},
                dimensions={"siteId": "2", "locationId": "21", "colorId": "red"},
            ),
            change("s1", {"pos": {"inbound": 1}}, product="Shoe"),
            change("o1", {"pos": {"inbound": 100}}, organization="usrt"),
        ],
    )
    assert all(result.bucket is Bucket.SUCCESS for result in results)
    return environment_id


def table(found: Sequence[OnHandRow]) -> list[tuple[str, dict[str, str], Decimal]]:
    return [
        (row.product_id, row.dimensions.as_dict(), row.quantities["iv"]["onhand"]) for row in found
    ]


async def test_index_query_groups_by_the_partition_dimensions_by_default(
    uow: MemoryUnitOfWorkFactory, stocked: str, reader: Principal
) -> None:
    found = await rows(uow, reader, stocked, productId=[PRODUCT])

    assert table(found) == [
        (PRODUCT, {"siteId": "1", "locationId": "11"}, Decimal(15)),
        (PRODUCT, {"siteId": "2", "locationId": "21"}, Decimal(5)),
    ]


async def test_index_query_filters_and_groups_by_dimensions_case_insensitively(
    uow: MemoryUnitOfWorkFactory, stocked: str, reader: Principal
) -> None:
    found = await rows(uow, reader, stocked, ["COLORID"], COLORID=["red"])

    assert table(found) == [
        (PRODUCT, {"siteId": "1", "locationId": "11", "colorId": "red"}, Decimal(10)),
        (PRODUCT, {"siteId": "2", "locationId": "21", "colorId": "red"}, Decimal(5)),
    ]


async def test_index_query_without_a_product_filter_covers_every_product(
    uow: MemoryUnitOfWorkFactory, stocked: str, reader: Principal
) -> None:
    found = await rows(uow, reader, stocked, siteId=["1"])

    assert table(found) == [
        ("Shoe", {"siteId": "1", "locationId": "11"}, Decimal(1)),
        (PRODUCT, {"siteId": "1", "locationId": "11"}, Decimal(15)),
    ]


async def test_exact_query_returns_the_rows_of_the_given_tuples(
    uow: MemoryUnitOfWorkFactory, stocked: str, reader: Principal
) -> None:
    query = ExactQueryRequest(
        [ORGANIZATION],
        [PRODUCT],
        ["siteId", "locationId", "colorId"],
        [["1", "11", "blue"], ["2", "21", "red"], ["3", "31", "red"]],
    )

    found = await query_onhand_exact(uow, reader, stocked, query)

    assert table(found) == [
        (PRODUCT, {"siteId": "1", "locationId": "11", "colorId": "blue"}, Decimal(5)),
        (PRODUCT, {"siteId": "2", "locationId": "21", "colorId": "red"}, Decimal(5)),
    ]


async def test_queries_show_negative_values_only_with_return_negative(
    uow: MemoryUnitOfWorkFactory, environment_id: str, writer: Principal
) -> None:
    await post_onhand_changes(uow, writer, environment_id, [change("e1", {"pos": {"outbound": 3}})])

    [shown] = await rows(uow, writer, environment_id, return_negative=True)
    [hidden] = await rows(uow, writer, environment_id, return_negative=False)

    assert shown.quantities["iv"]["onhand"] == -3
    assert hidden.quantities["iv"]["onhand"] == 0


async def test_queries_refuse_organizations_outside_the_token_s_scope(
    uow: MemoryUnitOfWorkFactory, stocked: str
) -> None:
    scoped = Principal(stocked, Role.READER, "scoped", organizations=frozenset({"usmf"}))

    with pytest.raises(Forbidden) as caught:
        await query_onhand_index(
            uow, scoped, stocked, IndexQueryRequest({"organizationId": ["usmf", "usrt"]})
        )

    assert caught.value.code == "organization-out-of-scope"


async def test_queries_need_a_principal_of_the_environment(
    uow: MemoryUnitOfWorkFactory, stocked: str
) -> None:
    with pytest.raises(Forbidden):
        await rows(uow, Principal("elsewhere", Role.ADMIN, "eve"), stocked)
