"""Fixtures of the unit tests: services run on the in-memory unit of work.

``uow`` overrides the database-backed fixture of ``tests/conftest.py``: every test gets a fresh,
empty in-memory store. Environment ids are random because parsed configurations are cached per
(environment, version) for the whole process.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

import pytest

from ringfence.domain.access import Principal, Role
from ringfence.domain.onhand import OnHandChangeRequest
from ringfence.services.configuration import ensure_environment
from ringfence.storage.memory import MemoryUnitOfWorkFactory

ORGANIZATION = "usmf"
PRODUCT = "T-shirt"
SITE = {"siteId": "1", "locationId": "11"}


def change(
    operation_id: str,
    quantities: Mapping[str, Mapping[str, object]] | None = None,
    *,
    organization: str = ORGANIZATION,
    product: str = PRODUCT,
    dimensions: Mapping[str, str] | None = None,
    dimension_data_source: str | None = None,
) -> OnHandChangeRequest:
    """An on-hand change event with sensible defaults (``pos.inbound`` +1 at site 1/11)."""
    return OnHandChangeRequest(
        id=operation_id,
        organization_id=organization,
        product_id=product,
        dimensions=dict(SITE) if dimensions is None else dict(dimensions),
        quantities={"pos": {"inbound": 1}} if quantities is None else quantities,
        dimension_data_source=dimension_data_source,
    )


@pytest.fixture
def uow() -> MemoryUnitOfWorkFactory:
    return MemoryUnitOfWorkFactory()


@pytest.fixture
async def environment_id(uow: MemoryUnitOfWorkFactory) -> str:
    """A fresh environment with the default configuration."""
    environment = f"unit-{secrets.token_hex(6)}"
    assert await ensure_environment(uow, environment)
    return environment


@pytest.fixture
def admin(environment_id: str) -> Principal:
    return Principal(environment_id, Role.ADMIN, "ada")


@pytest.fixture
def writer(environment_id: str) -> Principal:
    return Principal(environment_id, Role.WRITER, "wes")


@pytest.fixture
def reader(environment_id: str) -> Principal:
    return Principal(environment_id, Role.READER, "rita")
