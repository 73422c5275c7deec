"""Batches of consumes decided in one statement (PostgreSQL) answer, write and journal exactly
what deciding them one by one in Python does.

Each example runs the same batches of consumes in two environments of one database: one served
with ``consume_at_once`` (the default), the other without. Batches mix replays, ids reused with
another meaning, refusals for want of allocation or of range, groups of like consumes on
several products, and batches that cannot be decided at once (two paths, quantities or
measures on one product, an id twice), which go the Python way in both. The answers, the
allocation, measure and partition rows and the journal must be the same, and every batch that
can be must have been decided in one statement.
"""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb
from sqlalchemy import event, make_url

from ringfence.bootstrap import Container, build
from ringfence.domain.access import Principal
from ringfence.domain.allocation import AllocationRequest, ConsumeRequest
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.onhand import OnHandChangeRequest
from ringfence.domain.operations import ItemResult
from ringfence.jsoncodec import loads
from ringfence.services.allocation import allocate, consume
from ringfence.services.configuration import ensure_environment
from ringfence.services.onhand import post_onhand_changes
from ringfence.services.ports import BatchTiming
from ringfence.settings import Settings
from tests import invariants
from tests.conftest import SCALE
from tests.invariants import UNITS

ORGANIZATION = "usmf"
STORE = {"siteId": "1", "locationId": "11"}
VIP = {"channel": "Web", "customerGroup": "VIP"}
OTHER = {"channel": "Web", "customerGroup": "Other"}
SOLD = {"pos": {"outbound": "Addition"}}
RETURNED = {"pos": {"inbound": "Subtraction"}}

# One consume: (id, product, path, quantity, measures).
consumes = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e", "f"]),
    st.sampled_from(["P", "P", "P", "P", "Q", "R"]),  # R: never stocked nor allocated
    st.sampled_from(["vip", "vip", "vip", "other"]),
    st.sampled_from(["1", "1", "1", "2", "0.5"]),
    st.sampled_from(["sold", "sold", "sold", "returned"]),
)
# Like batches (distinct ids, one of everything else) are what a hot product's coalescer makes.
like_batches = st.builds(
    lambda ids, line: [(operation_id, *line[1:]) for operation_id in ids],
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=1, max_size=6, unique=True),
    consumes,
)


def one_kind_per_product(
    lines: list[tuple[str, str, str, str, str]],
) -> list[tuple[str, str, str, str, str]]:
    """Each product's consumes made like its first (a batch of groups, one per product)."""
    kinds: dict[str, tuple[str, str, str]] = {}
    return [(line[0], line[1], *kinds.setdefault(line[1], line[2:])) for line in lines]


# Groups of like consumes on several products, as a batch across products is.
grouped_batches = st.lists(consumes, min_size=1, max_size=8, unique_by=lambda line: line[0]).map(
    one_kind_per_product
)
batches = st.lists(
    st.one_of(like_batches, grouped_batches, st.lists(consumes, min_size=1, max_size=6)),
    min_size=1,
    max_size=5,
)


def request(line: tuple[str, str, str, str, str], round_: str) -> ConsumeRequest:
    operation_id, product, path, quantity, measures = line
    return ConsumeRequest(
        id=f"{round_}-{operation_id}",
        organization_id=ORGANIZATION,
        product_id=product,
        dimensions=STORE,
        groups=VIP if path == "vip" else OTHER,
        quantity=quantity,
        physical_measures=SOLD if measures == "sold" else RETURNED,
    )


def like(batch: list[tuple[str, str, str, str, str]]) -> bool:
    """Whether the batch is decided in one statement: no id twice, and on each product (all
    at the same dimensions here) consumes of one path, quantity and measures only."""
    ids = [line[0] for line in batch]
    groups = {line[1:] for line in batch}
    return len(set(ids)) == len(ids) and len({group[0] for group in groups}) == len(groups)


def answer(result: ItemResult) -> dict[str, Any]:
    error = result.error
    return {
        "index": result.index,
        "id": result.id,
        "bucket": result.bucket,
        "replayed": result.replayed,
        "body": dict(result.body) if error is None else None,
        "error": None if error is None else (error.code, str(error), dict(error.extra)),
    }


