"""A planner's workbench in a real browser: sign in, allocate, consume, reallocate, explore."""

from __future__ import annotations

import csv
import io
import secrets
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, screenshot, sign_in

pytestmark = pytest.mark.browser

STORE = {"organizationId": "usmf", "siteId": "1", "locationId": "11"}


def new_product() -> str:
    return f"Browser-{secrets.token_hex(3)}"


def open_workbench(page: Page, site: Site, product: str, **dimensions: str) -> None:
    query = urlencode({**STORE, "productId": product, **dimensions})
    page.goto(f"{site.url}/workbench?{query}")
    expect(page.get_by_role("heading", name="Allocation workbench")).to_be_visible()


def fill_path(page: Page, action: str, prefix: str = "g", **groups: str) -> None:
    for name, value in groups.items():
        page.locator(f"#f-{action}-{prefix}-{name}").fill(value)


def allocate(site: Site, product: str, quantity: int, **groups: str) -> None:
    response = site.call(
        "/allocation/allocate",
        {
            "id": f"setup-{secrets.token_hex(4)}",
            "organizationId": "usmf",
            "productId": product,
            "dimensions": {"siteId": "1", "locationId": "11"},
            "groups": groups,
            "quantity": quantity,
        },
    )
    assert response.status_code == 200, response.text


def test_a_planner_signs_in_and_out(page: Page, site: Site) -> None:
    page.goto(site.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Token").fill("rf_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid-token")

    sign_in(page, site, "planner")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator(".who")).to_contain_text("anna-planner")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{site.url}/dashboard")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_allocating_updates_the_tree_and_the_pool(page: Page, site: Site) -> None:
    product = new_product()
    site.stock(product, 50)
    sign_in(page, site, "planner")
    open_workbench(page, site, product)
    expect(page.locator("#pool-here")).to_have_text("50")

    fill_path(page, "allocate", channel="Web", customerGroup="VIP")
    page.locator("#f-allocate-quantity").fill("10")
    page.get_by_role("button", name="Allocate", exact=True).click()

    expect(page.get_by_role("status")).to_contain_text("Allocated 10 to Web › VIP")
    expect(page.locator("#pool-here")).to_have_text("40")
    vip = page.locator('details[data-path="Web › VIP"] > summary')
    expect(vip).to_contain_text("allocated 10")
    expect(page.locator('details[data-path="Web"] > summary')).to_contain_text("subtree 10")
    screenshot(page, "workbench")


def test_a_refused_consume_shows_the_reason_and_keeps_what_was_typed(
    page: Page, site: Site
) -> None:
    product = new_product()
    site.stock(product, 20)
    allocate(site, product, 2, channel="Web")
    sign_in(page, site, "writer")
    open_workbench(page, site, product)

    fill_path(page, "consume", channel="Web")
    page.locator("#f-consume-quantity").fill("5")
    page.get_by_role("button", name="Consume", exact=True).click()

    consume_card = page.locator("section", has=page.get_by_role("heading", name="Consume"))
    expect(consume_card.get_by_role("alert")).to_contain_text("insufficient-allocated")
    expect(consume_card.get_by_role("alert")).to_contain_text("holds 2")
    expect(page.locator("#f-consume-quantity")).to_have_value("5")
    expect(page.locator("#f-consume-g-channel")).to_have_value("Web")
    expect(page.locator('details[data-path="Web"] > summary')).to_contain_text("allocated 2")
    screenshot(page, "workbench-refused-consume")


def test_reallocating_moves_quantity_between_paths(page: Page, site: Site) -> None:
    product = new_product()
    site.stock(product, 30)
    allocate(site, product, 6, channel="Web", customerGroup="VIP")
    sign_in(page, site, "planner")
    open_workbench(page, site, product)

    fill_path(page, "reallocate", "s", channel="Web", customerGroup="VIP")
    fill_path(page, "reallocate", "g", channel="Web", customerGroup="Normal")
    page.locator("#f-reallocate-quantity").fill("2")
    page.get_by_role("button", name="Reallocate", exact=True).click()

    expect(page.get_by_role("status")).to_contain_text("Moved 2 from Web › VIP to Web › Normal")
    expect(page.locator('details[data-path="Web › VIP"] > summary')).to_contain_text("allocated 4")
    expect(page.locator('details[data-path="Web › Normal"] > summary')).to_contain_text(
        "allocated 2"
    )
    expect(page.locator("#pool-here")).to_have_text("24")


def test_the_on_hand_explorer_downloads_its_rows_as_csv(page: Page, site: Site) -> None:
    product = new_product()
    site.stock(product, 7, colorId="red")
    site.stock(product, 3, colorId="blue")
    sign_in(page, site, "reader")
    page.goto(f"{site.url}/onhand")
    page.get_by_label("Organizations").fill("usmf")
    page.get_by_label("Products").fill(product)
    page.get_by_label("Group by color").check()
    page.get_by_role("button", name="Query").click()
    expect(page.get_by_role("heading", name="2 rows")).to_be_visible()
    screenshot(page, "onhand")

    with page.expect_download() as waiting:
        page.get_by_role("link", name="Download CSV").click()
    download = waiting.value
    text = download.path().read_text(encoding="utf-8")

    rows = list(csv.DictReader(io.StringIO(text)))
    assert download.suggested_filename == "ringfence-onhand.csv"
    assert {row["colorId"]: row["pos.inbound"] for row in rows} == {"red": "7", "blue": "3"}
    assert all(row["productId"] == product for row in rows)


def test_a_configuration_validation_error_is_shown_inline(page: Page, site: Site) -> None:
    sign_in(page, site, "admin")
    page.goto(f"{site.url}/configuration")
    document = page.get_by_label("Configuration document")
    text = document.input_value()
    broken = text.replace('"inbound",', '"inbound", "inbound",', 1)
    assert broken != text
    document.fill(broken)
    page.get_by_role("button", name="Validate and activate").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("invalid-configuration")
    expect(alert).to_contain_text("dataSources.pos.measures[1]")
    expect(page.get_by_label("Configuration document")).to_have_value(broken)
    screenshot(page, "configuration-error")


def test_a_reader_sees_no_button_that_would_change_anything(page: Page, site: Site) -> None:
    product = new_product()
    site.stock(product, 5)
    allocate(site, product, 1, channel="Store")
    sign_in(page, site, "reader")
    for path in (
        f"/workbench?{urlencode({**STORE, 'productId': product})}",
        "/dashboard",
        "/reservations",
        "/configuration",
        "/journal",
        "/onhand?organizationId=usmf",
    ):
        page.goto(site.url + path)
        posting = page.locator("form[method=post]")
        expect(posting).to_have_count(1)  # signing out only
        expect(posting.get_by_role("button")).to_have_text("Sign out")
    expect(page.get_by_role("button", name="Allocate")).to_have_count(0)


def test_a_token_narrowed_to_a_channel_sees_only_its_subtree(page: Page, site: Site) -> None:
    product = new_product()
    site.stock(product, 20)
    allocate(site, product, 3, channel="Store")
    allocate(site, product, 4, channel="Web", customerGroup="VIP")
    sign_in(page, site, "web-planner")
    open_workbench(page, site, product)

    expect(page.locator('details[data-path="Web › VIP"]')).to_be_visible()
    expect(page.locator('details[data-path="Store"]')).to_have_count(0)

    fill_path(page, "allocate", channel="Store")
    page.locator("#f-allocate-quantity").fill("1")
    page.get_by_role("button", name="Allocate", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("group-out-of-scope")
