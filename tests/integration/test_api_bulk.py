"""Bulk on-hand changes and stock counts (set on-hand) over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import TokenFactory
from tests.integration.support import Api, Json, assert_problem, event, locations

pytestmark = pytest.mark.asyncio

BUCKETS = {"success", "partialSuccess", "failure", "conflict", "notFound"}


def _buckets(body: Json) -> dict[str, list[int]]:
    """Each bucket's item indexes."""
    assert set(body) == BUCKETS, body
    return {bucket: [item["index"] for item in items] for bucket, items in body.items()}


def _success(index: int, operation_id: str, **extra: Any) -> Json:
    return {
        "index": index,
        "id": operation_id,
        "processingStatus": "success",
        "message": "",
        "statusCode": 200,
        **extra,
    }


def _count(
    operation_id: str,
    quantities: dict[str, dict[str, Any]],
    at: str | None = None,
    **extra: Any,
) -> Json:
    body = event(operation_id, quantities, dimensions={"siteId": "1", "locationId": "11"}, **extra)
    if at is not None:
        body["modifiedDateTimeUTC"] = at
    return body


# -- /onhand/bulk --------------------------------------------------------------------------------


async def test_bulk_of_good_changes_answers_200_and_applies_every_item(api: Api) -> None:
    items = [
        event("b0", {"pos": {"inbound": 10}}),
        event("b1", {"pos": {"inbound": "2.5", "outbound": 1}}, product="Jeans"),
        event("b2", {"fno": {"availphysical": 7}}),
    ]

    response = await api.post("/onhand/bulk", items)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": [_success(0, "b0"), _success(1, "b1"), _success(2, "b2")],
        "partialSuccess": [],
        "failure": [],
        "conflict": [],
        "notFound": [],
    }
    assert (await api.totals())["iv"]["onhand"] == 17
    assert (await api.totals("Jeans"))["iv"]["onhand"] == Decimal("1.5")
    assert [entry["id"] for entry in await api.journal()] == ["b0", "b1", "b2"]


async def test_bulk_with_a_schema_invalid_item_applies_the_others(api: Api) -> None:
    broken = event("b1")
    del broken["quantities"]
    items = [event("b0", {"pos": {"inbound": 4}}), broken, event("b2", {"pos": {"inbound": 6}})]

    response = await api.post("/onhand/bulk", items)

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body) == {
        "success": [0, 2],
        "partialSuccess": [],
        "failure": [1],
        "conflict": [],
        "notFound": [],
    }
    [failure] = body["failure"]
    assert failure["id"] == "b1"
    assert failure["code"] == "invalid-request"
    assert failure["processingStatus"] == "failure"
    assert failure["statusCode"] == 422
    assert failure["status"] == 422
    assert failure["message"] == failure["detail"]
    assert locations(failure) == ["quantities"]
    assert await api.measure("pos.inbound") == 10
    assert [entry["id"] for entry in await api.journal()] == ["b0", "b2"]


async def test_bulk_with_a_business_invalid_item_applies_the_others(api: Api) -> None:
    items = [
        event("b0", {"pos": {"inbound": 4}}),
        event("b1", {"pos": {"inbound": 1}}, product="Jeans"),
        event("b2", {"pos": {"sold": 1}}),
        event("b3", {"pos": {"inbound": "0.0000001"}}),
    ]

    response = await api.post("/onhand/bulk", items)

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body)["success"] == [0, 1]
    assert _buckets(body)["failure"] == [2, 3]
    unknown, imprecise = body["failure"]
    assert (unknown["id"], unknown["code"], unknown["statusCode"]) == ("b2", "unknown-measure", 422)
    assert locations(unknown) == ["quantities.pos.sold"]
    assert (imprecise["id"], imprecise["code"]) == ("b3", "invalid-quantity")
    assert await api.measure("pos.inbound") == 4
    assert await api.measure("pos.inbound", "Jeans") == 1
    assert [entry["id"] for entry in await api.journal()] == ["b0", "b1"]


async def test_item_that_is_not_an_object_fails_alone(api: Api) -> None:
    response = await api.post("/onhand/bulk", [event("b0"), 5, "text"])

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body)["success"] == [0]
    assert [(item["index"], item["id"], item["code"]) for item in body["failure"]] == [
        (1, None, "invalid-request"),
        (2, None, "invalid-request"),
    ]
    assert await api.measure("pos.inbound") == 1


async def test_bulk_of_513_items_is_refused_whole(api: Api) -> None:
    before = await api.snapshot()
    items = [event(f"many-{index}") for index in range(513)]

    response = await api.post("/onhand/bulk", items)

    problem = assert_problem(response, 422, "bulk-limit-exceeded")
    assert "512" in problem["detail"]
    assert await api.snapshot() == before