async def prepare(container: Container, environment: str, allocated: str, edge: bool) -> None:
    await ensure_environment(container.uow, environment)
    operator = Principal.operator(environment)
    receipts = [
        OnHandChangeRequest(
            id=f"receipt-{product}",
            organization_id=ORGANIZATION,
            product_id=product,
            dimensions=STORE,
            quantities={"pos": {"inbound": "100"}},
        )
        for product in ("P", "Q")
    ]
    plans = [
        AllocationRequest(
            id=f"plan-{product}-{name}",
            organization_id=ORGANIZATION,
            product_id=product,
            dimensions=STORE,
            groups=path,
            quantity=quantity,
        )
        for product in ("P", "Q")
        for name, path, quantity in (("vip", VIP, allocated), ("other", OTHER, "3"))
        if Decimal(quantity) > 0
    ]
    for results in (
        await post_onhand_changes(container.uow, operator, environment, receipts),
        await allocate(container.uow, operator, environment, plans),
    ):
        assert all(result.error is None for result in results), results


def bring_to_the_edge(libpq: str, environment: str) -> None:
    """Put P's cumulative consumption 1.5 units short of the supported range: a consume of 1
    fits, the next does not (set in the table: consuming that much would take 10**12 units)."""
    with psycopg.connect(libpq) as connection:
        connection.execute(
            "INSERT INTO onhand_measures (environment_id, organization_id, product_id, "
            "dimensions_key, data_source, measure, dimensions, quantity) "
            "VALUES (%s, %s, 'P', %s, '@iv', '@cumulative_consumed', %s, %s)",
            (
                environment,
                ORGANIZATION,
                Dimensions(STORE.items()).key,
                Jsonb(STORE),
                999_999_999_998_499_999,
            ),
        )


def stored(libpq: str, environment: str) -> dict[str, Any]:
    with psycopg.connect(libpq) as connection:
        allocation_rows = connection.execute(
            "SELECT product_id, dimensions_key, group_path, allocated, cumulative_allocated, "
            "consumed, cumulative_consumed FROM allocations WHERE environment_id = %s "
            "ORDER BY 1, 2, 3",
            (environment,),
        ).fetchall()
        measure_rows = connection.execute(
            "SELECT product_id, dimensions_key, data_source, measure, quantity, set_at "
            "FROM onhand_measures WHERE environment_id = %s ORDER BY 1, 2, 3, 4",
            (environment,),
        ).fetchall()
        partition_rows = connection.execute(
            "SELECT organization_id, product_id FROM partitions WHERE environment_id = %s "
            "ORDER BY 1, 2",
            (environment,),
        ).fetchall()
        entries = connection.execute(
            "SELECT product_id, kind, operation_id, fingerprint, request::text, effects::text, "
            "result::text, actor FROM journal WHERE environment_id = %s ORDER BY sequence",
            (environment,),
        ).fetchall()
    return {
        "allocations": allocation_rows,
        "measures": measure_rows,
        "partitions": partition_rows,
        # JSON compared as values: numbers as exact decimals (1 and 1.000000 are equal).
        "journal": [
            (*entry[:4], loads(entry[4]), loads(entry[5]), loads(entry[6]), entry[7])
            for entry in entries
        ],
    }


async def scenario(
    url: str, allocated: str, edge: bool, plan: list[list[tuple[str, str, str, str, str]]]
) -> None:
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    tag = secrets.token_hex(4)
    at_once = build(Settings(database_url=url, pool_size=2))
    in_python = build(Settings(database_url=url, pool_size=2, at_once=False))
    statements: list[BatchTiming] = []
    at_once.observe_batches(
        lambda timing: statements.append(timing) if timing.in_one_statement else None
    )
    try:
        environments = {"at_once": f"once-{tag}", "in_python": f"python-{tag}"}
        containers = {"at_once": at_once, "in_python": in_python}
        for name, environment in environments.items():
            await prepare(containers[name], environment, allocated, edge)
            if edge:
                bring_to_the_edge(libpq, environment)
        for round_, batch in enumerate(plan):
            answers = {}
            before = len(statements)
            for name, environment in environments.items():
                requests = [request(line, str(round_ % 2)) for line in batch]
                principal = Principal.operator(environment)
                results = await consume(containers[name].uow, principal, environment, requests)
                answers[name] = [answer(result) for result in results]
            assert answers["at_once"] == answers["in_python"], batch
            assert len(statements) - before == (1 if like(batch) else 0), batch
        once, python = (stored(libpq, environment) for environment in environments.values())
        assert once == python
    finally:
        await at_once.close()
        await in_python.close()


