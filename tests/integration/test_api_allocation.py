"""Allocation over HTTP (allocate, unallocate, reallocate, consume, query), SQLite and PostgreSQL.

Stock is received as ``pos.inbound`` at (site 1, location 11, red) unless a test says otherwise;
allocations are made with a planner token, consumes with the ``api`` fixture's writer token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import TokenFactory
from tests.integration.support import (
    PROBLEM_JSON,
    Api,
    Json,
    Snapshot,
    assert_problem,
    event,
    exact,
    level_quantities,
    locations,
    new_id,
    reservations,
    reserve_body,
    unreserve_body,
)

pytestmark = pytest.mark.asyncio

LOCATION = {"siteId": "1", "locationId": "11"}
RED = {**LOCATION, "colorId": "red"}
RED_SMALL = {**RED, "sizeId": "S"}
BLUE_SMALL = {**LOCATION, "colorId": "blue", "sizeId": "S"}

WEB = {"channel": "Web"}
WEB_VIP = {**WEB, "customerGroup": "VIP"}
WEB_VIP_US = {**WEB_VIP, "region": "US"}
WEB_VIP_EU = {**WEB_VIP, "region": "EU"}
WEB_B2B = {**WEB, "customerGroup": "B2B"}
STORE = {"channel": "Store"}

ATA = "@iv.@available_to_allocate"
ATR = "@iv.@available_to_reserve"
ALLOCATED = "@iv.@allocated"
CUMULATIVE_ALLOCATED = "@iv.@cumulative_allocated"
CONSUMED = "@iv.@consumed"
CUMULATIVE_CONSUMED = "@iv.@cumulative_consumed"
SOFTRESERVED = "@iv.@softreserved"

FIGURES = (
    ATA,
    ATR,
    ALLOCATED,
    CUMULATIVE_ALLOCATED,
    CONSUMED,
    CUMULATIVE_CONSUMED,
    SOFTRESERVED,
    "pos.inbound",
    "pos.outbound",
)
OUTBOUND = {"pos": {"outbound": "Addition"}}
NEUTRAL_HINT = '{"pos": {"outbound": "Addition"}}'
SUCCESS = {"processingStatus": "success", "message": "", "statusCode": 200}
OPERATIONS = ("allocate", "unallocate", "reallocate", "consume")


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
async def planner(api: Api, auth: TokenFactory) -> Api:
    """The test's environment with a planner token named ``integration-planner``."""
    return Api(api.client, api.environment_id, await auth("planner", name="integration-planner"))


def _body(
    operation_id: str | None = None,
    quantity: Any = 1,
    groups: Mapping[str, str] | None = None,
    *,
    dimensions: Mapping[str, str] = RED,
    **extra: Any,
) -> Json:
    """An allocate/unallocate body as IV sends it (``groups`` [Web] unless given)."""
    return {
        "id": operation_id or new_id("allocation"),
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": dict(dimensions),
        "groups": dict(WEB if groups is None else groups),
        "quantity": quantity,
        **extra,
    }


def _move_body(
    source: Mapping[str, str],
    target: Mapping[str, str],
    quantity: Any = 1,
    operation_id: str | None = None,
    **extra: Any,
) -> Json:
    return _body(operation_id, quantity, target, sourceGroups=dict(source), **extra)


def _consume_body(
    quantity: Any = 1,
    groups: Mapping[str, str] | None = None,
    operation_id: str | None = None,
    measures: Mapping[str, Mapping[str, str]] | None = OUTBOUND,
    **extra: Any,
) -> Json:
    body = _body(operation_id, quantity, groups, **extra)
    if measures is not None:
        body["physicalMeasures"] = {name: dict(pairs) for name, pairs in measures.items()}
    return body


def _query_body(
    groups: Mapping[str, str] | None = None, dimensions: Mapping[str, str] = RED
) -> Json:
    return {
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": dict(dimensions),
        "groups": dict(groups or {}),
    }


async def _stock(api: Api, quantity: int | str, dimensions: Mapping[str, str] = RED) -> None:
    response = await api.post(
        "/onhand", event(quantities={"pos": {"inbound": quantity}}, dimensions=dimensions)
    )
    assert response.status_code == 200, response.text


async def _ok(api: Api, operation: str, body: Json) -> Json:
    response = await api.post(f"/allocation/{operation}", body)
    assert response.status_code == 200, response.text
    answer: Json = exact(response)
    return answer


async def _allocate(
    planner: Api,
    quantity: int | str,
    groups: Mapping[str, str] | None = None,
    *,
    dimensions: Mapping[str, str] = RED,
    operation_id: str | None = None,
) -> Json:
    return await _ok(
        planner, "allocate", _body(operation_id, quantity, groups, dimensions=dimensions)
    )


async def _consume(
    api: Api,
    quantity: int | str,
    groups: Mapping[str, str] | None = None,
    measures: Mapping[str, Mapping[str, str]] = OUTBOUND,
    **extra: Any,
) -> Json:
    return await _ok(api, "consume", _consume_body(quantity, groups, measures=measures, **extra))


async def _query(
    api: Api,
    groups: Mapping[str, str] | None = None,
    dimensions: Mapping[str, str] = RED,
    *,
    headers: Mapping[str, str] | None = None,
) -> Json:
    response = await api.post("/allocation/query", _query_body(groups, dimensions), headers=headers)
    assert response.status_code == 200, response.text
    answer: Json = exact(response)
    return answer


