"""Helpers for the HTTP integration tests: request bodies, calls, exact JSON, problem checks."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

__all__ = [
    "PROBLEM_JSON",
    "Api",
    "Json",
    "ReservationSnapshot",
    "Snapshot",
    "assert_problem",
    "event",
    "exact",
    "level_quantities",
    "locations",
    "new_id",
    "raw_event",
    "reservation_snapshot",
    "reservations",
    "reserve_body",
    "unreserve_body",
]

Json = dict[str, Any]
PROBLEM_JSON = "application/problem+json"
HIERARCHY = ["colorId", "sizeId"]
SITE = {"siteId": "1", "locationId": "11"}


def new_id(prefix: str = "op") -> str:
    """A random operation id: tests never clean up, they never collide either."""
    return f"{prefix}-{secrets.token_hex(4)}"


def event(
    operation_id: str | None = None,
    quantities: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    organization: str = "usmf",
    product: str = "T-shirt",
    dimensions: Mapping[str, str] | None = None,
    **extra: Any,
) -> Json:
    """An on-hand change event (or, with ``modifiedDateTimeUTC``, a stock count)."""
    return {
        "id": operation_id or new_id(),
        "organizationId": organization,
        "productId": product,
        "dimensions": dict({**SITE, "colorId": "red"} if dimensions is None else dimensions),
        "quantities": {"pos": {"inbound": 1}} if quantities is None else dict(quantities),
        **extra,
    }


def exact(response: httpx.Response) -> Any:
    """The response body with every JSON fraction read as an exact :class:`Decimal`."""
    return json.loads(response.content, parse_float=Decimal)


def locations(body: Json) -> list[str]:
    """The field locations a problem's ``errors`` name."""
    return [issue["location"] for issue in body.get("errors") or []]


def assert_problem(
    response: httpx.Response,
    status: int,
    code: str,
    *,
    processing_status: str = "failure",
    operation_id: str | None = None,
) -> Json:
    """Check an RFC 9457 problem with Ringfence's code and IV's fields; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: Json = response.json()
    assert body["type"] == f"/problems/{code}", body
    assert body["code"] == code
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["processingStatus"] == processing_status
    assert body["message"] == body["detail"]
    assert body["statusCode"] == status
    if operation_id is not None:
        assert body["id"] == operation_id
    return body


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused request must leave alone: on-hand rows and the journal."""

    rows: list[Json]
    journal: list[Json]


