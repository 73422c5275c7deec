"""The web workbench over real HTTP (in-process app, SQLite and PostgreSQL): sign-in sessions,
CSRF, security headers, labelled pages, role-aware forms and every form's effect through the API.

Stock is received as ``pos.inbound`` at (site 1, location 11, red) of usmf's T-shirt unless a test
says otherwise; the API's answers (allocation query, reservations, journal, configuration) are the
witnesses of what a form changed or left alone.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote, urlencode

import httpx
import pytest

from ringfence.domain.access import Principal
from ringfence.services.ports import UnitOfWorkFactory
from ringfence.services.tokens import revoke_token
from tests.conftest import TokenFactory
from tests.integration.support import (
    Api,
    Json,
    Snapshot,
    event,
    exact,
    new_id,
    reservations,
    reserve_body,
    unreserve_body,
)
from tests.integration.web_support import Browser, Page, parse_page, query_of, set_cookie

pytestmark = pytest.mark.asyncio

RED = {"siteId": "1", "locationId": "11", "colorId": "red"}
BLUE = {"siteId": "1", "locationId": "11", "colorId": "blue"}
SELECTION = {"organizationId": "usmf", "productId": "T-shirt", **RED}
WORKBENCH = "/workbench?" + urlencode(SELECTION)
WEB = {"channel": "Web"}
WEB_VIP = {"channel": "Web", "customerGroup": "VIP"}
STORE = {"channel": "Store"}
ARROW = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} "
SALE = "pos.outbound:Addition"
ORDER_LINE = "@iv.@softreserved:Addition"

PAGES = [
    "/dashboard",
    "/workbench",
    "/workbench?organizationId=usmf&productId=T-shirt&siteId=1&locationId=11",
    WORKBENCH,
    "/onhand",
    "/onhand?organizationId=usmf",
    "/onhand?organizationId=usmf&productId=T-shirt&groupBy=colorId&groupBy=sizeId",
    "/reservations",
    "/reservations?open=on&organizationId=usmf&productId=T-shirt",
    "/configuration",
    "/configuration?version=1",
    "/journal",
    "/journal?kind=allocate&productId=T-shirt&organizationId=usmf&since=2020-01-01T00:00",
]

SignIn = Callable[..., Awaitable[Browser]]


# -- fixtures and helpers ------------------------------------------------------------------------


def _token(headers: Mapping[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def sign_in(client: httpx.AsyncClient, auth: TokenFactory) -> SignIn:
    """``await sign_in("planner", groups=[...])``: a browser signed in with a new token."""

    async def browser(role: str = "admin", **options: object) -> Browser:
        signed_in = Browser(client)
        response = await signed_in.sign_in(_token(await auth(role, **options)))
        assert response.status_code == 303, response.text
        assert signed_in.session
        return signed_in

    return browser


@pytest.fixture
async def planner(api: Api, auth: TokenFactory) -> Api:
    """API calls with a planner token named ``api-planner``."""
    return Api(api.client, api.environment_id, await auth("planner", name="api-planner"))


async def _stock(
    api: Api, quantity: int | str, dimensions: Mapping[str, str] = RED, product: str = "T-shirt"
) -> None:
    response = await api.post(
        "/onhand",
        event(quantities={"pos": {"inbound": quantity}}, dimensions=dimensions, product=product),
    )
    assert response.status_code == 200, response.text


async def _allocate(planner: Api, quantity: int, groups: Mapping[str, str]) -> None:
    body = {
        "id": new_id("allocate"),
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": RED,
        "groups": dict(groups),
        "quantity": quantity,
    }
    response = await planner.post("/allocation/allocate", body)
    assert response.status_code == 200, response.text


async def _reserve(api: Api, quantity: int) -> str:
    response = await api.post("/onhand/reserve", reserve_body(quantity=quantity))
    assert response.status_code == 200, response.text
    reservation_id: str = response.json()["reservationId"]
    return reservation_id


async def _paths(api: Api) -> dict[tuple[str, ...], Json]:
    """The allocation query's rows at (1, 11, red) by their group values."""
    body = {"organizationId": "usmf", "productId": "T-shirt", "dimensions": RED, "groups": {}}
    response = await api.post("/allocation/query", body)
    assert response.status_code == 200, response.text
    return {tuple(row["groups"].values()): row for row in exact(response)["allocations"]}


async def _version(api: Api) -> int:
    response = await api.get("/configuration")
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


@dataclass(frozen=True)
class _State:
    """Everything a refused form must leave alone."""

    snapshot: Snapshot
    reservations: list[Json]
    paths: dict[tuple[str, ...], Json]
    configuration: Json


async def _state(api: Api) -> _State:
    configuration = await api.get("/configuration")
    assert configuration.status_code == 200, configuration.text
    return _State(
        await api.snapshot(), await reservations(api), await _paths(api), exact(configuration)
    )


async def _filled(api: Api, planner: Api) -> str:
    """Stock, an allocation tree, a consumption, an open and a released reservation; returns the
    open reservation's id."""
    await _stock(api, 10)
    await _stock(api, 4, BLUE)
    await _allocate(planner, 5, WEB_VIP)
    await _allocate(planner, 2, STORE)
    response = await api.post(
        "/allocation/consume",
        {
            "id": new_id("consume"),
            "organizationId": "usmf",
            "productId": "T-shirt",
            "dimensions": RED,
            "groups": WEB_VIP,
            "quantity": 1,
            "physicalMeasures": {"pos": {"outbound": "Addition"}},
        },
    )
    assert response.status_code == 200, response.text
    released = await _reserve(api, 1)
    response = await api.post("/onhand/unreserve", unreserve_body(released, 1))
    assert response.status_code == 200, response.text
    return await _reserve(api, 2)


