"""On-hand queries over HTTP (index, GET, exact), on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import TokenFactory
from tests.integration.support import Api, Json, assert_problem, event, exact, locations

pytestmark = pytest.mark.asyncio

STOCK: list[tuple[str, str, dict[str, str], dict[str, dict[str, Any]]]] = [
    ("usmf", "A", {"siteId": "1", "locationId": "11", "colorId": "red", "sizeId": "S"},
     {"pos": {"inbound": 10}}),
    ("usmf", "A", {"siteId": "1", "locationId": "11", "colorId": "red", "sizeId": "M"},
     {"pos": {"inbound": 1}}),
    ("usmf", "A", {"siteId": "1", "locationId": "11", "colorId": "blue", "sizeId": "M"},
     {"pos": {"inbound": 20}}),
    ("usmf", "A", {"siteId": "1", "locationId": "11"}, {"pos": {"inbound": "0.5"}}),
    ("usmf", "A", {"siteId": "1", "locationId": "12", "colorId": "red"}, {"pos": {"inbound": 5}}),
    ("usmf", "A", {"siteId": "2", "locationId": "21", "colorId": "red"}, {"pos": {"inbound": 7}}),
    ("usmf", "A", {"siteId": "3", "locationId": "31", "colorId": "red"}, {"pos": {"inbound": 9}}),
    ("usmf", "B", {"siteId": "1", "locationId": "11", "colorId": "red"}, {"pos": {"inbound": 3}}),
    ("contoso", "A", {"siteId": "1", "locationId": "11", "colorId": "red"},
     {"pos": {"inbound": 100}}),
    ("fabrikam", "A", {"siteId": "1", "locationId": "11", "colorId": "red"},
     {"pos": {"inbound": 1000}}),
]  # fmt: skip


@pytest.fixture
async def stocked(api: Api) -> Api:
    """The environment with :data:`STOCK` posted."""
    items = [
        event(f"stock-{index}", quantities, organization=org, product=product, dimensions=dims)
        for index, (org, product, dims, quantities) in enumerate(STOCK)
    ]
    response = await api.post("/onhand/bulk", items)
    assert response.status_code == 200, response.text
    return api


def _inbound(rows: list[Json]) -> list[tuple[str, str, dict[str, str], Decimal]]:
    return [
        (
            row["organizationId"],
            row["productId"],
            row["dimensions"],
            row["quantities"]["pos"]["inbound"],
        )
        for row in rows
    ]


def _site(site: str, location: str, **more: str) -> dict[str, str]:
    return {"siteId": site, "locationId": location, **more}


# -- /onhand/indexquery --------------------------------------------------------------------------


async def test_filters_are_ored_within_a_key_and_anded_across_keys(stocked: Api) -> None:
    rows = await stocked.rows(
        filters={
            "organizationId": ["usmf"],
            "productId": ["A"],
            "siteId": ["1", "2"],
            "colorId": ["red"],
        }
    )

    assert _inbound(rows) == [
        ("usmf", "A", _site("1", "11"), Decimal(11)),
        ("usmf", "A", _site("1", "12"), Decimal(5)),
        ("usmf", "A", _site("2", "21"), Decimal(7)),
    ]


async def test_rows_carry_every_measure_physical_and_calculated(stocked: Api) -> None:
    [row] = await stocked.rows(
        filters={"organizationId": ["usmf"], "productId": ["B"]}, groupByValues=["colorId"]
    )
    assert row == {
        "organizationId": "usmf",
        "productId": "B",
        "dimensions": _site("1", "11", colorId="red"),
        "quantities": {
            "fno": {"availphysical": 0, "ordered": 0, "onorder": 0},
            "pos": {"inbound": 3, "outbound": 0},
            "@iv": {
                "@allocated": 0,
                "@cumulative_allocated": 0,
                "@consumed": 0,
                "@cumulative_consumed": 0,
                "@softreserved": 0,
                "@available_to_reserve": 3,
                "@available_to_allocate": 3,
            },
            "iv": {"onhand": 3},
        },
    }


async def test_empty_product_list_means_every_product(stocked: Api) -> None:
    every = await stocked.rows(
        filters={"organizationId": ["usmf"], "productId": [], "siteId": ["1"], "locationId": ["11"]}
    )
    omitted = await stocked.rows(
        filters={"organizationId": ["usmf"], "siteId": ["1"], "locationId": ["11"]}
    )

    assert _inbound(every) == [
        ("usmf", "A", _site("1", "11"), Decimal("31.5")),
        ("usmf", "B", _site("1", "11"), Decimal(3)),
    ]
    assert omitted == every


async def test_several_products(stocked: Api) -> None:
    rows = await stocked.rows(
        filters={"organizationId": ["usmf"], "productId": ["B", "nothing-here"]}
    )
    assert _inbound(rows) == [("usmf", "B", _site("1", "11"), Decimal(3))]


async def test_group_by_values_split_rows_and_keep_the_partition_dimensions(stocked: Api) -> None:
    rows = await stocked.rows(
        filters={"organizationId": ["usmf"], "productId": ["A"], "siteId": ["1"]},
        groupByValues=["colorId"],
    )

    assert _inbound(rows) == [
        ("usmf", "A", _site("1", "11"), Decimal("0.5")),
        ("usmf", "A", _site("1", "11", colorId="blue"), Decimal(20)),
        ("usmf", "A", _site("1", "11", colorId="red"), Decimal(11)),
        ("usmf", "A", _site("1", "12", colorId="red"), Decimal(5)),
    ]


async def test_group_by_two_dimensions(stocked: Api) -> None:
    rows = await stocked.rows(
        filters={"organizationId": ["usmf"], "productId": ["A"], "locationId": ["11"]},
        groupByValues=["sizeId", "colorId"],
    )

    assert _inbound(rows) == [
        ("usmf", "A", _site("1", "11"), Decimal("0.5")),
        ("usmf", "A", _site("1", "11", colorId="blue", sizeId="M"), Decimal(20)),
        ("usmf", "A", _site("1", "11", colorId="red", sizeId="M"), Decimal(1)),
        ("usmf", "A", _site("1", "11", colorId="red", sizeId="S"), Decimal(10)),
    ]


async def test_return_negative_shows_negative_measures_else_zero(api: Api) -> None:
    response = await api.post("/onhand", event(quantities={"pos": {"inbound": 2, "outbound": 5}}))
    assert response.status_code == 200, response.text

    [hidden] = await api.rows()
    [shown] = await api.rows(returnNegative=True)
    [default] = await api.rows(returnNegative=False)

    assert hidden == default
    assert hidden["quantities"]["iv"]["onhand"] == 0
    assert hidden["quantities"]["@iv"]["@available_to_allocate"] == 0
    assert hidden["quantities"]["pos"] == {"inbound": 2, "outbound": 5}
    assert shown["quantities"]["iv"]["onhand"] == -3
    assert shown["quantities"]["@iv"]["@available_to_allocate"] == -3
    assert shown["quantities"]["@iv"]["@available_to_reserve"] == -3


async def test_query_over_several_organizations(stocked: Api) -> None:
    rows = await stocked.rows(
        filters={
            "organizationId": ["usmf", "contoso"],
            "productId": ["A"],
            "siteId": ["1"],
            "locationId": ["11"],
        }
    )
    assert _inbound(rows) == [
        ("contoso", "A", _site("1", "11"), Decimal(100)),
        ("usmf", "A", _site("1", "11"), Decimal("31.5")),
    ]


async def test_filter_values_that_match_nothing_answer_no_rows(stocked: Api) -> None:
    assert await stocked.rows(filters={"organizationId": ["nobody"]}) == []
    assert await stocked.rows(filters={"organizationId": ["usmf"], "colorId": ["green"]}) == []


async def test_query_of_another_environment_sees_nothing_of_this_one(
    stocked: Api, auth: TokenFactory
) -> None:
    other = f"{stocked.environment_id}-empty"
    response = await stocked.post(
        "/onhand/indexquery",
        {"filters": {"organizationId": ["usmf"]}},
        headers=await auth("reader", environment=other),
        environment_id=other,
    )
    assert response.status_code == 200, response.text
    assert response.json() == []


@pytest.mark.parametrize(
    ("body", "code", "location"),
    [
        ({"filters": {"productId": ["A"]}}, "invalid-query", "filters.organizationId"),
        ({"filters": {"organizationId": []}}, "invalid-query", "filters.organizationId"),
        ({"filters": {"organizationId": ["usmf"], "shelfId": ["1"]}}, "unknown-dimension",
         "filters.shelfId"),
        ({"filters": {"organizationId": ["usmf"]}, "groupByValues": ["shelfId"]},
         "unknown-dimension", "groupByValues[0]"),
        ({"filters": {"organizationId": ["usmf"]}, "dimensionDataSource": "erp"},
         "unknown-data-source", "dimensionDataSource"),
        ({"filters": {"organizationId": ["usmf"], "colorId": [""]}}, "invalid-identifier",
         "filters.colorId[0]"),
        ({"filters": {"organizationId": "usmf"}}, "invalid-request", "filters.organizationId"),
        ({"filters": {"organizationId": ["usmf"]}, "returnNegative": "maybe"}, "invalid-request",
         "returnNegative"),
        ({}, "invalid-request", "filters"),
    ],
    ids=[
        "no-organization",
        "empty-organizations",
        "unknown-dimension",
        "unknown-group-by",
        "unknown-data-source",
        "empty-value",
        "organization-not-a-list",
        "return-negative-not-a-boolean",
        "no-filters",
    ],
)  # fmt: skip
async def test_invalid_index_query_is_422(
    stocked: Api, body: Json, code: str, location: str
) -> None:
    response = await stocked.post("/onhand/indexquery", body)

    problem = assert_problem(response, 422, code)
    assert location in locations(problem)


async def test_index_query_needs_a_token_and_a_scope_covering_its_organizations(
    stocked: Api, auth: TokenFactory
) -> None:
    body = {"filters": {"organizationId": ["usmf", "contoso"]}}
    scoped = await auth("reader", organizations=["usmf"])

    missing = await stocked.post("/onhand/indexquery", body, headers={})
    out_of_scope = await stocked.post("/onhand/indexquery", body, headers=scoped)
    in_scope = await stocked.post(
        "/onhand/indexquery", {"filters": {"organizationId": ["usmf"]}}, headers=scoped
    )

    assert_problem(missing, 401, "missing-token")
    assert_problem(out_of_scope, 403, "organization-out-of-scope")
    assert in_scope.status_code == 200, in_scope.text
    assert {row["organizationId"] for row in in_scope.json()} == {"usmf"}


# -- GET /onhand ---------------------------------------------------------------------------------


async def test_get_query_by_url_parameters_equals_the_post_query(stocked: Api) -> None:
    await stocked.post("/onhand", event(product="B", quantities={"pos": {"outbound": 10}}))
    params = [
        ("organizationId", "usmf"),
        ("organizationId", "contoso"),
        ("productId", "A"),
        ("productId", "B"),
        ("siteId", "1"),
        ("siteId", "2"),
        ("groupBy", "colorId,sizeId"),
        ("returnNegative", "true"),
    ]
    posted = await stocked.rows(
        filters={
            "organizationId": ["usmf", "contoso"],
            "productId": ["A", "B"],
            "siteId": ["1", "2"],
        },
        groupByValues=["colorId", "sizeId"],
        returnNegative=True,
    )

    response = await stocked.get("/onhand", params)

    assert response.status_code == 200, response.text
    assert exact(response) == posted
    assert len(posted) == 8
    negative = [row for row in posted if row["quantities"]["iv"]["onhand"] < 0]
    assert [row["productId"] for row in negative] == ["B"]


async def test_get_query_without_controls_groups_by_partition_and_hides_negatives(
    stocked: Api,
) -> None:
    await stocked.post("/onhand", event(product="B", quantities={"pos": {"outbound": 10}}))
    response = await stocked.get("/onhand", {"organizationId": "usmf", "productId": "B"})

    assert response.status_code == 200, response.text
    assert exact(response) == await stocked.rows(
        filters={"organizationId": ["usmf"], "productId": ["B"]}
    )
    [row] = response.json()
    assert row["dimensions"] == _site("1", "11")
    assert row["quantities"]["iv"]["onhand"] == 0


@pytest.mark.parametrize(
    ("params", "code", "location"),
    [
        ({"productId": "A"}, "invalid-query", "filters.organizationId"),
        ({"organizationId": "usmf", "shelfId": "1"}, "unknown-dimension", "filters.shelfId"),
        ({"organizationId": "usmf", "groupBy": "colorId,shelfId"}, "unknown-dimension",
         "groupByValues[1]"),
        ({"organizationId": "usmf", "returnNegative": "maybe"}, "invalid-query",
         "returnNegative"),
    ],
    ids=["no-organization", "unknown-dimension", "unknown-group-by", "bad-return-negative"],
)  # fmt: skip
async def test_invalid_get_query_is_422(
    stocked: Api, params: dict[str, str], code: str, location: str
) -> None:
    response = await stocked.get("/onhand", params)

    problem = assert_problem(response, 422, code)
    assert location in locations(problem)


# -- /onhand/exactquery --------------------------------------------------------------------------


def _exact(dimensions: list[str], values: list[list[str]], **more: Any) -> Json:
    filters = {"organizationId": ["usmf"], "productId": ["A"], "dimensions": dimensions}
    return {"filters": {**filters, "values": values}, **more}


async def test_exact_query_answers_only_the_listed_tuples(stocked: Api) -> None:
    response = await stocked.post(
        "/onhand/exactquery",
        _exact(
            ["siteId", "locationId", "colorId"],
            [["1", "11", "red"], ["2", "21", "red"], ["9", "99", "red"]],
        ),
    )

    assert response.status_code == 200, response.text
    assert _inbound(exact(response)) == [
        ("usmf", "A", _site("1", "11", colorId="red"), Decimal(11)),
        ("usmf", "A", _site("2", "21", colorId="red"), Decimal(7)),
    ]


async def test_exact_query_on_partition_dimensions_with_group_by(stocked: Api) -> None:
    response = await stocked.post(
        "/onhand/exactquery",
        _exact(["LocationId", "SITEID"], [["11", "1"]], groupByValues=["sizeId"]),
    )

    assert response.status_code == 200, response.text
    assert _inbound(exact(response)) == [
        ("usmf", "A", _site("1", "11"), Decimal("0.5")),
        ("usmf", "A", _site("1", "11", sizeId="M"), Decimal(21)),
        ("usmf", "A", _site("1", "11", sizeId="S"), Decimal(10)),
    ]


async def test_exact_query_over_every_product_and_several_organizations(stocked: Api) -> None:
    body = _exact(["siteId", "locationId"], [["1", "11"]])
    body["filters"]["organizationId"] = ["usmf", "fabrikam"]
    body["filters"]["productId"] = []

    response = await stocked.post("/onhand/exactquery", body)

    assert _inbound(exact(response)) == [
        ("fabrikam", "A", _site("1", "11"), Decimal(1000)),
        ("usmf", "A", _site("1", "11"), Decimal("31.5")),
        ("usmf", "B", _site("1", "11"), Decimal(3)),
    ]


@pytest.mark.parametrize(
    ("body", "code", "location"),
    [
        (_exact(["siteId", "locationId"], [["1", "11"], ["1"]]), "invalid-query",
         "filters.values[1]"),
        (_exact(["siteId", "locationId"], [["1", "11", "red"]]), "invalid-query",
         "filters.values[0]"),
        (_exact(["siteId", "colorId"], [["1", "red"]]), "missing-partition-dimension",
         "filters.dimensions"),
        (_exact(["colorId"], [["red"]]), "missing-partition-dimension", "filters.dimensions"),
        (_exact(["siteId", "locationId", "shelfId"], [["1", "11", "A"]]), "unknown-dimension",
         "filters.dimensions[2]"),
        (_exact(["siteId", "locationId", "SiteId"], [["1", "11", "1"]]), "invalid-query",
         "filters.dimensions"),
        (_exact(["siteId", "locationId"], []), "invalid-query", "filters.values"),
        ({"filters": {"organizationId": ["usmf"], "dimensions": ["siteId", "locationId"]}},
         "invalid-request", "filters.values"),
        ({"filters": {"organizationId": [], "dimensions": ["siteId", "locationId"],
                      "values": [["1", "11"]]}}, "invalid-query", "filters.organizationId"),
    ],
    ids=[
        "short-tuple",
        "long-tuple",
        "missing-locationId",
        "no-partition-dimension",
        "unknown-dimension",
        "dimension-twice",
        "no-tuples",
        "values-missing",
        "no-organization",
    ],
)  # fmt: skip
async def test_invalid_exact_query_is_422(
    stocked: Api, body: Json, code: str, location: str
) -> None:
    response = await stocked.post("/onhand/exactquery", body)

    problem = assert_problem(response, 422, code)
    assert location in locations(problem)


async def test_exact_query_needs_a_token(stocked: Api) -> None:
    body = _exact(["siteId", "locationId"], [["1", "11"]])
    response = await stocked.post("/onhand/exactquery", body, headers={})
    assert_problem(response, 401, "missing-token")


async def test_get_query_reads_parameter_names_case_insensitively_and_repeated_group_by(
    stocked: Api,
) -> None:
    expected = await stocked.get(
        "/onhand", {"organizationId": "usmf", "groupBy": "colorId,sizeId", "returnNegative": "true"}
    )

    response = await stocked.get(
        "/onhand",
        [
            ("organizationId", "usmf"),
            ("GroupBy", "colorId"),
            ("groupby", "sizeId"),
            ("ReturnNegative", "true"),
        ],
    )

    assert response.status_code == expected.status_code == 200
    assert response.json() == expected.json()
    assert any("sizeId" in row["dimensions"] for row in response.json())
