"""Soft reservations over HTTP (reserve, unreserve, bulk, list), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import TokenFactory
from tests.integration.support import (
    Api,
    Json,
    assert_problem,
    event,
    exact,
    level_quantities,
    locations,
    reservation_snapshot,
    reservations,
    reserve_body,
    unreserve_body,
)

pytestmark = pytest.mark.asyncio

LOCATION = {"siteId": "1", "locationId": "11"}
RED = {**LOCATION, "colorId": "red"}
BLUE = {**LOCATION, "colorId": "blue"}
ATR = "@iv.@available_to_reserve"
ATA = "@iv.@available_to_allocate"
SOFTRESERVED = "@iv.@softreserved"
BUCKETS = {"success", "partialSuccess", "failure", "conflict", "notFound"}


async def _stock(
    api: Api,
    quantity: int | str,
    dimensions: dict[str, str] | None = None,
    *,
    organization: str = "usmf",
    product: str = "T-shirt",
) -> None:
    """Receive units (pos.inbound) at the given dimensions, red at (1, 11) by default."""
    body = event(
        quantities={"pos": {"inbound": quantity}},
        dimensions=RED if dimensions is None else dimensions,
        organization=organization,
        product=product,
    )
    response = await api.post("/onhand", body)
    assert response.status_code == 200, response.text


async def _reserve(api: Api, quantity: int | str = 1, **options: Any) -> str:
    """Reserve (must succeed); the new reservation's id."""
    response = await api.post("/onhand/reserve", reserve_body(quantity=quantity, **options))
    assert response.status_code == 200, response.text
    reservation_id: str = response.json()["reservationId"]
    return reservation_id


async def _unreserve(api: Api, reservation_id: str, offset: int | str, **options: Any) -> Json:
    response = await api.post(
        "/onhand/unreserve", unreserve_body(reservation_id, offset, **options)
    )
    assert response.status_code == 200, response.text
    body: Json = exact(response)
    return body


async def _atr(api: Api, level: dict[str, str], product: str = "T-shirt") -> Decimal:
    return (await level_quantities(api, level, product=product)).get(ATR, Decimal(0))


def _buckets(body: Json) -> dict[str, list[int]]:
    assert set(body) == BUCKETS, body
    return {bucket: [item["index"] for item in items] for bucket, items in body.items()}


# -- the same units are never reserved twice at two levels ---------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(LOCATION, RED, id="location-then-colour"),
        pytest.param(RED, LOCATION, id="colour-then-location"),
    ],
)
async def test_units_reserved_at_one_level_cannot_be_reserved_again_at_another(
    api: Api, first: dict[str, str], second: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _reserve(api, 10, dimensions=first)
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/reserve", reserve_body("second", 1, dimensions=second))

    problem = assert_problem(
        response,
        409,
        "insufficient-available-to-reserve",
        processing_status="conflict",
        operation_id="second",
    )
    assert problem["level"] == LOCATION
    assert exact(response)["available"] == 0
    assert exact(response)["requested"] == 1
    assert "(siteId 1, locationId 11)" in problem["detail"]
    assert await reservation_snapshot(api) == before
    assert await _atr(api, LOCATION) == 0
    assert await _atr(api, RED) == (0 if first == RED else 10)


async def test_reservation_at_a_location_shows_as_a_row_without_colour(api: Api) -> None:
    await _stock(api, 10)
    await _reserve(api, 10, dimensions=LOCATION)
    assert_problem(
        await api.post("/onhand/reserve", reserve_body("refused", 1)),
        409,
        "insufficient-available-to-reserve",
        processing_status="conflict",
    )

    rows = await api.rows(groupByValues=["colorId"], returnNegative=True)

    by_dimensions = {
        tuple(sorted(row["dimensions"].items())): row["quantities"]["@iv"] for row in rows
    }
    assert by_dimensions[tuple(sorted(LOCATION.items()))]["@softreserved"] == 10
    assert by_dimensions[tuple(sorted(LOCATION.items()))]["@available_to_reserve"] == -10
    assert by_dimensions[tuple(sorted(RED.items()))]["@softreserved"] == 0
    assert by_dimensions[tuple(sorted(RED.items()))]["@available_to_reserve"] == 10
    assert len(rows) == 2


async def test_reservations_at_two_levels_may_share_the_units_that_are_available(
    api: Api,
) -> None:
    await _stock(api, 10)

    await _reserve(api, 4, dimensions=LOCATION)
    await _reserve(api, 6, dimensions=RED)

    assert await _atr(api, LOCATION) == 0
    assert await _atr(api, RED) == 4
    for dimensions in (LOCATION, RED):
        assert_problem(
            await api.post("/onhand/reserve", reserve_body(dimensions=dimensions)),
            409,
            "insufficient-available-to-reserve",
            processing_status="conflict",
        )


async def test_refusal_names_the_level_that_binds_between_the_reservation_and_the_partition(
    api: Api,
) -> None:
    red_small = {**RED, "sizeId": "S"}
    await _stock(api, 6, red_small)
    await _stock(api, 4, {**BLUE, "sizeId": "S"})
    await _reserve(api, 5, dimensions=RED)
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/reserve", reserve_body("small", 2, dimensions=red_small))

    problem = assert_problem(
        response, 409, "insufficient-available-to-reserve", processing_status="conflict"
    )
    assert problem["level"] == RED
    assert exact(response)["available"] == 1
    assert exact(response)["requested"] == 2
    assert await reservation_snapshot(api) == before
    assert await _atr(api, red_small) == 6
    assert await _reserve(api, 1, dimensions=red_small)


# -- what reserve answers -----------------------------------------------------------------------


async def test_reserve_answers_success_with_a_reservation_id(api: Api) -> None:
    await _stock(api, 10)

    response = await api.post("/onhand/reserve", reserve_body("order-1-line-1", 2))

    assert response.status_code == 200, response.text
    assert "Idempotent-Replayed" not in response.headers
    body = response.json()
    reservation_id = body.pop("reservationId")
    assert isinstance(reservation_id, str)
    assert reservation_id
    assert body == {
        "id": "order-1-line-1",
        "processingStatus": "success",
        "message": "",
        "statusCode": 200,
    }
    [listed] = await reservations(api)
    assert listed["reservationId"] == reservation_id


async def test_every_reserve_gets_its_own_reservation_id_even_for_identical_bodies(
    api: Api,
) -> None:
    await _stock(api, 10)

    ids = [await _reserve(api, 2, operation_id=f"line-{index}") for index in range(3)]

    assert len(set(ids)) == 3
    assert {r["reservationId"] for r in await reservations(api)} == set(ids)
    assert (await level_quantities(api, RED))[SOFTRESERVED] == 6


async def test_replayed_reserve_answers_the_same_reservation_id_and_reserves_once(
    api: Api,
) -> None:
    await _stock(api, 10)
    body = reserve_body("replayed", 3)
    first = await api.post("/onhand/reserve", body)
    assert first.status_code == 200, first.text
    before = await reservation_snapshot(api)

    again = await api.post("/onhand/reserve", body)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await reservation_snapshot(api) == before
    assert await _atr(api, RED) == 7
    assert again.json() == first.json()


async def test_reserve_with_a_used_id_and_another_body_is_refused_as_idempotency_key_reuse(
    api: Api,
) -> None:
    await _stock(api, 10)
    await _reserve(api, 3, operation_id="reused")
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/reserve", reserve_body("reused", 4))

    assert_problem(
        response, 409, "idempotency-key-reuse", processing_status="conflict", operation_id="reused"
    )
    assert await reservation_snapshot(api) == before


async def test_reserve_and_unreserve_ids_are_separate_idempotency_scopes(api: Api) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 3, operation_id="same-id")

    answer = await _unreserve(api, reservation_id, 1, operation_id="same-id")

    assert answer["processingStatus"] == "success"
    assert await _atr(api, RED) == 8


