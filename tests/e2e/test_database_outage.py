"""The database goes away under load: 503 with Retry-After, never a 500 nor a half-applied
write, and the service recovers by itself when the database returns (PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from tests import invariants
from tests.conftest import create_postgresql_database, drop_postgresql_database
from tests.e2e.conftest import Cli, start_server
from tests.e2e.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.slow

FIGURES = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"
CLIENTS = 4


def test_an_outage_answers_503_and_the_service_recovers_by_itself(tmp_path: Path) -> None:
    database = create_postgresql_database("ringfence_outage")
    target = make_url(database)
    proxy = CuttableProxy(target.host or "127.0.0.1", target.port or 5432)
    through_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
    cli = Cli(through_proxy, tmp_path)
    try:
        cli.run("db", "upgrade")
        token = cli.token("outage", "writer")
        server = start_server(cli)
        statuses: Counter[int] = Counter()
        during: Counter[int] = Counter()
        accepted: dict[str, Decimal] = {}
        lock = threading.Lock()
        outage = threading.Event()
        stop = threading.Event()
        unanswered: list[str] = []

        def client(number: int) -> None:
            sequence = 0
            with httpx.Client(
                base_url=f"{server.url}/api/environment/outage",
                headers={"Authorization": f"Bearer {token}"},
                timeout=15,
            ) as http:
                while not stop.is_set():
                    sequence += 1
                    operation = f"c{number}-{sequence}"
                    while True:  # retry until an answer that is not 503, with the same id
                        try:
                            response = http.post(
                                "/onhand",
                                json={
                                    "id": operation,
                                    "organizationId": "usmf",
                                    "productId": "outage-item",
                                    "dimensions": {"siteId": "1", "locationId": "11"},
                                    "quantities": {"pos": {"inbound": 1}},
                                },
                            )
                        except httpx.TransportError:
                            with lock:
                                unanswered.append(operation)
                            time.sleep(0.1)
                            continue
                        with lock:
                            statuses[response.status_code] += 1
                            if outage.is_set():
                                during[response.status_code] += 1
                        if response.status_code == 503:
                            assert response.headers["Retry-After"].isdigit()
                            assert response.json()["code"] == "database-unavailable"
                            time.sleep(0.05)
                            continue
                        assert response.status_code == 200, response.text
                        with lock:
                            accepted[operation] = Decimal(1)
                        break

        workers = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for worker in workers:
            worker.start()
        time.sleep(1.5)
        outage.set()
        proxy.cut()
        time.sleep(2.0)
        ready_during = httpx.get(f"{server.url}/readyz").status_code
        proxy.restore()
        outage.clear()
        time.sleep(2.0)
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        ready_after = httpx.get(f"{server.url}/readyz").status_code
        with httpx.Client(
            base_url=f"{server.url}/api/environment/outage",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            [row] = json.loads(
                http.post(
                    "/onhand/indexquery",
                    json={"filters": {"organizationId": ["usmf"]}},
                ).content,
                parse_float=Decimal,
            )
        server.stop()
        report = invariants.check(database, "outage")
    finally:
        proxy.close()
        drop_postgresql_database(database)

    assert set(statuses) <= {200, 503}
    assert during[503] > 0
    assert ready_during == 503
    assert ready_after == 200
    assert row["quantities"]["pos"]["inbound"] == sum(accepted.values())
    assert report.violations == []
    assert report.journal_entries == len(accepted)
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "outage-postgresql.json").write_text(
        json.dumps(
            {
                "answers": dict(sorted(statuses.items())),
                "answers_during_outage": dict(sorted(during.items())),
                "accepted_operations": len(accepted),
                "server_errors": sum(
                    n for status, n in statuses.items() if status >= 500 and status != 503
                ),
                "invariant_violations": len(report.violations),
            },
            indent=2,
        )
    )