def _key(groups: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(groups.values())


async def _paths(
    api: Api, dimensions: Mapping[str, str] = RED, groups: Mapping[str, str] | None = None
) -> dict[tuple[str, ...], Json]:
    """Each listed path's row of the query at ``dimensions``, by its group values."""
    rows = (await _query(api, groups, dimensions))["allocations"]
    return {_key(row["groups"]): row for row in rows}


async def _figures(api: Api, level: Mapping[str, str]) -> Json:
    """Every measure summed at or below one hierarchy level (missing ones read as zero)."""
    found = await level_quantities(api, level)
    return {name: found.get(name, Decimal(0)) for name in FIGURES}


async def _ata(api: Api, level: Mapping[str, str]) -> Decimal:
    return Decimal((await _figures(api, level))[ATA])


@dataclass(frozen=True)
class _State:
    """On-hand rows, journal, reservations and the allocation tree at (1, 11) and (1, 11, red)."""

    onhand: Snapshot
    reservations: list[Json]
    trees: list[Json]


async def _state(api: Api) -> _State:
    return _State(
        await api.snapshot(),
        await reservations(api),
        [await _query(api, dimensions=level) for level in (LOCATION, RED)],
    )


def _refused_allocation(
    response: httpx.Response, level: Mapping[str, str] | None, available: int, requested: int
) -> Json:
    problem = assert_problem(
        response, 409, "insufficient-available-to-allocate", processing_status="conflict"
    )
    body: Json = exact(response)
    if level is not None:
        assert problem["level"] == dict(level)
    assert body["available"] == available
    assert body["requested"] == requested
    return body


def _refused_path(response: httpx.Response, held: int | str, requested: int | str) -> Json:
    assert_problem(response, 409, "insufficient-allocated", processing_status="conflict")
    body: Json = exact(response)
    assert body["allocated"] == Decimal(held)
    assert body["requested"] == Decimal(requested)
    return body


# -- the same units are never allocated twice at two levels --------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(LOCATION, RED, id="location-then-colour"),
        pytest.param(RED, LOCATION, id="colour-then-location"),
    ],
)
async def test_stock_allocated_at_one_level_cannot_be_allocated_again_at_another(
    api: Api, planner: Api, first: dict[str, str], second: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 10, WEB, dimensions=first)
    before = await _state(api)

    for groups in (WEB, STORE, WEB_VIP_US):
        response = await planner.post(
            "/allocation/allocate", _body("one-more", 1, groups, dimensions=second)
        )
        _refused_allocation(response, LOCATION, 0, 1)
        again = await planner.post(
            "/allocation/allocate", _body("same-level", 1, groups, dimensions=first)
        )
        _refused_allocation(again, None, 0, 1)

    assert await _state(api) == before
    assert await _ata(api, LOCATION) == 0
    assert await _ata(api, RED) == (0 if first == RED else 10)


async def test_allocations_at_two_levels_share_the_stock_and_never_exceed_it(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)

    await _allocate(planner, 6, WEB, dimensions=LOCATION)
    await _allocate(planner, 4, WEB_VIP, dimensions=RED)

    assert await _ata(api, LOCATION) == 0
    assert await _ata(api, RED) == 6
    before = await _state(api)
    for dimensions in (LOCATION, RED):
        for groups in (WEB, STORE, WEB_VIP):
            response = await planner.post(
                "/allocation/allocate", _body("beyond", 1, groups, dimensions=dimensions)
            )
            _refused_allocation(response, LOCATION, 0, 1)
    assert await _state(api) == before


async def test_refusal_names_the_level_that_binds_between_the_request_and_the_partition(
    api: Api, planner: Api
) -> None:
    await _stock(api, 6, RED_SMALL)
    await _stock(api, 4, BLUE_SMALL)
    await _allocate(planner, 5, WEB, dimensions=RED)
    before = await _state(api)

    response = await planner.post(
        "/allocation/allocate", _body("small", 2, STORE, dimensions=RED_SMALL)
    )

    problem = _refused_allocation(response, RED, 1, 2)
    assert "(siteId 1, locationId 11, colorId red)" in problem["detail"]
    assert await _state(api) == before
    await _allocate(planner, 1, STORE, dimensions=RED_SMALL)
    assert [await _ata(api, level) for level in (RED_SMALL, RED, LOCATION)] == [5, 0, 4]


@pytest.mark.parametrize("level", [LOCATION, RED], ids=["at-location", "at-colour"])
async def test_a_reservation_leaves_only_the_rest_to_allocate_at_every_level(
    api: Api, planner: Api, level: dict[str, str]
) -> None:
    await _stock(api, 10)
    reserved = await api.post("/onhand/reserve", reserve_body("hold", 5, dimensions=level))
    assert reserved.status_code == 200, reserved.text
    before = await _state(api)

    for dimensions in (LOCATION, RED):
        response = await planner.post(
            "/allocation/allocate", _body("too-much", 6, dimensions=dimensions)
        )
        _refused_allocation(response, None, 5, 6)
    assert await _state(api) == before

    await _allocate(planner, 5, STORE, dimensions=RED)
    for dimensions in (LOCATION, RED):
        response = await planner.post(
            "/allocation/allocate", _body("one-more", 1, dimensions=dimensions)
        )
        _refused_allocation(response, None, 0, 1)
    assert (await _figures(api, LOCATION))[SOFTRESERVED] == 5


@pytest.mark.parametrize("level", [LOCATION, RED], ids=["at-location", "at-colour"])
async def test_an_allocation_leaves_only_the_rest_to_reserve_at_every_level(
    api: Api, planner: Api, level: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB, dimensions=level)
    before = await _state(api)

    for dimensions in (LOCATION, RED):
        response = await api.post(
            "/onhand/reserve", reserve_body(dimensions=dimensions, quantity=6)
        )
        problem = assert_problem(
            response, 409, "insufficient-available-to-reserve", processing_status="conflict"
        )
        assert exact(response)["available"] == 5
        assert problem["requested"] == 6
    assert await _state(api) == before

    reserved = await api.post("/onhand/reserve", reserve_body("rest", 5))
    assert reserved.status_code == 200, reserved.text
    refused = await api.post("/onhand/reserve", reserve_body("one-more", 1, dimensions=LOCATION))
    assert_problem(refused, 409, "insufficient-available-to-reserve", processing_status="conflict")
    _refused_allocation(
        await planner.post("/allocation/allocate", _body("one-more", 1, STORE)), None, 0, 1
    )
    assert (await _figures(api, LOCATION))[ALLOCATED] == 5


# -- allocate ------------------------------------------------------------------------------------


async def test_allocate_answers_success_and_ring_fences_the_quantity_for_the_path(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)

    response = await planner.post("/allocation/allocate", _body("plan-1", 3, WEB_VIP_US))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Idempotent-Replayed" not in response.headers
    assert exact(response) == {"id": "plan-1", **SUCCESS}
    paths = await _paths(api)
    assert list(paths) == [("Web", "VIP", "US")]
    assert paths["Web", "VIP", "US"]["allocated"] == 3
    for level in (RED, LOCATION):
        figures = await _figures(api, level)
        assert figures[ALLOCATED] == 3
        assert figures[CUMULATIVE_ALLOCATED] == 3
        assert figures[ATA] == 7
        assert figures[ATR] == 7
        assert figures["pos.inbound"] == 10


async def test_allocation_at_a_location_is_held_in_the_location_row_not_in_its_colours(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)

    await _allocate(planner, 4, WEB, dimensions=LOCATION)

    location = await _figures(api, LOCATION)
    red = await _figures(api, RED)
    assert (location[ALLOCATED], location[CUMULATIVE_ALLOCATED], location[ATA]) == (4, 4, 6)
    assert (red[ALLOCATED], red[ATA]) == (0, 10)
    assert list(await _paths(api, LOCATION)) == [("Web",)]