# -- availability check --------------------------------------------------------------------------


async def test_unchecked_reserve_goes_beyond_what_is_available(api: Api) -> None:
    await _stock(api, 2)

    response = await api.post(
        "/onhand/reserve", reserve_body("oversell", 5, ifCheckAvailForReserv=False)
    )

    assert response.status_code == 200, response.text
    assert response.json()["processingStatus"] == "success"
    assert await _atr(api, RED) == -3
    assert await _atr(api, LOCATION) == -3
    assert (await level_quantities(api, RED))[SOFTRESERVED] == 5
    [row] = await api.rows(groupByValues=["colorId"], returnNegative=False)
    assert row["quantities"]["@iv"]["@available_to_reserve"] == 0


@pytest.mark.parametrize(
    "check",
    [pytest.param({}, id="default"), pytest.param({"ifCheckAvailForReserv": True}, id="true")],
)
async def test_reserve_checks_availability_unless_told_not_to(
    api: Api, check: dict[str, Any]
) -> None:
    await _stock(api, 2)
    body = reserve_body("checked", 3, **check)
    if not check:
        del body["quantityDataSource"], body["modifier"]
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/reserve", body)

    problem = assert_problem(
        response, 409, "insufficient-available-to-reserve", processing_status="conflict"
    )
    assert problem["level"] == RED
    assert exact(response)["available"] == 2
    assert await reservation_snapshot(api) == before


async def test_reserve_into_an_empty_location_is_refused(api: Api) -> None:
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/reserve", reserve_body("nothing-there", 1))

    problem = assert_problem(
        response, 409, "insufficient-available-to-reserve", processing_status="conflict"
    )
    assert exact(response)["available"] == 0
    assert problem["level"] in (RED, LOCATION)
    assert await reservation_snapshot(api) == before


# -- what a reserve may name ---------------------------------------------------------------------


async def test_reserve_without_a_measure_uses_the_configured_reservation_measure(api: Api) -> None:
    await _stock(api, 10)
    body = reserve_body("implicit", 4)
    del body["quantityDataSource"], body["modifier"]

    response = await api.post("/onhand/reserve", body)

    assert response.status_code == 200, response.text
    assert (await level_quantities(api, RED))[SOFTRESERVED] == 4
    [listed] = await reservations(api)
    assert listed["measure"] == SOFTRESERVED
    [entry] = await api.journal(kind="reserve")
    assert entry["request"]["quantityDataSource"] == "@iv"
    assert entry["request"]["modifier"] == "@softreserved"


@pytest.mark.parametrize(
    ("data_source", "modifier"),
    [("pos", "inbound"), ("@iv", "@allocated"), ("@iv", "@available_to_reserve"), ("x", "y")],
)
async def test_reserve_into_a_measure_that_is_not_a_reservation_measure_is_refused(
    api: Api, data_source: str, modifier: str
) -> None:
    await _stock(api, 10)
    before = await reservation_snapshot(api)
    body = reserve_body("wrong-measure", 1, quantityDataSource=data_source, modifier=modifier)

    response = await api.post("/onhand/reserve", body)

    problem = assert_problem(
        response, 422, "not-a-reservation-measure", operation_id="wrong-measure"
    )
    assert "@iv.@softreserved" in problem["detail"]
    assert await reservation_snapshot(api) == before


