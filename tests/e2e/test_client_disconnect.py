"""A client that hangs up mid-request is not a server error: no 500 in the metrics, no
traceback in the log, nothing applied, and the server goes on serving."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx

from tests.e2e.conftest import Cli, Server


def _hang_up_mid_body(server: Server, path: str, token: str) -> None:
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n"
                '{"id": "gone", "productId": '
            ).encode()
        )


def _metric(server: Server, status: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ringfence_http_requests_total{") and f'status="{status}"' in line
    )


def test_a_client_hanging_up_mid_body_is_no_server_error(cli: Cli, server: Server) -> None:
    token = cli.token("shop", "writer")
    path = "/api/environment/shop/onhand"

    for _ in range(3):
        _hang_up_mid_body(server, path, token)
    deadline = time.monotonic() + 10
    while _metric(server, "499") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert _metric(server, "499") == 3
    assert _metric(server, "500") == 0
    assert "Traceback" not in server.log.read_text()
    answer = httpx.post(
        f"{server.url}{path}",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "id": "after",
            "organizationId": "usmf",
            "productId": "T-shirt",
            "dimensions": {"siteId": "1", "locationId": "11"},
            "quantities": {"pos": {"inbound": 1}},
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    journal = httpx.get(
        f"{server.url}/api/environment/shop/journal",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert [entry["id"] for entry in journal["entries"]] == ["after"]