async def test_bulk_of_512_items_is_accepted(api: Api) -> None:
    items = [event(f"many-{index}", {"pos": {"inbound": "0.5"}}) for index in range(512)]

    response = await api.post("/onhand/bulk", items)

    assert response.status_code == 200, response.text
    assert len(response.json()["success"]) == 512
    assert await api.measure("pos.inbound") == 256


@pytest.mark.parametrize(
    "body",
    [[], {}, event("single"), "text", 5, None],
    ids=["empty-array", "empty-object", "object", "string", "number", "null"],
)
async def test_bulk_body_that_is_not_a_non_empty_array_is_refused(api: Api, body: object) -> None:
    before = await api.snapshot()

    response = await api.post("/onhand/bulk", content=json.dumps(body).encode())

    problem = assert_problem(response, 422, "invalid-request")
    assert locations(problem) == ["body"]
    assert await api.snapshot() == before


async def test_malformed_bulk_body_is_refused(api: Api) -> None:
    response = await api.post("/onhand/bulk", content=b'[{"id": "b0"},')
    assert_problem(response, 422, "malformed-json")
    assert await api.journal() == []


async def test_duplicate_id_with_the_same_body_in_one_bulk_is_applied_once(api: Api) -> None:
    item = event("twice", {"pos": {"inbound": 3}})

    response = await api.post("/onhand/bulk", [item, item])

    assert response.status_code == 200, response.text
    first, second = response.json()["success"]
    assert first == _success(0, "twice")
    assert second == _success(1, "twice", replayed=True)
    assert await api.measure("pos.inbound") == 3
    assert [entry["id"] for entry in await api.journal()] == ["twice"]


async def test_duplicate_id_with_another_body_in_one_bulk_is_a_conflict(api: Api) -> None:
    items = [event("twice", {"pos": {"inbound": 3}}), event("twice", {"pos": {"inbound": 4}})]

    response = await api.post("/onhand/bulk", items)

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body)["success"] == [0]
    [conflict] = body["conflict"]
    assert conflict["index"] == 1
    assert conflict["id"] == "twice"
    assert conflict["code"] == "idempotency-key-reuse"
    assert conflict["processingStatus"] == "conflict"
    assert conflict["statusCode"] == 409
    assert await api.measure("pos.inbound") == 3


async def test_bulk_replays_ids_of_earlier_calls(api: Api) -> None:
    assert (await api.post("/onhand", event("earlier", {"pos": {"inbound": 3}}))).status_code == 200

    response = await api.post(
        "/onhand/bulk",
        [event("earlier", {"pos": {"inbound": 3}}), event("later", {"pos": {"inbound": 1}})],
    )

    assert response.status_code == 200, response.text
    assert response.json()["success"] == [
        _success(0, "earlier", replayed=True),
        _success(1, "later"),
    ]
    assert await api.measure("pos.inbound") == 4


async def test_bulk_item_for_an_organization_out_of_the_token_scope_fails_alone(
    api: Api, auth: TokenFactory
) -> None:
    headers = await auth("writer", organizations=["usmf"])
    items = [event("mine"), event("theirs", organization="contoso")]

    response = await api.post("/onhand/bulk", items, headers=headers)

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body)["success"] == [0]
    [refused] = body["failure"]
    assert (refused["index"], refused["id"]) == (1, "theirs")
    assert (refused["code"], refused["statusCode"]) == ("organization-out-of-scope", 403)
    assert await api.measure("pos.inbound", organization="contoso") == 0


async def test_bulk_needs_a_writer_token(api: Api, auth: TokenFactory) -> None:
    before = await api.snapshot()

    unauthenticated = await api.post("/onhand/bulk", [event()], headers={})
    reader = await api.post("/onhand/bulk", [event()], headers=await auth("reader"))

    assert_problem(unauthenticated, 401, "missing-token")
    assert_problem(reader, 403, "insufficient-role")
    assert await api.snapshot() == before


# -- /setonhand/{dataSource}/bulk ----------------------------------------------------------------


async def test_set_onhand_overwrites_what_changes_added(api: Api) -> None:
    for delta in (30, 45, -5):
        response = await api.post("/onhand", _count(f"delta-{delta}", {"pos": {"inbound": delta}}))
        assert response.status_code == 200, response.text

    response = await api.post("/setonhand/pos/bulk", [_count("count", {"pos": {"inbound": 100}})])

    assert response.status_code == 200, response.text
    assert response.json()["success"] == [_success(0, "count")]
    assert await api.measure("pos.inbound") == 100
    assert (await api.totals())["iv"]["onhand"] == 100
    [entry] = await api.journal(kind="setonhand")
    assert entry["effects"] == [
        {
            "dimensions": {"siteId": "1", "locationId": "11"},
            "measure": "pos.inbound",
            "delta": Decimal("30"),
            "value": Decimal("100"),
        }
    ]


