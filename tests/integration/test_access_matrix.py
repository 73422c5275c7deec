"""Who may call what: every API endpoint by every role, and the environment, organization and
group-path scopes of tokens, token administration and revocation; SQLite and PostgreSQL.

The endpoint table below is checked against the app's own OpenAPI document, so a new endpoint
cannot be added without an access rule here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ringfence.domain.access import Role
from ringfence.domain.configuration import DEFAULT_DOCUMENT
from ringfence.services.ports import UnitOfWorkFactory
from tests.conftest import TokenFactory
from tests.integration.support import (
    Api,
    Json,
    assert_problem,
    event,
    exact,
    new_id,
    reserve_body,
    unreserve_body,
)

pytestmark = pytest.mark.asyncio

BASE = "/api/environment/{environmentId}"
RED = {"siteId": "1", "locationId": "11", "colorId": "red"}
WEB = {"channel": "Web"}
WEB_VIP = {"channel": "Web", "customerGroup": "VIP"}
WEB_VIP_US = {**WEB_VIP, "region": "US"}
STORE = {"channel": "Store"}
OUTBOUND = {"pos": {"outbound": "Addition"}}
MAX_BULK = 512
ROLES: tuple[Role | None, ...] = (None, *Role)
"""``None``: no token at all."""


# -- the endpoint table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a request names: its organization and, for unreserve, a reservation id."""

    organization: str = "usmf"
    reservation: str = "no-such-reservation"


Build = Callable[[Target], tuple[str, Any]]
"""A request to one endpoint: its URL after the environment, and its JSON body (or None)."""


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    """As OpenAPI names it, after ``/api/environment/{environmentId}``."""
    role: Role
    """The least role that may call it."""
    build: Build
    names_organization: bool = True
    """Whether the request names an organization (and a token's organizations limit it)."""
    bulk: bool = False

    @property
    def operation(self) -> tuple[str, str]:
        return self.method.lower(), BASE + self.path

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _allocation(target: Target, groups: Mapping[str, str] = WEB, **extra: Any) -> Json:
    return {
        "id": new_id("allocation"),
        "organizationId": target.organization,
        "productId": "T-shirt",
        "dimensions": dict(RED),
        "groups": dict(groups),
        "quantity": 1,
        **extra,
    }


def _count(target: Target) -> Json:
    return event(organization=target.organization, modifiedDateTimeUTC="2026-01-01T00:00:00Z")


def _exact_query(target: Target) -> Json:
    return {
        "filters": {
            "organizationId": [target.organization],
            "productId": ["T-shirt"],
            "dimensions": ["siteId", "locationId"],
            "values": [["1", "11"]],
        }
    }


def _allocation_query(target: Target, groups: Mapping[str, str] | None = None) -> Json:
    return {
        "organizationId": target.organization,
        "productId": "T-shirt",
        "dimensions": dict(RED),
        "groups": dict(groups or {}),
    }


def _configuration(_: Target) -> tuple[str, Any]:
    return "/configuration", json.loads(json.dumps(DEFAULT_DOCUMENT))


