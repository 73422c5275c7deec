"""The journal over HTTP: entries of accepted mutations, filters, paging; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import TokenFactory
from tests.integration.support import Api, Json, assert_problem, event, locations

pytestmark = pytest.mark.asyncio


async def _page(api: Api, url: str | None = None, **params: object) -> Json:
    response = await (
        api.client.get(url, headers=api.headers) if url else api.get("/journal", params)
    )
    assert response.status_code == 200, response.text
    page: Json = response.json()
    return page


async def _post_several(api: Api, count: int) -> list[str]:
    ids = [f"j{index}" for index in range(count)]
    for index, operation_id in enumerate(ids):
        response = await api.post("/onhand", event(operation_id, {"pos": {"inbound": index + 1}}))
        assert response.status_code == 200, response.text
    return ids


async def test_accepted_change_is_journaled_with_request_effects_and_result(api: Api) -> None:
    before = datetime.now().astimezone()
    body = event(
        "e1",
        {"pos": {"inbound": "10.50", "outbound": 1}},
        dimensions={"SITEID": "1", "locationId": "11", "colorId": "red"},
    )
    assert (await api.post("/onhand", body)).status_code == 200
    assert (await api.post("/onhand", event("e2", {"pos": {"inbound": "0.25"}}))).status_code == 200

    [first, second] = await api.journal()

    assert isinstance(first["sequence"], int)
    assert second["sequence"] > first["sequence"]
    recorded = datetime.fromisoformat(first["recordedAt"])
    assert recorded.tzinfo is not None
    assert before - timedelta(seconds=1) <= recorded <= datetime.now().astimezone()
    assert {
        key: value for key, value in first.items() if key not in ("sequence", "recordedAt")
    } == {
        "actor": "integration-writer",
        "kind": "onhand",
        "id": "e1",
        "organizationId": "usmf",
        "productId": "T-shirt",
        "request": {
            "id": "e1",
            "organizationId": "usmf",
            "productId": "T-shirt",
            "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
            "quantities": {"pos": {"inbound": Decimal("10.5"), "outbound": Decimal("1")}},
        },
        "effects": [
            {
                "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                "measure": "pos.inbound",
                "delta": Decimal("10.5"),
                "value": Decimal("10.5"),
            },
            {
                "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                "measure": "pos.outbound",
                "delta": Decimal("1"),
                "value": Decimal("1"),
            },
        ],
        "result": {"id": "e1", "processingStatus": "success", "message": "", "statusCode": 200},
    }
    assert second["effects"][0]["delta"] == Decimal("0.25")
    assert second["effects"][0]["value"] == Decimal("10.75")


async def test_count_is_journaled_with_its_time_and_what_it_superseded(api: Api) -> None:
    newer = event("c1", {"pos": {"inbound": 8}}, modifiedDateTimeUTC="2026-03-01T12:00:00Z")
    older = event("c2", {"pos": {"inbound": 3}}, modifiedDateTimeUTC="2026-03-01T10:00:00+00:00")
    assert (await api.post("/setonhand/pos/bulk", [newer])).status_code == 200
    assert (await api.post("/setonhand/pos/bulk", [older])).status_code == 200

    first, second = await api.journal(kind="setonhand")

    assert first["kind"] == "setonhand"
    assert datetime.fromisoformat(
        first["request"]["modifiedDateTimeUTC"]
    ) == datetime.fromisoformat("2026-03-01T12:00:00+00:00")
    assert first["effects"][0]["value"] == 8
    assert second["id"] == "c2"
    assert second["effects"] == []
    assert second["result"]["superseded"] == ["pos.inbound"]


async def test_refused_and_replayed_requests_are_not_journaled(
    api: Api, auth: TokenFactory
) -> None:
    accepted = event("kept", {"pos": {"inbound": 1}})
    assert (await api.post("/onhand", accepted)).status_code == 200

    await api.post("/onhand", accepted)
    await api.post("/onhand", event("kept", {"pos": {"inbound": 2}}))
    await api.post("/onhand", event("refused-measure", {"pos": {"sold": 1}}))
    await api.post("/onhand", event("refused-role"), headers=await auth("reader"))
    await api.post("/onhand", event("refused-token"), headers={})
    await api.post("/onhand/bulk", [event("bulk-ok"), event("bulk-bad", {"erp": {"inbound": 1}})])
    await api.post("/setonhand/pos/bulk", [event("count-bad", {"fno": {"availphysical": 1}})])

    assert [entry["id"] for entry in await api.journal()] == ["kept", "bulk-ok"]


async def test_journal_filters_by_product_kind_id_and_organization(api: Api) -> None:
    await api.post("/onhand", event("a1", product="A"))
    await api.post("/onhand", event("b1", product="B"))
    await api.post("/onhand", event("c1", product="A", organization="contoso"))
    await api.post("/setonhand/pos/bulk", [event("a1", product="A")])

    async def ids(**params: object) -> list[tuple[str, str]]:
        return [(entry["kind"], entry["id"]) for entry in await api.journal(**params)]

    assert await ids(productId="A") == [("onhand", "a1"), ("onhand", "c1"), ("setonhand", "a1")]
    assert await ids(kind="onhand") == [("onhand", "a1"), ("onhand", "b1"), ("onhand", "c1")]
    assert await ids(kind="setonhand") == [("setonhand", "a1")]
    assert await ids(id="a1") == [("onhand", "a1"), ("setonhand", "a1")]
    assert await ids(id="a1", kind="setonhand") == [("setonhand", "a1")]
    assert await ids(organizationId="contoso") == [("onhand", "c1")]
    assert await ids(productId="A", organizationId="usmf", kind="onhand") == [("onhand", "a1")]
    assert await ids(productId="nothing") == []


async def test_journal_filters_by_time(api: Api) -> None:
    await _post_several(api, 3)
    first, second, third = await api.journal()
    middle = datetime.fromisoformat(second["recordedAt"])
    assert datetime.fromisoformat(first["recordedAt"]) < middle

    async def ids(**params: object) -> list[str]:
        return [entry["id"] for entry in await api.journal(**params)]

    assert await ids(since=middle.isoformat()) == ["j1", "j2"]
    assert await ids(until=middle.isoformat()) == ["j0"]
    assert await ids(since=middle.isoformat(), until=third["recordedAt"]) == ["j1"]
    in_paris = middle.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+02:00").tzinfo)
    assert await ids(since=in_paris.isoformat()) == ["j1", "j2"]
    naive_utc = middle.replace(tzinfo=None).isoformat()
    assert await ids(since=naive_utc) == ["j1", "j2"]
    assert await ids(since=(middle + timedelta(days=1)).isoformat()) == []


async def test_journal_pages_follow_next_to_the_end(api: Api) -> None:
    ids = await _post_several(api, 5)

    pages: list[list[str]] = []
    page = await _page(api, limit=2)
    while True:
        pages.append([entry["id"] for entry in page["entries"]])
        if page["next"] is None:
            break
        assert "limit=2" in page["next"]
        page = await _page(api, page["next"])

    assert pages == [ids[0:2], ids[2:4], ids[4:5]]


async def test_journal_pages_newest_first(api: Api) -> None:
    ids = await _post_several(api, 5)

    newest = await _page(api, order="desc")
    first = await _page(api, order="desc", limit=3)
    rest = await _page(api, first["next"])

    assert [entry["id"] for entry in newest["entries"]] == ids[::-1]
    assert newest["next"] is None
    assert [entry["id"] for entry in first["entries"]] == ids[:1:-1]
    assert [entry["id"] for entry in rest["entries"]] == ids[1::-1]
    assert rest["next"] is None
    sequences = [entry["sequence"] for entry in newest["entries"]]
    assert sequences == sorted(sequences, reverse=True)


async def test_journal_page_of_exactly_the_limit_has_no_next(api: Api) -> None:
    await _post_several(api, 2)
    page = await _page(api, limit=2)
    assert len(page["entries"]) == 2
    assert page["next"] is None


@pytest.mark.parametrize(
    ("params", "code", "location"),
    [
        ({"limit": 0}, "invalid-request", "query.limit"),
        ({"limit": 5000}, "invalid-request", "query.limit"),
        ({"limit": "many"}, "invalid-request", "query.limit"),
        ({"kind": "teleport"}, "invalid-query", "kind"),
        ({"order": "sideways"}, "invalid-request", "query.order"),
        ({"since": "yesterday"}, "invalid-request", "query.since"),
        ({"after": "x"}, "invalid-request", "query.after"),
    ],
    ids=["limit-0", "limit-5000", "limit-text", "unknown-kind", "order", "since", "after"],
)
async def test_invalid_journal_query_is_422(
    api: Api, params: dict[str, object], code: str, location: str
) -> None:
    response = await api.get("/journal", params)

    problem = assert_problem(response, 422, code)
    assert location in locations(problem)


async def test_journal_of_a_new_environment_is_empty(api: Api) -> None:
    assert await _page(api) == {"entries": [], "next": None}


async def test_journal_is_readable_by_a_reader_but_not_by_another_environment(
    api: Api, auth: TokenFactory
) -> None:
    await api.post("/onhand", event("seen"))
    reader = await auth("reader")
    foreign = await auth("admin", environment=f"{api.environment_id}-other")

    read = await api.get("/journal", headers=reader)
    other = await api.get("/journal", headers=foreign)
    unauthenticated = await api.get("/journal", headers={})

    assert [entry["id"] for entry in read.json()["entries"]] == ["seen"]
    assert_problem(other, 403, "forbidden")
    assert_problem(unauthenticated, 401, "missing-token")


async def test_journal_of_an_organization_scoped_token_shows_only_its_organizations(
    api: Api, auth: TokenFactory
) -> None:
    await api.post("/onhand", event("mine", organization="usmf"))
    await api.post("/onhand", event("theirs", organization="contoso"))
    scoped = await auth("reader", organizations=["usmf"])

    everything = await api.get("/journal", headers=scoped)
    theirs = await api.get("/journal", {"organizationId": "contoso"}, headers=scoped)

    assert [entry["id"] for entry in everything.json()["entries"]] == ["mine"]
    assert_problem(theirs, 403, "organization-out-of-scope")


async def test_a_token_narrowed_to_a_channel_reads_no_allocation_outside_it(
    api: Api, auth: TokenFactory
) -> None:
    await api.post("/onhand", event("stock", {"pos": {"inbound": 20}}))
    planner = await auth("planner")
    for number, channel in enumerate(("Web", "Store")):
        response = await api.post(
            "/allocation/allocate",
            {
                "id": f"plan-{number}",
                "organizationId": "usmf",
                "productId": "T-shirt",
                "dimensions": {"siteId": "1", "locationId": "11"},
                "groups": {"channel": channel},
                "quantity": 2,
            },
            headers=planner,
        )
        assert response.status_code == 200, response.text
    narrowed = await auth("reader", groups=["channel=Web"])

    entries = (await api.get("/journal", headers=narrowed)).json()["entries"]

    assert [entry["id"] for entry in entries] == ["stock", "plan-0"]
