"""kill -9 under load: every acknowledged operation survives, nothing is applied twice.

Three clients each run a mixed workload (on-hand changes, allocations, consumes, reservations,
releases) on a product of their own, over real HTTP, while the server is killed with SIGKILL at
random moments and restarted. A request that got no answer is resent with its same id until it
gets one. At the end, the stored state must equal one application of every accepted request, as
a model of the answers predicts it, and DESIGN §2's invariants must hold.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from tests import invariants
from tests.e2e.conftest import Cli, Server, free_port, start_server

pytestmark = pytest.mark.slow

CLIENTS = 3
OPERATIONS = 60
KILLS = 4
STORE = {"siteId": "1", "locationId": "11"}
PATHS = ({"channel": "Web"}, {"channel": "Store", "customerGroup": "Walk-in"})
FIGURES = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"


@dataclass
class Model:
    """What one product should hold, from the answers its client received."""

    inbound: Decimal = Decimal(0)
    outbound: Decimal = Decimal(0)
    allocated: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    consumed: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    reservations: dict[str, Decimal] = field(default_factory=dict)
    accepted: int = 0


@dataclass
class Tally:
    sent: int = 0
    retried: int = 0
    server_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    def __init__(self, url: str, token: str, product: str, seed: int, tally: Tally) -> None:
        self.url, self.token, self.product = url, token, product
        self.random = random.Random(seed)
        self.model = Model()
        self.tally = tally
        self.counter = 0

    def send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """Send until an answer comes back; a lost request is resent with its same id."""
        attempts = 0
        while True:
            attempts += 1
            try:
                response = httpx.post(
                    f"{self.url}/api/environment/crash{path}",
                    content=json.dumps(body, default=str),
                    headers={
                        "Authorization": f"Bearer {self.token}",
                        "Content-Type": "application/json",
                    },
                    timeout=10,
                )
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            with self.tally.lock:
                self.tally.sent += attempts
                self.tally.retried += attempts - 1
                self.tally.server_errors += response.status_code >= 500
            if response.status_code == 503:
                time.sleep(0.1)
                continue
            return response

    def body(self, **fields: Any) -> dict[str, Any]:
        self.counter += 1
        return {
            "id": f"{self.product}-{self.counter}",
            "organizationId": "usmf",
            "productId": self.product,
            "dimensions": STORE,
            **fields,
        }

    def step(self) -> None:
        model, choice = self.model, self.random.random()
        quantity = Decimal(self.random.randint(1, 6))
        path = self.random.choice(PATHS)
        name = json.dumps(path, sort_keys=True)
        if choice < 0.3:
            answer = self.send("/onhand", self.body(quantities={"pos": {"inbound": quantity}}))
            assert answer.status_code == 200, answer.text
            model.inbound += quantity
        elif choice < 0.5:
            answer = self.send("/allocation/allocate", self.body(groups=path, quantity=quantity))
            assert answer.status_code in (200, 409), answer.text
            if answer.status_code == 200:
                model.allocated[name] += quantity
        elif choice < 0.7:
            answer = self.send(
                "/allocation/consume",
                self.body(
                    groups=path,
                    quantity=quantity,
                    physicalMeasures={"pos": {"outbound": "Addition"}},
                ),
            )
            assert answer.status_code in (200, 409), answer.text
            if answer.status_code == 200:
                model.allocated[name] -= quantity
                model.consumed[name] += quantity
                model.outbound += quantity
        elif choice < 0.85 or not model.reservations:
            answer = self.send("/onhand/reserve", self.body(quantity=quantity))
            assert answer.status_code in (200, 409), answer.text
            if answer.status_code == 200:
                model.reservations[answer.json()["reservationId"]] = quantity
        else:
            reservation = self.random.choice(sorted(model.reservations))
            body = self.body(reservationId=reservation, OffsetQty=quantity)
            answer = self.send("/onhand/unreserve", body)
            assert answer.status_code == 200, answer.text
            excess = Decimal(str(answer.json()["totalInvalidOffsetQtyByReservId"]))
            model.reservations[reservation] -= quantity - excess
        if answer.status_code == 200:
            model.accepted += 1

    def run(self) -> None:
        for _ in range(OPERATIONS):
            self.step()


def test_killed_servers_lose_nothing_and_double_nothing(cli: Cli) -> None:
    token = cli.token("crash", "planner")
    port = free_port()
    server: Server = start_server(cli, port=port)
    tally = Tally()
    clients = [
        Client(server.url, token, f"crash-item-{n}", seed=n, tally=tally) for n in range(CLIENTS)
    ]
    failures: list[BaseException] = []

    def guarded(client: Client) -> None:
        try:
            client.run()
        except BaseException as failure:
            failures.append(failure)

    workers = [threading.Thread(target=guarded, args=(client,)) for client in clients]
    for worker in workers:
        worker.start()
    killer = random.Random(7)
    kills = 0
    try:
        while kills < KILLS and any(worker.is_alive() for worker in workers):
            time.sleep(killer.uniform(0.3, 1.2))
            server.kill()
            kills += 1
            server = start_server(cli, port=port)
        for worker in workers:
            worker.join(timeout=300)
        assert failures == []
        with httpx.Client(
            base_url=f"{server.url}/api/environment/crash",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            for client in clients:
                check_product(http, client)
    finally:
        server.stop()

    assert failures == []
    report = invariants.check(cli.database_url, "crash")
    assert report.violations == []
    accepted = sum(client.model.accepted for client in clients)
    assert report.journal_entries == accepted
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"crash-{make_url(cli.database_url).get_backend_name()}.json").write_text(
        json.dumps(
            {
                "requests_sent": tally.sent,
                "requests_resent_after_no_answer": tally.retried,
                "kills_survived": kills,
                "accepted_operations": accepted,
                "server_errors": tally.server_errors,
                "invariant_violations": len(report.violations),
            },
            indent=2,
        )
    )
    assert tally.server_errors == 0
    assert kills == KILLS


def check_product(http: httpx.Client, client: Client) -> None:
    model = client.model
    [row] = json.loads(
        http.post(
            "/onhand/indexquery",
            json={
                "filters": {"organizationId": ["usmf"], "productId": [client.product]},
                "returnNegative": True,
            },
        ).content,
        parse_float=Decimal,
    )
    figures = row["quantities"]
    assert figures["pos"]["inbound"] == model.inbound
    assert figures["pos"]["outbound"] == model.outbound
    assert figures["@iv"]["@allocated"] == sum(model.allocated.values())
    assert figures["@iv"]["@softreserved"] == sum(model.reservations.values())
    query = json.loads(
        http.post(
            "/allocation/query",
            json={
                "organizationId": "usmf",
                "productId": client.product,
                "dimensions": STORE,
                "groups": {},
            },
        ).content,
        parse_float=Decimal,
    )
    held = {json.dumps(path["groups"], sort_keys=True): path for path in query["allocations"]}
    for name, allocated in model.allocated.items():
        assert held[name]["allocated"] == allocated
        assert held[name]["consumed"] == model.consumed[name]
    journal = http.get("/journal", params={"productId": client.product, "limit": 1000}).json()
    assert len(journal["entries"]) == model.accepted