async def test_set_onhand_sets_only_the_measures_it_names(api: Api) -> None:
    await api.post("/onhand", _count("delta", {"pos": {"inbound": 10, "outbound": 4}}))

    response = await api.post("/setonhand/pos/bulk", [_count("count", {"pos": {"inbound": "7.5"}})])

    assert response.status_code == 200, response.text
    assert (await api.totals())["pos"] == {"inbound": Decimal("7.5"), "outbound": 4}


async def test_set_onhand_last_write_wins_by_modified_time(api: Api) -> None:
    newer = _count("count-newer", {"pos": {"inbound": 100}}, "2026-03-01T12:00:00Z")
    older = _count("count-older", {"pos": {"inbound": 50}}, "2026-03-01T11:59:59Z")
    assert (await api.post("/setonhand/pos/bulk", [newer])).status_code == 200

    response = await api.post("/setonhand/pos/bulk", [older])

    assert response.status_code == 200, response.text
    [item] = response.json()["success"]
    assert item["id"] == "count-older"
    assert item["processingStatus"] == "success"
    assert item["statusCode"] == 200
    assert item["superseded"] == ["pos.inbound"]
    assert "pos.inbound" in item["message"]
    assert await api.measure("pos.inbound") == 100

    latest = _count("count-latest", {"pos": {"inbound": 70}}, "2026-03-01T14:00:00+01:00")
    response = await api.post("/setonhand/pos/bulk", [latest])
    assert response.json()["success"] == [_success(0, "count-latest")]
    assert await api.measure("pos.inbound") == 70


async def test_set_onhand_supersedes_measure_by_measure(api: Api) -> None:
    first = _count("inbound-at-noon", {"pos": {"inbound": 100}}, "2026-03-01T12:00:00Z")
    assert (await api.post("/setonhand/pos/bulk", [first])).status_code == 200
    both = _count("both-at-eleven", {"pos": {"inbound": 1, "outbound": 2}}, "2026-03-01T11:00:00Z")

    response = await api.post("/setonhand/pos/bulk", [both])

    [item] = response.json()["success"]
    assert item["superseded"] == ["pos.inbound"]
    assert (await api.totals())["pos"] == {"inbound": 100, "outbound": 2}


async def test_set_onhand_without_a_time_counts_as_received_now(api: Api) -> None:
    past = _count("count-past", {"pos": {"inbound": 9}}, "2020-01-01T00:00:00Z")
    assert (await api.post("/setonhand/pos/bulk", [past])).status_code == 200

    response = await api.post("/setonhand/pos/bulk", [_count("count-now", {"pos": {"inbound": 5}})])
    future = _count("count-future", {"pos": {"inbound": 3}}, "2020-01-02T00:00:00Z")
    stale = await api.post("/setonhand/pos/bulk", [future])

    assert response.json()["success"] == [_success(0, "count-now")]
    assert stale.json()["success"][0]["superseded"] == ["pos.inbound"]
    assert await api.measure("pos.inbound") == 5


async def test_set_onhand_replay_changes_nothing(api: Api) -> None:
    count = _count("count", {"pos": {"inbound": 10}}, "2026-03-01T12:00:00Z")
    assert (await api.post("/setonhand/pos/bulk", [count])).status_code == 200
    await api.post("/onhand", _count("delta", {"pos": {"inbound": 5}}))

    response = await api.post("/setonhand/pos/bulk", [count])

    assert response.json()["success"] == [_success(0, "count", replayed=True)]
    assert await api.measure("pos.inbound") == 15


async def test_set_onhand_of_another_data_source_than_the_path_fails(api: Api) -> None:
    before = await api.snapshot()
    items = [
        _count("mismatch", {"fno": {"availphysical": 5}}),
        _count("mixed", {"pos": {"inbound": 5}, "fno": {"availphysical": 5}}),
    ]

    response = await api.post("/setonhand/pos/bulk", items)

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body)["failure"] == [0, 1]
    for item, operation_id in zip(body["failure"], ("mismatch", "mixed"), strict=True):
        assert item["id"] == operation_id
        assert item["code"] == "data-source-mismatch"
        assert item["statusCode"] == 422
        assert locations(item) == ["quantities.fno"]
    assert await api.snapshot() == before


