"""Fixtures of the HTTP integration tests (on SQLite and PostgreSQL, like ``client``)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TokenFactory
from tests.integration.support import Api


@pytest.fixture
async def api(client: httpx.AsyncClient, environment_id: str, auth: TokenFactory) -> Api:
    """Calls to the test's environment with a writer token named ``integration-writer``."""
    return Api(client, environment_id, await auth("writer", name="integration-writer"))


@pytest.fixture
async def admin_headers(auth: TokenFactory) -> dict[str, str]:
    return await auth("admin", name="integration-admin")