READER, WRITER, PLANNER, ADMIN = Role.READER, Role.WRITER, Role.PLANNER, Role.ADMIN

ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/onhand", READER,
             lambda t: (f"/onhand?organizationId={t.organization}&productId=T-shirt", None)),
    Endpoint("POST", "/onhand", WRITER, lambda t: ("/onhand", event(organization=t.organization))),
    Endpoint("POST", "/onhand/bulk", WRITER,
             lambda t: ("/onhand/bulk", [event(organization=t.organization)]), bulk=True),
    Endpoint("POST", "/setonhand/{data_source}/bulk", WRITER,
             lambda t: ("/setonhand/pos/bulk", [_count(t)]), bulk=True),
    Endpoint("POST", "/onhand/indexquery", READER,
             lambda t: ("/onhand/indexquery", {"filters": {"organizationId": [t.organization]}})),
    Endpoint("POST", "/onhand/exactquery", READER,
             lambda t: ("/onhand/exactquery", _exact_query(t))),
    Endpoint("POST", "/onhand/reserve", WRITER,
             lambda t: ("/onhand/reserve", reserve_body(organization=t.organization))),
    Endpoint("POST", "/onhand/reserve/bulk", WRITER,
             lambda t: ("/onhand/reserve/bulk", [reserve_body(organization=t.organization)]),
             bulk=True),
    Endpoint("POST", "/onhand/unreserve", WRITER,
             lambda t: ("/onhand/unreserve",
                        unreserve_body(t.reservation, organization=t.organization))),
    Endpoint("POST", "/onhand/unreserve/bulk", WRITER,
             lambda t: ("/onhand/unreserve/bulk",
                        [unreserve_body(t.reservation, organization=t.organization)]),
             bulk=True),
    Endpoint("GET", "/reservations", READER,
             lambda t: (f"/reservations?organizationId={t.organization}", None)),
    Endpoint("POST", "/allocation/allocate", PLANNER,
             lambda t: ("/allocation/allocate", _allocation(t))),
    Endpoint("POST", "/allocation/unallocate", PLANNER,
             lambda t: ("/allocation/unallocate", _allocation(t))),
    Endpoint("POST", "/allocation/reallocate", PLANNER,
             lambda t: ("/allocation/reallocate",
                        _allocation(t, WEB_VIP, sourceGroups=dict(WEB)))),
    Endpoint("POST", "/allocation/consume", WRITER,
             lambda t: ("/allocation/consume", _allocation(t, physicalMeasures=OUTBOUND))),
    Endpoint("POST", "/allocation/query", READER,
             lambda t: ("/allocation/query", _allocation_query(t))),
    Endpoint("GET", "/configuration", READER, lambda t: ("/configuration", None),
             names_organization=False),
    Endpoint("PUT", "/configuration", ADMIN, _configuration, names_organization=False),
    Endpoint("GET", "/configuration/versions", READER,
             lambda t: ("/configuration/versions", None), names_organization=False),
    Endpoint("GET", "/configuration/versions/{version}", READER,
             lambda t: ("/configuration/versions/1", None), names_organization=False),
    Endpoint("GET", "/journal", READER,
             lambda t: (f"/journal?organizationId={t.organization}", None)),
    Endpoint("GET", "/tokens", ADMIN, lambda t: ("/tokens", None), names_organization=False),
    Endpoint("POST", "/tokens", ADMIN,
             lambda t: ("/tokens", {"name": new_id("token"), "role": "reader"}),
             names_organization=False),
    Endpoint("DELETE", "/tokens/{name}", ADMIN, lambda t: ("/tokens/victim", None),
             names_organization=False),
]  # fmt: skip
"""Every API endpoint, the least role it needs and a request it accepts in shape."""

ORGANIZATION_ENDPOINTS = [endpoint for endpoint in ENDPOINTS if endpoint.names_organization]
ENDPOINT_IDS = [endpoint.id for endpoint in ENDPOINTS]
ORGANIZATION_IDS = [endpoint.id for endpoint in ORGANIZATION_ENDPOINTS]
UNRESERVE_ENDPOINTS = [e for e in ENDPOINTS if e.path.startswith("/onhand/unreserve")]


def _role_id(role: Role | None) -> str:
    return "none" if role is None else role.value


async def _call(
    client: httpx.AsyncClient,
    environment_id: str,
    endpoint: Endpoint,
    headers: Mapping[str, str],
    target: Target | None = None,
) -> httpx.Response:
    suffix, body = endpoint.build(target or Target())
    return await client.request(
        endpoint.method,
        f"/api/environment/{environment_id}{suffix}",
        json=body,
        headers=dict(headers),
    )


@dataclass(frozen=True)
class State:
    """What a refused request must leave alone: the journal, the configuration, the tokens."""

    journal: list[Json]
    configuration: str
    tokens: list[Json]


async def _state(admin: Api) -> State:
    journal = await admin.get("/journal", {"limit": 1000})
    configuration = await admin.get("/configuration")
    tokens = await admin.get("/tokens")
    for response in (journal, configuration, tokens):
        assert response.status_code == 200, response.text
    return State(journal.json()["entries"], configuration.headers["ETag"], tokens.json())


def _allowed(response: httpx.Response) -> None:
    """Judged on access only: any answer but 401, 403 (or a server error)."""
    assert response.status_code not in (401, 403), response.text
    assert response.status_code < 500, response.text


def _bulk_items(response: httpx.Response) -> list[Json]:
    """The items of a bulk answer, in whatever bucket."""
    body: dict[str, list[Json]] = response.json()
    return [item for bucket in body.values() for item in bucket]


# -- the endpoint table is complete --------------------------------------------------------------