@pytest.mark.parametrize(
    "quantity",
    [0, "0", -1, "-2.5", "0.0000001", "1.0000001"],
    ids=["zero", "zero-string", "negative", "negative-string", "7-decimals", "1-and-7-decimals"],
)
async def test_reserve_of_a_quantity_that_is_not_positive_and_exact_is_refused(
    api: Api, quantity: object
) -> None:
    await _stock(api, 10)
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/reserve", reserve_body("bad-quantity", quantity))

    problem = assert_problem(response, 422, "invalid-quantity", operation_id="bad-quantity")
    assert locations(problem) == ["quantity"]
    assert await reservation_snapshot(api) == before


async def test_reserve_of_six_decimals_is_held_exactly(api: Api) -> None:
    await _stock(api, 1)

    await _reserve(api, "0.000001")

    assert await _atr(api, RED) == Decimal("0.999999")
    [listed] = await reservations(api)
    assert listed["reserved"] == Decimal("0.000001")


@pytest.mark.parametrize(
    ("dimensions", "code"),
    [
        pytest.param(
            {**LOCATION, "sizeId": "S"}, "not-a-hierarchy-level", id="size-without-colour"
        ),
        pytest.param({**RED, "batchId": "B1"}, "not-a-hierarchy-level", id="colour-and-batch"),
        pytest.param({**LOCATION, "batchId": "B1"}, "not-a-hierarchy-level", id="batch"),
        pytest.param(
            {**RED, "sizeId": "S", "batchId": "B1"}, "not-a-hierarchy-level", id="below-size"
        ),
        pytest.param(
            {"siteId": "1", "colorId": "red"}, "missing-partition-dimension", id="no-location"
        ),
        pytest.param({"siteId": "1"}, "missing-partition-dimension", id="site-only"),
        pytest.param({}, "missing-partition-dimension", id="none"),
    ],
)
async def test_reserve_at_dimensions_that_are_not_a_hierarchy_level_is_refused(
    api: Api, dimensions: dict[str, str], code: str
) -> None:
    await _stock(api, 10, {**RED, "sizeId": "S", "batchId": "B1"})
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/reserve", reserve_body("gap", 1, dimensions=dimensions))

    problem = assert_problem(response, 422, code, operation_id="gap")
    assert locations(problem) == ["dimensions"]
    if code == "not-a-hierarchy-level":
        assert "(siteId, locationId, colorId)" in problem["detail"]
    assert await reservation_snapshot(api) == before


@pytest.mark.parametrize(
    "dimensions",
    [
        pytest.param({"SITEID": "1", "locationid": "11", "ColorId": "red"}, id="mixed-case"),
        pytest.param({"colorId": "red", "locationId": "11", "siteId": "1"}, id="any-order"),
    ],
)
async def test_reserve_dimension_names_are_case_insensitive(
    api: Api, dimensions: dict[str, str]
) -> None:
    await _stock(api, 10)

    await _reserve(api, 3, dimensions=dimensions)

    [listed] = await reservations(api)
    assert listed["dimensions"] == RED
    assert list(listed["dimensions"]) == ["siteId", "locationId", "colorId"]
    assert await _atr(api, RED) == 7


async def test_reserve_dimension_values_are_case_sensitive(api: Api) -> None:
    await _stock(api, 10)

    response = await api.post(
        "/onhand/reserve", reserve_body("Red", 1, dimensions={**LOCATION, "colorId": "Red"})
    )

    problem = assert_problem(
        response, 409, "insufficient-available-to-reserve", processing_status="conflict"
    )
    assert problem["level"] == {**LOCATION, "colorId": "Red"}


# -- reservations and on-hand --------------------------------------------------------------------


async def test_reservation_takes_from_available_to_reserve_and_to_allocate_at_its_level(
    api: Api,
) -> None:
    await _stock(api, 10)
    await _stock(api, 4, BLUE)

    await _reserve(api, 3)

    red = await level_quantities(api, RED)
    blue = await level_quantities(api, BLUE)
    location = await level_quantities(api, LOCATION)
    assert [red[SOFTRESERVED], red[ATR], red[ATA], red["iv.onhand"]] == [3, 7, 7, 10]
    assert [blue[SOFTRESERVED], blue[ATR], blue[ATA]] == [0, 4, 4]
    assert [location[SOFTRESERVED], location[ATR], location[ATA]] == [3, 11, 11]
    assert location["iv.onhand"] == 14
    assert location["@iv.@allocated"] == 0


async def test_reservations_of_one_product_leave_other_products_and_organizations_alone(
    api: Api,
) -> None:
    await _stock(api, 10)
    await _stock(api, 10, product="Jeans")
    await _stock(api, 10, organization="contoso")

    await _reserve(api, 10)

    assert await _atr(api, RED) == 0
    assert await _atr(api, RED, product="Jeans") == 10
    assert (await level_quantities(api, RED, organization="contoso"))[ATR] == 10


# -- unreserve -----------------------------------------------------------------------------------


async def test_partial_unreserve_releases_that_much(api: Api) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)

    response = await api.post("/onhand/unreserve", unreserve_body(reservation_id, 2, "cancel-2"))

    assert response.status_code == 200, response.text
    assert "Idempotent-Replayed" not in response.headers
    assert exact(response) == {
        "id": "cancel-2",
        "processingStatus": "success",
        "message": "",
        "statusCode": 200,
        "reservationId": reservation_id,
        "totalInvalidOffsetQtyByReservId": 0,
    }
    assert await _atr(api, RED) == 7
    [listed] = await reservations(api)
    assert (listed["reserved"], listed["offset"], listed["remaining"]) == (5, 2, 3)


