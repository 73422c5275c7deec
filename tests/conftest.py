"""Fixtures shared by every test: databases (SQLite and PostgreSQL), containers, clients.

PostgreSQL is found at ``RINGFENCE_TEST_POSTGRESQL_URL`` (default: the local server with trust
authentication). Each test session creates its own database and drops it at the end. Without a
reachable server the PostgreSQL half of the suite skips with the reason, except under
``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from ringfence.app import create_app
from ringfence.bootstrap import Container, build
from ringfence.domain.access import Principal, Role
from ringfence.services.configuration import ensure_environment
from ringfence.services.ports import UnitOfWorkFactory
from ringfence.services.tokens import create_token
from ringfence.settings import Settings
from ringfence.storage.migrate import upgrade

POSTGRESQL_ADMIN_URL = os.environ.get(
    "RINGFENCE_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCALE = max(1, int(os.environ.get("RINGFENCE_TEST_SCALE", "1")))
"""Multiplies the examples of the property and state-machine tests (for longer runs)."""


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postgresql_unavailable() -> str | None:
    """None if the test server answers, else why not."""
    try:
        with psycopg.connect(_libpq(POSTGRESQL_ADMIN_URL), connect_timeout=3):
            return None
    except psycopg.Error as error:
        return f"PostgreSQL at {make_url(POSTGRESQL_ADMIN_URL).host} is unreachable: {error}"


def require_postgresql() -> None:
    reason = postgresql_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the PostgreSQL tests must run)")
    pytest.skip(reason)


def create_postgresql_database(prefix: str = "ringfence_test") -> str:
    """A new empty database; returns its SQLAlchemy URL."""
    require_postgresql()
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(_libpq(POSTGRESQL_ADMIN_URL), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
        # Tests never crash PostgreSQL itself (servers are killed, connections cut): commits
        # need not wait for the disk, which halves the time of the database-bound tests.
        connection.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    return make_url(POSTGRESQL_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgresql_database(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_libpq(POSTGRESQL_ADMIN_URL), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'ringfence.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    url = create_postgresql_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgresql_database(url)


@pytest.fixture(params=["sqlite", "postgresql"], scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
async def container(database_url: str) -> AsyncIterator[Container]:
    services = build(Settings(database_url=database_url))
    yield services
    await services.close()


@pytest.fixture
def uow(container: Container) -> UnitOfWorkFactory:
    return container.uow


@pytest.fixture
async def environment_id(uow: UnitOfWorkFactory) -> str:
    """A fresh environment with the default configuration (random: no cleanup needed)."""
    environment = f"test-{secrets.token_hex(5)}"
    await ensure_environment(uow, environment)
    return environment


def principal(environment_id: str, role: Role = Role.ADMIN, **scope: object) -> Principal:
    return Principal(environment_id, role, f"test-{role.value}", **scope)  # type: ignore[arg-type]


@pytest.fixture
def admin(environment_id: str) -> Principal:
    return principal(environment_id)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container=container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ringfence.test") as http:
        yield http


TokenFactory = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def auth(uow: UnitOfWorkFactory, environment_id: str) -> TokenFactory:
    """``await auth("writer")`` -> headers with a new token of that role for the environment."""

    async def headers(
        role: str = "admin", *, environment: str | None = None, **options: object
    ) -> dict[str, str]:
        issued = await create_token(
            uow,
            Principal.operator(environment or environment_id),
            Role(role),
            **options,  # type: ignore[arg-type]
        )
        return {"Authorization": f"Bearer {issued.token}"}

    return headers