async def test_every_api_operation_of_the_openapi_document_has_an_access_rule(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200

    documented = {
        (method, path)
        for path, operations in response.json()["paths"].items()
        if path.startswith("/api/")
        for method in operations
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
    }
    covered = {endpoint.operation for endpoint in ENDPOINTS}

    assert sorted(documented - covered) == [], "API operations without an access rule"
    assert sorted(covered - documented) == [], "access rules for operations that do not exist"
    assert len(covered) == len(ENDPOINTS), "an operation is listed twice"


# -- endpoint by role -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES, ids=_role_id)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_each_endpoint_admits_exactly_the_roles_from_its_least_role_up(
    client: httpx.AsyncClient,
    environment_id: str,
    auth: TokenFactory,
    endpoint: Endpoint,
    role: Role | None,
) -> None:
    admin = Api(client, environment_id, await auth("admin", name="matrix-admin"))
    if "{name}" in endpoint.path:
        await auth("reader", name="victim")
    headers = {} if role is None else await auth(role.value, name="caller")
    before = await _state(admin)

    response = await _call(client, environment_id, endpoint, headers)

    if role is None:
        assert_problem(response, 401, "missing-token")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="ringfence"'
    elif not role.includes(endpoint.role):
        problem = assert_problem(response, 403, "insufficient-role")
        assert problem["requiredRole"] == endpoint.role.value
        assert problem["role"] == role.value
    else:
        _allowed(response)
        return
    assert await _state(admin) == before


async def test_every_endpoint_refuses_a_forged_or_malformed_token_as_unauthenticated(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    real = (await auth("admin"))["Authorization"].removeprefix("Bearer ")
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    refused = (
        f"Bearer {forged}",
        f"Bearer rf_0000000000000000_{real.split('_', 2)[2]}",
        "Bearer not-a-token",
        f"Basic {real}",
        real,
        "Bearer ",
    )

    for endpoint in ENDPOINTS:
        for header in refused:
            response = await _call(client, environment_id, endpoint, {"Authorization": header})
            assert response.status_code == 401, (endpoint.id, header, response.text)
            assert_problem(response, 401, "invalid-token")
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="ringfence"'


# -- environment scope ---------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_a_token_of_another_environment_gets_the_same_403_whether_it_exists_or_not(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory, endpoint: Endpoint
) -> None:
    admin = Api(client, environment_id, await auth("admin"))
    await auth("reader", name="victim")
    foreign = await auth("admin", environment=f"{environment_id}-a")
    before = await _state(admin)

    existing = await _call(client, environment_id, endpoint, foreign)
    missing = await _call(client, f"{environment_id}-missing", endpoint, foreign)

    existing_problem = assert_problem(existing, 403, "forbidden")
    missing_problem = assert_problem(missing, 403, "forbidden")
    assert existing_problem.pop("instance") != missing_problem.pop("instance")
    assert existing_problem == missing_problem
    assert environment_id not in existing.text.replace(existing.json()["instance"], "")
    assert await _state(admin) == before


# -- organization scope --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stocked:
    """An environment with stock, a reservation and a [Web] allocation in usmf and contoso."""

    admin: Api
    reservations: dict[str, str]


@pytest.fixture
async def stocked(client: httpx.AsyncClient, environment_id: str, auth: TokenFactory) -> Stocked:
    admin = Api(client, environment_id, await auth("admin", name="stock-admin"))
    organizations = ("usmf", "contoso")
    received = await admin.post(
        "/onhand/bulk",
        [event(organization=org, quantities={"pos": {"inbound": 100}}) for org in organizations],
    )
    assert received.status_code == 200, received.text
    reserved: dict[str, str] = {}
    for organization in organizations:
        response = await admin.post("/onhand/reserve", reserve_body(organization=organization))
        assert response.status_code == 200, response.text
        reserved[organization] = response.json()["reservationId"]
        response = await admin.post(
            "/allocation/allocate",
            _allocation(Target(organization), quantity=10),
        )
        assert response.status_code == 200, response.text
    return Stocked(admin, reserved)


def _assert_out_of_organization(endpoint: Endpoint, response: httpx.Response) -> None:
    if not endpoint.bulk:
        assert_problem(response, 403, "organization-out-of-scope")
        return
    assert response.status_code == 207, response.text
    [item] = _bulk_items(response)
    assert item in response.json()["failure"], response.text
    assert item["code"] == "organization-out-of-scope"
    assert item["statusCode"] == 403