@pytest.mark.parametrize(
    "names",
    [
        pytest.param({"targetGroups": WEB_VIP}, id="targetGroups"),
        pytest.param({"targetGroups": WEB_VIP, "groups": WEB_VIP}, id="both-equal"),
    ],
)
async def test_target_groups_is_accepted_as_the_old_name_of_groups(
    api: Api, planner: Api, names: dict[str, dict[str, str]]
) -> None:
    await _stock(api, 10)
    body = _body("old-name", 2, **names)
    if "groups" not in names:
        del body["groups"]

    response = await planner.post("/allocation/allocate", body)

    assert response.status_code == 200, response.text
    assert (await _paths(api))["Web", "VIP"]["allocated"] == 2
    [entry] = await api.journal(kind="allocate")
    assert entry["request"]["groups"] == WEB_VIP
    assert "targetGroups" not in entry["request"]


@pytest.mark.parametrize(
    "names",
    [
        pytest.param({"targetGroups": STORE, "groups": WEB}, id="groups-and-targetGroups-differ"),
        pytest.param({}, id="neither"),
    ],
)
async def test_allocate_without_one_clear_target_path_is_refused(
    api: Api, planner: Api, names: dict[str, dict[str, str]]
) -> None:
    await _stock(api, 10)
    before = await _state(api)
    body = _body("which-path", 1)
    del body["groups"]
    body.update(names)

    response = await planner.post("/allocation/allocate", body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem = response.json()
    assert problem["code"] in ("invalid-request", "invalid-group-path")
    assert_problem(response, 422, problem["code"], operation_id="which-path")
    assert "groups" in problem["detail"]
    assert await _state(api) == before


async def test_group_names_are_case_insensitive_and_answered_in_configured_spelling(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)

    mixed = {"REGION": "US", "customergroup": "VIP", "Channel": "Web"}
    await _ok(planner, "allocate", _body("a", 1, mixed))
    await _allocate(planner, 2, WEB_VIP_US)

    [row] = (await _query(api))["allocations"]
    assert row["groups"] == WEB_VIP_US
    assert list(row["groups"]) == ["channel", "customerGroup", "region"]
    assert (row["allocated"], row["cumulativeAllocated"]) == (3, 3)


@pytest.mark.parametrize(
    ("groups", "where", "hint"),
    [
        pytest.param({**WEB, "segment": "Gold"}, "groups.segment", "segment", id="unknown-group"),
        pytest.param({**WEB, "region": "US"}, "groups", "missing customerGroup", id="gap"),
        pytest.param({"customerGroup": "VIP"}, "groups", "missing channel", id="no-top-level"),
        pytest.param({}, "groups", "channel", id="empty"),
    ],
)
async def test_allocate_to_an_invalid_group_path_is_refused(
    api: Api, planner: Api, groups: dict[str, str], where: str, hint: str
) -> None:
    await _stock(api, 10)
    before = await _state(api)

    response = await planner.post("/allocation/allocate", _body("bad-path", 1, groups))

    problem = assert_problem(response, 422, "invalid-group-path", operation_id="bad-path")
    assert locations(problem) == [where]
    assert hint in problem["detail"]
    assert await _state(api) == before


@pytest.mark.parametrize(
    "dimensions",
    [
        pytest.param({**LOCATION, "sizeId": "S"}, id="size-without-colour"),
        pytest.param({**RED, "batchId": "B1"}, id="batch-outside-the-hierarchy"),
    ],
)
async def test_allocate_at_dimensions_that_are_not_a_hierarchy_level_is_refused(
    api: Api, planner: Api, dimensions: dict[str, str]
) -> None:
    await _stock(api, 10, {**RED_SMALL, "batchId": "B1"})
    before = await _state(api)

    response = await planner.post("/allocation/allocate", _body("gap", 1, dimensions=dimensions))

    problem = assert_problem(response, 422, "not-a-hierarchy-level", operation_id="gap")
    assert locations(problem) == ["dimensions"]
    assert await _state(api) == before


@pytest.mark.parametrize(
    "quantity", [0, -1, "-2.5", "0.0000001"], ids=["zero", "negative", "negative-string", "7-dp"]
)
async def test_allocate_of_a_quantity_that_is_not_positive_and_exact_is_refused(
    api: Api, planner: Api, quantity: object
) -> None:
    await _stock(api, 10)
    before = await _state(api)

    response = await planner.post("/allocation/allocate", _body("bad-quantity", quantity))

    problem = assert_problem(response, 422, "invalid-quantity", operation_id="bad-quantity")
    assert locations(problem) == ["quantity"]
    assert await _state(api) == before


async def test_allocate_of_six_decimals_is_held_exactly(api: Api, planner: Api) -> None:
    await _stock(api, 1)

    await _allocate(planner, "0.000001")

    assert (await _paths(api))["Web",]["allocated"] == Decimal("0.000001")
    assert await _ata(api, LOCATION) == Decimal("0.999999")


@pytest.mark.parametrize("role", ["reader", "writer"])
async def test_only_a_planner_may_allocate_unallocate_and_reallocate(
    api: Api, planner: Api, auth: TokenFactory, role: str
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    headers = await auth(role)
    before = await _state(api)

    answers = [
        await api.post("/allocation/allocate", _body("a", 1), headers=headers),
        await api.post("/allocation/unallocate", _body("u", 1), headers=headers),
        await api.post("/allocation/reallocate", _move_body(WEB, STORE, 1, "r"), headers=headers),
    ]

    for response in answers:
        problem = assert_problem(response, 403, "insufficient-role")
        assert (problem["requiredRole"], problem["role"]) == ("planner", role)
    assert await _state(api) == before


async def test_allocation_calls_without_a_token_are_401_and_with_another_environments_403(
    api: Api, planner: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    foreign = await auth("admin", environment=f"{api.environment_id}-other")
    before = await _state(api)

    for headers, status, code in (({}, 401, "missing-token"), (foreign, 403, "forbidden")):
        answers = [
            await api.post("/allocation/allocate", _body(), headers=headers),
            await api.post("/allocation/consume", _consume_body(), headers=headers),
            await api.post("/allocation/query", _query_body(), headers=headers),
        ]
        for response in answers:
            assert_problem(response, status, code)
            assert "allocations" not in response.json()
    assert await _state(api) == before


# -- unallocate ----------------------------------------------------------------------------------


async def test_unallocate_returns_the_quantity_to_the_pool_and_keeps_cumulative_allocated(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB_VIP)

    answer = await _ok(planner, "unallocate", _body("give-back", 2, WEB_VIP))

    assert answer == {"id": "give-back", **SUCCESS}
    row = (await _paths(api))["Web", "VIP"]
    assert (row["allocated"], row["cumulativeAllocated"]) == (3, 5)
    for level in (RED, LOCATION):
        figures = await _figures(api, level)
        assert (figures[ALLOCATED], figures[CUMULATIVE_ALLOCATED], figures[ATA]) == (3, 5, 7)
    await _allocate(planner, 7, STORE)
    assert await _ata(api, LOCATION) == 0


async def test_unallocate_of_more_than_the_path_holds_is_refused(api: Api, planner: Api) -> None:
    await _stock(api, 10)
    await _allocate(planner, 3, WEB)
    await _allocate(planner, 4, WEB_VIP)
    before = await _state(api)

    too_much = await planner.post("/allocation/unallocate", _body("too-much", 4, WEB))
    elsewhere = await planner.post("/allocation/unallocate", _body("elsewhere", 1, STORE))

    body = _refused_path(too_much, 3, 4)
    assert body["id"] == "too-much"
    assert body["groups"] == WEB
    _refused_path(elsewhere, 0, 1)
    assert await _state(api) == before


# -- reallocate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        pytest.param(WEB, WEB_VIP, id="parent-to-child"),
        pytest.param(WEB_VIP_US, WEB_VIP_EU, id="sibling-to-sibling"),
        pytest.param(WEB_VIP, WEB, id="child-to-parent"),
        pytest.param(WEB_VIP_US, STORE, id="across-channels"),
    ],
)
async def test_reallocate_moves_quantity_between_paths_without_touching_the_pool(
    api: Api, planner: Api, source: dict[str, str], target: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 6, source)
    await _allocate(planner, 1, target)

    answer = await _ok(planner, "reallocate", _move_body(source, target, 4, "move"))

    assert answer == {"id": "move", **SUCCESS}
    paths = await _paths(api)
    moved_from, moved_to = paths[_key(source)], paths[_key(target)]
    assert (moved_from["allocated"], moved_from["cumulativeAllocated"]) == (2, 6)
    assert (moved_to["allocated"], moved_to["cumulativeAllocated"]) == (5, 5)
    for level in (RED, LOCATION):
        figures = await _figures(api, level)
        assert (figures[ATA], figures[ATR], figures[ALLOCATED]) == (3, 3, 7)
        assert figures[CUMULATIVE_ALLOCATED] == 11
    assert (await _query(api))["availableToAllocate"] == 3


async def test_reallocate_of_more_than_the_source_holds_is_refused(api: Api, planner: Api) -> None:
    await _stock(api, 10)
    await _allocate(planner, 2, WEB_VIP_US)
    await _allocate(planner, 5, WEB)
    before = await _state(api)

    response = await planner.post(
        "/allocation/reallocate", _move_body(WEB_VIP_US, WEB_VIP_EU, 3, "short")
    )

    body = _refused_path(response, 2, 3)
    assert (body["id"], body["groups"]) == ("short", WEB_VIP_US)
    assert await _state(api) == before


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(WEB_VIP, id="same-path"),
        pytest.param({"CustomerGroup": "VIP", "CHANNEL": "Web"}, id="same-path-other-spelling"),
    ],
)
async def test_reallocate_onto_its_source_path_is_refused(
    api: Api, planner: Api, source: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB_VIP)
    before = await _state(api)

    response = await planner.post(
        "/allocation/reallocate", _move_body(source, WEB_VIP, 1, "nowhere")
    )

    assert_problem(response, 422, "invalid-group-path", operation_id="nowhere")
    assert await _state(api) == before


