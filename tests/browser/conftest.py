"""Browser tests: Playwright driving Debian's Chromium against a real server.

Nothing downloads a browser: Chromium is /usr/bin/chromium (``.ci/run`` installs the Debian
package when it is missing), or ``RINGFENCE_TEST_CHROMIUM``. Without it these tests skip with
the reason, except under ``CI=true``, where they fail. Screenshots go to
``test-artifacts/screenshots``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    sync_playwright,
)

from tests.conftest import IN_CI
from tests.e2e.conftest import Cli, Server, start_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("RINGFENCE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}


@dataclass(frozen=True)
class Site:
    """A running server with a demo environment and a token per role."""

    server: Server
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/environment/demo",
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
        )

    def stock(self, product: str, quantity: int, **dimensions: str) -> None:
        """Put ``quantity`` of a new product in store 11 (site 1, location 11)."""
        with self.api() as http:
            response = http.post(
                "/onhand",
                json={
                    "id": f"stock-{product}-{secrets.token_hex(4)}",
                    "organizationId": "usmf",
                    "productId": product,
                    "dimensions": {"siteId": "1", "locationId": "11", **dimensions},
                    "quantities": {"pos": {"inbound": quantity}},
                },
            )
        assert response.status_code == 200, response.text

    def call(self, path: str, body: dict[str, Any], role: str = "admin") -> httpx.Response:
        with self.api(role) as http:
            return http.post(path, json=body)


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM} (install the Debian package chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true: the browser tests must run")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("browser")
    cli = Cli(f"sqlite:///{folder / 'ringfence.db'}", folder)
    admin = cli.run("demo", "--products", "24").stdout.strip().splitlines()[-1]
    tokens = {
        "admin": admin,
        "planner": cli.token("demo", "planner", "--name", "anna-planner"),
        "writer": cli.token("demo", "writer", "--name", "web-shop"),
        "reader": cli.token("demo", "reader", "--name", "viewer"),
        "web-planner": cli.token(
            "demo", "planner", "--name", "web-team", "--groups", "channel=Web"
        ),
    }
    server = start_server(cli)
    yield Site(server, tokens)
    server.stop()


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Browser]:
    # Playwright's sync API runs an event loop of its own while it is open: close it with the
    # last browser test, before any asyncio test runs.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies); fails the test on any console error."""
    context = browser.new_context(viewport=VIEWPORTS["desktop"], accept_downloads=True)
    opened = context.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def page_error(error: Error) -> None:
        problems.append(f"page error: {error}")

    opened.on("console", console)
    opened.on("pageerror", page_error)
    yield opened
    context.close()
    assert problems == []


def sign_in(page: Page, site: Site, role: str = "admin") -> None:
    page.goto(f"{site.url}/signin")
    page.get_by_label("Token").fill(site.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard")


def screenshot(page: Page, name: str) -> None:
    """Save the page at both viewports as test artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        page.screenshot(path=ARTIFACTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(VIEWPORTS["desktop"])