@pytest.mark.parametrize("endpoint", ORGANIZATION_ENDPOINTS, ids=ORGANIZATION_IDS)
async def test_a_token_limited_to_usmf_is_refused_whatever_names_another_organization(
    stocked: Stocked, auth: TokenFactory, endpoint: Endpoint
) -> None:
    client, environment_id = stocked.admin.client, stocked.admin.environment_id
    scoped = await auth(endpoint.role.value, organizations=["usmf"])
    before = await _state(stocked.admin)

    refused = await _call(
        client, environment_id, endpoint, scoped, Target("contoso", stocked.reservations["contoso"])
    )

    _assert_out_of_organization(endpoint, refused)
    assert await _state(stocked.admin) == before
    allowed = await _call(
        client, environment_id, endpoint, scoped, Target("usmf", stocked.reservations["usmf"])
    )
    _allowed(allowed)
    if endpoint.bulk:
        assert all(item["statusCode"] not in (401, 403) for item in _bulk_items(allowed))


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "/onhand?organizationId=usmf&organizationId=contoso", None),
        ("GET", "/onhand?organizationId=usmf&OrganizationId=contoso", None),
        ("POST", "/onhand/indexquery", {"filters": {"organizationId": ["usmf", "contoso"]}}),
        (
            "POST",
            "/onhand/exactquery",
            {
                "filters": {
                    "organizationId": ["contoso", "usmf"],
                    "dimensions": ["siteId", "locationId"],
                    "values": [["1", "11"]],
                }
            },
        ),
    ],
    ids=["GET repeated", "GET respelled", "indexquery", "exactquery"],
)
async def test_an_onhand_query_naming_its_own_and_another_organization_is_refused_whole(
    stocked: Stocked, auth: TokenFactory, method: str, suffix: str, body: Any
) -> None:
    scoped = await auth("reader", organizations=["usmf"])

    response = await stocked.admin.client.request(
        method, stocked.admin.url(suffix), json=body, headers=scoped
    )

    assert_problem(response, 403, "organization-out-of-scope")


@pytest.mark.parametrize("endpoint", UNRESERVE_ENDPOINTS, ids=[e.id for e in UNRESERVE_ENDPOINTS])
async def test_a_usmf_token_naming_another_organization_cannot_tell_its_reservation_ids_apart(
    stocked: Stocked, auth: TokenFactory, endpoint: Endpoint
) -> None:
    """Refused alike for a reservation that exists in contoso and one that does not."""
    client, environment_id = stocked.admin.client, stocked.admin.environment_id
    scoped = await auth("writer", organizations=["usmf"])

    existing = await _call(
        client, environment_id, endpoint, scoped, Target("contoso", stocked.reservations["contoso"])
    )
    unknown = await _call(
        client, environment_id, endpoint, scoped, Target("contoso", "reserve-unknown")
    )

    _assert_out_of_organization(endpoint, existing)
    _assert_out_of_organization(endpoint, unknown)


async def test_a_usmf_token_sees_only_usmf_in_the_journal_and_the_reservations(
    stocked: Stocked, auth: TokenFactory
) -> None:
    scoped = Api(
        stocked.admin.client,
        stocked.admin.environment_id,
        await auth("reader", organizations=["usmf"]),
    )
    everything = await stocked.admin.get("/journal", {"limit": 1000})
    all_reservations = await stocked.admin.get("/reservations")
    assert {e["organizationId"] for e in everything.json()["entries"]} == {"usmf", "contoso"}
    assert {r["organizationId"] for r in all_reservations.json()["reservations"]} == {
        "usmf",
        "contoso",
    }

    journal = await scoped.get("/journal", {"limit": 1000})
    reservations = await scoped.get("/reservations")

    assert journal.status_code == 200, journal.text
    assert journal.json()["entries"] == [
        entry for entry in everything.json()["entries"] if entry["organizationId"] == "usmf"
    ]
    assert reservations.status_code == 200, reservations.text
    assert [r["reservationId"] for r in reservations.json()["reservations"]] == [
        stocked.reservations["usmf"]
    ]
    assert "contoso" not in journal.text
    assert "contoso" not in reservations.text


# -- group-path scope ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Allocated:
    """usmf stock at RED allocated to [Web] 10, [Web, VIP] 5 and [Store] 10."""

    admin: Api
    auth: TokenFactory

    async def scoped(self, role: str) -> Api:
        headers = await self.auth(role, groups=["channel=Web"])
        return Api(self.admin.client, self.admin.environment_id, headers)

    async def paths(
        self, api: Api | None = None, groups: Mapping[str, str] | None = None
    ) -> dict[tuple[str, ...], Json]:
        """Every path of the allocation query as ``api`` sees it: its groups' values -> row."""
        response = await (api or self.admin).post(
            "/allocation/query", _allocation_query(Target(), groups)
        )
        assert response.status_code == 200, response.text
        return {tuple(row["groups"].values()): row for row in exact(response)["allocations"]}