async def test_reallocate_without_source_groups_is_refused(api: Api, planner: Api) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    before = await _state(api)

    response = await planner.post("/allocation/reallocate", _body("from-where", 1, WEB_VIP))

    assert response.status_code == 422, response.text
    problem = assert_problem(response, 422, response.json()["code"], operation_id="from-where")
    assert "sourceGroups" in problem["detail"]
    assert await _state(api) == before


# -- consume -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measures", "dimensions", "moved", "delta"),
    [
        pytest.param(OUTBOUND, RED, "pos.outbound", 2, id="outbound-addition"),
        pytest.param(
            {"pos": {"inbound": "Subtraction"}}, RED, "pos.inbound", -2, id="inbound-subtraction"
        ),
        pytest.param(OUTBOUND, LOCATION, "pos.outbound", 2, id="at-a-location"),
    ],
)
async def test_consume_moves_quantity_from_allocated_to_consumed_and_keeps_the_pool(
    api: Api,
    planner: Api,
    measures: dict[str, dict[str, str]],
    dimensions: dict[str, str],
    moved: str,
    delta: int,
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 6, WEB_VIP, dimensions=dimensions)
    levels = (RED, LOCATION)
    before = [await _figures(api, level) for level in levels]
    pool = (await _query(api, dimensions=dimensions))["availableToAllocate"]

    answer = await _ok(
        api, "consume", _consume_body(2, WEB_VIP, "sale", measures, dimensions=dimensions)
    )

    assert answer == {"id": "sale", **SUCCESS}
    row = (await _paths(api, dimensions))["Web", "VIP"]
    assert (row["allocated"], row["cumulativeAllocated"]) == (4, 6)
    assert (row["consumed"], row["cumulativeConsumed"]) == (2, 2)
    assert row["subtree"] == {"allocated": 4, "consumed": 2}
    assert (await _query(api, dimensions=dimensions))["availableToAllocate"] == pool == 4
    for level, figures in zip(levels, before, strict=True):
        after = await _figures(api, level)
        assert after[ATA] == figures[ATA]
        assert after[ATR] == figures[ATR]
    after = await _figures(api, LOCATION)
    assert after[moved] == before[1][moved] + delta
    assert (after[ALLOCATED], after[CONSUMED], after[CUMULATIVE_CONSUMED]) == (4, 2, 2)
    assert after[CUMULATIVE_ALLOCATED] == 6


async def test_consume_of_more_than_the_path_holds_is_refused_and_changes_nothing(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 2, WEB)
    await _allocate(planner, 5, WEB_VIP)
    before = await _state(api)

    oversold = await api.post("/allocation/consume", _consume_body(3, WEB, "oversell"))
    unallocated = await api.post("/allocation/consume", _consume_body(1, STORE, "no-quota"))

    body = _refused_path(oversold, 2, 3)
    assert (body["id"], body["groups"]) == ("oversell", WEB)
    _refused_path(unallocated, 0, 1)
    assert await _state(api) == before
    assert await api.measure("pos.outbound") == 0