def _assert_security_headers(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    directives = {part.strip().split()[0]: part.strip() for part in policy.split(";") if part}
    assert directives["frame-ancestors"] == "frame-ancestors 'none'", policy
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "no-store" in response.headers["cache-control"]


def _html(response: httpx.Response, status: int) -> Page:
    assert response.status_code == status, (response.status_code, response.text[:3000])
    assert response.headers["content-type"].startswith("text/html"), response.headers
    _assert_security_headers(response)
    return parse_page(response.text)


def _refused(response: httpx.Response, status: int) -> Page:
    """A form shown again with the server's reason: an ordinary page (200, so that browsers log
    no error); ``status`` is what the API would answer, kept to document each case."""
    del status
    return _html(response, 200)


def _sign_in_redirect(target: str, *, expired: bool = False) -> str:
    return f"/signin?next={quote(target, safe='')}" + ("&expired=1" if expired else "")


# -- sign in and out -----------------------------------------------------------------------------


async def test_home_without_a_session_redirects_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await Browser(client).get("/")

    assert response.status_code == 303
    assert response.headers["location"] == "/signin"


async def test_sign_in_page_is_html_with_a_labelled_password_field_for_the_token(
    client: httpx.AsyncClient,
) -> None:
    page = _html(await Browser(client).get("/signin"), 200)

    form = page.form("/signin")
    token = form.control("token")
    assert token.type == "password"
    assert token.attrs["id"] in page.label_targets
    assert "Sign in" in form.buttons
    assert page.unlabelled() == []
    assert form.values()["next"] == "/dashboard"


async def test_signing_in_sets_an_http_only_lax_session_cookie_and_opens_the_dashboard(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    token = _token(await auth("planner", name="web-planner"))
    browser = Browser(client)

    response = await browser.sign_in(token)

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = set_cookie(response)
    assert cookie is not None
    assert len(cookie[""]) >= 32
    assert token not in response.headers.get("set-cookie", "")  # the cookie holds a session id
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert "secure" not in cookie  # over plain http a Secure cookie would never come back
    assert int(cookie["max-age"]) > 0
    dashboard = _html(await browser.get("/dashboard"), 200)
    assert "web-planner" in dashboard.text
    assert [form.action for form in dashboard.post_forms] == ["/signout"]
    home = await browser.get("/")
    assert (home.status_code, home.headers["location"]) == (303, "/dashboard")


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        pytest.param("/workbench?organizationId=usmf&productId=T-shirt",
                     "/workbench?organizationId=usmf&productId=T-shirt", id="own-page"),
        pytest.param("/journal", "/journal", id="own-path"),
        pytest.param("https://evil.example/steal", "/dashboard", id="absolute-url"),
        pytest.param("//evil.example/steal", "/dashboard", id="scheme-relative"),
        pytest.param("javascript:alert(1)", "/dashboard", id="javascript"),
        pytest.param("", "/dashboard", id="empty"),
    ],
)  # fmt: skip
async def test_signing_in_goes_to_a_safe_next_path_only(
    client: httpx.AsyncClient, auth: TokenFactory, next_url: str, expected: str
) -> None:
    response = await Browser(client).sign_in(_token(await auth("reader")), next_url)

    assert response.status_code == 303
    assert response.headers["location"] == expected
    assert set_cookie(response) is not None