@pytest.fixture
async def allocated(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> Allocated:
    admin = Api(client, environment_id, await auth("admin", name="group-admin"))
    received = await admin.post("/onhand", event(quantities={"pos": {"inbound": 100}}))
    assert received.status_code == 200, received.text
    for groups, quantity in ((WEB, 10), (WEB_VIP, 5), (STORE, 10)):
        response = await admin.post(
            "/allocation/allocate", _allocation(Target(), groups, quantity=quantity)
        )
        assert response.status_code == 200, response.text
    return Allocated(admin, auth)


async def test_a_web_planner_may_allocate_unallocate_and_reallocate_inside_web(
    allocated: Allocated,
) -> None:
    planner = await allocated.scoped("planner")
    calls = [
        ("/allocation/allocate", _allocation(Target(), WEB)),
        ("/allocation/allocate", _allocation(Target(), WEB_VIP_US)),
        ("/allocation/unallocate", _allocation(Target(), WEB_VIP_US)),
        ("/allocation/reallocate", _allocation(Target(), WEB_VIP, sourceGroups=WEB)),
        ("/allocation/reallocate", _allocation(Target(), WEB, sourceGroups=WEB_VIP)),
        ("/allocation/unallocate", _allocation(Target(), WEB)),
    ]
    for suffix, body in calls:
        response = await planner.post(suffix, body)
        assert response.status_code == 200, (suffix, body, response.text)
        assert response.json()["processingStatus"] == "success"

    paths = await allocated.paths()
    assert paths[("Web",)]["allocated"] == 10
    assert paths[("Web", "VIP")]["allocated"] == 5
    assert paths[("Web", "VIP", "US")]["cumulativeAllocated"] == 1


@pytest.mark.parametrize("role", ["writer", "planner"])
async def test_a_web_token_may_consume_web_allocations(allocated: Allocated, role: str) -> None:
    channel = await allocated.scoped(role)

    for groups in (WEB, WEB_VIP):
        response = await channel.post(
            "/allocation/consume", _allocation(Target(), groups, physicalMeasures=OUTBOUND)
        )
        assert response.status_code == 200, response.text

    paths = await allocated.paths()
    assert paths[("Web",)]["consumed"] == 1
    assert paths[("Web", "VIP")]["consumed"] == 1


OUTSIDE_WEB: list[tuple[str, str, Json]] = [
    ("planner", "/allocation/allocate", _allocation(Target(), STORE)),
    ("planner", "/allocation/allocate", _allocation(Target(), {"CHANNEL": "Store"})),
    ("planner", "/allocation/allocate", _allocation(Target(), {"channel": "web"})),
    ("planner", "/allocation/allocate",
     {**_allocation(Target()), "groups": None, "targetGroups": dict(STORE)}),
    ("planner", "/allocation/unallocate", _allocation(Target(), STORE)),
    ("planner", "/allocation/reallocate", _allocation(Target(), WEB, sourceGroups=STORE)),
    ("planner", "/allocation/reallocate", _allocation(Target(), STORE, sourceGroups=WEB)),
    ("planner", "/allocation/reallocate", _allocation(Target(), WEB_VIP, sourceGroups=STORE)),
    ("planner", "/allocation/consume", _allocation(Target(), STORE, physicalMeasures=OUTBOUND)),
    ("writer", "/allocation/consume", _allocation(Target(), STORE, physicalMeasures=OUTBOUND)),
    ("writer", "/allocation/consume",
     _allocation(Target(), {**STORE, "customerGroup": "Web"}, physicalMeasures=OUTBOUND)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("role", "suffix", "body"),
    OUTSIDE_WEB,
    ids=[
        "allocate Store",
        "allocate CHANNEL=Store",
        "allocate web (values are case-sensitive)",
        "allocate targetGroups Store",
        "unallocate Store",
        "reallocate Store to Web",
        "reallocate Web to Store",
        "reallocate Store to Web-VIP",
        "planner consumes Store",
        "writer consumes Store",
        "writer consumes Store-Web",
    ],
)
async def test_a_web_token_is_refused_any_path_outside_web(
    allocated: Allocated, role: str, suffix: str, body: Json
) -> None:
    channel = await allocated.scoped(role)
    before = await _state(allocated.admin)

    response = await channel.post(suffix, body)

    assert_problem(response, 403, "group-out-of-scope", operation_id=body["id"])
    assert await _state(allocated.admin) == before
    assert (await allocated.paths())[("Store",)]["allocated"] == 10


@pytest.mark.parametrize("role", ["writer", "planner"])
async def test_a_web_token_queries_only_web_paths(allocated: Allocated, role: str) -> None:
    channel = await allocated.scoped(role)
    assert set(await allocated.paths()) == {("Web",), ("Web", "VIP"), ("Store",)}

    assert set(await allocated.paths(channel)) == {("Web",), ("Web", "VIP")}
    assert set(await allocated.paths(channel, WEB)) == {("Web",), ("Web", "VIP")}
    assert set(await allocated.paths(channel, WEB_VIP)) == {("Web", "VIP")}
    for outside in (STORE, {"channel": "web"}):
        response = await channel.post("/allocation/query", _allocation_query(Target(), outside))
        assert_problem(response, 403, "group-out-of-scope")


# -- revocation ----------------------------------------------------------------------------------


async def test_a_revoked_token_is_refused_from_its_next_request_on_every_endpoint(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    admin = Api(client, environment_id, await auth("admin"))
    await auth("reader", name="victim")
    doomed = Api(client, environment_id, await auth("admin", name="doomed"))
    assert (await doomed.get("/journal")).status_code == 200

    revoked = await admin.client.delete(admin.url("/tokens/doomed"), headers=admin.headers)

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["name"] == "doomed"
    assert revoked.json()["revokedAt"] is not None
    for endpoint in ENDPOINTS:
        response = await _call(client, environment_id, endpoint, doomed.headers)
        assert response.status_code == 401, (endpoint.id, response.text)
        assert_problem(response, 401, "invalid-token")
    [listed] = [t for t in (await admin.get("/tokens")).json() if t["name"] == "doomed"]
    assert listed["revokedAt"] == revoked.json()["revokedAt"]
    assert (await admin.get("/journal")).json()["entries"] == []


async def test_a_token_revoked_by_another_server_is_refused_on_every_endpoint(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory, uow: UnitOfWorkFactory
) -> None:
    """Revoked in the database, as another server process does, after this one has seen the
    token valid: every endpoint refuses it on the next request, those that take a known token
    without a read of their own (their operation's transaction confirms it) included."""
    admin = Api(client, environment_id, await auth("admin"))
    doomed = Api(client, environment_id, await auth("admin", name="doomed"))
    assert (await doomed.get("/journal")).status_code == 200
    before = await _state(admin)

    async with uow() as work:
        record = await work.tokens.get_by_name(environment_id, "doomed")
        assert record is not None
        await work.tokens.revoke(record.token_id, datetime.now(UTC))
        await work.commit()

    for endpoint in ENDPOINTS:
        response = await _call(client, environment_id, endpoint, doomed.headers)
        assert response.status_code == 401, (endpoint.id, response.text)
        assert_problem(response, 401, "invalid-token")
    after = await _state(admin)
    assert (after.journal, after.configuration) == (before.journal, before.configuration)


async def test_an_admin_revoking_its_own_token_is_refused_on_its_next_request(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    admin = Api(client, environment_id, await auth("admin", name="self"))

    revoked = await admin.client.delete(admin.url("/tokens/self"), headers=admin.headers)

    assert revoked.status_code == 200, revoked.text
    assert_problem(await admin.get("/tokens"), 401, "invalid-token")


async def test_a_token_revoked_while_its_requests_are_answered_is_refused_on_the_very_next(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    admin = Api(client, environment_id, await auth("admin"))
    doomed = Api(client, environment_id, await auth("writer", name="doomed"))
    for _ in range(3):
        assert (await doomed.get("/journal")).status_code == 200
    in_flight = [
        asyncio.create_task(
            doomed.post("/onhand/bulk", [event(product=f"P{i}-{n}") for i in range(MAX_BULK)])
        )
        for n in range(2)
    ] + [asyncio.create_task(doomed.get("/journal")) for _ in range(4)]
    await asyncio.sleep(0)

    revoked = await admin.client.delete(admin.url("/tokens/doomed"), headers=admin.headers)
    assert revoked.status_code == 200, revoked.text
    next_one = await doomed.get("/journal")

    assert_problem(next_one, 401, "invalid-token")
    for response in await asyncio.gather(*in_flight):
        assert response.status_code in (200, 207, 401), response.text
    assert_problem(await doomed.post("/onhand", event()), 401, "invalid-token")


# -- token administration over the API -----------------------------------------------------------


async def test_an_admin_creates_a_token_whose_secret_is_shown_once(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    admin = Api(client, environment_id, await auth("admin"))
    await auth("admin", environment=f"{environment_id}-b", name="elsewhere")

    created = await admin.post(
        "/tokens",
        {
            "name": "web-shop",
            "role": "writer",
            "organizations": ["usmf"],
            "groups": ["channel=Web"],
        },
    )

    assert created.status_code == 201, created.text
    body = created.json()
    secret = body.pop("token")
    assert isinstance(secret, str)
    assert secret.startswith("rf_")
    assert body.pop("createdAt")
    assert body == {
        "name": "web-shop",
        "role": "writer",
        "organizations": ["usmf"],
        "groups": ["channel=Web"],
        "revokedAt": None,
    }
    listed = await admin.get("/tokens")
    assert listed.status_code == 200, listed.text
    [entry] = [token for token in listed.json() if token["name"] == "web-shop"]
    assert set(entry) == {"name", "role", "organizations", "groups", "createdAt", "revokedAt"}
    assert entry["createdAt"] == created.json()["createdAt"]
    assert secret not in listed.text
    assert secret.split("_", 2)[2] not in listed.text
    assert "elsewhere" not in {token["name"] for token in listed.json()}
    holder = Api(client, environment_id, {"Authorization": f"Bearer {secret}"})
    assert (await holder.post("/onhand", event())).status_code == 200
    assert_problem(
        await holder.post("/onhand", event(organization="contoso")),
        403,
        "organization-out-of-scope",
    )
    assert_problem(
        await holder.post("/allocation/allocate", _allocation(Target())), 403, "insufficient-role"
    )


@pytest.mark.parametrize("role", ["reader", "writer", "planner"])
async def test_below_admin_no_token_can_list_create_or_revoke_tokens(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory, role: str
) -> None:
    caller = Api(client, environment_id, await auth(role))
    await auth("reader", name="victim")

    listed = await caller.get("/tokens")
    created = await caller.post("/tokens", {"name": "mine", "role": "admin"})
    revoked = await client.delete(caller.url("/tokens/victim"), headers=caller.headers)

    for response in (listed, created, revoked):
        problem = assert_problem(response, 403, "insufficient-role")
        assert problem["requiredRole"] == "admin"
    assert "victim" not in listed.text


async def test_a_token_name_can_be_taken_only_once(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    admin = Api(client, environment_id, await auth("admin"))
    assert (await admin.post("/tokens", {"name": "pos-1", "role": "writer"})).status_code == 201

    again = await admin.post("/tokens", {"name": "pos-1", "role": "reader"})

    assert_problem(again, 409, "token-name-taken", processing_status="conflict")
    [entry] = [t for t in (await admin.get("/tokens")).json() if t["name"] == "pos-1"]
    assert entry["role"] == "writer"


async def test_a_token_of_an_unknown_role_is_refused(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    admin = Api(client, environment_id, await auth("admin"))

    response = await admin.post("/tokens", {"name": "boss", "role": "superuser"})

    assert_problem(response, 422, "invalid-role")
    assert "boss" not in {t["name"] for t in (await admin.get("/tokens")).json()}


async def test_revoking_an_unknown_token_name_is_not_found(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    admin = Api(client, environment_id, await auth("admin"))

    response = await client.delete(admin.url("/tokens/nobody"), headers=admin.headers)

    assert_problem(response, 404, "token-not-found", processing_status="notFound")


async def test_revoking_a_name_revokes_only_the_token_of_the_callers_environment(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    admin = Api(client, environment_id, await auth("admin"))
    mine = Api(client, environment_id, await auth("reader", name="twin"))
    other_environment = f"{environment_id}-b"
    theirs = Api(
        client, other_environment, await auth("reader", name="twin", environment=other_environment)
    )

    revoked = await client.delete(admin.url("/tokens/twin"), headers=admin.headers)

    assert revoked.status_code == 200, revoked.text
    assert_problem(await mine.get("/journal"), 401, "invalid-token")
    assert (await theirs.get("/journal")).status_code == 200


@pytest.mark.parametrize(
    ("scope", "asked", "code"),
    [
        ({"organizations": ["usmf"]}, {}, "organization-out-of-scope"),
        ({"organizations": ["usmf"]}, {"organizations": ["contoso"]}, "organization-out-of-scope"),
        ({"groups": ["channel=Web"]}, {}, "group-out-of-scope"),
        ({"groups": ["channel=Web"]}, {"groups": ["channel=Store"]}, "group-out-of-scope"),
    ],
    ids=[
        "usmf admin: every org",
        "usmf admin: contoso",
        "Web admin: every path",
        "Web admin: Store",
    ],
)
async def test_a_narrowed_admin_cannot_issue_a_token_wider_than_its_own(
    client: httpx.AsyncClient,
    environment_id: str,
    auth: TokenFactory,
    scope: dict[str, list[str]],
    asked: Json,
    code: str,
) -> None:
    narrowed = Api(client, environment_id, await auth("admin", **scope))

    response = await narrowed.post("/tokens", {"name": "wider", "role": "admin", **asked})

    assert_problem(response, 403, code)
    assert "wider" not in {t["name"] for t in (await narrowed.get("/tokens")).json()}


async def test_a_narrowed_admin_may_issue_a_token_as_narrow_as_its_own_or_narrower(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    narrowed = Api(
        client, environment_id, await auth("admin", organizations=["usmf"], groups=["channel=Web"])
    )

    response = await narrowed.post(
        "/tokens",
        {
            "name": "narrower",
            "role": "writer",
            "organizations": ["usmf"],
            "groups": ["channel=Web", "customerGroup=VIP"],
        },
    )

    assert response.status_code == 201, response.text
    assert response.json()["groups"] == ["channel=Web", "customerGroup=VIP"]


# -- operations endpoints ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_operations_endpoints_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200, response.text


# -- tokens are never echoed ---------------------------------------------------------------------


def _exposes(response: httpx.Response, secret: str) -> bool:
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
    text = f"{response.text}\n{headers}"
    return secret in text or secret.split("_", 2)[2] in text


async def test_no_answer_and_no_log_ever_shows_a_token_but_the_one_that_created_it(
    client: httpx.AsyncClient,
    environment_id: str,
    auth: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bootstrap = Api(client, environment_id, await auth("admin", name="bootstrap"))
    foreign = await auth("admin", environment=f"{environment_id}-b")
    secrets: dict[str, str] = {"foreign": foreign["Authorization"].removeprefix("Bearer ")}
    creations: list[httpx.Response] = []
    for role in (*Role, "victim"):
        name = role if isinstance(role, str) else role.value
        created = await bootstrap.post(
            "/tokens", {"name": name, "role": "reader" if name == "victim" else name}
        )
        assert created.status_code == 201, created.text
        secrets[name] = created.json()["token"]
        creations.append(created)
    answers: list[httpx.Response] = []

    for name in ("reader", "writer", "planner", "admin"):
        headers = {"Authorization": f"Bearer {secrets[name]}"}
        for endpoint in ENDPOINTS:
            answers.append(await _call(client, environment_id, endpoint, headers))
    forged = secrets["writer"][:-1] + ("A" if not secrets["writer"].endswith("A") else "B")
    secrets["forged"] = forged
    for headers in (
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Basic {secrets['writer']}"},
        {"Authorization": secrets["writer"]},
        foreign,
    ):
        for endpoint in ENDPOINTS[:3]:
            answers.append(await _call(client, environment_id, endpoint, headers))
    answers.append(await _call(client, f"{environment_id}-b", ENDPOINTS[0], bootstrap.headers))
    admin = Api(client, environment_id, {"Authorization": f"Bearer {secrets['admin']}"})
    answers.append(await client.delete(admin.url("/tokens/writer"), headers=admin.headers))
    answers.append(
        await client.get(
            admin.url("/onhand?organizationId=usmf"),
            headers={"Authorization": f"Bearer {secrets['writer']}"},
        )
    )
    answers += [await client.get(path) for path in ("/healthz", "/readyz", "/metrics")]
    answers += [await admin.get("/tokens"), await admin.get("/journal", {"limit": 1000})]

    assert any(response.status_code == 401 for response in answers)
    assert any(response.status_code == 200 for response in answers)
    for name, secret in secrets.items():
        for response in answers + [c for c in creations if c.json()["name"] != name]:
            assert not _exposes(response, secret), (name, response.request.url, response.text)
        assert secret not in caplog.text
        assert secret.split("_", 2)[2] not in caplog.text
    for name, created in zip(
        ("reader", "writer", "planner", "admin", "victim"), creations, strict=True
    ):
        assert created.json()["token"] == secrets[name]