@pytest.mark.parametrize(
    "measures",
    [
        pytest.param(None, id="no-physicalMeasures"),
        pytest.param({}, id="empty-physicalMeasures"),
        pytest.param({"pos": {"outbound": "Subtraction"}}, id="outbound-subtraction"),
        pytest.param({"pos": {"inbound": "Addition"}}, id="inbound-addition"),
        pytest.param(
            {"pos": {"outbound": "Addition", "inbound": "Subtraction"}}, id="twice-neutral"
        ),
    ],
)
async def test_consume_that_would_move_the_pool_is_refused_with_the_modifier_to_use(
    api: Api, planner: Api, measures: dict[str, dict[str, str]] | None
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    before = await _state(api)

    response = await api.post("/allocation/consume", _consume_body(1, WEB, "moves-pool", measures))

    problem = assert_problem(response, 422, "consume-not-pool-neutral", operation_id="moves-pool")
    assert NEUTRAL_HINT in problem["detail"]
    assert locations(problem) == ["physicalMeasures"]
    assert await _state(api) == before


@pytest.mark.parametrize(
    ("measures", "code", "where"),
    [
        pytest.param(
            {"fno": {"availphysical": "Subtraction"}},
            "read-only-data-source",
            "physicalMeasures.fno.availphysical",
            id="read-only-fno",
        ),
        pytest.param(
            {"@iv": {"@allocated": "Addition"}},
            "system-data-source",
            "physicalMeasures.@iv.@allocated",
            id="allocation-measure",
        ),
        pytest.param(
            {"pos": {"outbound": "Plus"}},
            "invalid-modifier",
            "physicalMeasures.pos.outbound",
            id="modifier-plus",
        ),
        pytest.param(
            {"@iv": {"@softreserved": "Subtraction"}},
            "invalid-modifier",
            "physicalMeasures.@iv.@softreserved",
            id="subtract-reservation",
        ),
    ],
)
async def test_consume_naming_a_measure_or_modifier_it_may_not_use_is_refused(
    api: Api, planner: Api, measures: dict[str, dict[str, str]], code: str, where: str
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    before = await _state(api)

    response = await api.post("/allocation/consume", _consume_body(1, WEB, "wrong", measures))

    problem = assert_problem(response, 422, code, operation_id="wrong")
    assert locations(problem) == [where]
    assert await _state(api) == before


async def test_consume_into_the_reservation_measure_makes_a_soft_reservation_that_can_be_released(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB_VIP)
    pool = await _ata(api, LOCATION)

    answer = await _consume(
        api, 3, WEB_VIP, {"@iv": {"@softreserved": "Addition"}}, operation_id="order-9"
    )

    reservation_id = answer.pop("reservationId")
    assert isinstance(reservation_id, str)
    assert reservation_id
    assert answer == {"id": "order-9", **SUCCESS}
    [listed] = await reservations(api)
    assert listed["reservationId"] == reservation_id
    assert (listed["origin"], listed["operationId"]) == ("consume", "order-9")
    assert (listed["reserved"], listed["remaining"]) == (3, 3)
    assert (listed["dimensions"], listed["measure"]) == (RED, SOFTRESERVED)
    for level in (RED, LOCATION):
        figures = await _figures(api, level)
        assert (figures[SOFTRESERVED], figures[ALLOCATED], figures[CONSUMED]) == (3, 2, 3)
        assert figures[ATA] == pool == 5
    row = (await _paths(api))["Web", "VIP"]
    assert (row["allocated"], row["consumed"]) == (2, 3)

    released = await api.post("/onhand/unreserve", unreserve_body(reservation_id, 3, "cancel"))

    assert released.status_code == 200, released.text
    assert released.json()["processingStatus"] == "success"
    figures = await _figures(api, LOCATION)
    assert (figures[SOFTRESERVED], figures[ATA]) == (0, 8)


async def test_a_writer_may_consume_but_a_reader_may_not(
    api: Api, planner: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    before = await _state(api)

    refused = await api.post(
        "/allocation/consume", _consume_body(1, WEB, "read-only"), headers=await auth("reader")
    )

    problem = assert_problem(refused, 403, "insufficient-role")
    assert (problem["requiredRole"], problem["role"]) == ("writer", "reader")
    assert await _state(api) == before
    await _consume(api, 1, WEB)
    assert (await _paths(api))["Web",]["consumed"] == 1


# -- query ---------------------------------------------------------------------------------------


async def _tree(api: Api, planner: Api) -> None:
    """[Web] 5, [Web, VIP] 3, [Web, VIP, US] 2 (1 of it consumed), [Store] 4, at red."""
    await _stock(api, 20)
    await _allocate(planner, 5, WEB)
    await _allocate(planner, 3, WEB_VIP)
    await _allocate(planner, 3, {"region": "US", "customerGroup": "VIP", "channel": "Web"})
    await _allocate(planner, 4, STORE)
    await _consume(api, 1, WEB_VIP_US)


def _row(
    groups: Mapping[str, str],
    allocated: int,
    consumed: int,
    subtree_allocated: int,
    subtree_consumed: int,
) -> Json:
    return {
        "groups": dict(groups),
        "allocated": allocated,
        "cumulativeAllocated": allocated + consumed,
        "consumed": consumed,
        "cumulativeConsumed": consumed,
        "subtree": {"allocated": subtree_allocated, "consumed": subtree_consumed},
    }


async def test_query_answers_the_pool_and_every_path_with_own_and_subtree_figures(
    api: Api, planner: Api, auth: TokenFactory
) -> None:
    await _tree(api, planner)

    response = await api.post("/allocation/query", _query_body({}), headers=await auth("reader"))

    assert response.status_code == 200, response.text
    answer = exact(response)
    rows = answer.pop("allocations")
    assert answer == {
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": RED,
        "availableToAllocate": 5,
    }
    assert sorted(rows, key=lambda row: _key(row["groups"])) == [
        _row(STORE, 4, 0, 4, 0),
        _row(WEB, 5, 0, 10, 1),
        _row(WEB_VIP, 3, 0, 5, 1),
        _row(WEB_VIP_US, 2, 1, 2, 1),
    ]
    deepest = next(row for row in rows if len(row["groups"]) == 3)
    assert list(deepest["groups"]) == ["channel", "customerGroup", "region"]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        pytest.param(WEB, [("Web",), ("Web", "VIP"), ("Web", "VIP", "US")], id="channel"),
        pytest.param(WEB_VIP, [("Web", "VIP"), ("Web", "VIP", "US")], id="customer-group"),
        pytest.param(WEB_VIP_US, [("Web", "VIP", "US")], id="leaf"),
        pytest.param(WEB_VIP_EU, [], id="never-allocated"),
        pytest.param({"channel": "Mobile"}, [], id="other-channel"),
    ],
)
async def test_query_with_a_prefix_answers_only_its_subtree(
    api: Api, planner: Api, prefix: dict[str, str], expected: list[tuple[str, ...]]
) -> None:
    await _tree(api, planner)

    answer = await _query(api, prefix)

    assert sorted(_key(row["groups"]) for row in answer["allocations"]) == expected
    assert answer["availableToAllocate"] == 5
    subtrees = {_key(row["groups"]): row["subtree"] for row in answer["allocations"]}
    whole = {"Web": 10, "VIP": 5, "US": 2}
    for key, subtree in subtrees.items():
        assert subtree["allocated"] == whole[key[-1]]


async def test_query_still_lists_paths_that_were_fully_consumed_or_unallocated(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 2, STORE)
    await _allocate(planner, 3, WEB)
    await _consume(api, 2, STORE)
    await _ok(planner, "unallocate", _body(None, 3, WEB))

    paths = await _paths(api)

    assert paths == {
        ("Store",): _row(STORE, 0, 2, 0, 2),
        ("Web",): {**_row(WEB, 0, 0, 0, 0), "cumulativeAllocated": 3},
    }
    assert (await _query(api))["availableToAllocate"] == 8


async def test_query_dimensions_are_exact(api: Api, planner: Api) -> None:
    await _stock(api, 10)
    await _stock(api, 5, RED_SMALL)
    await _allocate(planner, 3, WEB, dimensions=RED)

    at_location = await _query(api, dimensions=LOCATION)
    at_small = await _query(api, dimensions=RED_SMALL)
    at_red = await _query(api, dimensions=RED)

    assert (at_location["allocations"], at_location["availableToAllocate"]) == ([], 12)
    assert (at_small["allocations"], at_small["availableToAllocate"]) == ([], 5)
    assert [row["groups"] for row in at_red["allocations"]] == [WEB]
    assert at_red["availableToAllocate"] == 12
    assert at_location["dimensions"] == LOCATION


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param(
            {"dimensions": {**LOCATION, "sizeId": "S"}},
            "not-a-hierarchy-level",
            id="size-without-colour",
        ),
        pytest.param(
            {"dimensions": {"siteId": "1"}}, "missing-partition-dimension", id="no-location"
        ),
        pytest.param(
            {"groups": {"channel": "Web", "region": "US"}}, "invalid-group-path", id="group-gap"
        ),
        pytest.param({"groups": {"segment": "Gold"}}, "invalid-group-path", id="unknown-group"),
    ],
)
async def test_query_of_an_invalid_level_or_prefix_is_refused(
    api: Api, change: Json, code: str
) -> None:
    response = await api.post("/allocation/query", {**_query_body(), **change})

    problem = assert_problem(response, 422, code)
    assert locations(problem)[0].split(".")[0] == next(iter(change))


