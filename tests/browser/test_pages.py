"""Every page: screenshots at desktop and phone sizes, labelled inputs, keyboard reach."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, screenshot, sign_in

pytestmark = pytest.mark.browser

UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea'
  )].filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.name || e.id)"""

UNREACHABLE = """() => [...document.querySelectorAll(
    'a[href], button, input, select, textarea, summary'
  )]
  .filter(e => e.type !== 'hidden' && (e.tabIndex < 0 || e.disabled))
  .map(e => e.outerHTML.slice(0, 80))"""


def test_every_page_is_labelled_reachable_and_photographed(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/signin")
    screenshot(page, "signin")
    assert page.evaluate(UNLABELLED) == []

    sign_in(page, site, "admin")
    pages = {
        "dashboard": "/dashboard",
        "workbench": "/workbench?"
        + urlencode(
            {"organizationId": "usmf", "productId": "Bike-002", "siteId": "1", "locationId": "11"}
        ),
        "onhand-query": "/onhand?organizationId=usmf&productId=Bike-002&groupBy=colorId",
        "reservations": "/reservations",
        "configuration": "/configuration",
        "journal": "/journal",
    }
    for name, path in pages.items():
        page.goto(site.url + path)
        expect(page.locator("main h1")).to_be_visible()
        assert page.evaluate(UNLABELLED) == [], name
        assert page.evaluate(UNREACHABLE) == [], name
        screenshot(page, name)


def test_a_planner_can_allocate_with_the_keyboard_alone(page: Page, site: Site) -> None:
    product = f"Keyboard-{secrets.token_hex(3)}"
    site.stock(product, 12)

    def tab_to(selector: str, limit: int = 120) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    page.goto(f"{site.url}/signin")
    tab_to("#f-token")
    page.keyboard.type(site.tokens["planner"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard")

    tab_to('a[href="/workbench"]')
    page.keyboard.press("Enter")
    page.wait_for_url("**/workbench")
    for selector, text in (
        ("#f-organization", "usmf"),
        ("#f-product", product),
        ("#f-dim-siteId", "1"),
        ("#f-dim-locationId", "11"),
    ):
        tab_to(selector)
        page.keyboard.type(text)
    page.keyboard.press("Enter")
    expect(page.locator("#pool-here")).to_have_text("12")

    tab_to("#f-allocate-g-channel")
    page.keyboard.type("Web")
    tab_to("#f-allocate-quantity")
    page.keyboard.type("5")
    page.keyboard.press("Enter")

    expect(page.get_by_role("status")).to_contain_text("Allocated 5 to Web")
    expect(page.locator("#pool-here")).to_have_text("7")
