"""Configuration over HTTP: read, replace (validated, versioned), history; SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ringfence.domain.operations import OperationKind
from ringfence.services.ports import StoredConfiguration, UnitOfWorkFactory
from tests.conftest import TokenFactory
from tests.integration.support import SITE, Api, Json, assert_problem, event, locations

pytestmark = pytest.mark.asyncio

SUPPLY = "fno.availphysical + pos.inbound - pos.outbound"
AVAILABLE = f"{SUPPLY} - @iv.@softreserved - @iv.@allocated"

DEFAULT: Json = {
    "dataSources": {
        "fno": {
            "measures": ["availphysical", "ordered", "onorder"],
            "readOnly": True,
            "dimensionMappings": {},
        },
        "pos": {"measures": ["inbound", "outbound"], "readOnly": False, "dimensionMappings": {}},
        "@iv": {
            "measures": [
                "@allocated",
                "@cumulative_allocated",
                "@consumed",
                "@cumulative_consumed",
                "@softreserved",
            ],
            "readOnly": False,
            "dimensionMappings": {},
        },
    },
    "calculatedMeasures": {
        "iv.onhand": SUPPLY,
        "@iv.@available_to_reserve": AVAILABLE,
        "@iv.@available_to_allocate": AVAILABLE,
    },
    "partitionDimensions": ["siteId", "locationId"],
    "dimensionHierarchy": ["siteId", "locationId", "colorId", "sizeId"],
    "indexSets": [["siteId", "locationId", "colorId", "sizeId"]],
    "allocationGroups": ["channel", "customerGroup", "region", "orderType"],
    "reservationMappings": {"@iv.@softreserved": "@iv.@available_to_reserve"},
    "features": {"reservation": True, "allocation": True},
}
"""The default configuration as GET answers it (every field written out)."""


def _with(change: Callable[[Json], object]) -> Json:
    """A copy of the default document changed by ``change`` (which edits it in place)."""
    document = copy.deepcopy(DEFAULT)
    change(document)
    return document


def _add_damaged(document: Json) -> None:
    document["dataSources"]["pos"]["measures"].append("damaged")


@pytest.fixture
def admin(api: Api, admin_headers: dict[str, str]) -> Api:
    """Calls with an admin token named ``integration-admin``."""
    return Api(api.client, api.environment_id, admin_headers)


async def test_new_environment_has_version_1_and_the_default_configuration(api: Api) -> None:
    response = await api.get("/configuration")

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    assert response.json() == {"version": 1, **DEFAULT}


async def test_valid_change_activates_a_new_version(admin: Api, api: Api) -> None:
    refused = await api.post("/onhand", event(quantities={"pos": {"damaged": 1}}))
    assert_problem(refused, 422, "unknown-measure")

    response = await admin.put("/configuration", _with(_add_damaged))

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    assert response.json() == {"version": 2, **_with(_add_damaged)}
    current = await api.get("/configuration")
    assert current.headers["ETag"] == '"2"'
    assert current.json() == response.json()
    accepted = await api.post("/onhand", event(quantities={"pos": {"damaged": 2}}))
    assert accepted.status_code == 200, accepted.text
    assert await api.measure("pos.damaged") == 2


async def test_new_calculated_measure_appears_in_queries(admin: Api, api: Api) -> None:
    def add_sellable(document: Json) -> None:
        _add_damaged(document)
        document["calculatedMeasures"]["pos.sellable"] = "pos.inbound - pos.damaged"

    assert (await admin.put("/configuration", _with(add_sellable))).status_code == 200
    await api.post("/onhand", event(quantities={"pos": {"inbound": 10, "damaged": 3}}))

    [row] = await api.rows()

    assert row["quantities"]["pos"] == {"inbound": 10, "outbound": 0, "damaged": 3, "sellable": 7}


async def test_version_in_the_body_is_ignored(admin: Api) -> None:
    response = await admin.put("/configuration", {"version": 41, **_with(_add_damaged)})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2


INVALID_DOCUMENTS: list[tuple[str, Callable[[Json], object], list[str]]] = [
    ("unknown field", lambda d: d.update(colour="red"), ["colour"]),
    ("bad measure name", lambda d: d["dataSources"]["pos"]["measures"].append("in bound"),
     ["dataSources.pos.measures[2]"]),
    ("measure twice", lambda d: d["dataSources"]["pos"]["measures"].append("inbound"),
     ["dataSources.pos.measures[2]"]),
    ("reserved data source name", lambda d: d["dataSources"].update({"@erp": {"measures": []}}),
     ["dataSources.@erp"]),
    ("read-only not boolean", lambda d: d["dataSources"]["pos"].update(readOnly="yes"),
     ["dataSources.pos.readOnly"]),
    ("mapping to unknown dimension", lambda d: d["dataSources"]["pos"].update(
        dimensionMappings={"store": "shopId"}), ["dataSources.pos.dimensionMappings.store"]),
    ("@iv missing a measure", lambda d: d["dataSources"]["@iv"]["measures"].remove("@consumed"),
     ["dataSources.@iv.measures"]),
    ("@iv missing", lambda d: d["dataSources"].pop("@iv"), ["dataSources"]),
    ("formula of unknown measure", lambda d: d["calculatedMeasures"].update(
        {"pos.net": "pos.inbound - pos.sold"}), ["calculatedMeasures.pos.net"]),
    ("unreadable formula", lambda d: d["calculatedMeasures"].update(
        {"pos.net": "pos.inbound * 2"}), ["calculatedMeasures.pos.net"]),
    ("formula cycle", lambda d: d["calculatedMeasures"].update(
        {"pos.a": "pos.b + pos.inbound", "pos.b": "pos.a"}), ["calculatedMeasures.pos.a"]),
    ("hierarchy without partition first", lambda d: d.update(
        dimensionHierarchy=["colorId", "siteId", "locationId"]), ["dimensionHierarchy"]),
    ("unknown partition dimension", lambda d: d.update(partitionDimensions=["shopId"]),
     ["partitionDimensions[0]"]),
    ("no partition dimension", lambda d: d.update(partitionDimensions=[]),
     ["partitionDimensions"]),
    ("too many group levels", lambda d: d.update(allocationGroups=[f"g{n}" for n in range(9)]),
     ["allocationGroups"]),
    ("reservation of unknown measure", lambda d: d.update(
        reservationMappings={"pos.held": "@iv.@available_to_reserve"}),
     ["reservationMappings.pos.held"]),
    ("unknown feature", lambda d: d["features"].update(teleport=True), ["features.teleport"]),
    ("data sources missing", lambda d: d.pop("dataSources"), ["dataSources"]),
    ("several problems", lambda d: d.update(colour="red", indexSets="all"),
     ["colour", "indexSets"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(change, expected, id=name) for name, change, expected in INVALID_DOCUMENTS],
)
async def test_invalid_configuration_is_refused_naming_each_field(
    admin: Api, change: Callable[[Json], object], expected: list[str]
) -> None:
    response = await admin.put("/configuration", _with(change))

    problem = assert_problem(response, 422, "invalid-configuration")
    for location in expected:
        assert location in locations(problem), problem
    current = await admin.get("/configuration")
    assert current.headers["ETag"] == '"1"'
    assert current.json() == {"version": 1, **DEFAULT}


@pytest.mark.parametrize("body", [[], "text", 5], ids=["array", "string", "number"])
async def test_configuration_that_is_not_an_object_is_refused(admin: Api, body: Any) -> None:
    response = await admin.put("/configuration", body)
    assert_problem(response, 422, "invalid-configuration")
    assert (await admin.get("/configuration")).headers["ETag"] == '"1"'


async def test_malformed_configuration_json_is_refused(admin: Api) -> None:
    response = await admin.client.put(
        admin.url("/configuration"),
        content=b'{"dataSources": ',
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "malformed-json")


@pytest.mark.parametrize("if_match", ['"1"', 'W/"1"', "*"])
async def test_if_match_with_the_current_version_applies(admin: Api, if_match: str) -> None:
    response = await admin.put(
        "/configuration", _with(_add_damaged), headers={**admin.headers, "If-Match": if_match}
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'


async def test_if_match_with_an_old_version_is_a_conflict(admin: Api) -> None:
    assert (await admin.put("/configuration", _with(_add_damaged))).status_code == 200

    def drop_index_sets(document: Json) -> None:
        document["indexSets"] = []

    response = await admin.put(
        "/configuration", _with(drop_index_sets), headers={**admin.headers, "If-Match": '"1"'}
    )

    problem = assert_problem(
        response, 409, "configuration-version-conflict", processing_status="conflict"
    )
    assert problem["currentVersion"] == 2
    current = await admin.get("/configuration")
    assert current.headers["ETag"] == '"2"'
    assert current.json() == {"version": 2, **_with(_add_damaged)}


async def test_if_match_that_is_not_a_version_is_refused(admin: Api) -> None:
    response = await admin.put(
        "/configuration", _with(_add_damaged), headers={**admin.headers, "If-Match": '"abc"'}
    )
    problem = assert_problem(response, 422, "invalid-request")
    assert locations(problem) == ["If-Match"]
    assert (await admin.get("/configuration")).headers["ETag"] == '"1"'


async def test_removing_a_measure_that_holds_quantities_is_blocked(admin: Api, api: Api) -> None:
    await api.post("/onhand", event("in", {"pos": {"outbound": 4}}))

    def drop_outbound(document: Json) -> None:
        document["dataSources"]["pos"]["measures"].remove("outbound")
        document["calculatedMeasures"]["iv.onhand"] = "fno.availphysical + pos.inbound"
        available = "fno.availphysical + pos.inbound - @iv.@softreserved - @iv.@allocated"
        document["calculatedMeasures"]["@iv.@available_to_reserve"] = available
        document["calculatedMeasures"]["@iv.@available_to_allocate"] = available

    response = await admin.put("/configuration", _with(drop_outbound))

    problem = assert_problem(
        response, 409, "configuration-change-blocked", processing_status="conflict"
    )
    assert locations(problem) == ["dataSources.pos.measures"]
    assert "pos.outbound" in problem["detail"]
    assert (await admin.get("/configuration")).headers["ETag"] == '"1"'
    assert await api.measure("pos.outbound") == 4

    await api.post("/onhand", event("out", {"pos": {"outbound": -4}}))
    allowed = await admin.put("/configuration", _with(drop_outbound))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["dataSources"]["pos"]["measures"] == ["inbound"]


async def test_changing_partition_dimensions_once_data_exists_is_blocked(
    admin: Api, api: Api
) -> None:
    def site_only(document: Json) -> None:
        document["partitionDimensions"] = ["siteId"]

    await api.post("/onhand", event())

    response = await admin.put("/configuration", _with(site_only))

    problem = assert_problem(
        response, 409, "configuration-change-blocked", processing_status="conflict"
    )
    assert locations(problem) == ["partitionDimensions"]
    assert (await admin.get("/configuration")).headers["ETag"] == '"1"'


@pytest.mark.parametrize("role", ["reader", "writer", "planner"])
async def test_only_an_admin_may_change_the_configuration(
    api: Api, auth: TokenFactory, role: str
) -> None:
    headers = await auth(role)

    response = await api.put("/configuration", _with(_add_damaged), headers=headers)
    readable = await api.get("/configuration", headers=headers)

    problem = assert_problem(response, 403, "insufficient-role")
    assert problem["requiredRole"] == "admin"
    assert readable.status_code == 200
    assert readable.headers["ETag"] == '"1"'


async def test_configuration_needs_a_token_of_this_environment(
    api: Api, auth: TokenFactory
) -> None:
    foreign = await auth("admin", environment=f"{api.environment_id}-other")

    unauthenticated = await api.get("/configuration", headers={})
    other_read = await api.get("/configuration", headers=foreign)
    other_write = await api.put("/configuration", _with(_add_damaged), headers=foreign)

    assert_problem(unauthenticated, 401, "missing-token")
    assert_problem(other_read, 403, "forbidden")
    assert_problem(other_write, 403, "forbidden")
    assert (await api.get("/configuration")).headers["ETag"] == '"1"'


async def test_versions_are_listed_newest_first(admin: Api) -> None:
    assert (await admin.put("/configuration", _with(_add_damaged))).status_code == 200
    assert (await admin.put("/configuration", DEFAULT)).status_code == 200

    response = await admin.get("/configuration/versions")

    assert response.status_code == 200, response.text
    versions = response.json()
    assert [item["version"] for item in versions] == [3, 2, 1]
    assert [item["createdBy"] for item in versions] == [
        "integration-admin",
        "integration-admin",
        "system",
    ]
    created = [item["createdAt"] for item in versions]
    assert created == sorted(created, reverse=True)


async def test_old_version_is_readable(admin: Api) -> None:
    assert (await admin.put("/configuration", _with(_add_damaged))).status_code == 200

    first = await admin.get("/configuration/versions/1")
    second = await admin.get("/configuration/versions/2")

    assert first.status_code == 200, first.text
    assert first.headers["ETag"] == '"1"'
    assert first.json() == {"version": 1, **DEFAULT}
    assert second.headers["ETag"] == '"2"'
    assert second.json() == {"version": 2, **_with(_add_damaged)}


async def test_unknown_version_is_404(admin: Api) -> None:
    response = await admin.get("/configuration/versions/2")

    problem = assert_problem(
        response, 404, "configuration-version-not-found", processing_status="notFound"
    )
    assert "2" in problem["detail"]


async def test_version_that_is_not_a_number_is_422(admin: Api) -> None:
    response = await admin.get("/configuration/versions/latest")
    problem = assert_problem(response, 422, "invalid-request")
    assert locations(problem) == ["path.version"]


async def test_removing_a_data_source_that_holds_quantities_is_blocked(
    admin: Api, api: Api
) -> None:
    await api.post("/onhand", event(quantities={"fno": {"ordered": 2}}))

    def drop_fno(document: Json) -> None:
        del document["dataSources"]["fno"]
        document["calculatedMeasures"]["iv.onhand"] = "pos.inbound - pos.outbound"
        available = "pos.inbound - pos.outbound - @iv.@softreserved - @iv.@allocated"
        document["calculatedMeasures"]["@iv.@available_to_reserve"] = available
        document["calculatedMeasures"]["@iv.@available_to_allocate"] = available

    response = await admin.put("/configuration", _with(drop_fno))

    problem = assert_problem(
        response, 409, "configuration-change-blocked", processing_status="conflict"
    )
    assert locations(problem) == ["dataSources.fno.measures"]
    assert "fno.ordered" in problem["detail"]
    assert (await admin.get("/configuration")).headers["ETag"] == '"1"'


async def _applied_elsewhere(uow: UnitOfWorkFactory, environment_id: str, document: Json) -> None:
    """Store a new version as another server process would: this process's services never
    see it being applied (each process remembers the version it last loaded)."""
    async with uow() as work:
        version = await work.configurations.lock_current_version(environment_id)
        assert version is not None
        await work.configurations.add(
            StoredConfiguration(
                environment_id, version + 1, document, datetime.now(UTC), "another-process"
            )
        )
        await work.commit()


async def test_a_change_applied_by_another_process_holds_for_the_next_batch(
    api: Api, uow: UnitOfWorkFactory, environment_id: str
) -> None:
    assert (await api.post("/onhand", event("before", {"pos": {"inbound": 1}}))).status_code == 200
    await _applied_elsewhere(uow, environment_id, _with(_add_damaged))

    # A batch with an operation valid under both versions: its locks' read finds the new one.
    response = await api.post(
        "/onhand/bulk",
        [event("kept", {"pos": {"inbound": 2}}), event("new", {"pos": {"damaged": 3}})],
    )

    assert response.status_code == 200, response.text
    assert [item["index"] for item in response.json()["success"]] == [0, 1]
    assert await api.measure("pos.damaged") == 3


async def test_a_call_refused_only_by_the_old_configuration_is_accepted_after_a_change(
    api: Api, uow: UnitOfWorkFactory, environment_id: str
) -> None:
    refused = await api.post("/onhand", event("early", {"pos": {"damaged": 1}}))
    assert refused.status_code == 422, refused.text
    await _applied_elsewhere(uow, environment_id, _with(_add_damaged))

    response = await api.post("/onhand", event("late", {"pos": {"damaged": 1}}))

    assert response.status_code == 200, response.text
    assert await api.measure("pos.damaged") == 1


async def test_a_call_to_an_environment_deleted_by_another_process_is_not_found(
    api: Api, uow: UnitOfWorkFactory, environment_id: str
) -> None:
    assert (await api.post("/onhand", event("before", {"pos": {"inbound": 1}}))).status_code == 200
    async with uow() as work:
        await work.environments.delete(environment_id)
        await work.commit()

    response = await api.post("/onhand", event("after", {"pos": {"inbound": 1}}))

    assert response.status_code in (401, 404), response.text


def _allocation_off(document: Json) -> None:
    document["features"]["allocation"] = False


async def test_a_consume_after_another_process_switched_allocation_off_is_refused(
    api: Api, admin: Api, uow: UnitOfWorkFactory, environment_id: str
) -> None:
    line = {
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": {**SITE, "colorId": "red"},
        "groups": {"channel": "Web"},
    }
    sold = {"physicalMeasures": {"pos": {"outbound": "Addition"}}}
    assert (await api.post("/onhand", event("stock", {"pos": {"inbound": 5}}))).status_code == 200
    planned = await admin.post("/allocation/allocate", {"id": "plan", **line, "quantity": 3})
    assert planned.status_code == 200, planned.text
    first = await api.post("/allocation/consume", {"id": "first", **line, "quantity": 1, **sold})
    assert first.status_code == 200, first.text  # this process remembers the configuration
    await _applied_elsewhere(uow, environment_id, _with(_allocation_off))

    # Decided under the version this process remembered, the consume would be applied; the
    # stamp read under the lock sends it back to be decided under the new one.
    second = await api.post("/allocation/consume", {"id": "second", **line, "quantity": 1, **sold})

    assert_problem(second, 409, "feature-disabled", processing_status="conflict")
    async with uow(read_only=True) as work:
        assert await work.journal.find(environment_id, OperationKind.CONSUME, ["second"]) == {}
