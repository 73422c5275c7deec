"""Batches of on-hand change events applied in one statement (PostgreSQL) answer, write and
journal exactly what applying them one by one in Python does.

Each example runs the same batches in two environments of one database: one served with
``at_once`` (the default), the other without. Batches mix several products and dimensions,
the same measure moved by several events, replays, ids reused with another meaning, an id
twice in a batch (decided in Python in both), events refused by the configuration, and events
that would take a measure beyond the supported range (storage then applies nothing and the
batch is decided in Python, where that event alone is refused). The answers, the measure rows
and the journal must be the same, and every batch that needs neither Python nor a refusal of
range must have been applied in one statement.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb
from sqlalchemy import make_url

from ringfence.bootstrap import Container, build
from ringfence.domain.access import Principal, Role
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.errors import Unauthenticated
from ringfence.domain.onhand import OnHandChangeRequest
from ringfence.domain.operations import ItemResult
from ringfence.jsoncodec import loads
from ringfence.services.configuration import ensure_environment
from ringfence.services.onhand import post_onhand_changes
from ringfence.services.ports import BatchTiming
from ringfence.services.tokens import create_token, principal_of, revoke_token
from ringfence.settings import Settings
from tests.conftest import SCALE

ORGANIZATION = "usmf"
STORES = {
    "red": {"siteId": "1", "locationId": "11", "colorId": "Red"},
    "blue": {"colorId": "Blue", "siteId": "1", "locationId": "11"},  # keys in another order
    "other": {"siteId": "2", "locationId": "21"},
}
EDGE = 999_999_999_998_000_000
"""P's pos.inbound at Red, in units, in edge examples: 2 units short of the supported range."""

# One event: (id, product, store, quantities).
quantities = st.dictionaries(
    st.sampled_from(["inbound", "outbound", "outbound", "bogus"]),
    st.sampled_from(["1", "-1", "2.5", "0.000001", "-3.25", "0", "1.5"]),
    min_size=1,
    max_size=3,
)
events = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]),
    st.sampled_from(["P", "P", "Q", "R"]),
    st.sampled_from(sorted(STORES)),
    quantities,
)
batches = st.lists(st.lists(events, min_size=1, max_size=8), min_size=1, max_size=5)


def request(event: tuple[str, str, str, dict[str, str]], round_: str) -> OnHandChangeRequest:
    operation_id, product, store, values = event
    return OnHandChangeRequest(
        id=f"{round_}-{operation_id}",
        organization_id=ORGANIZATION,
        product_id=product,
        dimensions=STORES[store],
        quantities={"pos": dict(values)},
    )


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


def bring_to_the_edge(libpq: str, environment: str) -> None:
    with psycopg.connect(libpq) as connection:
        connection.execute(
            "INSERT INTO onhand_measures (environment_id, organization_id, product_id, "
            "dimensions_key, data_source, measure, dimensions, quantity) "
            "VALUES (%s, %s, 'P', %s, 'pos', 'inbound', %s, %s)",
            (
                environment,
                ORGANIZATION,
                Dimensions(STORES["red"].items()).key,
                Jsonb(STORES["red"]),
                EDGE,
            ),
        )


def stored(libpq: str, environment: str) -> dict[str, Any]:
    with psycopg.connect(libpq) as connection:
        measure_rows = connection.execute(
            "SELECT product_id, dimensions_key, data_source, measure, dimensions, quantity, "
            "set_at FROM onhand_measures WHERE environment_id = %s ORDER BY 1, 2, 3, 4",
            (environment,),
        ).fetchall()
        partition_rows = connection.execute(
            "SELECT organization_id, product_id FROM partitions WHERE environment_id = %s "
            "ORDER BY 1, 2",
            (environment,),
        ).fetchall()
        entries = connection.execute(
            "SELECT organization_id, product_id, kind, operation_id, fingerprint, "
            "request::text, effects::text, result::text, actor FROM journal "
            "WHERE environment_id = %s ORDER BY sequence",
            (environment,),
        ).fetchall()
    return {
        "measures": measure_rows,
        "partitions": partition_rows,
        # JSON compared as values, key order included (dicts compare without it: as lists).
        "journal": [
            (
                *entry[:5],
                loads(entry[5]),
                [list(effect.items()) for effect in loads(entry[6])],
                [list(effect["dimensions"].items()) for effect in loads(entry[6])],
                loads(entry[7]),
                entry[8],
            )
            for entry in entries
        ],
    }


def in_one_statement(batch: list[tuple[str, str, str, dict[str, str]]], answers: list[Any]) -> bool:
    """Whether the batch should have been applied in one statement: some event passed the
    configuration, no id is named twice by those, and none was refused for its range."""
    valid = [event for event in batch if "bogus" not in event[3]]
    ids = [event[0] for event in valid]
    return (
        bool(valid)
        and len(set(ids)) == len(ids)
        and not any(a["error"] and a["error"][0] == "quantity-out-of-range" for a in answers)
    )