@dataclass
class Api:
    """HTTP calls to one environment of the in-process app, with a default token."""

    client: httpx.AsyncClient
    environment_id: str
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, suffix: str = "", environment_id: str | None = None) -> str:
        return f"/api/environment/{environment_id or self.environment_id}{suffix}"

    def _headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        return dict(self.headers if headers is None else headers)

    async def post(
        self,
        suffix: str,
        body: object = None,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        environment_id: str | None = None,
    ) -> httpx.Response:
        all_headers = self._headers(headers)
        if content is not None:
            all_headers.setdefault("Content-Type", "application/json")
            return await self.client.post(
                self.url(suffix, environment_id), content=content, headers=all_headers
            )
        return await self.client.post(
            self.url(suffix, environment_id), json=body, headers=all_headers
        )

    async def put(
        self,
        suffix: str,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return await self.client.put(self.url(suffix), json=body, headers=self._headers(headers))

    async def get(
        self,
        suffix: str,
        params: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        environment_id: str | None = None,
    ) -> httpx.Response:
        return await self.client.get(
            self.url(suffix, environment_id), params=params, headers=self._headers(headers)
        )

    async def rows(self, **body: Any) -> list[Json]:
        """An index query (organization usmf unless ``filters`` say otherwise), exact."""
        body.setdefault("filters", {"organizationId": ["usmf"]})
        response = await self.post("/onhand/indexquery", body)
        assert response.status_code == 200, response.text
        rows: list[Json] = exact(response)
        return rows

    async def totals(
        self, product: str = "T-shirt", organization: str = "usmf"
    ) -> dict[str, dict[str, Decimal]]:
        """The product's quantities summed over every site (empty if it has none)."""
        rows = await self.rows(
            filters={"organizationId": [organization], "productId": [product]},
            returnNegative=True,
        )
        totals: dict[str, dict[str, Decimal]] = {}
        for row in rows:
            for data_source, measures in row["quantities"].items():
                target = totals.setdefault(data_source, {})
                for measure, value in measures.items():
                    target[measure] = target.get(measure, Decimal(0)) + Decimal(value)
        return totals

    async def measure(
        self, name: str = "pos.inbound", product: str = "T-shirt", organization: str = "usmf"
    ) -> Decimal:
        data_source, _, measure = name.partition(".")
        return (
            (await self.totals(product, organization)).get(data_source, {}).get(measure, Decimal(0))
        )

    async def journal(self, **params: Any) -> list[Json]:
        params.setdefault("limit", 1000)
        response = await self.get("/journal", params)
        assert response.status_code == 200, response.text
        entries: list[Json] = json.loads(response.content, parse_float=Decimal)["entries"]
        return entries

    async def snapshot(self) -> Snapshot:
        rows = await self.rows(
            filters={"organizationId": ["usmf", "contoso", "fabrikam"]},
            groupByValues=HIERARCHY,
            returnNegative=True,
        )
        return Snapshot(rows, await self.journal())


def raw_event(
    literal: bytes,
    operation_id: str = "raw",
    *,
    dimensions: Mapping[str, str] | None = None,
    measure: str = "inbound",
) -> bytes:
    """An on-hand change whose ``pos`` quantity is the JSON text ``literal``, byte for byte."""
    head = json.dumps(
        {
            "id": operation_id,
            "organizationId": "usmf",
            "productId": "T-shirt",
            "dimensions": dict(dimensions or SITE),
        }
    ).encode()
    return head[:-1] + b', "quantities": {"pos": {"' + measure.encode() + b'": ' + literal + b"}}}"


# -- soft reservations ---------------------------------------------------------------------------


def reserve_body(
    operation_id: str | None = None,
    quantity: Any = 1,
    *,
    organization: str = "usmf",
    product: str = "T-shirt",
    dimensions: Mapping[str, str] | None = None,
    **extra: Any,
) -> Json:
    """A reserve body as IV sends it, at (site 1, location 11, red) unless ``dimensions`` say."""
    return {
        "id": operation_id or new_id("reserve"),
        "organizationId": organization,
        "productId": product,
        "dimensions": dict({**SITE, "colorId": "red"} if dimensions is None else dimensions),
        "quantityDataSource": "@iv",
        "modifier": "@softreserved",
        "quantity": quantity,
        **extra,
    }


def unreserve_body(
    reservation_id: str,
    offset: Any = 1,
    operation_id: str | None = None,
    *,
    organization: str = "usmf",
    **extra: Any,
) -> Json:
    """An unreserve body as IV sends it: no ``productId``, no ``dimensions`` (add them as extra)."""
    return {
        "id": operation_id or new_id("unreserve"),
        "organizationId": organization,
        "reservationId": reservation_id,
        "OffsetQty": offset,
        **extra,
    }


async def reservations(
    api: Api, *, headers: Mapping[str, str] | None = None, **params: Any
) -> list[Json]:
    """``GET /reservations`` (one page of up to 1000), quantities exact."""
    params.setdefault("limit", 1000)
    response = await api.get("/reservations", params, headers=headers)
    assert response.status_code == 200, response.text
    found: list[Json] = exact(response)["reservations"]
    return found


async def level_quantities(
    api: Api,
    level: Mapping[str, str],
    *,
    product: str = "T-shirt",
    organization: str = "usmf",
) -> dict[str, Decimal]:
    """Every measure (``"@iv.@available_to_reserve"``...) summed over the rows at or below one
    hierarchy level, e.g. (site 1, location 11) or (site 1, location 11, red); negatives shown."""
    below = [name for name in level if name not in SITE]
    rows = await api.rows(
        filters={
            "organizationId": [organization],
            "productId": [product],
            **{name: [value] for name, value in level.items()},
        },
        groupByValues=below,
        returnNegative=True,
    )
    if not rows:
        return {}
    [row] = rows
    assert row["dimensions"] == dict(level), row
    return {
        f"{data_source}.{measure}": Decimal(value)
        for data_source, measures in row["quantities"].items()
        for measure, value in measures.items()
    }


@dataclass(frozen=True)
class ReservationSnapshot:
    """A :class:`Snapshot` plus every reservation of the environment."""

    state: Snapshot
    reservations: list[Json]


async def reservation_snapshot(api: Api) -> ReservationSnapshot:
    return ReservationSnapshot(await api.snapshot(), await reservations(api))