@given(
    allocated=st.sampled_from(["0", "1", "2", "4", "6.5"]),
    edge=st.booleans(),
    plan=batches,
)
@settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_like_consumes_decided_in_one_statement_match_one_by_one(
    postgresql_url: str, allocated: str, edge: bool, plan: list[list[tuple[str, ...]]]
) -> None:
    asyncio.run(scenario(postgresql_url, allocated, edge, plan))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_sqlite_decides_every_batch_in_python(sqlite_url: str) -> None:
    container = build(Settings(database_url=sqlite_url))
    statements: list[BatchTiming] = []
    container.observe_batches(statements.append)
    environment = f"lite-{secrets.token_hex(4)}"
    try:
        await prepare(container, environment, "2", edge=False)
        statements.clear()
        results = await consume(
            container.uow,
            Principal.operator(environment),
            environment,
            [
                request(("a", "P", "vip", "1", "sold"), "0"),
                request(("b", "P", "vip", "1", "sold"), "0"),
            ],
        )
    finally:
        await container.close()
    assert [result.error for result in results] == [None, None]
    assert [timing.in_one_statement for timing in statements] == [False]


@pytest.mark.parametrize(("products", "at_once"), [(64, True), (65, False)])
async def test_a_batch_of_more_than_64_groups_is_decided_in_python(
    postgresql_url: str, products: int, at_once: bool
) -> None:
    """One consume on each of many products never stocked: all refused either way, in one
    statement up to 64 groups and in Python beyond."""
    containers = {
        "at_once": build(Settings(database_url=postgresql_url, pool_size=2)),
        "in_python": build(Settings(database_url=postgresql_url, pool_size=2, at_once=False)),
    }
    timings: list[BatchTiming] = []
    containers["at_once"].observe_batches(timings.append)
    tag = secrets.token_hex(4)
    answers = {}
    try:
        for name, container in containers.items():
            environment = f"{name}-{tag}"
            await ensure_environment(container.uow, environment)
            requests = [
                request((f"c{n}", f"R{n}", "vip", "1", "sold"), "0") for n in range(products)
            ]
            results = await consume(
                container.uow, Principal.operator(environment), environment, requests
            )
            answers[name] = [answer(result) for result in results]
    finally:
        for container in containers.values():
            await container.close()
    assert answers["at_once"] == answers["in_python"]
    assert {a["error"][0] for a in answers["at_once"] if a["error"]} == {"insufficient-allocated"}
    # The statement reports its batch even when it applied none; Python, which then commits
    # nothing, reports none.
    assert [timing.in_one_statement for timing in timings] == ([True] if at_once else [])


@pytest.mark.asyncio
async def test_batches_decided_at_once_and_in_process_race_on_one_product_without_oversell(
    postgresql_url: str,
) -> None:
    """Two servers of one database consume P's allocation at once: one sends like batches
    (decided in one statement), the other batches of two quantities (decided in process).
    They serialize on P's lock: every unit sold is one consume answered 200, none beyond the
    allocation, refusals only once too little is left, and the invariants hold."""
    tag = secrets.token_hex(4)
    environment = f"race-{tag}"
    servers = [build(Settings(database_url=postgresql_url, pool_size=2)) for _ in range(2)]
    statements: list[BatchTiming] = []
    servers[0].observe_batches(lambda timing: statements.append(timing))
    in_process: list[BatchTiming] = []
    servers[1].observe_batches(lambda timing: in_process.append(timing))
    operator = Principal.operator(environment)
    answers: list[tuple[Decimal, ItemResult]] = []

    async def sell(server: int, rounds: int) -> None:
        for round_ in range(rounds):
            quantities = ["1"] * 4 if server == 0 else ["1", "2", "1"]
            batch = [
                request((f"s{server}-{round_}-{n}", "P", "vip", q, "sold"), "race")
                for n, q in enumerate(quantities)
            ]
            results = await consume(servers[server].uow, operator, environment, batch)
            answers.extend(zip((Decimal(q) for q in quantities), results, strict=True))

    try:
        await prepare(servers[0], environment, "60", edge=False)
        await asyncio.gather(sell(0, 12), sell(1, 12))
    finally:
        for server in servers:
            await server.close()
    sold = sum(quantity for quantity, result in answers if result.error is None)
    refused = sorted({quantity for quantity, result in answers if result.error is not None})
    libpq = make_url(postgresql_url).set(drivername="postgresql").render_as_string()
    with psycopg.connect(libpq) as connection:
        ((allocated, consumed),) = connection.execute(
            "SELECT allocated, consumed FROM allocations WHERE environment_id = %s "
            "AND product_id = 'P' AND group_path LIKE %s",
            (environment, "%VIP%"),
        ).fetchall()
    assert (allocated + consumed) / UNITS == 60
    assert consumed / UNITS == sold <= 60
    assert all(
        result.error.code == "insufficient-allocated"
        for _, result in answers
        if result.error is not None
    ), answers
    # A refusal of q leaves less than q: the most refused is more than what is left.
    assert not refused or allocated / UNITS < min(refused)
    assert any(timing.in_one_statement for timing in statements)
    assert any(not timing.in_one_statement for timing in in_process)
    assert invariants.check(postgresql_url, environment).violations == []