# -- group-scoped tokens -------------------------------------------------------------------------


async def test_planner_limited_to_web_allocates_only_within_web(
    api: Api, planner: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    web = Api(api.client, api.environment_id, await auth("planner", groups=["channel=Web"]))

    await _allocate(web, 2, WEB)
    await _allocate(web, 2, WEB_VIP_US)
    await _ok(web, "reallocate", _move_body(WEB, WEB_B2B, 1))
    await _ok(web, "unallocate", _body(None, 1, WEB_B2B))
    await _allocate(planner, 3, STORE)
    before = await _state(api)

    answers = [
        await web.post("/allocation/allocate", _body("store", 1, STORE)),
        await web.post("/allocation/unallocate", _body("store-back", 1, STORE)),
    ]

    for response in answers:
        problem = assert_problem(response, 403, "group-out-of-scope")
        assert "Web" in problem["detail"]
    assert await _state(api) == before
    paths = await _paths(api)
    assert {key: row["allocated"] for key, row in paths.items()} == {
        ("Store",): 3,
        ("Web",): 1,
        ("Web", "B2B"): 0,
        ("Web", "VIP", "US"): 2,
    }


async def test_writer_limited_to_web_consumes_only_webs_allocation(
    api: Api, planner: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 3, WEB_VIP)
    await _allocate(planner, 3, STORE)
    web = Api(api.client, api.environment_id, await auth("writer", groups=["channel=Web"]))

    await _consume(web, 1, WEB_VIP)
    before = await _state(api)
    refused = await web.post("/allocation/consume", _consume_body(1, STORE, "not-mine"))

    assert_problem(refused, 403, "group-out-of-scope", operation_id="not-mine")
    assert await _state(api) == before
    paths = await _paths(api)
    assert (paths["Web", "VIP"]["consumed"], paths["Store",]["consumed"]) == (1, 0)


@pytest.mark.parametrize(
    ("source", "target"),
    [pytest.param(STORE, WEB, id="from-store"), pytest.param(WEB, STORE, id="to-store")],
)
async def test_planner_limited_to_web_cannot_move_quantity_from_or_to_another_channel(
    api: Api, planner: Api, auth: TokenFactory, source: dict[str, str], target: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 3, WEB)
    await _allocate(planner, 3, STORE)
    web = await auth("planner", groups=["channel=Web"])
    before = await _state(api)

    response = await api.post(
        "/allocation/reallocate", _move_body(source, target, 1, "grab"), headers=web
    )

    assert_problem(response, 403, "group-out-of-scope", operation_id="grab")
    assert await _state(api) == before


async def test_reader_limited_to_web_sees_only_webs_subtree(
    api: Api, planner: Api, auth: TokenFactory
) -> None:
    await _tree(api, planner)
    web = await auth("reader", groups=["channel=Web"])

    everything = await _query(api, {}, headers=web)
    vip = await _query(api, WEB_VIP, headers=web)
    store = await api.post("/allocation/query", _query_body(STORE), headers=web)

    assert sorted(_key(row["groups"]) for row in everything["allocations"]) == [
        ("Web",),
        ("Web", "VIP"),
        ("Web", "VIP", "US"),
    ]
    assert [_key(row["groups"]) for row in vip["allocations"]] == [
        ("Web", "VIP"),
        ("Web", "VIP", "US"),
    ]
    assert_problem(store, 403, "group-out-of-scope")
    assert "allocations" not in store.json()


# -- idempotency ---------------------------------------------------------------------------------


def _operation(kind: str, operation_id: str, quantity: int) -> Json:
    """A request of ``kind`` on [Web, VIP] (which holds 5 after :func:`_ready`)."""
    if kind == "reallocate":
        return _move_body(WEB_VIP, STORE, quantity, operation_id)
    if kind == "consume":
        return _consume_body(quantity, WEB_VIP, operation_id)
    return _body(operation_id, quantity, WEB_VIP)


async def _ready(api: Api, planner: Api) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB_VIP)


