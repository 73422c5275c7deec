"""The workloads of ``make bench`` (docs/performance.md explains each and its goal).

Every workload prepares its own data, runs Ringfence and its baseline alternately (same client
count, same run), keeps the median of the runs, and then *counts* what went wrong: operations
acknowledged but not committed, sales beyond an allocation (oversold), refusals while stock was
left (undersold), and violations of DESIGN §2's invariants read straight from the database.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from tests.invariants import check

from bench.harness import (
    RAW_HOT_UPDATE,
    Run,
    Server,
    client,
    median_run,
    pgbench,
    prepare_raw_hot_update,
    sqlalchemy_url,
    summary,
    wrk,
)
from ringfence.bootstrap import build
from ringfence.domain.access import Principal, Role
from ringfence.domain.allocation import AllocationRequest
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.onhand import OnHandChangeRequest
from ringfence.services.allocation import allocate
from ringfence.services.onhand import post_onhand_changes
from ringfence.services.tokens import create_token
from ringfence.settings import Settings

ENVIRONMENT = "bench"
ORGANIZATION = "usmf"
STORE = {"siteId": "1", "locationId": "11"}
HOT_PATH = {"channel": "Web", "customerGroup": "VIP"}
SOLD_TO = {"pos": {"outbound": "Addition"}}
UNITS = 10**6


@dataclass
class Result:
    """One row of the results table (and of ``latest.json``)."""

    name: str
    run: Run
    baseline: str | None = None
    baseline_run: Run | None = None
    goal: str = ""
    met: bool | None = None
    oversold: int | None = None
    undersold: int | None = None
    violations: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline_run is None or not self.baseline_run.ops_per_s:
            return None
        return self.run.ops_per_s / self.baseline_run.ops_per_s

    def as_json(self) -> dict[str, Any]:
        return {
            "ops_per_s": round(self.run.ops_per_s, 1),
            "p50_ms": round(self.run.p50_ms, 2),
            "p99_ms": round(self.run.p99_ms, 2),
            "baseline": self.baseline,
            "baseline_ops_per_s": (
                round(self.baseline_run.ops_per_s, 1) if self.baseline_run else None
            ),
            "baseline_p50_ms": round(self.baseline_run.p50_ms, 2) if self.baseline_run else None,
            "baseline_p99_ms": round(self.baseline_run.p99_ms, 2) if self.baseline_run else None,
            "ratio": round(self.ratio, 3) if self.ratio is not None else None,
            "oversold": self.oversold,
            "undersold": self.undersold,
            "invariant_violations": self.violations,
            "goal": self.goal,
            "met": self.met,
            **self.notes,
        }


@dataclass
class Bench:
    """What the workloads share: the PostgreSQL database, the servers, the run's settings."""

    database: str  # libpq URL of the PostgreSQL database Ringfence serves
    ringfence: Server
    trivial: Server
    token: str
    seconds: float
    rounds: int
    progress: Callable[[str], None]
    full: bool = False
    environment: str = "bench"

    def use(self, environment: str) -> None:
        """Run what follows in an environment of its own (and a token for it), so that each
        workload's invariant check reads only that workload's data."""
        self.environment = environment
        self.token = issue_token(self.database, environment)

    def scale(self, quick: int, full: int) -> int:
        return full if self.full else quick

    @property
    def api(self) -> str:
        return f"/api/environment/{self.environment}"

    def tag(self) -> str:
        return secrets.token_hex(4)

    def vacuum(self) -> None:
        """VACUUM ANALYZE the database, as autovacuum would between runs, then CHECKPOINT.

        Each run starts from the same kind of state, whatever the server's autovacuum setting
        (it is off on some test machines: statistics then stay those of an empty database) and
        whatever WAL the runs before it wrote: at the default ``max_wal_size`` (1 GB), the full
        suite's bulk calls and consumes started a checkpoint every 20 s or so, each writing
        for up to 160 s, into whichever workload came next (the latency run, in the full mode's
        order). A checkpoint before a run leaves the run its own WAL only (for a role allowed
        to ask: a superuser or, from PostgreSQL 15, a member of ``pg_checkpoint``).
        """
        with psycopg.connect(self.database, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
            try:
                connection.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                pass  # runs may then share a checkpoint, as they would without this

    def violations(self) -> int:
        report = check(sqlalchemy_url(self.database), self.environment)
        for violation in report.violations[:5]:
            self.progress(f"[red]invariant violated:[/] {violation}")
        return len(report.violations)


# -- set-up through the services (fast, journaled like any other operation) -----------------


def issue_token(database: str, environment: str, role: Role = Role.ADMIN) -> str:
    """A token for ``environment`` (created with it if new), issued in process."""
    return asyncio.run(_issue(database, environment, role))


async def _issue(database: str, environment: str, role: Role = Role.ADMIN) -> str:
    container = build(Settings(database_url=sqlalchemy_url(database), pool_size=1))
    try:
        issued = await create_token(
            container.uow, Principal.operator(environment), role, name=secrets.token_hex(4)
        )
    finally:
        await container.close()
    return issued.token


async def _setup(
    database: str, environment: str, stock: dict[str, tuple[int, dict[str, str], int]]
) -> None:
    """For each product: ``(on-hand inbound, group path, allocated)`` at :data:`STORE`."""
    container = build(Settings(database_url=sqlalchemy_url(database), pool_size=2))
    operator = Principal.operator(environment)
    tag = secrets.token_hex(3)
    try:
        products = list(stock.items())
        for start in range(0, len(products), 2500):
            chunk = products[start : start + 2500]
            receipts = [
                OnHandChangeRequest(
                    id=f"receipt-{tag}-{product}",
                    organization_id=ORGANIZATION,
                    product_id=product,
                    dimensions=STORE,
                    quantities={"pos": {"inbound": inbound}},
                )
                for product, (inbound, _, _) in chunk
            ]
            plans = [
                AllocationRequest(
                    id=f"plan-{tag}-{product}",
                    organization_id=ORGANIZATION,
                    product_id=product,
                    dimensions=STORE,
                    groups=path,
                    quantity=allocated,
                )
                for product, (_, path, allocated) in chunk
            ]
            for results in (
                await post_onhand_changes(container.uow, operator, environment, receipts),
                await allocate(container.uow, operator, environment, plans),
            ):
                refused = [r for r in results if r.error is not None]
                if refused:
                    raise RuntimeError(f"set-up refused: {refused[0].error}")
            # As autovacuum would after so many rows (it is off on some test machines): a new
            # environment unknown to the statistics had its journal lookups planned along
            # (environment, recorded_at), a scan of all its entries per key, 60 s for 10,000
            # products instead of 5.
            async with await psycopg.AsyncConnection.connect(database, autocommit=True) as admin:
                await admin.execute("ANALYZE")
    finally:
        await container.close()


def setup(bench: Bench, stock: dict[str, tuple[int, dict[str, str], int]]) -> None:
    asyncio.run(_setup(bench.database, bench.environment, stock))


def path_figures(bench: Bench, products: list[str]) -> tuple[int, int, int]:
    """(allocated, consumed, cumulative allocated) summed over ``products``, in whole units."""
    with psycopg.connect(bench.database) as connection:
        row = connection.execute(
            "SELECT coalesce(sum(allocated), 0), coalesce(sum(consumed), 0), "
            "coalesce(sum(cumulative_allocated), 0) FROM allocations "
            "WHERE environment_id = %s AND product_id = ANY(%s)",
            (bench.environment, products),
        ).fetchone()
    assert row is not None
    return int(row[0]) // UNITS, int(row[1]) // UNITS, int(row[2]) // UNITS


def journaled(bench: Bench, kind: str, prefix: str) -> int:
    with psycopg.connect(bench.database) as connection:
        row = connection.execute(
            "SELECT count(*) FROM journal WHERE environment_id = %s AND kind = %s "
            "AND operation_id LIKE %s",
            (bench.environment, kind, prefix + "%"),
        ).fetchone()
    assert row is not None
    return int(row[0])


def consume_rest(path: dict[str, str]) -> str:
    return json.dumps(
        {
            "organizationId": ORGANIZATION,
            "dimensions": STORE,
            "groups": path,
            "quantity": 1,
            "physicalMeasures": SOLD_TO,
        }
    )[1:]


def operations_wrk(
    url: str,
    *,
    path: str,
    token: str,
    clients: int,
    seconds: float,
    products: int,
    product_prefix: str,
    rest: str,
    events: int = 0,
    tag: str | None = None,
) -> Run:
    """wrk with ``operations.lua``: ``clients`` connections posting to ``path``, every
    operation with a new id under ``tag`` (see the script for the other variables)."""
    return wrk(
        url,
        script="operations.lua",
        connections=clients,
        seconds=seconds,
        variables={
            "path": path,
            "token": token,
            "tag": tag or secrets.token_hex(4),
            "products": products,
            "product_prefix": product_prefix,
            "rest": rest,
            "events": events,
        },
    )


def hot_wrk(
    url: str, environment: str, token: str, product: str, clients: int, seconds: float
) -> Run:
    """wrk: ``clients`` connections consuming 1 of ``product`` on :data:`HOT_PATH`, each
    request with a new operation id."""
    return operations_wrk(
        url,
        path=f"/api/environment/{environment}/allocation/consume",
        token=token,
        clients=clients,
        seconds=seconds,
        products=1,
        product_prefix=product,
        rest=consume_rest(HOT_PATH),
    )


# -- hot_consume ----------------------------------------------------------------------------


def hot_consume(bench: Bench, clients: int) -> Result:
    """One product, one path: every client consumes 1 at a time."""
    bench.use(f"hot-{clients}")
    runs: list[Run] = []
    baselines: list[Run] = []
    acknowledged = consumed = refused = oversold = 0
    prepare_raw_hot_update(bench.database)
    for _ in range(bench.rounds):
        product = f"hot-{bench.tag()}"
        stock = 10**9
        setup(bench, {product: (stock, HOT_PATH, stock)})
        bench.vacuum()
        run = hot_wrk(
            bench.ringfence.url, bench.environment, bench.token, product, clients, bench.seconds
        )
        runs.append(run)
        allocated, sold, cumulative = path_figures(bench, [product])
        acknowledged += run.statuses.get("200", 0)
        consumed += sold
        refused += run.statuses.get("409", 0)
        oversold += max(0, sold - cumulative) + max(0, -allocated)
        bench.vacuum()
        baselines.append(
            pgbench(bench.database, RAW_HOT_UPDATE, clients=clients, seconds=bench.seconds)
        )
    committed = journaled(bench, "consume", "")  # this environment holds only these consumes
    return Result(
        name=f"hot_consume_{clients}",
        run=median_run(runs),
        baseline="raw_hot_update",
        baseline_run=median_run(baselines),
        goal="ratio >= 1.5 (stretch 3), p99 <= 50 ms, oversold 0",
        oversold=oversold + max(0, consumed - committed),
        undersold=refused,
        violations=bench.violations(),
        notes={
            "clients": clients,
            "acknowledged": acknowledged,
            "committed": committed,
            "lost": max(0, acknowledged - committed),
            "statuses": median_run(runs).statuses,
        },
    )


def judge_hot(result: Result) -> None:
    result.met = (
        (result.ratio or 0) >= 1.5
        and result.run.p99_ms <= 50
        and result.oversold == 0
        and result.violations == 0
    )


# -- spread_consume -------------------------------------------------------------------------

SPREAD_PRODUCTS = 10_000
SPREAD_PATH = {"channel": "Web", "customerGroup": "VIP", "region": "West", "orderType": "Sales"}


def setup_spread(bench: Bench) -> None:
    """:data:`SPREAD_PRODUCTS` products ``sp-1``, ``sp-2``, ..., each with 10^6 units in stock,
    all allocated at :data:`SPREAD_PATH`."""
    stock = 10**6
    setup(bench, {f"sp-{n}": (stock, SPREAD_PATH, stock) for n in range(1, SPREAD_PRODUCTS + 1)})


def spread_consume(bench: Bench, clients: int = 64) -> Result:
    """10,000 products, each allocated at a 4-level path; consumes land on random products."""
    bench.use("spread")
    setup_spread(bench)
    runs: list[Run] = []
    baselines: list[Run] = []
    tags: list[str] = []
    for _ in range(bench.rounds):
        bench.vacuum()
        tag = bench.tag()
        tags.append(tag)
        for server, into in ((bench.ringfence, runs), (bench.trivial, baselines)):
            into.append(
                operations_wrk(
                    server.url,
                    path=f"{bench.api}/allocation/consume",
                    token=bench.token,
                    clients=clients,
                    seconds=bench.seconds,
                    products=SPREAD_PRODUCTS,
                    product_prefix="sp-",
                    rest=consume_rest(SPREAD_PATH),
                    tag=tag,
                )
            )
    products = [f"sp-{n}" for n in range(1, SPREAD_PRODUCTS + 1)]
    allocated, sold, cumulative = path_figures(bench, products)
    committed = sum(journaled(bench, "consume", tag) for tag in tags)
    acknowledged = sum(run.statuses.get("200", 0) for run in runs)
    result = Result(
        name="spread_consume",
        run=median_run(runs),
        baseline="trivial_post",
        baseline_run=median_run(baselines),
        goal="ratio >= 0.7",
        oversold=max(0, sold - cumulative) + max(0, sold - committed) + max(0, -allocated),
        undersold=sum(run.statuses.get("409", 0) for run in runs),
        violations=bench.violations(),
        notes={
            "clients": clients,
            "products": SPREAD_PRODUCTS,
            "acknowledged": acknowledged,
            "committed": committed,
            "lost": max(0, acknowledged - committed),
        },
    )
    result.met = (result.ratio or 0) >= 0.7 and result.oversold == 0 and not result.violations
    return result


# -- flash_sale -----------------------------------------------------------------------------

FLASH_ALLOCATION = 1_000
FLASH_REQUESTS = 10_000
FLASH_CONCURRENCY = 256


def flash_sale(bench: Bench, hot_rate: float) -> Result:
    """An allocation of 1,000; 10,000 consumes of 1 at 256 in flight: exactly 1,000 succeed."""
    bench.use("flash")
    sellouts: list[float] = []
    runs: list[Run] = []
    oversold = undersold = 0
    successes: list[int] = []
    answered: list[int] = []
    client_busy: list[float] = []
    ramp: list[tuple[float, float]] = []
    for _ in range(bench.rounds):
        product = f"flash-{bench.tag()}"
        # On hand holds more than the allocation: only the allocation may stop the sale.
        setup(bench, {product: (FLASH_ALLOCATION * 5, HOT_PATH, FLASH_ALLOCATION)})
        bench.vacuum()
        report = client(
            "burst",
            url=bench.ringfence.url,
            token=bench.token,
            path=f"{bench.api}/allocation/consume",
            tag=bench.tag(),
            total=FLASH_REQUESTS,
            concurrency=FLASH_CONCURRENCY,
            body=consume_body(product),
        )
        answers = sorted(report["answers"])
        client_busy.append(round(report["cpu_seconds"] / report["seconds"], 2))
        sold_at = [at for at, status in answers if status == 200]
        others = {status for _, status in answers if status not in (200, 409)}
        if others:
            bench.progress(f"[red]flash sale answered {sorted(others)}[/]")
        successes.append(len(sold_at))
        answered.append(len(answers))
        if sold_at:
            ramp.append(
                (round(answers[0][0] * 1000), round(sold_at[min(99, len(sold_at) - 1)] * 1000))
            )
        sellout = sold_at[-1] if len(sold_at) >= FLASH_ALLOCATION else float("inf")
        sellouts.append(sellout)
        allocated, sold, _ = path_figures(bench, [product])
        oversold += max(0, sold - FLASH_ALLOCATION) + max(0, len(sold_at) - FLASH_ALLOCATION)
        undersold += max(0, FLASH_ALLOCATION - sold) + allocated
        arrivals = sorted(at for at, _ in answers)
        runs.append(
            Run(
                ops_per_s=FLASH_ALLOCATION / sellout if sellout else 0.0,
                p50_ms=arrivals[len(arrivals) // 2] * 1000,
                p99_ms=arrivals[int(len(arrivals) * 0.99) - 1] * 1000,
                requests=len(answers),
                statuses={"200": len(sold_at), "other": len(answers) - len(sold_at)},
            )
        )
    median = sorted(sellouts)[len(sellouts) // 2]
    limit = 1.25 * FLASH_ALLOCATION / hot_rate if hot_rate else 0.0
    result = Result(
        name="flash_sale",
        run=median_run(runs),
        goal=f"exactly {FLASH_ALLOCATION} succeed; sell-out <= 1.25 x 1,000 / hot_consume rate",
        oversold=oversold,
        undersold=undersold,
        violations=bench.violations(),
        notes={
            "successes": successes,
            "answered": answered,
            "sellout_s": round(median, 3),
            "sellout_limit_s": round(limit, 3),
            "client_cpu_per_s": client_busy,
            "first_answer_and_100th_success_ms": ramp,
            "note": "p50/p99 here are when answers arrived after the start, not per-request "
            "latency; client_cpu_per_s is the load client's CPU seconds per second of each "
            "round (near 1: the client, one Python process, sets the pace)",
        },
    )
    result.met = (
        all(count == FLASH_ALLOCATION for count in successes)
        and median <= limit
        and result.violations == 0
    )
    return result


# -- bulk_ingest ----------------------------------------------------------------------------

BULK_EVENTS = 512
BULK_PRODUCTS = 10_000
RAW_UPSERT = """\
\\set base random(0, 9487)
INSERT INTO raw_onhand (product_id, dimensions_key, data_source, measure, quantity)
SELECT 'bk-' || n, '[["siteId","1"],["locationId","11"]]', 'pos', 'inbound', 1000000
FROM generate_series(:base + 1, :base + 512) AS n
ON CONFLICT (product_id, dimensions_key, data_source, measure)
DO UPDATE SET quantity = raw_onhand.quantity + excluded.quantity;
"""


def onhand_wrk(
    url: str, environment: str, token: str, events: int, clients: int, seconds: float
) -> Run:
    """wrk: ``clients`` connections posting on-hand change events (+1 pos.inbound) at random
    products of :data:`BULK_PRODUCTS`: ``events`` per bulk call, or (0) one per request."""
    rest = json.dumps(
        {"organizationId": ORGANIZATION, "dimensions": STORE, "quantities": {"pos": {"inbound": 1}}}
    )[1:]
    return operations_wrk(
        url,
        path=f"/api/environment/{environment}/onhand" + ("/bulk" if events else ""),
        token=token,
        clients=clients,
        seconds=seconds,
        products=BULK_PRODUCTS,
        product_prefix="bk-",
        rest=rest,
        events=events,
    )


def bulk_ingest(bench: Bench) -> list[Result]:
    """On-hand change events, 512 per request, against single-event requests and raw upserts."""
    bench.use("ingest")
    with psycopg.connect(bench.database, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS raw_onhand")
        connection.execute(
            "CREATE TABLE raw_onhand (product_id text, dimensions_key text, data_source text, "
            "measure text, quantity bigint NOT NULL, "
            "PRIMARY KEY (product_id, dimensions_key, data_source, measure))"
        )
    bulk_runs: list[Run] = []
    single_runs: list[Run] = []
    raw_runs: list[Run] = []
    for _ in range(bench.rounds):
        bench.vacuum()
        url, environment, token = bench.ringfence.url, bench.environment, bench.token
        bulk_runs.append(
            _per_event(
                onhand_wrk(url, environment, token, BULK_EVENTS, 4, bench.seconds), BULK_EVENTS
            )
        )
        single_runs.append(onhand_wrk(url, environment, token, 0, 32, bench.seconds))
        raw_runs.append(
            _per_event(pgbench(bench.database, RAW_UPSERT, clients=4, seconds=bench.seconds), 512)
        )
    violations = bench.violations()
    bulk, single, raw = median_run(bulk_runs), median_run(single_runs), median_run(raw_runs)
    failed = sum(
        count
        for run in (*bulk_runs, *single_runs)
        for status, count in run.statuses.items()
        if status != "200"
    )
    first = Result(
        name="bulk_ingest",
        run=bulk,
        baseline="single_event_requests",
        baseline_run=single,
        goal=">= 20x single-event requests (events/s)",
        violations=violations,
        notes={
            "events_per_request": BULK_EVENTS,
            "bulk_clients": 4,
            "single_clients": 32,
            "failed_requests": failed,
        },
    )
    first.met = (first.ratio or 0) >= 20 and not violations and not failed
    second = Result(
        name="bulk_ingest_vs_raw",
        run=bulk,
        baseline="raw_multirow_upsert",
        baseline_run=raw,
        goal=">= 0.5x a raw multi-row upsert of the same rows (events/s)",
        violations=violations,
        notes={"events_per_request": BULK_EVENTS, "clients": 4},
    )
    second.met = (second.ratio or 0) >= 0.5 and not violations and not failed
    return [first, second]


def _per_event(run: Run, events: int) -> Run:
    return Run(
        ops_per_s=run.ops_per_s * events,
        p50_ms=run.p50_ms,
        p99_ms=run.p99_ms,
        requests=run.requests,
        statuses=run.statuses,
    )


# -- index_query ----------------------------------------------------------------------------

QUERY_PRODUCTS = 10_000
STORES, COLOURS, SIZES = 2, 10, 5  # 100 rows per product: 1,000,000 rows
QUERY_QUANTITY = 7


def load_index_rows(bench: Bench) -> int:
    """1,000,000 on-hand rows written straight to the table (as a data migration would).

    They bypass the journal, so only the read workload uses them, in an environment of its own.
    """
    combos = [
        Dimensions(
            [
                ("siteId", f"s{store}"),
                ("locationId", f"s{store}-l1"),
                ("colorId", f"c{colour}"),
                ("sizeId", f"z{size}"),
            ]
        )
        for store in range(STORES)
        for colour in range(COLOURS)
        for size in range(SIZES)
    ]
    rows = 0
    with psycopg.connect(bench.database) as connection:
        with connection.cursor().copy(
            "COPY onhand_measures (environment_id, organization_id, product_id, dimensions_key,"
            " data_source, measure, dimensions, quantity) FROM STDIN"
        ) as copy:
            buffer = io.StringIO()
            for product in range(QUERY_PRODUCTS):
                for dims in combos:
                    buffer.write(
                        f"{QUERY_ENVIRONMENT}\t{ORGANIZATION}\tq-{product}\t{dims.key}\tpos\t"
                        f"inbound\t{json.dumps(dims.as_dict())}\t{QUERY_QUANTITY * UNITS}\n"
                    )
                    rows += 1
                if product % 500 == 499:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        connection.commit()
    bench.vacuum()
    return rows


QUERY_ENVIRONMENT = "bench-query"


def index_query(bench: Bench, token: str) -> list[Result]:
    started = time.perf_counter()
    rows = load_index_rows(bench)
    loaded_in = time.perf_counter() - started
    import random

    chooser = random.Random(7)
    path = f"/api/environment/{QUERY_ENVIRONMENT}/onhand/indexquery"
    one: list[dict[str, Any]] = [
        {
            "filters": {
                "organizationId": [ORGANIZATION],
                "productId": [f"q-{chooser.randrange(QUERY_PRODUCTS)}"],
            },
            "groupByValues": ["colorId"],
        }
        for _ in range(50)
    ]
    many: list[dict[str, Any]] = [
        {
            "filters": {
                "organizationId": [ORGANIZATION],
                "productId": [f"q-{p}" for p in chooser.sample(range(QUERY_PRODUCTS), 1000)],
            },
            "groupByValues": ["colorId"],
        }
        for _ in range(5)
    ]
    results = []
    for name, bodies, requests, limit in (
        ("index_query_one", one, bench.scale(40, 300), 100.0),
        ("index_query_1000", many, bench.scale(3, 10), 1000.0),
    ):
        runs = []
        wrong = 0
        for _ in range(bench.rounds):
            report = client(
                "serial",
                url=bench.ringfence.url,
                token=token,
                path=path,
                tag=bench.tag(),
                bodies=bodies,
                requests=requests,
                warmup=2,
            )
            runs.append(summary(report["latencies_ms"], report["seconds"]))
            wrong += sum(count for status, count in report["statuses"].items() if status != "200")
        wrong += _wrong_answers(
            bench, token, path, bodies[0], len(bodies[0]["filters"]["productId"])
        )
        run = median_run(runs)
        result = Result(
            name=name,
            run=run,
            goal=f"p99 <= {limit:.0f} ms",
            violations=wrong,
            notes={
                "rows": rows,
                "loaded_in_s": round(loaded_in, 1),
                "products_per_query": len(bodies[0]["filters"]["productId"]),
            },
        )
        result.met = run.p99_ms <= limit and not wrong
        results.append(result)
    return results


def _wrong_answers(bench: Bench, token: str, path: str, body: dict[str, Any], products: int) -> int:
    """Rows of one answer whose figures differ from what was loaded (each colour of each
    product holds SIZES x QUERY_QUANTITY in each store), plus rows missing or extra."""
    import httpx

    answer = httpx.post(
        bench.ringfence.url + path,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ).json()
    expected = SIZES * QUERY_QUANTITY
    wrong = sum(1 for row in answer if row["quantities"]["pos"]["inbound"] != expected)
    return wrong + abs(len(answer) - products * STORES * COLOURS)


# -- sqlite_hot_consume ---------------------------------------------------------------------


def sqlite_hot_consume(
    bench: Bench, server: Server, token: str, database: str, clients: int = 32
) -> Result:
    runs: list[Run] = []
    baselines: list[Run] = []
    for _ in range(bench.rounds):
        product = f"hot-{bench.tag()}"
        asyncio.run(_sqlite_setup(database, product))
        for url, into in ((server.url, runs), (bench.trivial.url, baselines)):
            into.append(hot_wrk(url, ENVIRONMENT, token, product, clients, bench.seconds))
    report = check(database, ENVIRONMENT)
    run = median_run(runs)
    result = Result(
        name="sqlite_hot_consume",
        run=run,
        baseline="trivial_post",
        baseline_run=median_run(baselines),
        goal="ratio >= 0.9 (embedded SQLite)",
        oversold=0,
        undersold=sum(r.statuses.get("409", 0) for r in runs),
        violations=len(report.violations),
        notes={"clients": clients},
    )
    result.met = (result.ratio or 0) >= 0.9 and not result.violations
    return result


async def _sqlite_setup(database: str, product: str) -> None:
    container = build(Settings(database_url=database))
    operator = Principal.operator(ENVIRONMENT)
    try:
        await post_onhand_changes(
            container.uow,
            operator,
            ENVIRONMENT,
            [
                OnHandChangeRequest(
                    id=f"receipt-{product}",
                    organization_id=ORGANIZATION,
                    product_id=product,
                    dimensions=STORE,
                    quantities={"pos": {"inbound": 10**9}},
                )
            ],
        )
        await allocate(
            container.uow,
            operator,
            ENVIRONMENT,
            [
                AllocationRequest(
                    id=f"plan-{product}",
                    organization_id=ORGANIZATION,
                    product_id=product,
                    dimensions=STORE,
                    groups=HOT_PATH,
                    quantity=10**9,
                )
            ],
        )
    finally:
        await container.close()


# -- latency --------------------------------------------------------------------------------


def consume_body(product: str) -> dict[str, Any]:
    return {
        "id": "{id}",
        "organizationId": ORGANIZATION,
        "productId": product,
        "dimensions": STORE,
        "groups": HOT_PATH,
        "quantity": 1,
        "physicalMeasures": SOLD_TO,
    }


LATENCY_WARMUP_S = 0.5
"""How long each open-loop run sends at its rate before its requests are counted."""


def open_loop_consumes(bench: Bench, product: str, rate: float) -> dict[str, Any]:
    """:mod:`bench.client`'s open loop: consumes of 1 of ``product`` at ``rate`` per second
    for ``bench.seconds`` (after :data:`LATENCY_WARMUP_S` uncounted); its report."""
    return client(
        "open",
        url=bench.ringfence.url,
        token=bench.token,
        path=f"{bench.api}/allocation/consume",
        tag=bench.tag(),
        rate=rate,
        seconds=bench.seconds,
        # The steady state is measured: the first requests to an environment and product the
        # servers have not served load its configuration and read its token.
        warmup_seconds=LATENCY_WARMUP_S,
        body=consume_body(product),
    )


def latency_loaded(bench: Bench, max_rate: float) -> Result:
    """hot_consume at 70% of the rate it reached: the tail must stay near the median."""
    bench.use("latency-loaded")
    rate = 0.7 * max_rate
    runs = []
    client_busy: list[float] = []
    for _ in range(bench.rounds):
        product = f"lat-{bench.tag()}"
        setup(bench, {product: (10**9, HOT_PATH, 10**9)})
        bench.vacuum()
        report = open_loop_consumes(bench, product, rate)
        run = summary(report["latencies_ms"], report["seconds"])
        runs.append(Run(run.ops_per_s, run.p50_ms, run.p99_ms, run.requests, report["statuses"]))
        client_busy.append(round(report["cpu_seconds"] / report["seconds"], 2))
    run = median_run(runs)
    result = Result(
        name="latency_loaded",
        run=run,
        goal="p99 <= 3 x p50 at 70% of hot_consume's rate",
        violations=bench.violations(),
        notes={
            "rate": round(rate, 1),
            "statuses": run.statuses,
            "client_cpu_per_s": client_busy,
        },
    )
    result.met = run.p99_ms <= 3 * run.p50_ms and not result.violations
    return result


def latency_idle(bench: Bench, uncoalesced: Server) -> Result:
    """One client, one consume at a time: what the coalescer adds when there is nothing to
    coalesce (the same server with RINGFENCE_COALESCE=off is the baseline)."""
    bench.use("latency-idle")
    product = f"idle-{bench.tag()}"
    setup(bench, {product: (10**9, HOT_PATH, 10**9)})
    runs: list[Run] = []
    baselines: list[Run] = []
    for _ in range(bench.rounds):
        for server, into in ((bench.ringfence, runs), (uncoalesced, baselines)):
            report = client(
                "serial",
                url=server.url,
                token=bench.token,
                path=f"{bench.api}/allocation/consume",
                tag=bench.tag(),
                requests=bench.scale(40, 1000),
                warmup=20,
                body=consume_body(product),
            )
            into.append(summary(report["latencies_ms"], report["seconds"]))
    run, baseline = median_run(runs), median_run(baselines)
    added = run.p50_ms - baseline.p50_ms
    result = Result(
        name="latency_idle",
        run=run,
        baseline="uncoalesced",
        baseline_run=baseline,
        goal="coalescing adds <= 2 ms p50 when idle",
        violations=bench.violations(),
        notes={"added_p50_ms": round(added, 3)},
    )
    result.met = added <= 2 and not result.violations
    return result