@pytest.mark.asyncio
async def test_one_id_sent_at_once_to_two_products_by_two_servers_is_applied_once(
    postgresql_url: str,
) -> None:
    """Two like batches decided at once, by two servers at the same time, name the same ids
    for P and for Q: each id is journaled once, the other consume refused as a reuse of it."""
    tag = secrets.token_hex(4)
    environment = f"reuse-{tag}"
    servers = [build(Settings(database_url=postgresql_url, pool_size=2)) for _ in range(2)]
    operator = Principal.operator(environment)
    try:
        await prepare(servers[0], environment, "60", edge=False)
        outcomes = []
        for round_ in range(10):
            ids = [f"{round_}-{n}" for n in range(3)]
            outcomes.append(
                await asyncio.gather(
                    *(
                        consume(
                            server.uow,
                            operator,
                            environment,
                            [request((i, product, "vip", "1", "sold"), "same") for i in ids],
                        )
                        for server, product in zip(servers, ("P", "Q"), strict=True)
                    )
                )
            )
    finally:
        for server in servers:
            await server.close()
    for on_p, on_q in outcomes:
        for at_p, at_q in zip(on_p, on_q, strict=True):
            errors = sorted(str(r.error.code) for r in (at_p, at_q) if r.error is not None)
            assert errors == ["idempotency-key-reuse"], (at_p, at_q)
    libpq = make_url(postgresql_url).set(drivername="postgresql").render_as_string()
    with psycopg.connect(libpq) as connection:
        ((entries, distinct),) = connection.execute(
            "SELECT count(*), count(DISTINCT operation_id) FROM journal "
            "WHERE environment_id = %s AND kind = 'consume'",
            (environment,),
        ).fetchall()
        ((consumed,),) = connection.execute(
            "SELECT sum(consumed) FROM allocations WHERE environment_id = %s",
            (environment,),
        ).fetchall()
    assert entries == distinct == 30
    assert consumed / UNITS == 30
    assert invariants.check(postgresql_url, environment).violations == []


@pytest.mark.parametrize(("at_once", "checkouts"), [(True, 0), (False, 1)])
async def test_a_batch_decided_at_once_takes_no_connection_of_the_engines_pool(
    postgresql_url: str, at_once: bool, checkouts: int
) -> None:
    """It is a transaction of its own, sent on a connection of the driver's pool: no unit of
    work is opened around it (its configuration cached by the batches before). A batch decided
    in process opens one."""
    container = build(Settings(database_url=postgresql_url, pool_size=2, at_once=at_once))
    environment = f"pool-{secrets.token_hex(4)}"
    taken: list[object] = []
    try:
        await prepare(container, environment, "4", edge=False)
        engine = container.database.writer.sync_engine
        event.listen(engine, "checkout", lambda *_: taken.append(None))
        results = await consume(
            container.uow,
            Principal.operator(environment),
            environment,
            [request((name, "P", "vip", "1", "sold"), "0") for name in ("a", "b")],
        )
    finally:
        await container.close()
    assert [result.error for result in results] == [None, None]
    assert len(taken) == checkouts