@pytest.mark.parametrize("kind", OPERATIONS)
async def test_replayed_operation_answers_the_same_and_applies_once(
    api: Api, planner: Api, kind: str
) -> None:
    await _ready(api, planner)
    body = _operation(kind, "once", 2)
    first = await planner.post(f"/allocation/{kind}", body)
    assert first.status_code == 200, first.text
    before = await _state(api)

    again = await planner.post(f"/allocation/{kind}", body)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await _state(api) == before
    assert [entry["id"] for entry in await api.journal(kind=kind)].count("once") == 1
    held = {"allocate": 7, "unallocate": 3, "reallocate": 3, "consume": 3}[kind]
    assert (await _paths(api))["Web", "VIP"]["allocated"] == held


@pytest.mark.parametrize("kind", OPERATIONS)
async def test_operation_with_a_used_id_and_another_body_is_refused_as_idempotency_key_reuse(
    api: Api, planner: Api, kind: str
) -> None:
    await _ready(api, planner)
    assert (await planner.post(f"/allocation/{kind}", _operation(kind, "reused", 2))).is_success
    before = await _state(api)

    response = await planner.post(f"/allocation/{kind}", _operation(kind, "reused", 1))

    assert_problem(
        response, 409, "idempotency-key-reuse", processing_status="conflict", operation_id="reused"
    )
    assert await _state(api) == before


async def test_replayed_allocate_answers_its_success_even_once_the_pool_is_empty(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)
    body = _body("first", 4, WEB)
    await _ok(planner, "allocate", body)
    await _allocate(planner, 6, STORE)

    again = await planner.post("/allocation/allocate", body)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await _paths(api))["Web",]["allocated"] == 4


async def test_replayed_consume_into_a_reservation_answers_the_same_reservation_id(
    api: Api, planner: Api
) -> None:
    await _ready(api, planner)
    body = _consume_body(2, WEB_VIP, "order-1", {"@iv": {"@softreserved": "Addition"}})
    first = await _ok(api, "consume", body)
    before = await _state(api)

    again = await api.post("/allocation/consume", body)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert exact(again) == first
    assert await _state(api) == before
    assert [r["reservationId"] for r in await reservations(api)] == [first["reservationId"]]


async def test_allocate_and_consume_ids_are_separate_idempotency_scopes(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB, operation_id="same-id")

    response = await api.post("/allocation/consume", _consume_body(2, WEB, "same-id"))

    assert response.status_code == 200, response.text
    assert "Idempotent-Replayed" not in response.headers
    row = (await _paths(api))["Web",]
    assert (row["allocated"], row["consumed"]) == (3, 2)


# -- journal -------------------------------------------------------------------------------------


def _measure(name: str, delta: int, value: int, dimensions: Mapping[str, str] = RED) -> Json:
    return {"dimensions": dict(dimensions), "measure": name, "delta": delta, "value": value}


def _path(groups: Mapping[str, str], **changes: int) -> Json:
    return {"dimensions": RED, "groups": dict(groups), **changes}


async def test_allocation_operations_are_journaled_with_their_effects(
    api: Api, planner: Api
) -> None:
    await _stock(api, 10)
    await _ok(
        planner,
        "allocate",
        _body("a", 5, WEB, dimensions={"SITEID": "1", "locationId": "11", "colorId": "red"}),
    )
    await _ok(planner, "reallocate", _move_body(WEB, WEB_VIP, 2, "r"))
    await _ok(planner, "unallocate", _body("u", 1, WEB))
    await _consume(api, 2, WEB_VIP, operation_id="c")

    entries = (await api.journal())[1:]

    assert [(e["kind"], e["id"], e["actor"]) for e in entries] == [
        ("allocate", "a", "integration-planner"),
        ("reallocate", "r", "integration-planner"),
        ("unallocate", "u", "integration-planner"),
        ("consume", "c", "integration-writer"),
    ]
    allocate, reallocate, unallocate, consume = entries
    assert allocate["request"] == {
        "id": "a",
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": RED,
        "groups": WEB,
        "quantity": 5,
    }
    assert allocate["effects"] == [
        _measure(ALLOCATED, 5, 5),
        _measure(CUMULATIVE_ALLOCATED, 5, 5),
        _path(WEB, allocated=5, cumulativeAllocated=5),
    ]
    assert allocate["result"] == {"id": "a", **SUCCESS}
    assert reallocate["request"]["sourceGroups"] == WEB
    assert reallocate["request"]["groups"] == WEB_VIP
    assert reallocate["effects"] == [
        _measure(CUMULATIVE_ALLOCATED, 2, 7),
        _path(WEB, allocated=-2),
        _path(WEB_VIP, allocated=2, cumulativeAllocated=2),
    ]
    assert unallocate["effects"] == [_measure(ALLOCATED, -1, 4), _path(WEB, allocated=-1)]
    assert consume["request"]["physicalMeasures"] == OUTBOUND
    assert consume["effects"] == [
        _measure(ALLOCATED, -2, 2),
        _measure(CONSUMED, 2, 2),
        _measure(CUMULATIVE_CONSUMED, 2, 2),
        _measure("pos.outbound", 2, 2),
        _path(WEB_VIP, allocated=-2, consumed=2, cumulativeConsumed=2),
    ]


async def test_refused_allocation_operations_are_not_journaled(api: Api, planner: Api) -> None:
    await _stock(api, 5)
    await _allocate(planner, 3, WEB, operation_id="ok")
    refusals = [
        await planner.post("/allocation/allocate", _body("short", 3, STORE)),
        await planner.post("/allocation/allocate", _body("bad", 0, STORE)),
        await planner.post("/allocation/unallocate", _body("unheld", 1, STORE)),
        await planner.post("/allocation/reallocate", _move_body(WEB, STORE, 4, "big-move")),
        await api.post("/allocation/consume", _consume_body(4, WEB, "oversell")),
        await api.post("/allocation/consume", _consume_body(1, WEB, "moves-pool", None)),
        await api.post("/allocation/allocate", _body("writer", 1, STORE)),
    ]

    assert [r.status_code for r in refusals] == [409, 422, 409, 409, 409, 422, 403]
    assert [entry["id"] for entry in await api.journal()][1:] == ["ok"]
    for kind in OPERATIONS:
        assert [e["id"] for e in await api.journal(kind=kind)] == (
            ["ok"] if kind == "allocate" else []
        )


