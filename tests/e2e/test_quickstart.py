"""The quick start, as a new user meets it: a token from the CLI, then real HTTP."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Cli, Server


def test_a_token_from_the_cli_posts_and_queries_on_hand_over_http(cli: Cli, server: Server) -> None:
    token = cli.token("shop", "writer", "--name", "pos-feed")
    headers = {"Authorization": f"Bearer {token}"}
    change = {
        "id": "till-1-0001",
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": {"SiteId": "1", "LocationId": "11", "ColorId": "red"},
        "quantities": {"pos": {"inbound": 5, "outbound": "1.5"}},
    }
    with httpx.Client(base_url=server.url, headers=headers) as http:
        first = http.post("/api/environment/shop/onhand", json=change)
        again = http.post("/api/environment/shop/onhand", json=change)
        rows = http.get(
            "/api/environment/shop/onhand",
            params={"organizationId": "usmf", "productId": "T-shirt", "groupBy": "colorId"},
        ).json()
        journal = http.get("/api/environment/shop/journal").json()

    assert first.status_code == 200
    assert first.json()["processingStatus"] == "success"
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [row["dimensions"] for row in rows] == [
        {"siteId": "1", "locationId": "11", "colorId": "red"}
    ]
    assert rows[0]["quantities"]["iv"]["onhand"] == 3.5
    assert [entry["id"] for entry in journal["entries"]] == ["till-1-0001"]
    assert journal["entries"][0]["actor"] == "pos-feed"


def test_a_request_without_a_token_is_refused_and_a_bad_one_changes_nothing(
    cli: Cli, server: Server
) -> None:
    token = cli.token("shop", "writer")
    refused = httpx.post(f"{server.url}/api/environment/shop/onhand", json={})
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
        invalid = http.post(
            "/api/environment/shop/onhand",
            json={
                "id": "x",
                "organizationId": "usmf",
                "productId": "T-shirt",
                "dimensions": {"siteId": "1"},
                "quantities": {"pos": {"inbound": 1}},
            },
        )
        rows = http.post(
            "/api/environment/shop/onhand/indexquery",
            json={"filters": {"organizationId": ["usmf"]}},
        ).json()

    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "missing-partition-dimension"
    assert "locationId" in invalid.json()["detail"]
    assert rows == []


def test_tokens_never_appear_in_the_server_log(cli: Cli, server: Server) -> None:
    token = cli.token("shop", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        http.get("/api/environment/shop/configuration")
        http.post("/api/environment/shop/onhand", json={"id": "x"})
        http.get(f"/api/environment/shop/journal?id={token[:12]}")
        http.post("/signin", data={"token": token, "next": "/dashboard"})
        http.get("/api/environment/shop/configuration", headers={"Authorization": "Bearer rf_x"})
    server.stop()

    log = server.log.read_text()
    assert "POST /api/environment/shop/onhand" in log
    assert token not in log
    assert token.split("_", 2)[2] not in log  # the secret (which may itself hold "_")
