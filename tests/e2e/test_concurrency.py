"""Concurrent writers over real HTTP against two server processes: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import threading
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from tests.e2e.conftest import Cli, start_server

pytestmark = pytest.mark.slow

THREADS = 32
EVENTS_PER_THREAD = 10


def test_concurrent_change_events_with_repeated_ids_are_each_counted_once(cli: Cli) -> None:
    token = cli.token("load", "writer")
    server = start_server(cli, workers=2)
    # Thread t sends ids t-0 .. t-9; odd threads also resend their even neighbour's ids,
    # racing the original, so that every id of an even thread arrives twice.
    plans: list[list[tuple[str, int]]] = []
    for thread in range(THREADS):
        plan = [(f"{thread}-{n}", n + 1) for n in range(EVENTS_PER_THREAD)]
        if thread % 2 == 1:
            plan += [(f"{thread - 1}-{n}", n + 1) for n in range(EVENTS_PER_THREAD)]
        plans.append(plan)
    statuses: Counter[tuple[int, str]] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def send(plan: list[tuple[str, int]]) -> None:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            start.wait()
            for operation_id, quantity in plan:
                response = http.post(
                    "/api/environment/load/onhand",
                    json={
                        "id": operation_id,
                        "organizationId": "usmf",
                        "productId": "hot-item",
                        "dimensions": {"siteId": "1", "locationId": "11"},
                        "quantities": {"pos": {"inbound": quantity}},
                    },
                )
                with lock:
                    replayed = response.headers.get("Idempotent-Replayed", "false")
                    statuses[(response.status_code, replayed)] += 1
                    if response.status_code != 200:
                        failures.append(response.text)

    try:
        workers = [threading.Thread(target=send, args=(plan,)) for plan in plans]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            [row] = json.loads(
                http.post(
                    "/api/environment/load/onhand/indexquery",
                    json={"filters": {"organizationId": ["usmf"], "productId": ["hot-item"]}},
                ).content,
                parse_float=Decimal,
            )
            journal = http.get(
                "/api/environment/load/journal", params={"limit": 1000, "productId": "hot-item"}
            ).json()
    finally:
        server.stop()

    assert failures == []
    distinct = THREADS * EVENTS_PER_THREAD
    repeats = (THREADS // 2) * EVENTS_PER_THREAD
    assert statuses[(200, "false")] == distinct
    assert statuses[(200, "true")] == repeats
    assert row["quantities"]["pos"]["inbound"] == THREADS * sum(range(1, EVENTS_PER_THREAD + 1))
    ids = [entry["id"] for entry in journal["entries"]]
    assert len(ids) == len(set(ids)) == distinct
