"""Operations endpoints, OpenAPI, unknown routes and access to every route; both databases."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TokenFactory
from tests.integration.support import PROBLEM_JSON, Api, assert_problem, event

pytestmark = pytest.mark.asyncio

BASE = "/api/environment/{environmentId}"
API_PATHS = {
    f"{BASE}/onhand": {"get", "post"},
    f"{BASE}/onhand/bulk": {"post"},
    f"{BASE}/setonhand/{{data_source}}/bulk": {"post"},
    f"{BASE}/onhand/indexquery": {"post"},
    f"{BASE}/onhand/exactquery": {"post"},
    f"{BASE}/configuration": {"get", "put"},
    f"{BASE}/configuration/versions": {"get"},
    f"{BASE}/configuration/versions/{{version}}": {"get"},
    f"{BASE}/journal": {"get"},
}
"""Every API route and its methods (as OpenAPI names them)."""

QUERY = {"filters": {"organizationId": ["usmf"]}}
ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/onhand", event("x")),
    ("POST", "/onhand/bulk", [event("x")]),
    ("POST", "/setonhand/pos/bulk", [event("x")]),
    ("POST", "/onhand/indexquery", QUERY),
    ("GET", "/onhand?organizationId=usmf", None),
    ("POST", "/onhand/exactquery", {
        "filters": {"organizationId": ["usmf"], "dimensions": ["siteId", "locationId"],
                    "values": [["1", "11"]]}}),
    ("GET", "/configuration", None),
    ("PUT", "/configuration", {"dataSources": {}}),
    ("GET", "/configuration/versions", None),
    ("GET", "/configuration/versions/1", None),
    ("GET", "/journal", None),
]  # fmt: skip
"""A request to every API route, with a body the route accepts in shape."""

ROUTE_IDS = [f"{method} {path.split('?')[0]}" for method, path, _ in ROUTES]


async def _call(
    api: Api, method: str, path: str, body: Any, headers: dict[str, str], environment_id: str
) -> httpx.Response:
    return await api.client.request(
        method, api.url(path, environment_id), json=body, headers=headers
    )


# -- operations ----------------------------------------------------------------------------------


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_ready_when_the_database_is_current(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_metrics_count_requests_by_route_template(api: Api) -> None:
    await api.client.get("/healthz")
    await api.post("/onhand", event())
    await api.post("/onhand", event(quantities={"pos": {"sold": 1}}))

    response = await api.client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE ringfence_http_requests" in text
    assert 'ringfence_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    onhand = f'method="POST",route="{BASE}/onhand"'
    assert f'ringfence_http_requests_total{{{onhand},status="200"}} 1.0' in text
    assert f'ringfence_http_requests_total{{{onhand},status="422"}} 1.0' in text
    assert api.environment_id not in text
    assert "ringfence_http_request_duration_seconds_bucket" in text


async def test_metrics_tell_each_committed_batch_its_size_and_steps(
    api: Api, database_url: str
) -> None:
    """One event alone, then a bulk call of three (one of them a replay of the first, which is
    read but not written again), then a refused event, which no batch commits. On PostgreSQL
    each batch of change events is one statement, one step."""
    first = event()
    assert (await api.post("/onhand", first)).status_code == 200
    bulk = [first, event(), event()]
    assert (await api.post("/onhand/bulk", bulk)).status_code == 200
    assert (await api.post("/onhand", event(quantities={"pos": {"sold": 1}}))).status_code == 422

    text = (await api.client.get("/metrics")).text

    assert 'ringfence_batch_operations_count{kind="onhand"} 2.0' in text
    assert 'ringfence_batch_operations_sum{kind="onhand"} 4.0' in text
    assert 'ringfence_batch_operations_bucket{kind="onhand",le="1.0"} 1.0' in text
    steps = ["lock_and_read", "decide", "write_and_commit", "in_one_statement"]
    taken = steps[3:] if database_url.startswith("postgresql") else steps[:3]
    for step in steps:
        count = f'ringfence_batch_duration_seconds_count{{kind="onhand",step="{step}"}}'
        assert (f"{count} 2.0" in text) == (step in taken), step
    assert 'kind="consume"' not in text


# -- OpenAPI -------------------------------------------------------------------------------------


async def test_openapi_lists_every_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path, methods in API_PATHS.items():
        assert path in paths, path
        assert set(paths[path]) == methods, path
    for path in ("/healthz", "/readyz", "/metrics"):
        assert set(paths[path]) == {"get"}


@pytest.mark.parametrize(
    ("path", "method", "schema"),
    [
        (f"{BASE}/onhand", "post", {"$ref": "#/components/schemas/OnHandChange"}),
        (f"{BASE}/onhand/indexquery", "post", {"$ref": "#/components/schemas/IndexQuery"}),
        (f"{BASE}/onhand/exactquery", "post", {"$ref": "#/components/schemas/ExactQuery"}),
        (f"{BASE}/configuration", "put", {"$ref": "#/components/schemas/ConfigurationDocument"}),
        (
            f"{BASE}/onhand/bulk",
            "post",
            {
                "type": "array",
                "items": {"$ref": "#/components/schemas/OnHandChange"},
                "minItems": 1,
                "maxItems": 512,
            },
        ),
        (
            f"{BASE}/setonhand/{{data_source}}/bulk",
            "post",
            {
                "type": "array",
                "items": {"$ref": "#/components/schemas/SetOnHandItem"},
                "minItems": 1,
                "maxItems": 512,
            },
        ),
    ],
    ids=["onhand", "indexquery", "exactquery", "configuration", "bulk", "setonhand"],
)
async def test_openapi_declares_the_request_body_schemas(
    client: httpx.AsyncClient, path: str, method: str, schema: dict[str, Any]
) -> None:
    document = (await client.get("/openapi.json")).json()

    body = document["paths"][path][method]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == schema


async def test_openapi_request_schemas_use_iv_field_names(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]

    change = schemas["OnHandChange"]
    assert set(change["required"]) == {
        "id",
        "organizationId",
        "productId",
        "dimensions",
        "quantities",
    }
    assert "dimensionDataSource" in change["properties"]
    assert "modifiedDateTimeUTC" in schemas["SetOnHandItem"]["properties"]
    assert {"filters", "groupByValues", "returnNegative"} <= set(
        schemas["IndexQuery"]["properties"]
    )
    assert {"filters", "groupByValues", "returnNegative"} <= set(
        schemas["ExactQuery"]["properties"]
    )


async def test_openapi_references_resolve(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    every = refs(document)
    assert every
    for ref in every:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "openapi.json" in response.text


# -- unknown routes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nowhere", "/api/environment/x/nothing", "/api/environment/x/onhand/bulk/extra"]
)
async def test_unknown_route_is_404_problem(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert_problem(response, 404, "not-found", processing_status="notFound")
    assert response.json()["instance"] == path


async def test_wrong_method_is_405_problem(api: Api) -> None:
    response = await api.client.delete(api.url("/onhand"), headers=api.headers)

    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert "POST" in response.headers["Allow"]


# -- access to every route -----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_needs_a_token(api: Api, method: str, path: str, body: Any) -> None:
    response = await _call(api, method, path, body, {}, api.environment_id)

    assert_problem(response, 401, "missing-token")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ringfence"'
    assert await api.journal() == []


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_refuses_a_token_of_another_environment_alike(
    api: Api, auth: TokenFactory, method: str, path: str, body: Any
) -> None:
    foreign = await auth("admin", environment=f"{api.environment_id}-other")
    missing = f"{api.environment_id}-missing"

    existing = await _call(api, method, path, body, foreign, api.environment_id)
    absent = await _call(api, method, path, body, foreign, missing)

    existing_problem = assert_problem(existing, 403, "forbidden")
    absent_problem = assert_problem(absent, 403, "forbidden")
    existing_problem.pop("instance")
    absent_problem.pop("instance")
    assert existing_problem == absent_problem
    assert await api.journal() == []
    assert (await api.get("/configuration")).headers["ETag"] == '"1"'
