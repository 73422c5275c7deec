"""On-hand API over HTTP (in process), on SQLite and PostgreSQL: happy and error paths."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from ringfence.domain.access import Principal
from ringfence.services.ports import UnitOfWorkFactory
from ringfence.services.tokens import revoke_token
from tests.conftest import TokenFactory
from tests.integration.support import Api, assert_problem, event, locations, raw_event

pytestmark = pytest.mark.asyncio


async def test_posted_change_is_visible_in_a_query_with_calculated_measures(api: Api) -> None:
    response = await api.post("/onhand", event("e1", {"pos": {"inbound": "10.5", "outbound": 2}}))
    assert response.status_code == 200
    assert response.json() == {
        "id": "e1",
        "processingStatus": "success",
        "message": "",
        "statusCode": 200,
    }
    assert "Idempotent-Replayed" not in response.headers
    [row] = await api.rows(groupByValues=["colorId"])
    assert row["organizationId"] == "usmf"
    assert row["productId"] == "T-shirt"
    assert row["dimensions"] == {"siteId": "1", "locationId": "11", "colorId": "red"}
    assert row["quantities"]["pos"] == {"inbound": Decimal("10.5"), "outbound": 2}
    assert row["quantities"]["iv"] == {"onhand": Decimal("8.5")}
    assert row["quantities"]["@iv"]["@available_to_allocate"] == Decimal("8.5")
    assert row["quantities"]["@iv"]["@available_to_reserve"] == Decimal("8.5")
    assert row["quantities"]["@iv"]["@allocated"] == 0
    assert row["quantities"]["fno"] == {"availphysical": 0, "ordered": 0, "onorder": 0}


async def test_changes_add_up_per_measure(api: Api) -> None:
    for delta in (5, "2.5", -1):
        response = await api.post("/onhand", event(quantities={"pos": {"inbound": delta}}))
        assert response.status_code == 200, response.text
    assert await api.measure("pos.inbound") == Decimal("6.5")


# -- idempotency ---------------------------------------------------------------------------------


async def test_replay_with_the_same_id_and_body_returns_the_original_result(api: Api) -> None:
    body = event("replayed-1", {"pos": {"inbound": 5}})
    first = await api.post("/onhand", body)
    assert first.status_code == 200
    before = await api.snapshot()

    again = await api.post("/onhand", body)

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await api.snapshot() == before
    assert await api.measure("pos.inbound") == 5


async def test_replay_recognises_a_body_that_means_the_same(api: Api) -> None:
    first = await api.post("/onhand", event("same-meaning", {"pos": {"inbound": 5}}))
    assert first.status_code == 200
    respelled = event(
        "same-meaning",
        {"pos": {"inbound": "5.000"}},
        dimensions={"colorId": "red", "LOCATIONID": "11", "SiteId": "1"},
    )

    again = await api.post("/onhand", respelled)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await api.measure("pos.inbound") == 5


async def test_same_id_with_another_body_is_refused_as_idempotency_key_reuse(api: Api) -> None:
    assert (await api.post("/onhand", event("reused", {"pos": {"inbound": 5}}))).status_code == 200
    before = await api.snapshot()

    response = await api.post("/onhand", event("reused", {"pos": {"inbound": 6}}))

    body = assert_problem(
        response, 409, "idempotency-key-reuse", processing_status="conflict", operation_id="reused"
    )
    assert "reused" in body["detail"]
    assert "Idempotent-Replayed" not in response.headers
    assert await api.snapshot() == before
    assert await api.measure("pos.inbound") == 5


async def test_idempotency_keys_are_scoped_by_environment_and_operation_kind(
    api: Api, auth: TokenFactory
) -> None:
    assert (await api.post("/onhand", event("shared", {"pos": {"inbound": 5}}))).status_code == 200

    count = await api.post("/setonhand/pos/bulk", [event("shared", {"pos": {"outbound": 2}})])
    other_environment = f"{api.environment_id}-b"
    elsewhere = await api.post(
        "/onhand",
        event("shared", {"pos": {"inbound": 7}}),
        headers=await auth("writer", environment=other_environment),
        environment_id=other_environment,
    )

    assert count.status_code == 200, count.text
    assert count.json()["success"][0]["id"] == "shared"
    assert "replayed" not in count.json()["success"][0]
    assert elsewhere.status_code == 200, elsewhere.text
    assert "Idempotent-Replayed" not in elsewhere.headers
    assert (await api.totals())["pos"] == {"inbound": 5, "outbound": 2}


# -- what a change event may name ----------------------------------------------------------------

REFUSED_EVENTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown data source", {"quantities": {"erp": {"inbound": 1}}}, "unknown-data-source",
     "quantities.erp"),
    ("unknown measure", {"quantities": {"pos": {"sold": 1}}}, "unknown-measure",
     "quantities.pos.sold"),
    ("calculated measure iv.onhand", {"quantities": {"iv": {"onhand": 1}}}, "calculated-measure",
     "quantities.iv.onhand"),
    ("calculated measure of @iv", {"quantities": {"@iv": {"@available_to_allocate": 1}}},
     "calculated-measure", "quantities.@iv.@available_to_allocate"),
    ("allocation measure of @iv", {"quantities": {"@iv": {"@allocated": 1}}},
     "system-data-source", "quantities.@iv.@allocated"),
    ("reservation measure of @iv", {"quantities": {"@iv": {"@softreserved": 1}}},
     "system-data-source", "quantities.@iv.@softreserved"),
    ("no measure at all", {"quantities": {}}, "invalid-quantities", "quantities"),
    ("no measure of a data source", {"quantities": {"pos": {}}}, "invalid-quantities",
     "quantities.pos"),
    ("missing siteId", {"dimensions": {"locationId": "11"}}, "missing-partition-dimension",
     "dimensions"),
    ("missing locationId", {"dimensions": {"siteId": "1", "colorId": "red"}},
     "missing-partition-dimension", "dimensions"),
    ("unknown dimension", {"dimensions": {"siteId": "1", "locationId": "11", "shelfId": "A"}},
     "unknown-dimension", "dimensions.shelfId"),
    ("empty dimension value", {"dimensions": {"siteId": "", "locationId": "11"}},
     "invalid-dimensions", "dimensions.siteId"),
    ("unknown dimension data source", {"dimensionDataSource": "erp"}, "unknown-data-source",
     "dimensionDataSource"),
    ("empty organization", {"organizationId": ""}, "invalid-identifier", "organizationId"),
    ("id too long", {"id": "x" * 129}, "invalid-identifier", "id"),
    ("dimension value not a string", {"dimensions": {"siteId": 1, "locationId": "11"}},
     "invalid-request", "dimensions.siteId"),
    ("quantities not an object", {"quantities": {"pos": 5}}, "invalid-request", "quantities.pos"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "code", "location"),
    [
        pytest.param(change, code, location, id=name)
        for name, change, code, location in REFUSED_EVENTS
    ],
)
async def test_change_event_that_breaks_the_configuration_is_refused(
    api: Api, change: dict[str, Any], code: str, location: str
) -> None:
    before = await api.snapshot()
    body = {**event("refused"), **change}

    response = await api.post("/onhand", body)

    problem = assert_problem(response, 422, code)
    if code != "invalid-request":
        assert problem["id"] == body["id"]
    assert location in locations(problem)
    assert await api.snapshot() == before


async def test_schema_invalid_change_is_answered_with_its_id(api: Api) -> None:
    """IV clients match answers to requests by id; a readable id is echoed on every refusal."""
    body = event("schema-invalid", dimensions={"siteId": 1, "locationId": "11"})  # type: ignore[dict-item]

    response = await api.post("/onhand", body)

    assert_problem(response, 422, "invalid-request", operation_id="schema-invalid")


@pytest.mark.parametrize(
    "missing", ["id", "organizationId", "productId", "dimensions", "quantities"]
)
async def test_change_event_without_a_required_field_is_refused(api: Api, missing: str) -> None:
    body = event("incomplete")
    del body[missing]
    before = await api.snapshot()

    response = await api.post("/onhand", body)

    problem = assert_problem(response, 422, "invalid-request")
    assert locations(problem) == [missing]
    assert await api.snapshot() == before


async def test_dimension_names_are_case_insensitive_and_answered_in_configured_spelling(
    api: Api,
) -> None:
    dimensions = {"SiteId": "1", "LOCATIONID": "11", "colorid": "Red"}
    response = await api.post("/onhand", event(dimensions=dimensions))
    assert response.status_code == 200, response.text

    rows = await api.rows(
        filters={"organizationId": ["usmf"], "SITEID": ["1"], "ColorId": ["Red"]},
        groupByValues=["COLORID"],
    )

    assert [row["dimensions"] for row in rows] == [
        {"siteId": "1", "locationId": "11", "colorId": "Red"}
    ]
    # Values stay case-sensitive.
    assert await api.rows(filters={"organizationId": ["usmf"], "colorId": ["red"]}) == []


# -- quantities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("10.25", Decimal("10.25")),
        ("-3", Decimal(-3)),
        ("0.000001", Decimal("0.000001")),
        ("1e2", Decimal(100)),
        ("7.500000", Decimal("7.5")),
    ],
)
async def test_numeric_strings_are_accepted_as_exact_quantities(
    api: Api, sent: str, stored: Decimal
) -> None:
    response = await api.post("/onhand", event(quantities={"pos": {"inbound": sent}}))
    assert response.status_code == 200, response.text
    assert await api.measure("pos.inbound") == stored


@pytest.mark.parametrize(
    ("literal", "code"),
    [
        pytest.param(b"NaN", "malformed-json", id="NaN"),
        pytest.param(b"Infinity", "malformed-json", id="Infinity"),
        pytest.param(b"-Infinity", "malformed-json", id="-Infinity"),
        pytest.param(b"1e400", "invalid-quantity", id="1e400"),
        pytest.param(b"-1e400", "invalid-quantity", id="-1e400"),
        pytest.param(b"1e-400", "invalid-quantity", id="1e-400"),
        pytest.param(b"0.0000001", "invalid-quantity", id="7-decimals"),
        pytest.param(b"1.0000001", "invalid-quantity", id="1-and-7-decimals"),
        pytest.param(b"1e13", "invalid-quantity", id="1e13"),
        pytest.param(b"1000000000000", "invalid-quantity", id="10**12-integer"),
        pytest.param(b"-1000000000000.5", "invalid-quantity", id="below-minimum"),
        pytest.param(b"true", "invalid-quantity", id="true"),
        pytest.param(b"false", "invalid-quantity", id="false"),
        pytest.param(b"null", "invalid-quantity", id="null"),
        pytest.param(b'"abc"', "invalid-quantity", id="abc"),
        pytest.param(b'"NaN"', "invalid-quantity", id="NaN-string"),
        pytest.param(b'"Infinity"', "invalid-quantity", id="Infinity-string"),
        pytest.param(b'"0x10"', "invalid-quantity", id="hex-string"),
        pytest.param(b'" 1"', "invalid-quantity", id="padded-string"),
        pytest.param(b'""', "invalid-quantity", id="empty-string"),
        pytest.param(b'"1e400"', "invalid-quantity", id="1e400-string"),
        pytest.param(b'"0.0000001"', "invalid-quantity", id="7-decimals-string"),
        pytest.param(b"1e1000000", "invalid-quantity", id="1e1000000"),
        pytest.param(b"1e-1000000", "invalid-quantity", id="1e-1000000"),
        pytest.param(b"1" * 5000, "malformed-json", id="5000-digit-integer"),
        pytest.param(b'"1e9999"', "invalid-quantity", id="1e9999-string"),
        pytest.param(b"[1]", "invalid-quantity", id="array"),
        pytest.param(b'{"value": 1}', "invalid-quantity", id="object"),
    ],
)
async def test_quantity_that_cannot_be_held_exactly_is_refused(
    api: Api, literal: bytes, code: str
) -> None:
    before = await api.snapshot()
    response = await api.post("/onhand", content=raw_event(literal, "q-1"))

    problem = assert_problem(response, 422, code)
    if code == "invalid-quantity":
        assert locations(problem) == ["quantities.pos.inbound"]
        assert problem["id"] == "q-1"
    assert await api.snapshot() == before


async def test_exact_decimals_round_trip_without_binary_floating_point(api: Api) -> None:
    for color, literal in (("tiny", b"0.000001"), ("large", b"123456789.123456")):
        dimensions = {"siteId": "1", "locationId": "11", "colorId": color}
        content = raw_event(literal, color, dimensions=dimensions)
        response = await api.post("/onhand", content=content)
        assert response.status_code == 200, response.text

    by_color = await api.rows(groupByValues=["colorId"])
    [total] = await api.rows()
    [entry, _] = await api.journal()

    inbound = {
        row["dimensions"]["colorId"]: row["quantities"]["pos"]["inbound"] for row in by_color
    }
    assert inbound == {"large": Decimal("123456789.123456"), "tiny": Decimal("0.000001")}
    assert total["quantities"]["pos"]["inbound"] == Decimal("123456789.123457")
    assert total["quantities"]["iv"]["onhand"] == Decimal("123456789.123457")
    assert total["quantities"]["@iv"]["@available_to_allocate"] == Decimal("123456789.123457")
    assert entry["request"]["quantities"] == {"pos": {"inbound": Decimal("0.000001")}}
    assert [(e["delta"], e["value"]) for e in entry["effects"]] == [
        (Decimal("0.000001"), Decimal("0.000001"))
    ]
    answer = await api.post("/onhand/indexquery", {"filters": {"organizationId": ["usmf"]}})
    assert b'"inbound":123456789.123457' in answer.content


async def test_largest_quantity_is_accepted_and_a_sum_beyond_it_is_refused(api: Api) -> None:
    largest = raw_event(b"999999999999.999999", "max")
    assert (await api.post("/onhand", content=largest)).status_code == 200
    before = await api.snapshot()

    response = await api.post(
        "/onhand",
        event(
            "beyond",
            {"pos": {"inbound": "0.000001"}},
            dimensions={"siteId": "1", "locationId": "11"},
        ),
    )

    problem = assert_problem(response, 422, "quantity-out-of-range", operation_id="beyond")
    assert locations(problem) == ["quantities.pos.inbound"]
    assert await api.snapshot() == before
    assert await api.measure("pos.inbound") == Decimal("999999999999.999999")


# -- request bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"id": "x",', id="truncated"),
        pytest.param(b"not json", id="text"),
        pytest.param(b"{'id': 'x'}", id="single-quotes"),
        pytest.param(b"[" * 40 + b"]" * 40, id="too-deep"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
    ],
)
async def test_malformed_json_is_refused(api: Api, content: bytes) -> None:
    before = await api.snapshot()

    response = await api.post("/onhand", content=content)

    problem = assert_problem(response, 422, "malformed-json")
    assert locations(problem) == ["body"]
    assert await api.snapshot() == before


async def test_empty_body_is_refused(api: Api) -> None:
    response = await api.post("/onhand", content=b"")
    problem = assert_problem(response, 422, "missing-body")
    assert locations(problem) == ["body"]


@pytest.mark.parametrize("body", [[], "text", 12, None], ids=["array", "string", "number", "null"])
async def test_body_that_is_not_an_object_is_refused(api: Api, body: object) -> None:
    response = await api.post("/onhand", content=json.dumps(body).encode())
    assert_problem(response, 422, "invalid-request")


def _oversized() -> bytes:
    body = event("big", padding="x" * (1024 * 1024))
    return json.dumps(body).encode()


async def test_body_larger_than_one_mebibyte_is_413(api: Api) -> None:
    before = await api.snapshot()

    response = await api.post("/onhand", content=_oversized())

    assert_problem(response, 413, "payload-too-large")
    assert await api.snapshot() == before


async def test_body_larger_than_one_mebibyte_is_413_without_content_length(api: Api) -> None:
    content = _oversized()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 64 * 1024):
            yield content[start : start + 64 * 1024]

    response = await api.client.post(
        api.url("/onhand"),
        content=chunks(),
        headers={**api.headers, "Content-Type": "application/json"},
    )

    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large")
    assert await api.journal() == []


async def test_body_just_under_the_limit_is_accepted(api: Api) -> None:
    body = json.dumps(event("almost", padding="")).encode()
    padding = 1024 * 1024 - len(body)
    response = await api.post(
        "/onhand", content=json.dumps(event("almost", padding="x" * padding)).encode()
    )
    assert len(response.request.content) == 1024 * 1024
    assert response.status_code == 200, response.text


# -- authentication and authorization ------------------------------------------------------------


async def test_missing_authorization_is_401_with_www_authenticate(api: Api) -> None:
    before = await api.snapshot()

    response = await api.post("/onhand", event(), headers={})

    assert_problem(response, 401, "missing-token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer rf_0123456789abcdef_notthesecret",
        "Bearer garbage",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "rf_0123456789abcdef_notthesecret",
    ],
)
async def test_invalid_token_is_401(api: Api, authorization: str) -> None:
    before = await api.snapshot()

    response = await api.post("/onhand", event(), headers={"Authorization": authorization})

    assert_problem(response, 401, "invalid-token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await api.snapshot() == before


async def test_revoked_token_is_401(api: Api, auth: TokenFactory, uow: UnitOfWorkFactory) -> None:
    headers = await auth("writer", name="soon-revoked")
    assert (await api.post("/onhand", event(), headers=headers)).status_code == 200
    await revoke_token(uow, Principal.operator(api.environment_id), "soon-revoked")

    response = await api.post("/onhand", event(), headers=headers)

    assert_problem(response, 401, "invalid-token")
    assert await api.measure("pos.inbound") == 1


async def test_token_of_another_environment_is_403_whether_the_target_exists_or_not(
    api: Api, auth: TokenFactory
) -> None:
    foreign = await auth("admin", environment=f"{api.environment_id}-other")
    before = await api.snapshot()
    missing = f"{api.environment_id}-missing"

    existing_answer = await api.post("/onhand", event("x"), headers=foreign)
    missing_answer = await api.post("/onhand", event("x"), headers=foreign, environment_id=missing)

    existing = assert_problem(existing_answer, 403, "forbidden")
    absent = assert_problem(missing_answer, 403, "forbidden")
    assert existing.pop("instance") == api.url("/onhand")
    assert absent.pop("instance") == api.url("/onhand", missing)
    assert existing == absent
    assert await api.snapshot() == before


async def test_reader_token_cannot_post_changes(api: Api, auth: TokenFactory) -> None:
    before = await api.snapshot()

    response = await api.post("/onhand", event(), headers=await auth("reader"))

    problem = assert_problem(response, 403, "insufficient-role")
    assert problem["requiredRole"] == "writer"
    assert problem["role"] == "reader"
    assert await api.snapshot() == before


async def test_token_limited_to_organizations_posts_only_for_them(
    api: Api, auth: TokenFactory
) -> None:
    headers = await auth("writer", organizations=["usmf"])
    allowed = await api.post("/onhand", event(organization="usmf"), headers=headers)
    assert allowed.status_code == 200, allowed.text
    before = await api.snapshot()

    response = await api.post(
        "/onhand", event("other-org", organization="contoso"), headers=headers
    )

    assert_problem(response, 403, "organization-out-of-scope", operation_id="other-org")
    assert await api.snapshot() == before
    assert await api.measure("pos.inbound", organization="contoso") == 0


# -- dimension data sources ----------------------------------------------------------------------


@pytest.fixture
async def mapped_api(api: Api, admin_headers: dict[str, str]) -> Api:
    """The environment with pos mapping its dimension ``store`` to ``siteId``."""
    current = await api.get("/configuration", headers=admin_headers)
    document = current.json()
    document["dataSources"]["pos"]["dimensionMappings"] = {"store": "siteId"}
    response = await api.put("/configuration", document, headers=admin_headers)
    assert response.status_code == 200, response.text
    return api


async def test_dimension_data_source_maps_its_dimension_names_to_base_dimensions(
    mapped_api: Api,
) -> None:
    api = mapped_api
    response = await api.post(
        "/onhand",
        event(
            quantities={"pos": {"inbound": 4}},
            dimensionDataSource="pos",
            dimensions={"Store": "S1", "locationId": "11"},
        ),
    )
    assert response.status_code == 200, response.text

    by_store = await api.rows(dimensionDataSource="pos", filters={
        "organizationId": ["usmf"], "store": ["S1"]})  # fmt: skip
    by_site = await api.rows(filters={"organizationId": ["usmf"], "siteId": ["S1"]})
    no_such_store = await api.rows(dimensionDataSource="pos", filters={
        "organizationId": ["usmf"], "store": ["S2"]})  # fmt: skip

    assert [row["dimensions"] for row in by_store] == [{"siteId": "S1", "locationId": "11"}]
    assert by_store[0]["quantities"]["pos"]["inbound"] == 4
    assert by_site == by_store
    assert no_such_store == []


async def test_mapped_dimension_needs_its_dimension_data_source(mapped_api: Api) -> None:
    api = mapped_api
    before = await api.snapshot()

    response = await api.post("/onhand", event(dimensions={"store": "S1", "locationId": "11"}))

    problem = assert_problem(response, 422, "unknown-dimension")
    assert "dimensions.store" in locations(problem)
    assert await api.snapshot() == before
    query = await api.post(
        "/onhand/indexquery", {"filters": {"organizationId": ["usmf"], "store": ["S1"]}}
    )
    assert_problem(query, 422, "unknown-dimension")


async def test_every_entry_point_speaks_the_dimension_data_source(mapped_api: Api) -> None:
    api = mapped_api
    count = event(
        "count",
        {"pos": {"inbound": 12}},
        dimensionDataSource="pos",
        dimensions={"store": "S1", "locationId": "11", "colorId": "red"},
    )
    assert (await api.post("/setonhand/pos/bulk", [count])).status_code == 200

    by_get = await api.get(
        "/onhand", {"organizationId": "usmf", "store": "S1", "dimensionDataSource": "pos"}
    )
    by_exact = await api.post(
        "/onhand/exactquery",
        {
            "dimensionDataSource": "pos",
            "filters": {
                "organizationId": ["usmf"],
                "dimensions": ["store", "locationId"],
                "values": [["S1", "11"]],
            },
            "groupByValues": ["colorId"],
        },
    )

    assert by_get.status_code == 200, by_get.text
    assert [row["dimensions"] for row in by_get.json()] == [{"siteId": "S1", "locationId": "11"}]
    assert by_get.json()[0]["quantities"]["pos"]["inbound"] == 12
    assert by_exact.status_code == 200, by_exact.text
    assert [row["dimensions"] for row in by_exact.json()] == [
        {"siteId": "S1", "locationId": "11", "colorId": "red"}
    ]


async def test_dimension_values_keep_every_character(api: Api) -> None:
    values = ['rød "dark"', "back\\slash", "  spaced  ", "日本", "it's", "a.b[0]"]
    for index, value in enumerate(values):
        dimensions = {"siteId": "1", "locationId": "11", "colorId": value}
        body = event(f"v{index}", {"pos": {"inbound": index + 1}}, dimensions=dimensions)
        response = await api.post("/onhand", body)
        assert response.status_code == 200, response.text

    rows = await api.rows(groupByValues=["colorId"])
    picked = await api.rows(
        filters={"organizationId": ["usmf"], "colorId": [values[0], values[3]]},
        groupByValues=["colorId"],
    )

    assert {row["dimensions"]["colorId"]: row["quantities"]["pos"]["inbound"] for row in rows} == {
        value: index + 1 for index, value in enumerate(values)
    }
    assert {row["dimensions"]["colorId"] for row in picked} == {values[0], values[3]}


async def test_change_is_all_or_nothing_across_its_measures(api: Api) -> None:
    assert (await api.post("/onhand", event("first", {"pos": {"outbound": 1}}))).status_code == 200
    before = await api.snapshot()

    response = await api.post(
        "/onhand",
        event("both", {"pos": {"inbound": 5, "outbound": "999999999999.999999"}}),
    )

    problem = assert_problem(response, 422, "quantity-out-of-range", operation_id="both")
    assert locations(problem) == ["quantities.pos.outbound"]
    assert await api.snapshot() == before


async def test_id_of_a_refused_change_stays_free(api: Api, admin_headers: dict[str, str]) -> None:
    body = event("retry-later", {"pos": {"damaged": 2}})
    assert_problem(await api.post("/onhand", body), 422, "unknown-measure")
    document = (await api.get("/configuration")).json()
    document["dataSources"]["pos"]["measures"].append("damaged")
    assert (await api.put("/configuration", document, headers=admin_headers)).status_code == 200

    response = await api.post("/onhand", body)

    assert response.status_code == 200, response.text
    assert "Idempotent-Replayed" not in response.headers
    assert await api.measure("pos.damaged") == 2


@pytest.mark.parametrize("path", ["/onhand", "/onhand/bulk"])
@pytest.mark.parametrize("field", ["id", "siteId"])
async def test_a_lone_surrogate_in_any_string_is_refused_and_changes_nothing(
    api: Api, path: str, field: str
) -> None:
    before = await api.snapshot()
    event_text = (
        '{"id": "ID", "organizationId": "usmf", "productId": "T-shirt", '
        '"dimensions": {"siteId": "SITE", "locationId": "11"}, '
        '"quantities": {"pos": {"inbound": 1}}}'
    )
    event_text = event_text.replace("ID", "\\ud800" if field == "id" else "s1")
    event_text = event_text.replace("SITE", "\\udc00" if field == "siteId" else "1")
    body = f"[{event_text}]" if path.endswith("bulk") else event_text

    response = await api.post(path, content=body.encode())

    assert_problem(response, 422, "malformed-json")
    assert await api.snapshot() == before