# -- configuration -------------------------------------------------------------------------------


async def _configuration(api: Api, admin_headers: dict[str, str]) -> Json:
    response = await api.get("/configuration", headers=admin_headers)
    assert response.status_code == 200, response.text
    document: Json = response.json()
    return document


async def _version(api: Api, admin_headers: dict[str, str]) -> int:
    version: int = (await _configuration(api, admin_headers))["version"]
    return version


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param(["channel", "customerGroup", "region"], id="remove-lowest"),
        pytest.param(["channel", "region", "orderType"], id="remove-middle"),
        pytest.param(["customerGroup", "channel", "region", "orderType"], id="reorder"),
        pytest.param(["channel", "customerGroup", "orderType", "region"], id="swap-lowest"),
    ],
)
async def test_changing_group_levels_while_quantities_are_allocated_is_blocked(
    api: Api, planner: Api, admin_headers: dict[str, str], groups: list[str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 3, WEB_VIP_US)
    document = await _configuration(api, admin_headers)
    document["allocationGroups"] = groups

    response = await api.put("/configuration", document, headers=admin_headers)

    problem = assert_problem(
        response, 409, "configuration-change-blocked", processing_status="conflict"
    )
    assert locations(problem) == ["allocationGroups"]
    assert "allocationGroups" in problem["detail"]
    assert await _version(api, admin_headers) == 1
    assert (await _paths(api))["Web", "VIP", "US"]["allocated"] == 3


async def test_adding_a_lowest_group_level_keeps_existing_paths_usable(
    api: Api, planner: Api, admin_headers: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB_VIP_US)
    document = await _configuration(api, admin_headers)
    document["allocationGroups"].append("promotion")

    response = await api.put("/configuration", document, headers=admin_headers)

    assert response.status_code == 200, response.text
    assert response.json()["allocationGroups"][-1] == "promotion"
    await _consume(api, 2, WEB_VIP_US)
    promotion = {**WEB_VIP_US, "orderType": "Online", "promotion": "BlackFriday"}
    await _ok(planner, "reallocate", _move_body(WEB_VIP_US, promotion, 1))
    await _allocate(planner, 2, promotion)
    paths = await _paths(api, groups=WEB)
    assert {key: (row["allocated"], row["consumed"]) for key, row in paths.items()} == {
        ("Web", "VIP", "US"): (2, 2),
        ("Web", "VIP", "US", "Online", "BlackFriday"): (3, 0),
    }
    assert paths["Web", "VIP", "US"]["subtree"] == {"allocated": 5, "consumed": 2}
    assert list(paths["Web", "VIP", "US", "Online", "BlackFriday"]["groups"])[-1] == "promotion"


async def test_removing_a_group_level_is_allowed_once_everything_is_unallocated(
    api: Api, planner: Api, admin_headers: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 3, {**WEB_VIP_US, "orderType": "Online"})
    await _allocate(planner, 2, STORE)
    await _consume(api, 3, {**WEB_VIP_US, "orderType": "Online"})
    document = await _configuration(api, admin_headers)
    document["allocationGroups"] = ["channel", "customerGroup", "region"]
    blocked = await api.put("/configuration", document, headers=admin_headers)
    assert_problem(blocked, 409, "configuration-change-blocked", processing_status="conflict")

    await _ok(planner, "unallocate", _body(None, 2, STORE))
    response = await api.put("/configuration", document, headers=admin_headers)

    assert response.status_code == 200, response.text
    assert response.json()["allocationGroups"] == ["channel", "customerGroup", "region"]
    assert await _version(api, admin_headers) == 2
    await _allocate(planner, 1, WEB_VIP_US)


async def test_reordering_the_dimension_hierarchy_while_allocations_exist_is_blocked(
    api: Api, planner: Api, admin_headers: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 3, WEB)
    document = await _configuration(api, admin_headers)
    document["dimensionHierarchy"] = ["siteId", "locationId", "sizeId", "colorId"]
    document["indexSets"] = [["siteId", "locationId", "sizeId", "colorId"]]

    response = await api.put("/configuration", document, headers=admin_headers)

    problem = assert_problem(
        response, 409, "configuration-change-blocked", processing_status="conflict"
    )
    assert locations(problem) == ["dimensionHierarchy"]
    assert await _version(api, admin_headers) == 1


async def _switch_allocation(api: Api, admin_headers: dict[str, str], enabled: bool) -> None:
    document = await _configuration(api, admin_headers)
    assert document["features"]["allocation"] is not enabled
    document["features"]["allocation"] = enabled
    response = await api.put("/configuration", document, headers=admin_headers)
    assert response.status_code == 200, response.text


async def test_allocation_is_refused_while_switched_off(
    api: Api, planner: Api, admin_headers: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    await _switch_allocation(api, admin_headers, False)
    before = (await api.snapshot(), await reservations(api))

    answers = {
        kind: await planner.post(f"/allocation/{kind}", _operation(kind, f"off-{kind}", 1))
        for kind in OPERATIONS
    }
    query = await api.post("/allocation/query", _query_body())

    for kind, response in answers.items():
        problem = assert_problem(
            response,
            409,
            "feature-disabled",
            processing_status="conflict",
            operation_id=f"off-{kind}",
        )
        assert "features.allocation" in problem["detail"]
    assert_problem(query, 409, "feature-disabled", processing_status="conflict")
    assert "allocations" not in query.json()
    assert (await api.snapshot(), await reservations(api)) == before

    await _switch_allocation(api, admin_headers, True)
    again = await planner.post("/allocation/allocate", _operation("allocate", "off-allocate", 1))
    assert again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in again.headers


# -- no bulk -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*OPERATIONS, "query"])
async def test_there_are_no_bulk_allocation_endpoints(api: Api, planner: Api, kind: str) -> None:
    await _stock(api, 10)
    before = await _state(api)

    response = await planner.post(f"/allocation/{kind}/bulk", [_operation(kind, "bulk", 1)])

    assert response.status_code in (404, 405), response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == response.status_code
    assert await _state(api) == before