async def test_unreserving_more_than_remains_stops_at_zero_and_reports_the_excess(
    api: Api,
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    await _unreserve(api, reservation_id, 2)

    response = await api.post("/onhand/unreserve", unreserve_body(reservation_id, 4, "too-much"))

    assert response.status_code == 200, response.text
    body = exact(response)
    assert body["processingStatus"] == "partialSuccess"
    assert body["statusCode"] == 200
    assert body["id"] == "too-much"
    assert body["reservationId"] == reservation_id
    assert body["totalInvalidOffsetQtyByReservId"] == 1
    assert "1 more" in body["message"]
    [listed] = await reservations(api)
    assert (listed["reserved"], listed["offset"], listed["remaining"]) == (5, 5, 0)
    red = await level_quantities(api, RED)
    assert [red[ATR], red[ATA], red[SOFTRESERVED]] == [10, 10, 0]
    assert await _atr(api, LOCATION) == 10


async def test_unreserving_an_exhausted_reservation_reports_everything_as_excess(
    api: Api,
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    await _unreserve(api, reservation_id, 5)
    before = await reservation_snapshot(api)

    body = await _unreserve(api, reservation_id, "2.5", operation_id="again")

    assert body["processingStatus"] == "partialSuccess"
    assert body["totalInvalidOffsetQtyByReservId"] == Decimal("2.5")
    after = await reservation_snapshot(api)
    assert after.reservations == before.reservations
    assert after.state.rows == before.state.rows
    assert await _atr(api, RED) == 10


async def test_unreserve_of_an_unknown_reservation_is_404(api: Api) -> None:
    await _stock(api, 10)
    await _reserve(api, 5)
    before = await reservation_snapshot(api)

    response = await api.post(
        "/onhand/unreserve", unreserve_body("0123456789abcdef0123456789abcdef", 1, "lost")
    )

    assert_problem(
        response,
        404,
        "reservation-not-found",
        processing_status="notFound",
        operation_id="lost",
    )
    assert await reservation_snapshot(api) == before


async def test_unreserve_of_another_organizations_reservation_is_404(api: Api) -> None:
    await _stock(api, 10, organization="contoso")
    theirs = await _reserve(api, 5, organization="contoso")
    before = await reservation_snapshot(api)

    response = await api.post(
        "/onhand/unreserve", unreserve_body(theirs, 1, "not-mine", organization="usmf")
    )

    problem = assert_problem(response, 404, "reservation-not-found", processing_status="notFound")
    assert "usmf" in problem["detail"]
    assert await reservation_snapshot(api) == before


@pytest.mark.parametrize(
    ("mismatch", "location"),
    [
        pytest.param({"productId": "Jeans"}, "productId", id="product"),
        pytest.param({"productId": "T-shirt", "dimensions": BLUE}, "dimensions", id="colour"),
        pytest.param({"dimensions": LOCATION}, "dimensions", id="level-above"),
        pytest.param({"dimensions": {**RED, "sizeId": "S"}}, "dimensions", id="level-below"),
    ],
)
async def test_unreserve_naming_another_product_or_dimensions_is_refused(
    api: Api, mismatch: dict[str, Any], location: str
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    before = await reservation_snapshot(api)

    response = await api.post(
        "/onhand/unreserve", unreserve_body(reservation_id, 1, "mismatch", **mismatch)
    )

    problem = assert_problem(response, 422, "reservation-mismatch", operation_id="mismatch")
    assert location in locations(problem)
    assert await reservation_snapshot(api) == before


async def test_unreserve_naming_the_reservations_own_product_and_dimensions_is_accepted(
    api: Api,
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)

    body = await _unreserve(
        api,
        reservation_id,
        1,
        productId="T-shirt",
        dimensions={"COLORID": "red", "siteid": "1", "LocationId": "11"},
    )

    assert body["processingStatus"] == "success"
    assert await _atr(api, RED) == 6


@pytest.mark.parametrize("field", ["OffsetQty", "offsetQty"])
async def test_unreserve_reads_the_offset_in_either_spelling(api: Api, field: str) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    body = {
        "id": "iv-style",
        "organizationId": "usmf",
        "reservationId": reservation_id,
        field: "1.5",
    }

    response = await api.post("/onhand/unreserve", body)

    assert response.status_code == 200, response.text
    assert response.json()["processingStatus"] == "success"
    assert await _atr(api, RED) == Decimal("6.5")


@pytest.mark.parametrize("offset", [0, -1, "0.0000001"], ids=["zero", "negative", "7-decimals"])
async def test_unreserve_of_an_offset_that_is_not_positive_and_exact_is_refused(
    api: Api, offset: object
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/unreserve", unreserve_body(reservation_id, offset, "bad"))

    problem = assert_problem(response, 422, "invalid-quantity", operation_id="bad")
    assert locations(problem) == ["OffsetQty"]
    assert await reservation_snapshot(api) == before


async def test_replayed_unreserve_answers_the_original_result_and_releases_once(
    api: Api,
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    body = unreserve_body(reservation_id, 2, "cancel-once")
    first = await api.post("/onhand/unreserve", body)
    assert first.status_code == 200, first.text
    before = await reservation_snapshot(api)

    again = await api.post("/onhand/unreserve", body)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await reservation_snapshot(api) == before
    assert await _atr(api, RED) == 7
    assert again.json() == first.json()


async def test_replayed_partial_unreserve_answers_the_original_excess(api: Api) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    body = unreserve_body(reservation_id, 7, "cancel-too-much")
    first = await api.post("/onhand/unreserve", body)
    assert first.status_code == 200, first.text

    again = await api.post("/onhand/unreserve", body)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _atr(api, RED) == 10
    assert again.json() == first.json()


async def test_unreserve_with_a_used_id_and_another_body_is_refused_as_idempotency_key_reuse(
    api: Api,
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    await _unreserve(api, reservation_id, 2, operation_id="reused")
    before = await reservation_snapshot(api)

    response = await api.post("/onhand/unreserve", unreserve_body(reservation_id, 3, "reused"))

    assert_problem(
        response, 409, "idempotency-key-reuse", processing_status="conflict", operation_id="reused"
    )
    assert await reservation_snapshot(api) == before


async def test_unreserve_of_a_reservation_of_another_environment_is_404(
    api: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    other = f"{api.environment_id}-b"
    headers = await auth("writer", environment=other)
    stocked = await api.post(
        "/onhand", event(quantities={"pos": {"inbound": 10}}), headers=headers, environment_id=other
    )
    assert stocked.status_code == 200, stocked.text
    before = await reservation_snapshot(api)

    response = await api.post(
        "/onhand/unreserve",
        unreserve_body(reservation_id, 1, "elsewhere"),
        headers=headers,
        environment_id=other,
    )

    assert_problem(response, 404, "reservation-not-found", processing_status="notFound")
    assert await reservation_snapshot(api) == before


async def test_reservation_measure_always_equals_what_the_reservations_still_hold(
    api: Api,
) -> None:
    await _stock(api, 20)
    held = [
        await _reserve(api, 4, dimensions=LOCATION),
        await _reserve(api, "2.5", dimensions=RED),
        await _reserve(api, 3, dimensions={**RED, "sizeId": "M"}, ifCheckAvailForReserv=False),
        await _reserve(api, 1, dimensions=RED),
    ]
    await _unreserve(api, held[0], 1)
    await _unreserve(api, held[1], 5)
    await _unreserve(api, held[2], "0.5")

    remaining: dict[tuple[tuple[str, str], ...], Decimal] = {}
    for reservation in await reservations(api):
        key = tuple(sorted(reservation["dimensions"].items()))
        remaining[key] = remaining.get(key, Decimal(0)) + reservation["remaining"]
    rows = await api.rows(groupByValues=["colorId", "sizeId"], returnNegative=True)
    measured = {
        tuple(sorted(row["dimensions"].items())): row["quantities"]["@iv"]["@softreserved"]
        for row in rows
        if row["quantities"]["@iv"]["@softreserved"]
    }
    assert measured == remaining
    assert sum(remaining.values()) == Decimal("6.5")
    assert await _atr(api, LOCATION) == Decimal("13.5")


# -- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_reserves_at_two_levels_never_take_the_same_units_twice(
    api: Api,
) -> None:
    await _stock(api, 10)
    calls = [
        api.post(
            "/onhand/reserve",
            reserve_body(f"c{index}", 1, dimensions=LOCATION if index % 2 else RED),
        )
        for index in range(16)
    ]

    responses = await asyncio.gather(*calls)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [409] * 6
    assert await _atr(api, LOCATION) == 0
    assert len(await reservations(api)) == 10
    assert len(await api.journal(kind="reserve")) == 10


async def test_concurrent_unreserves_of_one_reservation_never_release_more_than_it_held(
    api: Api,
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)

    responses = await asyncio.gather(
        *(
            api.post("/onhand/unreserve", unreserve_body(reservation_id, 2, f"u{index}"))
            for index in range(4)
        )
    )

    assert [response.status_code for response in responses] == [200] * 4
    excess = sum(
        Decimal(str(response.json()["totalInvalidOffsetQtyByReservId"])) for response in responses
    )
    assert excess == 3
    [listed] = await reservations(api)
    assert (listed["offset"], listed["remaining"]) == (5, 0)
    assert await _atr(api, RED) == 10


async def test_concurrent_retries_of_one_reserve_make_one_reservation(api: Api) -> None:
    await _stock(api, 10)
    body = reserve_body("retried", 2)

    responses = await asyncio.gather(*(api.post("/onhand/reserve", body) for _ in range(8)))

    assert [response.status_code for response in responses] == [200] * 8
    assert len({response.json()["reservationId"] for response in responses}) == 1
    assert len(await reservations(api)) == 1
    assert await _atr(api, RED) == 8


# -- bulk ----------------------------------------------------------------------------------------


async def test_bulk_reserve_decides_items_in_order(api: Api) -> None:
    await _stock(api, 5)
    items = [reserve_body("b0", 3), reserve_body("b1", 3), reserve_body("b2", 2)]

    response = await api.post("/onhand/reserve/bulk", items)

    assert response.status_code == 207, response.text
    body = exact(response)
    assert _buckets(body) == {
        "success": [0, 2],
        "partialSuccess": [],
        "failure": [],
        "conflict": [1],
        "notFound": [],
    }
    first, third = body["success"]
    [conflict] = body["conflict"]
    assert (first["id"], third["id"]) == ("b0", "b2")
    assert first["reservationId"] != third["reservationId"]
    assert (conflict["id"], conflict["code"]) == ("b1", "insufficient-available-to-reserve")
    assert (conflict["statusCode"], conflict["processingStatus"]) == (409, "conflict")
    assert (conflict["available"], conflict["requested"]) == (2, 3)
    assert await _atr(api, RED) == 0
    listed = await reservations(api)
    assert sorted(r["operationId"] for r in listed) == ["b0", "b2"]
    assert [entry["id"] for entry in await api.journal(kind="reserve")] == ["b0", "b2"]


async def test_bulk_reserve_of_good_items_answers_200_with_a_reservation_id_each(
    api: Api,
) -> None:
    await _stock(api, 10)
    items = [reserve_body(f"b{index}", 2) for index in range(3)]

    response = await api.post("/onhand/reserve/bulk", items)

    assert response.status_code == 200, response.text
    success = response.json()["success"]
    assert [(item["index"], item["id"]) for item in success] == [(0, "b0"), (1, "b1"), (2, "b2")]
    assert len({item["reservationId"] for item in success}) == 3
    assert await _atr(api, RED) == 4


async def test_reservations_of_one_bulk_are_listed_in_the_order_they_were_made(
    api: Api,
) -> None:
    await _stock(api, 10)
    items = [reserve_body(f"line-{index}", 1) for index in range(8)]

    response = await api.post("/onhand/reserve/bulk", items)

    assert response.status_code == 200, response.text
    answered = [item["reservationId"] for item in response.json()["success"]]
    listed = await reservations(api)
    assert [r["operationId"] for r in listed] == [f"line-{index}" for index in range(8)]
    assert [r["reservationId"] for r in listed] == answered


async def test_bulk_reserve_of_513_items_is_refused_whole(api: Api) -> None:
    await _stock(api, 1000)
    before = await reservation_snapshot(api)
    items = [reserve_body(f"many-{index}", 1) for index in range(513)]

    response = await api.post("/onhand/reserve/bulk", items)

    problem = assert_problem(response, 422, "bulk-limit-exceeded")
    assert "512" in problem["detail"]
    assert await reservation_snapshot(api) == before


async def test_bulk_reserve_item_with_bad_input_fails_alone(api: Api) -> None:
    await _stock(api, 10)
    items = [
        reserve_body("b0", 1),
        reserve_body("b1", 1, dimensions={**LOCATION, "sizeId": "S"}),
        reserve_body("b2", 0),
        reserve_body("b3", 1),
    ]

    response = await api.post("/onhand/reserve/bulk", items)

    assert response.status_code == 207, response.text
    body = response.json()
    assert _buckets(body)["success"] == [0, 3]
    assert [(item["id"], item["code"]) for item in body["failure"]] == [
        ("b1", "not-a-hierarchy-level"),
        ("b2", "invalid-quantity"),
    ]
    assert await _atr(api, RED) == 8


async def test_bulk_unreserve_answers_each_item_in_its_bucket(api: Api) -> None:
    await _stock(api, 10)
    first = await _reserve(api, 5)
    second = await _reserve(api, 2)
    items = [
        unreserve_body(first, 2, "u0"),
        unreserve_body("0123456789abcdef0123456789abcdef", 1, "u1"),
        unreserve_body(second, 3, "u2"),
        unreserve_body(first, 1, "u3"),
        unreserve_body(first, 1, "u4", productId="Jeans"),
    ]

    response = await api.post("/onhand/unreserve/bulk", items)

    assert response.status_code == 207, response.text
    body = exact(response)
    assert _buckets(body) == {
        "success": [0, 3],
        "partialSuccess": [2],
        "failure": [4],
        "conflict": [],
        "notFound": [1],
    }
    assert [item["totalInvalidOffsetQtyByReservId"] for item in body["success"]] == [0, 0]
    [partial] = body["partialSuccess"]
    assert (partial["id"], partial["reservationId"]) == ("u2", second)
    assert partial["totalInvalidOffsetQtyByReservId"] == 1
    [missing] = body["notFound"]
    assert (missing["id"], missing["code"], missing["statusCode"]) == (
        "u1",
        "reservation-not-found",
        404,
    )
    [failure] = body["failure"]
    assert (failure["id"], failure["code"]) == ("u4", "reservation-mismatch")
    by_id = {r["reservationId"]: r for r in await reservations(api)}
    assert (by_id[first]["offset"], by_id[first]["remaining"]) == (3, 2)
    assert (by_id[second]["offset"], by_id[second]["remaining"]) == (2, 0)
    assert await _atr(api, RED) == 8


async def test_bulk_unreserve_of_513_items_is_refused_whole(api: Api) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    before = await reservation_snapshot(api)
    items = [unreserve_body(reservation_id, "0.001", f"many-{index}") for index in range(513)]

    response = await api.post("/onhand/unreserve/bulk", items)

    assert_problem(response, 422, "bulk-limit-exceeded")
    assert await reservation_snapshot(api) == before


# -- listing reservations ------------------------------------------------------------------------


async def test_listed_reservation_shows_what_was_reserved_when_and_by_whom(api: Api) -> None:
    await _stock(api, 10)
    before = datetime.now().astimezone()
    reservation_id = await _reserve(api, "2.5", operation_id="order-7")
    after = datetime.now().astimezone()

    [listed] = await reservations(api)

    created = datetime.fromisoformat(listed.pop("createdAt"))
    assert created.tzinfo is not None
    assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)
    assert listed == {
        "reservationId": reservation_id,
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": RED,
        "measure": "@iv.@softreserved",
        "reserved": Decimal("2.5"),
        "offset": 0,
        "remaining": Decimal("2.5"),
        "origin": "reserve",
        "operationId": "order-7",
        "createdBy": "integration-writer",
    }


async def test_reservations_are_listed_oldest_first_and_open_ones_on_request(api: Api) -> None:
    await _stock(api, 10)
    ids = []
    for index in range(3):
        ids.append(await _reserve(api, 1, operation_id=f"line-{index}"))
        await asyncio.sleep(0.005)
    await _unreserve(api, ids[1], 1)

    everything = await reservations(api)
    still_open = await reservations(api, open="true")

    assert [r["reservationId"] for r in everything] == ids
    assert [r["operationId"] for r in everything] == ["line-0", "line-1", "line-2"]
    assert [r["reservationId"] for r in still_open] == [ids[0], ids[2]]


async def test_reservations_are_filtered_by_organization_and_product(api: Api) -> None:
    await _stock(api, 10)
    await _stock(api, 10, product="Jeans")
    await _stock(api, 10, organization="contoso")
    await _reserve(api, 1, operation_id="usmf-shirt")
    await _reserve(api, 1, operation_id="usmf-jeans", product="Jeans")
    await _reserve(api, 1, operation_id="contoso-shirt", organization="contoso")

    def operations(found: list[Json]) -> set[str]:
        return {r["operationId"] for r in found}

    assert operations(await reservations(api)) == {"usmf-shirt", "usmf-jeans", "contoso-shirt"}
    assert operations(await reservations(api, organizationId="contoso")) == {"contoso-shirt"}
    assert operations(await reservations(api, productId="Jeans")) == {"usmf-jeans"}
    assert operations(await reservations(api, organizationId="usmf", productId="T-shirt")) == {
        "usmf-shirt"
    }
    assert await reservations(api, organizationId="fabrikam") == []


async def test_reservations_are_paged_with_limit_and_next(api: Api) -> None:
    await _stock(api, 10)
    response = await api.post(
        "/onhand/reserve/bulk", [reserve_body(f"p{index}", 1) for index in range(5)]
    )
    assert response.status_code == 200, response.text
    everything = [r["reservationId"] for r in await reservations(api)]

    pages: list[list[str]] = []
    page = await api.get("/reservations", {"limit": 2})
    while True:
        assert page.status_code == 200, page.text
        body = page.json()
        pages.append([r["reservationId"] for r in body["reservations"]])
        if body["next"] is None:
            break
        assert "limit=2" in body["next"]
        page = await api.client.get(body["next"], headers=api.headers)

    assert [len(ids) for ids in pages] == [2, 2, 1]
    assert [rid for ids in pages for rid in ids] == everything
    assert len(set(everything)) == 5


async def test_page_that_ends_exactly_at_the_last_reservation_has_no_next(api: Api) -> None:
    await _stock(api, 10)
    response = await api.post(
        "/onhand/reserve/bulk", [reserve_body(f"p{index}", 1) for index in range(4)]
    )
    assert response.status_code == 200, response.text

    first = (await api.get("/reservations", {"limit": 2})).json()
    second = (await api.client.get(first["next"], headers=api.headers)).json()

    assert len(second["reservations"]) == 2
    assert second["next"] is None


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"limit": "many"}, {"open": "maybe"}],
    ids=["limit-0", "limit-1001", "limit-text", "open-text"],
)
async def test_invalid_reservation_listing_is_422(api: Api, params: dict[str, object]) -> None:
    response = await api.get("/reservations", params)

    problem = assert_problem(response, 422, "invalid-request")
    assert f"query.{next(iter(params))}" in locations(problem)


# -- roles and scope -----------------------------------------------------------------------------


async def test_reader_token_cannot_reserve_or_unreserve_but_may_list(
    api: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    reader = await auth("reader")
    before = await reservation_snapshot(api)

    reserved = await api.post("/onhand/reserve", reserve_body("r", 1), headers=reader)
    unreserved = await api.post(
        "/onhand/unreserve", unreserve_body(reservation_id, 1, "u"), headers=reader
    )
    bulk = await api.post("/onhand/reserve/bulk", [reserve_body("b", 1)], headers=reader)
    listed = await reservations(api, headers=reader)

    for response in (reserved, unreserved, bulk):
        problem = assert_problem(response, 403, "insufficient-role")
        assert (problem["requiredRole"], problem["role"]) == ("writer", "reader")
    assert await reservation_snapshot(api) == before
    assert [r["reservationId"] for r in listed] == [reservation_id]


async def test_token_limited_to_an_organization_reserves_only_for_it(
    api: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    await _stock(api, 10, organization="contoso")
    theirs = await _reserve(api, 5, organization="contoso")
    scoped = await auth("writer", organizations=["usmf"])
    mine = await api.post("/onhand/reserve", reserve_body("mine", 1), headers=scoped)
    assert mine.status_code == 200, mine.text
    before = await reservation_snapshot(api)

    reserved = await api.post(
        "/onhand/reserve", reserve_body("theirs", 1, organization="contoso"), headers=scoped
    )
    unreserved = await api.post(
        "/onhand/unreserve",
        unreserve_body(theirs, 1, "theirs-cancel", organization="contoso"),
        headers=scoped,
    )

    assert_problem(reserved, 403, "organization-out-of-scope", operation_id="theirs")
    assert_problem(unreserved, 403, "organization-out-of-scope", operation_id="theirs-cancel")
    assert await reservation_snapshot(api) == before


async def test_bulk_of_a_token_limited_to_an_organization_refuses_only_the_other_items(
    api: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    await _stock(api, 10, organization="contoso")
    scoped = await auth("writer", organizations=["usmf"])
    items = [
        reserve_body("mine", 1),
        reserve_body("theirs", 1, organization="contoso"),
        reserve_body("mine-too", 1),
    ]

    response = await api.post("/onhand/reserve/bulk", items, headers=scoped)

    assert response.status_code == 207, response.text
    body: Json = response.json()
    assert _buckets(body)["success"] == [0, 2]
    refusals: list[Json] = body["failure"] + body["conflict"] + body["notFound"]
    [refused] = refusals
    assert (refused["index"], refused["code"], refused["statusCode"]) == (
        1,
        "organization-out-of-scope",
        403,
    )
    assert await reservations(api, organizationId="contoso") == []


async def test_token_limited_to_an_organization_lists_only_its_reservations(
    api: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    await _stock(api, 10, organization="contoso")
    mine = await _reserve(api, 1)
    await _reserve(api, 1, organization="contoso")
    scoped = await auth("reader", organizations=["usmf"])

    listed = await reservations(api, headers=scoped)
    theirs = await api.get("/reservations", {"organizationId": "contoso"}, headers=scoped)

    assert [r["reservationId"] for r in listed] == [mine]
    assert_problem(theirs, 403, "organization-out-of-scope")


async def test_token_of_another_environment_is_403_for_reservations(
    api: Api, auth: TokenFactory
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    foreign = await auth("admin", environment=f"{api.environment_id}-other")
    before = await reservation_snapshot(api)

    answers = [
        await api.post("/onhand/reserve", reserve_body("x", 1), headers=foreign),
        await api.post("/onhand/reserve/bulk", [reserve_body("x", 1)], headers=foreign),
        await api.post(
            "/onhand/unreserve", unreserve_body(reservation_id, 1, "x"), headers=foreign
        ),
        await api.post(
            "/onhand/unreserve/bulk", [unreserve_body(reservation_id, 1, "x")], headers=foreign
        ),
        await api.get("/reservations", headers=foreign),
    ]

    for response in answers:
        problem = assert_problem(response, 403, "forbidden")
        assert reservation_id not in response.text
        assert "reservations" not in problem
    assert await reservation_snapshot(api) == before


async def test_reservation_calls_without_a_token_are_401(api: Api) -> None:
    assert_problem(await api.post("/onhand/reserve", reserve_body(), headers={}), 401,
                   "missing-token")  # fmt: skip
    assert_problem(await api.get("/reservations", headers={}), 401, "missing-token")


# -- journal -------------------------------------------------------------------------------------


async def test_reserve_and_unreserve_are_journaled_with_their_effects(api: Api) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 3, operation_id="hold")
    await _unreserve(api, reservation_id, 1, operation_id="release")

    [_, held, released] = await api.journal()

    assert (held["kind"], held["id"], held["actor"]) == ("reserve", "hold", "integration-writer")
    assert held["request"] == {
        "id": "hold",
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": RED,
        "quantityDataSource": "@iv",
        "modifier": "@softreserved",
        "quantity": Decimal("3"),
        "ifCheckAvailForReserv": True,
    }
    assert held["effects"] == [
        {"dimensions": RED, "measure": SOFTRESERVED, "delta": Decimal("3"), "value": Decimal("3")},
        {"reservation": reservation_id, "reserved": Decimal("3")},
    ]
    assert held["result"]["reservationId"] == reservation_id
    assert (released["kind"], released["id"]) == ("unreserve", "release")
    assert released["request"]["reservationId"] == reservation_id
    assert released["effects"] == [
        {"dimensions": RED, "measure": SOFTRESERVED, "delta": Decimal("-1"), "value": Decimal("2")},
        {"reservation": reservation_id, "offset": Decimal("1")},
    ]
    assert released["result"]["processingStatus"] == "success"


async def test_refused_reserve_and_unreserve_are_not_journaled(api: Api) -> None:
    await _stock(api, 2)
    reservation_id = await _reserve(api, 2, operation_id="ok")
    refusals = [
        await api.post("/onhand/reserve", reserve_body("short", 1)),
        await api.post("/onhand/reserve", reserve_body("bad", 0)),
        await api.post("/onhand/unreserve", unreserve_body("unknown", 1, "lost")),
        await api.post(
            "/onhand/unreserve", unreserve_body(reservation_id, 1, "wrong", productId="Jeans")
        ),
    ]

    assert [r.status_code for r in refusals] == [409, 422, 404, 422]
    assert [entry["id"] for entry in await api.journal()][1:] == ["ok"]


async def test_journal_filters_reservations_by_kind(api: Api) -> None:
    await _stock(api, 10)
    first = await _reserve(api, 1, operation_id="r1")
    await _unreserve(api, first, 1, operation_id="u1")
    await _reserve(api, 1, operation_id="r2")

    reserves = await api.journal(kind="reserve")
    unreserves = await api.journal(kind="unreserve")

    assert [(entry["kind"], entry["id"]) for entry in reserves] == [
        ("reserve", "r1"),
        ("reserve", "r2"),
    ]
    assert [(entry["kind"], entry["id"]) for entry in unreserves] == [("unreserve", "u1")]


# -- feature switch ------------------------------------------------------------------------------


async def _switch_reservations(api: Api, admin_headers: dict[str, str], enabled: bool) -> None:
    document = (await api.get("/configuration", headers=admin_headers)).json()
    assert document["features"]["reservation"] is not enabled
    document["features"]["reservation"] = enabled
    response = await api.put("/configuration", document, headers=admin_headers)
    assert response.status_code == 200, response.text


async def test_reserve_is_refused_while_reservations_are_switched_off(
    api: Api, admin_headers: dict[str, str]
) -> None:
    await _stock(api, 10)
    reservation_id = await _reserve(api, 5)
    await _switch_reservations(api, admin_headers, False)
    before = await reservation_snapshot(api)

    reserved = await api.post("/onhand/reserve", reserve_body("while-off", 1))
    unreserved = await api.post(
        "/onhand/unreserve", unreserve_body(reservation_id, 1, "cancel-while-off")
    )

    problem = assert_problem(
        reserved, 409, "feature-disabled", processing_status="conflict", operation_id="while-off"
    )
    assert "features.reservation" in problem["detail"]
    assert_problem(unreserved, 409, "feature-disabled", processing_status="conflict")
    assert await reservation_snapshot(api) == before

    await _switch_reservations(api, admin_headers, True)
    again = await api.post("/onhand/reserve", reserve_body("while-off", 1))
    assert again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in again.headers