async def scenario(
    url: str, edge: bool, plan: list[list[tuple[str, str, str, dict[str, str]]]]
) -> None:
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    tag = secrets.token_hex(4)
    at_once = build(Settings(database_url=url, pool_size=2))
    in_python = build(Settings(database_url=url, pool_size=2, at_once=False))
    statements: list[BatchTiming] = []
    at_once.observe_batches(
        lambda timing: statements.append(timing) if timing.in_one_statement else None
    )
    containers: dict[str, Container] = {"at_once": at_once, "in_python": in_python}
    try:
        environments = {"at_once": f"once-{tag}", "in_python": f"python-{tag}"}
        for name, environment in environments.items():
            await ensure_environment(containers[name].uow, environment)
            if edge:
                bring_to_the_edge(libpq, environment)
        for round_, batch in enumerate(plan):
            answers = {}
            before = len(statements)
            for name, environment in environments.items():
                requests = [request(event, str(round_ % 2)) for event in batch]
                principal = Principal.operator(environment)
                results = await post_onhand_changes(
                    containers[name].uow, principal, environment, requests
                )
                answers[name] = [answer(result) for result in results]
            assert answers["at_once"] == answers["in_python"], batch
            expected = 1 if in_one_statement(batch, answers["in_python"]) else 0
            assert len(statements) - before == expected, batch
        once, python = (stored(libpq, environment) for environment in environments.values())
        assert once == python
    finally:
        await at_once.close()
        await in_python.close()


@given(edge=st.booleans(), plan=batches)
@settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_change_events_applied_in_one_statement_match_one_by_one(
    postgresql_url: str, edge: bool, plan: list[list[tuple[str, str, str, dict[str, str]]]]
) -> None:
    asyncio.run(scenario(postgresql_url, edge, plan))


def observed(url: str) -> tuple[Container, list[BatchTiming]]:
    """A server of the database at ``url``, and the batches it commits, as they commit."""
    container = build(Settings(database_url=url, pool_size=2))
    timings: list[BatchTiming] = []
    container.observe_batches(timings.append)
    return container, timings


@pytest.mark.asyncio
async def test_a_refusal_for_range_refuses_that_event_alone(postgresql_url: str) -> None:
    """Storage applies none of a batch in which one event leaves the range; in process, the
    events before and after it are applied and it alone is refused."""
    libpq = make_url(postgresql_url).set(drivername="postgresql").render_as_string()
    container, timings = observed(postgresql_url)
    environment = f"edge-{secrets.token_hex(4)}"
    try:
        await ensure_environment(container.uow, environment)
        bring_to_the_edge(libpq, environment)
        results = await post_onhand_changes(
            container.uow,
            Principal.operator(environment),
            environment,
            [
                request(("a", "P", "red", {"inbound": "1"}), "0"),
                request(("b", "P", "red", {"inbound": "1.5"}), "0"),
                request(("c", "P", "red", {"inbound": "-4"}), "0"),
            ],
        )
    finally:
        await container.close()
    assert [result.error.code if result.error else None for result in results] == [
        None,
        "quantity-out-of-range",
        None,
    ]
    assert [timing.in_one_statement for timing in timings] == [False]
    with psycopg.connect(libpq) as connection:
        (value,) = connection.execute(
            "SELECT quantity FROM onhand_measures WHERE environment_id = %s", (environment,)
        ).fetchone()  # type: ignore[misc]
    assert value == EDGE + 1_000_000 - 4_000_000


@pytest.mark.asyncio
async def test_sqlite_applies_change_events_in_python(sqlite_url: str) -> None:
    container = build(Settings(database_url=sqlite_url))
    timings: list[BatchTiming] = []
    container.observe_batches(timings.append)
    environment = f"lite-{secrets.token_hex(4)}"
    try:
        await ensure_environment(container.uow, environment)
        results = await post_onhand_changes(
            container.uow,
            Principal.operator(environment),
            environment,
            [request(("a", "P", "red", {"inbound": "1"}), "0")],
        )
    finally:
        await container.close()
    assert [result.error for result in results] == [None]
    assert [timing.in_one_statement for timing in timings] == [False]


@pytest.mark.asyncio
async def test_a_batch_whose_token_is_gone_or_revoked_writes_nothing(postgresql_url: str) -> None:
    """A caller recognized without a read (not ``confirmed``) has its token confirmed by the
    statement itself: revoked or gone, nothing is written and the caller is refused."""
    libpq = make_url(postgresql_url).set(drivername="postgresql").render_as_string()
    container, timings = observed(postgresql_url)
    environment = f"token-{secrets.token_hex(4)}"
    try:
        await ensure_environment(container.uow, environment)
        issued = await create_token(container.uow, Principal.operator(environment), Role.WRITER)
        caller = replace(principal_of(issued.record), confirmed=False)
        gone = replace(caller, token_id="0" * 16)
        applied = await post_onhand_changes(
            container.uow, caller, environment, [request(("a", "P", "red", {"inbound": "1"}), "0")]
        )
        await revoke_token(container.uow, Principal.operator(environment), issued.record.name)
        refusals = []
        for who in (caller, gone):
            with pytest.raises(Unauthenticated) as refused:
                await post_onhand_changes(
                    container.uow,
                    who,
                    environment,
                    [request(("b", "P", "red", {"inbound": "1"}), "0")],
                )
            refusals.append(refused.value.code)
    finally:
        await container.close()
    assert [result.error for result in applied] == [None]
    assert refusals == ["invalid-token", "invalid-token"]
    assert [timing.in_one_statement for timing in timings] == [True]
    with psycopg.connect(libpq) as connection:
        journaled = connection.execute(
            "SELECT operation_id FROM journal WHERE environment_id = %s", (environment,)
        ).fetchall()
        (partitions,) = connection.execute(
            "SELECT count(*) FROM partitions WHERE environment_id = %s", (environment,)
        ).fetchone()  # type: ignore[misc]
    assert [row[0] for row in journaled] == ["0-a"]
    assert partitions == 1