async def test_signing_in_with_a_backslash_next_path_stays_on_this_site(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    response = await Browser(client).sign_in(_token(await auth("reader")), "/\\evil.example/x")

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/")
    assert not location.startswith(("//", "/\\"))  # browsers read "/\" as "//"


async def test_a_sign_in_page_offering_an_external_next_keeps_only_a_safe_one(
    client: httpx.AsyncClient,
) -> None:
    page = _html(await Browser(client).get("/signin", {"next": "//evil.example/x"}), 200)

    assert page.form("/signin").values()["next"] == "/dashboard"


@pytest.mark.parametrize("token", ["tampered", "", "rf_not-a-token", "wrong"])
async def test_a_wrong_token_answers_401_with_the_page_and_an_error_and_sets_no_cookie(
    client: httpx.AsyncClient, auth: TokenFactory, token: str
) -> None:
    valid = _token(await auth("admin"))
    browser = Browser(client)

    response = await browser.sign_in(valid[:-3] + "xyz" if token == "tampered" else token)

    page = _refused(response, 401)
    assert set_cookie(response) is None
    assert browser.session is None
    assert "invalid-token" in page.text
    assert page.form("/signin").control("token").value == ""  # a secret is never echoed
    assert valid not in response.text


@pytest.mark.parametrize(
    "target",
    [
        "/dashboard",
        "/workbench?organizationId=usmf&productId=T-shirt&siteId=1",
        "/onhand?organizationId=usmf",
        "/onhand.csv?organizationId=usmf",
        "/reservations",
        "/configuration?version=1",
        "/journal?kind=allocate",
    ],
)
async def test_pages_without_a_session_redirect_to_sign_in_with_the_page_as_next(
    client: httpx.AsyncClient, auth: TokenFactory, target: str
) -> None:
    anonymous = await Browser(client).get(target)
    unknown = await Browser(client, "not-a-session").get(target)

    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == _sign_in_redirect(target)
    assert unknown.status_code == 303
    assert unknown.headers["location"] == _sign_in_redirect(target, expired=True)
    browser = Browser(client)
    signed_in = await browser.sign_in(
        _token(await auth("admin")), query_of(anonymous.headers["location"])["next"]
    )
    assert signed_in.headers["location"] == target


async def test_signing_out_deletes_the_session_so_the_old_cookie_no_longer_works(
    sign_in: SignIn,
) -> None:
    browser = await sign_in("reader")
    page = await browser.page("/dashboard")
    old = browser.session

    response = await browser.submit(page.form("/signout"))

    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    cookie = set_cookie(response)
    assert cookie is not None
    assert cookie[""] == ""
    assert cookie.get("max-age") == "0" or "1970" in cookie.get("expires", "")
    again = await Browser(browser.client, old).get("/dashboard")
    assert again.status_code == 303
    assert again.headers["location"] == _sign_in_redirect("/dashboard", expired=True)


@pytest.mark.parametrize("csrf", [None, "", "forged"])
async def test_signing_out_without_the_csrf_field_is_refused_with_csrf_failed(
    sign_in: SignIn, csrf: str | None
) -> None:
    browser = await sign_in("reader")

    response = await browser.post("/signout", {} if csrf is None else {"csrf": csrf})

    page = _html(response, 403)
    assert "csrf-failed" in page.text
    assert set_cookie(response) is None
    await browser.page("/dashboard")  # still signed in


async def test_revoking_the_token_ends_its_sessions_at_once(
    sign_in: SignIn, uow: UnitOfWorkFactory, environment_id: str
) -> None:
    browser = await sign_in("planner", name="web-revoked")
    await browser.page("/workbench")

    await revoke_token(uow, Principal.operator(environment_id), "web-revoked")

    response = await browser.get("/workbench?organizationId=usmf")
    assert response.status_code == 303
    assert response.headers["location"] == _sign_in_redirect(
        "/workbench?organizationId=usmf", expired=True
    )
    page = _html(await browser.get(response.headers["location"]), 200)
    assert "session has ended" in page.text
    signed_out = await browser.post("/signout", {"csrf": "x"})
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/signin")


async def test_a_revoked_token_cannot_sign_in(
    client: httpx.AsyncClient, auth: TokenFactory, uow: UnitOfWorkFactory, environment_id: str
) -> None:
    token = _token(await auth("admin", name="web-gone"))
    await revoke_token(uow, Principal.operator(environment_id), "web-gone")

    response = await Browser(client).sign_in(token)

    _refused(response, 401)
    assert set_cookie(response) is None


# -- headers, labels, rendering ------------------------------------------------------------------


@pytest.mark.parametrize("target", PAGES)
async def test_every_page_renders_for_an_admin_with_security_headers_and_labelled_controls(
    api: Api, planner: Api, sign_in: SignIn, target: str
) -> None:
    await _filled(api, planner)
    browser = await sign_in("admin")

    page = _html(await browser.get(target), 200)

    assert page.unlabelled() == []
    assert page.inline_code == []  # the CSP would block inline scripts and styles
    assert "Sign out" in page.form("/signout").buttons


async def test_refusals_and_sign_in_pages_send_the_security_headers_too(
    client: httpx.AsyncClient, api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 1)
    browser = await sign_in("planner")
    anonymous = Browser(client)

    form = (await browser.page(WORKBENCH)).form("/workbench/allocate")
    pages = {
        "sign-in": await anonymous.get("/signin"),
        "wrong token": await anonymous.post("/signin", {"token": "nope"}),
        "csrf refused": await browser.post("/workbench/allocate", {**SELECTION, "quantity": "1"}),
        "refused allocate": await browser.submit(form, {"g-channel": "Web", "quantity": "2"}),
        "invalid since": await browser.get("/journal?since=not-a-date"),
        "unknown version": await browser.get("/configuration?version=99"),
    }

    for name, response in pages.items():
        assert response.headers["content-type"].startswith("text/html"), name
        _assert_security_headers(response)
    assert pages["csrf refused"].status_code == 403
    assert pages["unknown version"].status_code == 404


@pytest.mark.parametrize(
    "target",
    ["/dashboard?page=abc", "/configuration?version=abc", "/signin?expired=yes"],
)
async def test_a_page_with_a_malformed_query_parameter_answers_an_html_page_not_json(
    sign_in: SignIn, target: str
) -> None:
    browser = await sign_in("reader")

    response = await browser.get(target)

    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("text/html"), response.text
    _assert_security_headers(response)


async def test_typed_text_and_notices_are_escaped_not_executed(sign_in: SignIn) -> None:
    browser = await sign_in("admin")
    script = "<script>alert(1)</script>"

    notice = await browser.page("/workbench", {"notice": script, "organizationId": script})
    form = (await browser.page("/configuration")).form("/configuration")
    typed = '{"x": "</textarea>' + script + '"'
    refused = parse_page((await browser.submit(form, {"document": typed})).text)

    assert notice.inline_code == []
    assert script in notice.text
    assert refused.inline_code == []
    assert refused.form("/configuration").control("document").value == typed


async def test_an_organization_scoped_token_sees_no_other_organization_on_any_page(
    api: Api, sign_in: SignIn
) -> None:
    for organization, product in (("usmf", "UsmfShirt"), ("contoso", "ContosoShirt")):
        response = await api.post(
            "/onhand",
            event(quantities={"pos": {"inbound": 5}}, organization=organization, product=product),
        )
        assert response.status_code == 200, response.text
        body = reserve_body(organization=organization, product=product)
        assert (await api.post("/onhand/reserve", body)).status_code == 200
    browser = await sign_in("admin", organizations=["contoso"])

    for target in ("/dashboard", "/workbench", "/onhand", "/reservations", "/journal",
                   "/onhand?organizationId=contoso,usmf"):  # fmt: skip
        page = await browser.page(target)
        assert "UsmfShirt" not in page.html, target
        assert "ContosoShirt" in page.html or target == "/onhand", target
    refused = await browser.page("/onhand?organizationId=usmf")
    assert "organization-out-of-scope" in refused.text
    csv_refused = await browser.get("/onhand.csv?organizationId=usmf")
    assert csv_refused.status_code == 403
    assert "UsmfShirt" not in csv_refused.text


# -- CSRF on every form --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Action:
    path: str
    role: str
    fields: Callable[[str, Json], dict[str, str]]


def _configuration_fields(_: str, current: Json) -> dict[str, str]:
    """The current configuration with one more ``pos`` measure: a valid change."""
    document = copy.deepcopy(current)
    version = document.pop("version")
    document["dataSources"]["pos"]["measures"].append("damaged")
    return {"document": json.dumps(document), "version": str(version)}


ACTIONS = [
    _Action(
        "/workbench/allocate",
        "planner",
        lambda _, __: {**SELECTION, "g-channel": "Web", "quantity": "1", "id": "csrf-allocate"},
    ),
    _Action(
        "/workbench/consume",
        "writer",
        lambda _, __: {
            **SELECTION,
            "g-channel": "Web",
            "g-customerGroup": "VIP",
            "quantity": "1",
            "consume_as": SALE,
            "id": "csrf-consume",
        },
    ),
    _Action(
        "/reservations/reserve",
        "writer",
        lambda _, __: {**SELECTION, "quantity": "1", "check": "on", "id": "csrf-reserve"},
    ),
    _Action(
        "/reservations/unreserve",
        "writer",
        lambda reservation, _: {
            "organizationId": "usmf",
            "reservationId": reservation,
            "quantity": "1",
            "id": "csrf-unreserve",
        },
    ),
    _Action("/configuration", "admin", _configuration_fields),
    _Action("/signout", "reader", lambda _, __: {}),
]


@pytest.mark.parametrize("action", ACTIONS, ids=[action.path for action in ACTIONS])
async def test_every_post_form_without_the_right_csrf_token_is_refused_and_changes_nothing(
    api: Api, planner: Api, sign_in: SignIn, action: _Action
) -> None:
    reservation = await _filled(api, planner)
    browser = await sign_in(action.role)
    other = await sign_in(action.role)
    other_csrf = (await other.page("/dashboard")).form("/signout").values()["csrf"]
    before = await _state(api)
    fields = action.fields(reservation, (await api.get("/configuration")).json())

    for csrf in (None, "", "x" * 43, other_csrf):
        sent = fields if csrf is None else {**fields, "csrf": csrf}
        page = _html(await browser.post(action.path, sent), 403)
        assert "csrf-failed" in page.text, csrf

    assert await _state(api) == before
    own_csrf = (await browser.page("/dashboard")).form("/signout").values()["csrf"]
    assert own_csrf != other_csrf  # each session has its own
    accepted = await browser.post(action.path, {**fields, "csrf": own_csrf})
    assert accepted.status_code == 303, accepted.text  # the same form with its token works
    if action.path != "/signout":
        assert await _state(api) != before


# -- role-awareness ------------------------------------------------------------------------------


async def test_a_reader_sees_no_form_that_would_change_anything(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _filled(api, planner)
    browser = await sign_in("reader")

    for target in PAGES:
        page = await browser.page(target)
        assert [form.action for form in page.post_forms] == ["/signout"], target
        for word in ("Allocate", "Unallocate", "Reallocate", "Consume", "Reserve", "Release",
                     "Validate and activate"):  # fmt: skip
            assert word not in page.buttons, (target, word)
    workbench = await browser.page(WORKBENCH)
    assert f"Web{ARROW}VIP" in workbench.tree_paths  # a reader still sees the figures


async def test_a_writer_workbench_offers_consume_but_not_allocate_unallocate_or_reallocate(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    browser = await sign_in("writer")

    page = await browser.page(WORKBENCH)

    assert sorted(form.action for form in page.post_forms) == ["/signout", "/workbench/consume"]
    assert "Consume" in page.buttons
    assert not {"Allocate", "Unallocate", "Reallocate"} & set(page.buttons)


async def test_a_planner_workbench_offers_all_four_actions(api: Api, sign_in: SignIn) -> None:
    await _stock(api, 10)
    browser = await sign_in("planner")

    page = await browser.page(WORKBENCH)

    assert sorted(form.action for form in page.post_forms) == [
        "/signout",
        "/workbench/allocate",
        "/workbench/consume",
        "/workbench/reallocate",
        "/workbench/unallocate",
    ]
    assert {"Allocate", "Unallocate", "Reallocate", "Consume"} <= set(page.buttons)
    choices = [value for value, _ in page.form("/workbench/consume").control("consume_as").options]
    assert SALE in choices
    assert ORDER_LINE in choices


@pytest.mark.parametrize("role", ["reader", "writer", "planner"])
async def test_only_an_admin_sees_the_configuration_edit_form(sign_in: SignIn, role: str) -> None:
    browser = await sign_in(role)
    admin = await sign_in("admin")

    page = await browser.page("/configuration")
    admin_page = await admin.page("/configuration")

    assert [form.action for form in page.post_forms] == ["/signout"]
    assert "f-document" not in {control.attrs.get("id") for control in page.controls}
    assert "Validate and activate" in admin_page.form("/configuration").buttons


async def test_a_planner_posting_the_configuration_form_anyway_is_refused_with_the_reason_shown(
    api: Api, sign_in: SignIn
) -> None:
    browser = await sign_in("planner")
    csrf = (await browser.page("/configuration")).form("/signout").values()["csrf"]
    fields = _configuration_fields("", (await api.get("/configuration")).json())

    refused = await browser.post("/configuration", {**fields, "csrf": csrf})

    assert "insufficient-role" in _refused(refused, 403).text
    assert await _version(api) == 1


@pytest.mark.parametrize(
    ("role", "path", "fields"),
    [
        ("writer", "/workbench/allocate", {**SELECTION, "g-channel": "Web", "quantity": "1"}),
        ("writer", "/workbench/reallocate",
         {**SELECTION, "s-channel": "Web", "g-channel": "Store", "quantity": "1"}),
        ("reader", "/workbench/consume",
         {**SELECTION, "g-channel": "Web", "quantity": "1", "consume_as": SALE}),
        ("reader", "/reservations/reserve", {**SELECTION, "quantity": "1"}),
    ],
)  # fmt: skip
async def test_a_form_posted_without_the_role_is_refused_with_insufficient_role_shown(
    api: Api, planner: Api, sign_in: SignIn, role: str, path: str, fields: dict[str, str]
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    browser = await sign_in(role)
    csrf = (await browser.page("/dashboard")).form("/signout").values()["csrf"]
    before = await _state(api)

    response = await browser.post(path, {**fields, "csrf": csrf})

    assert "insufficient-role" in _html(response, 403).text
    assert await _state(api) == before


# -- workbench actions through the forms ---------------------------------------------------------


async def test_allocating_through_the_form_redirects_with_a_notice_and_the_api_shows_it(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    browser = await sign_in("planner")
    form = (await browser.page(WORKBENCH)).form("/workbench/allocate")

    response = await browser.submit(
        form, {"g-channel": "Web", "g-customerGroup": "VIP", "quantity": "4"}
    )

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/workbench?")
    query = query_of(location)
    assert {name: query.get(name) for name in SELECTION} == SELECTION
    assert "4" in query["notice"]
    assert "VIP" in query["notice"]
    paths = await _paths(api)
    assert paths[("Web", "VIP")]["allocated"] == 4
    assert paths[("Web", "VIP")]["cumulativeAllocated"] == 4
    page = await browser.page(location)
    assert query["notice"] in page.text
    assert page.tree_paths == ["Web", f"Web{ARROW}VIP"]
    [_, here, *_] = page.table("pool")
    assert here[1] == "6"


async def test_the_same_allocate_form_posted_twice_allocates_once(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    browser = await sign_in("planner")
    form = (await browser.page(WORKBENCH)).form("/workbench/allocate")
    typed = {"g-channel": "Web", "quantity": "3"}

    first = await browser.submit(form, typed)
    second = await browser.submit(form, typed)

    assert (first.status_code, second.status_code) == (303, 303)
    assert (await _paths(api))[("Web",)]["allocated"] == 3
    assert len(await api.journal(kind="allocate")) == 1
    fresh = (await browser.page(WORKBENCH)).form("/workbench/allocate")
    assert fresh.values()["id"] != form.values()["id"]  # a new form is a new operation


async def test_a_refused_consume_shows_insufficient_allocated_next_to_the_form_and_keeps_it(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 2, WEB)
    browser = await sign_in("planner")
    form = (await browser.page(WORKBENCH)).form("/workbench/consume")
    before = await _state(api)

    response = await browser.submit(form, {"g-channel": "Web", "quantity": "3", "consume_as": SALE})

    page = _refused(response, 409)
    assert "insufficient-allocated" in page.sections["consume-title"]
    assert "insufficient-allocated" not in page.sections["allocate-title"]
    kept = page.form("/workbench/consume")
    assert kept.control("quantity").value == "3"
    assert kept.control("g-channel").value == "Web"
    assert kept.values()["consume_as"] == SALE
    assert kept.values()["id"] == form.values()["id"]
    assert await _state(api) == before


async def test_a_refused_consume_keeps_the_chosen_reservation_measure(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 2, WEB)
    browser = await sign_in("writer")
    form = (await browser.page(WORKBENCH)).form("/workbench/consume")

    response = await browser.submit(
        form, {"g-channel": "Web", "quantity": "2.5", "consume_as": ORDER_LINE}
    )

    kept = _refused(response, 409).form("/workbench/consume")
    assert kept.values()["consume_as"] == ORDER_LINE
    assert kept.control("quantity").value == "2.5"
    assert await reservations(api) == []


async def test_a_refused_allocate_shows_insufficient_available_to_allocate_and_keeps_the_form(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    browser = await sign_in("planner")
    form = (await browser.page(WORKBENCH)).form("/workbench/allocate")

    response = await browser.submit(
        form, {"g-channel": "Web", "g-customerGroup": "VIP", "quantity": "10.5"}
    )

    page = _refused(response, 409)
    assert "insufficient-available-to-allocate" in page.sections["allocate-title"]
    kept = page.form("/workbench/allocate")
    assert kept.control("quantity").value == "10.5"
    assert (kept.control("g-channel").value, kept.control("g-customerGroup").value) == (
        "Web",
        "VIP",
    )
    assert await _paths(api) == {}
    corrected = await browser.submit(kept, {"quantity": "4"})  # the same form, fixed
    assert corrected.status_code == 303
    assert (await _paths(api))[("Web", "VIP")]["allocated"] == 4


async def test_unallocating_through_the_form_returns_quantity_to_the_pool(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    browser = await sign_in("planner")
    form = (await browser.page(WORKBENCH)).form("/workbench/unallocate")

    response = await browser.submit(form, {"g-channel": "Web", "quantity": "2"})

    assert response.status_code == 303
    row = (await _paths(api))[("Web",)]
    assert (row["allocated"], row["cumulativeAllocated"]) == (3, 5)


async def test_reallocating_through_the_form_moves_quantity_between_paths(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB_VIP)
    browser = await sign_in("planner")
    form = (await browser.page(WORKBENCH)).form("/workbench/reallocate")

    response = await browser.submit(
        form,
        {"s-channel": "Web", "s-customerGroup": "VIP", "g-channel": "Store", "quantity": "2"},
    )

    assert response.status_code == 303
    assert "notice" in query_of(response.headers["location"])
    paths = await _paths(api)
    assert paths[("Web", "VIP")]["allocated"] == 3
    assert paths[("Store",)]["allocated"] == 2
    page = await browser.page(response.headers["location"])
    assert {"Store", f"Web{ARROW}VIP"} <= set(page.tree_paths)


async def test_consuming_as_a_sale_through_the_form_moves_allocated_to_consumed(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    browser = await sign_in("writer")
    form = (await browser.page(WORKBENCH)).form("/workbench/consume")

    response = await browser.submit(form, {"g-channel": "Web", "quantity": "2", "consume_as": SALE})

    assert response.status_code == 303
    row = (await _paths(api))[("Web",)]
    assert (row["allocated"], row["consumed"]) == (3, 2)
    assert await api.measure("pos.outbound") == 2


async def test_consuming_into_the_reservation_measure_makes_a_reservation_listed_on_its_page(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 5, WEB)
    browser = await sign_in("writer")
    form = (await browser.page(WORKBENCH)).form("/workbench/consume")

    response = await browser.submit(
        form, {"g-channel": "Web", "quantity": "3", "consume_as": ORDER_LINE}
    )

    assert response.status_code == 303
    [listed] = await reservations(api)
    assert (listed["origin"], listed["reserved"], listed["remaining"]) == ("consume", 3, 3)
    assert listed["reservationId"] in query_of(response.headers["location"])["notice"]
    page = await browser.page("/reservations")
    assert listed["reservationId"] in page.sections["list-title"]
    row = (await _paths(api))[("Web",)]
    assert (row["allocated"], row["consumed"]) == (2, 3)


# -- a token narrowed to a group prefix ----------------------------------------------------------


async def test_a_group_scoped_workbench_shows_only_its_subtree(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 3, STORE)
    await _allocate(planner, 2, WEB_VIP)
    browser = await sign_in("planner", groups=["channel=Web"])

    page = await browser.page(WORKBENCH)
    dashboard = await browser.page("/dashboard")

    assert page.tree_paths == ["Web", f"Web{ARROW}VIP"]
    assert "Store" not in page.sections["tree"]
    assert "Store" not in dashboard.text
    unscoped = await sign_in("planner")
    assert "Store" in (await unscoped.page(WORKBENCH)).tree_paths
    assert "Store" in (await unscoped.page("/dashboard")).text


async def test_a_group_scoped_planner_allocating_to_another_channel_is_refused_on_the_page(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _allocate(planner, 3, STORE)
    browser = await sign_in("planner", groups=["channel=Web"])
    form = (await browser.page(WORKBENCH)).form("/workbench/allocate")
    before = await _state(api)

    response = await browser.submit(form, {"g-channel": "Store", "quantity": "1"})

    page = _refused(response, 403)
    assert "group-out-of-scope" in page.sections["allocate-title"]
    assert page.form("/workbench/allocate").control("quantity").value == "1"
    assert await _state(api) == before
    allowed = await browser.submit(form, {"g-channel": "Web", "quantity": "1"})
    assert allowed.status_code == 303


# -- on-hand explorer ----------------------------------------------------------------------------


async def _measure_names(api: Api) -> list[str]:
    configuration = (await api.get("/configuration")).json()
    physical = [
        f"{source}.{measure}"
        for source, body in configuration["dataSources"].items()
        for measure in body["measures"]
    ]
    return physical + list(configuration["calculatedMeasures"])


async def test_the_explorer_table_has_a_row_per_group_with_every_measure(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _stock(api, 4, BLUE)
    browser = await sign_in("reader")

    grouped = await browser.page("/onhand?organizationId=usmf&productId=T-shirt&groupBy=colorId")
    whole = await browser.page("/onhand?organizationId=usmf&productId=T-shirt")

    header, *rows = grouped.table("results")
    measures = await _measure_names(api)
    assert header[:4] == ["Product", "Site", "Location", "Color"]
    assert sorted(header[4:]) == sorted(measures)
    inbound = header.index("pos.inbound")
    available = header.index("@iv.@available_to_allocate")
    by_color = {row[3]: row for row in rows}
    assert sorted(by_color) == ["blue", "red"]
    assert all(len(row) == len(header) for row in rows)
    assert (by_color["red"][inbound], by_color["blue"][inbound]) == ("10", "4")
    assert by_color["red"][available] == "10"
    whole_header, *whole_rows = whole.table("results")
    assert [row[whole_header.index("pos.inbound")] for row in whole_rows] == ["14"]
    assert 'href="/onhand.csv?organizationId=usmf&amp;productId=T-shirt&amp;groupBy=colorId"' in (
        grouped.html
    )


async def test_the_csv_download_has_a_header_every_measure_and_exact_decimals(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, "0.000001")
    await _stock(api, "12345678.5", BLUE)
    browser = await sign_in("reader")

    response = await browser.get("/onhand.csv?organizationId=usmf&groupBy=colorId")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    header, *rows = list(csv.reader(io.StringIO(response.text)))
    assert header[:5] == ["organizationId", "productId", "siteId", "locationId", "colorId"]
    assert sorted(header[5:]) == sorted(await _measure_names(api))
    by_color = {row[4]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_color["red"]["pos.inbound"] == "0.000001"
    assert by_color["red"]["iv.onhand"] == "0.000001"
    assert by_color["blue"]["pos.inbound"] == "12345678.5"
    assert by_color["red"]["organizationId"] == "usmf"
    assert re.search(r"\d[eE][+-]?\d", response.text) is None  # no exponent anywhere


async def test_the_csv_download_without_grouping_has_one_row_per_location(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 3)
    await _stock(api, "0.5", BLUE)
    browser = await sign_in("reader")

    response = await browser.get("/onhand.csv?organizationId=usmf")

    header, *rows = list(csv.reader(io.StringIO(response.text)))
    assert header[:4] == ["organizationId", "productId", "siteId", "locationId"]
    assert [dict(zip(header, row, strict=True))["pos.inbound"] for row in rows] == ["3.5"]


# -- reservations --------------------------------------------------------------------------------


async def test_reserving_through_the_form_redirects_with_a_notice_and_lists_the_reservation(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    browser = await sign_in("writer")
    form = (await browser.page("/reservations")).form("/reservations/reserve")

    response = await browser.submit(form, {**SELECTION, "quantity": "4"})

    assert response.status_code == 303
    assert response.headers["location"].startswith("/reservations?")
    [listed] = await reservations(api)
    assert (listed["reserved"], listed["remaining"], listed["dimensions"]) == (4, 4, RED)
    notice = query_of(response.headers["location"])["notice"]
    assert listed["reservationId"] in notice
    page = await browser.page(response.headers["location"])
    assert notice in page.text
    assert listed["reservationId"] in page.sections["list-title"]


async def test_a_refused_reserve_answers_409_and_keeps_what_was_typed(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    browser = await sign_in("writer")
    form = (await browser.page("/reservations")).form("/reservations/reserve")

    response = await browser.submit(form, {**SELECTION, "quantity": "10.25"})

    page = _refused(response, 409)
    assert "insufficient-available-to-reserve" in page.sections["reserve-title"]
    kept = page.form("/reservations/reserve").values()
    assert {name: kept[name] for name in SELECTION} == SELECTION
    assert kept["quantity"] == "10.25"
    assert kept["check"] == "on"
    assert kept["id"] == form.values()["id"]
    assert await reservations(api) == []


async def test_releasing_through_the_row_form_offsets_the_reservation(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    reservation = await _reserve(api, 4)
    browser = await sign_in("writer")
    form = (await browser.page("/reservations")).form("/reservations/unreserve")
    assert form.values()["reservationId"] == reservation
    assert form.values()["quantity"] == "4"

    response = await browser.submit(form, {"quantity": "1.5"})

    assert response.status_code == 303
    [listed] = await reservations(api)
    assert (listed["offset"], listed["remaining"]) == (Decimal("1.5"), Decimal("2.5"))
    rest = (await browser.page("/reservations")).form("/reservations/unreserve")
    assert rest.values()["quantity"] == "2.5"
    assert (await browser.submit(rest)).status_code == 303
    page = await browser.page("/reservations")
    assert sorted(form.action for form in page.post_forms) == ["/reservations/reserve", "/signout"]
    assert (await reservations(api))[0]["remaining"] == 0


async def test_releasing_more_than_remains_releases_what_remains_and_says_so(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    reservation = await _reserve(api, 4)
    browser = await sign_in("writer")
    form = (await browser.page("/reservations")).form("/reservations/unreserve")

    response = await browser.submit(form, {"quantity": "5"})

    assert response.status_code == 303
    [listed] = await reservations(api)
    assert (listed["offset"], listed["remaining"]) == (4, 0)
    notice = query_of(response.headers["location"])["notice"]
    assert reservation in notice
    assert len(notice) > len(f"Released 5 of {reservation}.")  # the excess is reported


async def test_a_refused_release_shows_the_reason_in_the_list_and_keeps_the_typed_quantity(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    reservation = await _reserve(api, 4)
    browser = await sign_in("writer")
    form = (await browser.page("/reservations")).form("/reservations/unreserve")
    before = await reservations(api)

    response = await browser.submit(form, {"quantity": "four"})

    page = _refused(response, 422)
    assert "quantity" in page.sections["list-title"].lower()
    assert 'role="alert"' in page.html
    kept = page.form("/reservations/unreserve")
    assert kept.values()["reservationId"] == reservation
    assert kept.values()["quantity"] == "four"
    assert await reservations(api) == before


async def test_the_open_only_filter_hides_released_reservations(api: Api, sign_in: SignIn) -> None:
    await _stock(api, 10)
    released = await _reserve(api, 1)
    response = await api.post("/onhand/unreserve", unreserve_body(released, 1))
    assert response.status_code == 200, response.text
    kept = await _reserve(api, 2)
    browser = await sign_in("reader")

    everything = await browser.page("/reservations")
    open_only = await browser.page("/reservations?open=on")

    assert released in everything.sections["list-title"]
    assert kept in everything.sections["list-title"]
    assert released not in open_only.sections["list-title"]
    assert kept in open_only.sections["list-title"]
    assert open_only.form("/reservations", "get").values()["open"] == "on"


async def test_the_reservation_filters_by_product(api: Api, sign_in: SignIn) -> None:
    await _stock(api, 10)
    await _stock(api, 10, product="Jeans")
    shirt = await _reserve(api, 1)
    response = await api.post("/onhand/reserve", reserve_body(quantity=1, product="Jeans"))
    assert response.status_code == 200, response.text
    jeans = response.json()["reservationId"]
    browser = await sign_in("reader")

    page = await browser.page("/reservations?productId=Jeans")

    assert jeans in page.sections["list-title"]
    assert shirt not in page.sections["list-title"]


# -- configuration -------------------------------------------------------------------------------


async def _edit_form(browser: Browser) -> tuple[Json, dict[str, str]]:
    form = (await browser.page("/configuration")).form("/configuration")
    values = form.values()
    document: Json = json.loads(values["document"])
    return document, values


async def test_invalid_json_answers_422_with_the_error_and_keeps_the_typed_text(
    api: Api, sign_in: SignIn
) -> None:
    browser = await sign_in("admin")
    _, values = await _edit_form(browser)
    typed = '{"dataSources": {"pos": {"measures": ["inbound",]}}'

    response = await browser.post("/configuration", {**values, "document": typed})

    page = _refused(response, 422)
    assert "invalid-configuration" in page.sections["edit-title"]
    assert "line 1" in page.sections["edit-title"]
    assert page.form("/configuration").control("document").value == typed
    assert await _version(api) == 1


async def test_an_invalid_field_answers_422_with_its_path_and_keeps_the_typed_text(
    api: Api, sign_in: SignIn
) -> None:
    browser = await sign_in("admin")
    document, values = await _edit_form(browser)
    document["dataSources"]["pos"]["measures"] = ["inbound", "in bound"]
    typed = json.dumps(document, indent=2) + "\n\n"

    response = await browser.post("/configuration", {**values, "document": typed})

    page = _refused(response, 422)
    assert "dataSources.pos.measures[1]" in page.sections["edit-title"]
    assert page.form("/configuration").control("document").value == typed
    assert await _version(api) == 1


async def test_several_invalid_fields_are_all_listed(api: Api, sign_in: SignIn) -> None:
    browser = await sign_in("admin")
    document, values = await _edit_form(browser)
    document["dataSources"]["pos"]["measures"] = ["inbound", "in bound"]
    document["dataSources"]["pos"]["readOnly"] = "yes"
    document["colour"] = "red"

    response = await browser.post("/configuration", {**values, "document": json.dumps(document)})

    text = _refused(response, 422).sections["edit-title"]
    for path in ("dataSources.pos.measures[1]", "dataSources.pos.readOnly", "colour"):
        assert path in text


async def test_a_valid_change_activates_a_new_version_listed_in_the_history(
    api: Api, sign_in: SignIn
) -> None:
    browser = await sign_in("admin")
    document, values = await _edit_form(browser)
    document["dataSources"]["pos"]["measures"].append("damaged")

    response = await browser.post("/configuration", {**values, "document": json.dumps(document)})

    assert response.status_code == 303
    assert response.headers["location"].startswith("/configuration?")
    notice = query_of(response.headers["location"])["notice"]
    assert "2" in notice
    page = await browser.page(response.headers["location"])
    assert notice in page.text
    assert "Version 2 (active)" in page.sections["shown-title"]
    assert "Version 2" in page.sections["history-title"]
    assert "Version 1" in page.sections["history-title"]
    assert "damaged" in page.sections["shown-title"]
    assert page.form("/configuration").values()["version"] == "2"
    old = await browser.page("/configuration?version=1")
    assert "Version 1" in old.sections["shown-title"]
    assert "(active)" not in old.sections["shown-title"]
    assert "damaged" not in old.sections["shown-title"]
    configuration = (await api.get("/configuration")).json()
    assert configuration["version"] == 2
    assert "damaged" in configuration["dataSources"]["pos"]["measures"]


async def test_a_stale_version_answers_409_configuration_version_conflict(
    api: Api, sign_in: SignIn
) -> None:
    browser = await sign_in("admin")
    document, stale = await _edit_form(browser)
    changed = copy.deepcopy(document)
    changed["dataSources"]["pos"]["measures"].append("damaged")
    first = await browser.post("/configuration", {**stale, "document": json.dumps(changed)})
    assert first.status_code == 303
    document["dataSources"]["pos"]["measures"].append("returned")
    typed = json.dumps(document)

    response = await browser.post("/configuration", {**stale, "document": typed})

    page = _refused(response, 409)
    assert "configuration-version-conflict" in page.sections["edit-title"]
    assert page.form("/configuration").control("document").value == typed
    measures = (await api.get("/configuration")).json()["dataSources"]["pos"]["measures"]
    assert "damaged" in measures
    assert "returned" not in measures
    assert await _version(api) == 2


# -- journal -------------------------------------------------------------------------------------


def _journal_rows(page: Page) -> list[dict[str, str]]:
    header, *rows = page.table("entries-title")
    assert header[:5] == ["#", "When (UTC)", "Who", "What", "Product"]
    return [dict(zip(header, row, strict=True)) for row in rows]


async def test_the_journal_lists_entries_newest_first_with_actor_and_kind(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    browser = await sign_in("planner", name="web-journal-planner")
    form = (await browser.page(WORKBENCH)).form("/workbench/allocate")
    assert (await browser.submit(form, {"g-channel": "Web", "quantity": "2"})).status_code == 303

    rows = _journal_rows(await browser.page("/journal"))

    assert [row["Who"] for row in rows] == ["web-journal-planner", "integration-writer"]
    assert [row["What"].split()[0] for row in rows] == ["allocate", "onhand"]
    assert int(rows[0]["#"]) > int(rows[1]["#"])
    assert form.values()["id"] in rows[0]["What"]
    assert rows[0]["Product"].startswith("T-shirt")


async def test_the_journal_filters_by_kind_and_by_product(
    api: Api, planner: Api, sign_in: SignIn
) -> None:
    await _stock(api, 10)
    await _stock(api, 5, product="Jeans")
    await _allocate(planner, 2, WEB)
    browser = await sign_in("reader")

    allocations = _journal_rows(await browser.page("/journal?kind=allocate"))
    jeans = _journal_rows(await browser.page("/journal?productId=Jeans"))
    both = await browser.page("/journal?kind=onhand&productId=T-shirt")

    assert [(row["What"].split()[0], row["Who"]) for row in allocations] == [
        ("allocate", "api-planner")
    ]
    assert [row["Product"].split()[0] for row in jeans] == ["Jeans"]
    assert [row["Product"].split()[0] for row in _journal_rows(both)] == ["T-shirt"]
    assert both.form("/journal", "get").values()["kind"] == "onhand"
    nothing = await browser.page("/journal?kind=consume")
    assert not any(table.section == "entries-title" for table in nothing.tables)


async def test_an_invalid_since_answers_422_on_the_journal_page(api: Api, sign_in: SignIn) -> None:
    await _stock(api, 1)
    browser = await sign_in("reader")

    page = _refused(await browser.get("/journal?since=last-tuesday"), 422)

    assert "invalid-query" in page.sections["search-title"]
    assert "since" in page.sections["search-title"]
    assert page.form("/journal", "get").values()["since"] == "last-tuesday"
    assert not any(table.section == "entries-title" for table in page.tables)


async def test_the_journal_since_filter_accepts_the_browser_datetime_format(
    api: Api, sign_in: SignIn
) -> None:
    await _stock(api, 1)
    browser = await sign_in("reader")

    past = _journal_rows(await browser.page("/journal?since=2020-01-01T00:00"))
    future = await browser.page("/journal?since=2999-01-01T00:00")

    assert [row["What"].split()[0] for row in past] == ["onhand"]
    assert not any(table.section == "entries-title" for table in future.tables)