async def test_set_onhand_for_an_unknown_data_source_fails(api: Api) -> None:
    before = await api.snapshot()

    response = await api.post("/setonhand/erp/bulk", [_count("unknown", {"erp": {"inbound": 5}})])

    assert response.status_code == 207, response.text
    [item] = response.json()["failure"]
    assert (item["index"], item["id"], item["code"]) == (0, "unknown", "unknown-data-source")
    assert item["statusCode"] == 422
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"quantities": {"pos": {"inbound": "0.0000001"}}}, "invalid-quantity"),
        ({"quantities": {"pos": {"sold": 1}}}, "unknown-measure"),
        ({"quantities": {"@iv": {"@allocated": 1}}}, "data-source-mismatch"),
        ({"dimensions": {"locationId": "11"}}, "missing-partition-dimension"),
        ({"modifiedDateTimeUTC": "yesterday"}, "invalid-request"),
    ],
    ids=["7-decimals", "unknown-measure", "other-source", "missing-site", "bad-time"],
)
async def test_invalid_count_fails_alone(api: Api, change: Json, code: str) -> None:
    items = [
        _count("good", {"pos": {"inbound": 2}}),
        {**_count("bad", {"pos": {"inbound": 3}}), **change},
    ]

    response = await api.post("/setonhand/pos/bulk", items)

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body)["success"] == [0]
    [item] = body["failure"]
    assert (item["index"], item["id"], item["code"]) == (1, "bad", code)
    assert await api.measure("pos.inbound") == 2


async def test_set_onhand_refuses_more_than_512_counts(api: Api) -> None:
    items = [_count(f"c-{index}", {"pos": {"inbound": 1}}) for index in range(513)]
    response = await api.post("/setonhand/pos/bulk", items)
    assert_problem(response, 422, "bulk-limit-exceeded")
    assert await api.journal() == []


async def test_set_onhand_needs_a_writer_token(api: Api, auth: TokenFactory) -> None:
    response = await api.post(
        "/setonhand/pos/bulk", [_count("c", {"pos": {"inbound": 1}})], headers=await auth("reader")
    )
    assert_problem(response, 403, "insufficient-role")
    assert await api.journal() == []


async def test_set_onhand_cannot_write_allocation_measures(api: Api) -> None:
    before = await api.snapshot()

    response = await api.post("/setonhand/@iv/bulk", [_count("iv", {"@iv": {"@allocated": 5}})])

    assert response.status_code == 207, response.text
    [item] = response.json()["failure"]
    assert (item["id"], item["code"]) == ("iv", "system-data-source")
    assert await api.snapshot() == before


async def test_bulk_item_out_of_range_fails_alone_and_changes_none_of_its_measures(
    api: Api,
) -> None:
    assert (await api.post("/onhand", event("seed", {"pos": {"outbound": 1}}))).status_code == 200
    items = [
        event("b0", {"pos": {"inbound": 5}}),
        event("b1", {"pos": {"inbound": 7, "outbound": "999999999999.999999"}}),
        event("b2", {"pos": {"inbound": 1}}),
    ]

    response = await api.post("/onhand/bulk", items)

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body)["success"] == [0, 2]
    [item] = body["failure"]
    assert (item["id"], item["code"]) == ("b1", "quantity-out-of-range")
    assert (await api.totals())["pos"] == {"inbound": 6, "outbound": 1}


async def test_set_onhand_item_for_an_organization_out_of_the_token_scope_fails(
    api: Api, auth: TokenFactory
) -> None:
    headers = await auth("writer", organizations=["usmf"])
    items = [_count("mine", {"pos": {"inbound": 1}}), _count("theirs", {"pos": {"inbound": 1}})]
    items[1]["organizationId"] = "contoso"

    response = await api.post("/setonhand/pos/bulk", items, headers=headers)

    assert response.status_code == 207, response.text
    [item] = response.json()["failure"]
    assert (item["id"], item["code"], item["statusCode"]) == (
        "theirs",
        "organization-out-of-scope",
        403,
    )
    assert await api.measure("pos.inbound", organization="contoso") == 0


async def test_count_without_a_time_retried_is_a_replay(api: Api) -> None:
    count = _count("untimed", {"pos": {"inbound": 10}})
    assert (await api.post("/setonhand/pos/bulk", [count])).status_code == 200
    await api.post("/onhand", _count("delta", {"pos": {"inbound": 5}}))

    response = await api.post("/setonhand/pos/bulk", [count])

    assert response.status_code == 200, response.text
    assert response.json()["success"] == [_success(0, "untimed", replayed=True)]
    assert await api.measure("pos.inbound") == 15
    assert [entry["id"] for entry in await api.journal(kind="setonhand")] == ["untimed"]
