"""A database that cannot serve: readiness says so and the API answers 503, never 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ringfence.app import create_app
from ringfence.bootstrap import build
from ringfence.settings import Settings
from tests.integration.support import assert_problem, event

pytestmark = pytest.mark.asyncio


async def _serve(url: str) -> AsyncIterator[httpx.AsyncClient]:
    container = build(Settings(database_url=url))
    transport = httpx.ASGITransport(app=create_app(container=container))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ringfence.test") as http:
            yield http
    finally:
        await container.close()


@pytest.fixture
async def unreachable() -> AsyncIterator[httpx.AsyncClient]:
    """The app on a PostgreSQL address where nothing listens."""
    async for http in _serve("postgresql+psycopg://postgres@127.0.0.1:1/ringfence"):
        yield http


@pytest.fixture
async def unmigrated(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app on an empty SQLite file that was never upgraded."""
    async for http in _serve(f"sqlite:///{tmp_path / 'empty.db'}"):
        yield http


async def test_readyz_is_503_when_the_database_is_unreachable(
    unreachable: httpx.AsyncClient,
) -> None:
    response = await unreachable.get("/readyz")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert body["status"] == "unavailable"
    assert "cannot be reached" in body["detail"]
    assert (await unreachable.get("/healthz")).status_code == 200


async def test_readyz_is_503_when_the_schema_is_not_current(unmigrated: httpx.AsyncClient) -> None:
    response = await unmigrated.get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "ringfence db upgrade" in response.json()["detail"]


async def test_api_answers_503_with_retry_after_when_the_database_is_unreachable(
    unreachable: httpx.AsyncClient,
) -> None:
    response = await unreachable.post(
        "/api/environment/env/onhand",
        json=event("e1"),
        headers={"Authorization": "Bearer rf_0123456789abcdef_secret"},
    )

    assert_problem(response, 503, "database-unavailable")
    assert response.headers["Retry-After"] == "2"
