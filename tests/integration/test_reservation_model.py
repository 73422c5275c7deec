"""A stateful property test of reservations against a model, on SQLite and PostgreSQL.

Random sequences of on-hand changes, checked and unchecked reserves, unreserves and replays run
through the services on a real database. A plain model predicts every outcome. After each step:

- at every hierarchy level, available-to-reserve as queried equals supply minus reservations
  minus allocations recomputed from the journal's effects alone (and equals the model);
- every measure row equals the sum of the journal's deltas for it;
- no reservation has more offset than it reserved;
- a replayed request answers as the first time and changes nothing.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ringfence.bootstrap import build
from ringfence.domain.access import Principal, Role
from ringfence.domain.onhand import OnHandChangeRequest
from ringfence.domain.operations import Bucket, ItemResult
from ringfence.domain.query import IndexQueryRequest
from ringfence.domain.reservations import ReserveRequest, UnreserveRequest
from ringfence.services.configuration import ensure_environment
from ringfence.services.journal import list_journal
from ringfence.services.onhand import post_onhand_changes, query_onhand_index
from ringfence.services.ports import JournalFilter, ReservationFilter
from ringfence.services.reservations import list_reservations, reserve, unreserve
from ringfence.settings import Settings
from tests.conftest import SCALE

T = TypeVar("T")

PRODUCT = "model-bike"
SITE = {"siteId": "1", "locationId": "11"}
COLOURS = ("red", "blue")
SIZES = ("S", "M")
SUPPLY = {"fno.availphysical": 1, "pos.inbound": 1, "pos.outbound": -1}
HELD = ("@iv.@softreserved", "@iv.@allocated")

Row = tuple[tuple[str, str], ...]
"""Dimensions of a stored row, as sorted items."""

quantities = st.integers(min_value=1, max_value=12).map(Decimal) | st.sampled_from(
    [Decimal("0.5"), Decimal("2.25"), Decimal("0.000001")]
)
levels = st.sampled_from(
    [
        dict(SITE),
        *({**SITE, "colorId": c} for c in COLOURS),
        *({**SITE, "colorId": c, "sizeId": s} for c in COLOURS for s in SIZES),
    ]
)
row_dimensions = levels | st.sampled_from([{**SITE, "sizeId": "S"}, {**SITE, "batchId": "B7"}])


def _row(dimensions: dict[str, str]) -> Row:
    return tuple(sorted(dimensions.items()))


def _matches(row: Row, level: dict[str, str]) -> bool:
    values = dict(row)
    return all(values.get(name) == value for name, value in level.items())


class ReservationMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.container = build(Settings(database_url=database_url))
        self.environment = f"model-{secrets.token_hex(5)}"
        self.principal = Principal(self.environment, Role.ADMIN, "model")
        self.run(ensure_environment(self.container.uow, self.environment))
        # The model: measure values per row, and reservations (row, reserved, offset).
        self.rows: defaultdict[Row, defaultdict[str, Decimal]] = defaultdict(
            lambda: defaultdict(Decimal)
        )
        self.held: dict[str, tuple[Row, Decimal, Decimal]] = {}
        self.sent: list[tuple[str, object, ItemResult]] = []
        self.services: dict[str, Any] = {
            "onhand": post_onhand_changes,
            "reserve": reserve,
            "unreserve": unreserve,
        }
        self.counter = 0

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await awaitable

        return self.runner.run(wrapped())

    def teardown(self) -> None:
        self.run(self.container.close())
        self.runner.close()

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def available(self, level: dict[str, str]) -> Decimal:
        total = Decimal(0)
        for row, values in self.rows.items():
            if _matches(row, level):
                total += sum((values[m] * c for m, c in SUPPLY.items()), Decimal(0))
                total -= sum((values[m] for m in HELD), Decimal(0))
        return total

    def levels_of(self, level: dict[str, str]) -> list[dict[str, str]]:
        names = ["siteId", "locationId", "colorId", "sizeId"]
        depth = len(level)
        return [{n: level[n] for n in names[:d]} for d in range(2, depth + 1)]

    # -- rules --------------------------------------------------------------------------------

    @rule(
        dimensions=row_dimensions,
        measure=st.sampled_from(["pos.inbound", "pos.outbound", "fno.availphysical"]),
        delta=st.integers(min_value=-5, max_value=20),
    )
    def post_change(self, dimensions: dict[str, str], measure: str, delta: int) -> None:
        data_source, name = measure.split(".")
        request = OnHandChangeRequest(
            id=self.next_id("change"),
            organization_id="usmf",
            product_id=PRODUCT,
            dimensions=dimensions,
            quantities={data_source: {name: delta}},
        )
        [result] = self.run(
            post_onhand_changes(self.container.uow, self.principal, self.environment, [request])
        )
        assert result.bucket is Bucket.SUCCESS, result.error
        self.rows[_row(dimensions)][measure] += delta
        self.sent.append(("onhand", request, result))

    @rule(target=reservations, level=levels, quantity=quantities, checked=st.booleans())
    def reserve(self, level: dict[str, str], quantity: Decimal, checked: bool) -> str:
        request = ReserveRequest(
            id=self.next_id("reserve"),
            organization_id="usmf",
            product_id=PRODUCT,
            dimensions=level,
            quantity=quantity,
            check_availability=checked,
        )
        expected_ok = not checked or all(
            self.available(above) >= quantity for above in self.levels_of(level)
        )
        [result] = self.run(
            reserve(self.container.uow, self.principal, self.environment, [request])
        )
        self.sent.append(("reserve", request, result))
        if not expected_ok:
            assert result.bucket is Bucket.CONFLICT
            assert result.error is not None
            assert result.error.code == "insufficient-available-to-reserve"
            return "refused"
        assert result.bucket is Bucket.SUCCESS, result.error
        reservation_id = str(result.body["reservationId"])
        self.rows[_row(level)]["@iv.@softreserved"] += quantity
        self.held[reservation_id] = (_row(level), quantity, Decimal(0))
        return reservation_id

    @rule(reservation_id=consumes(reservations), quantity=quantities)
    def unreserve(self, reservation_id: str, quantity: Decimal) -> None:
        request = UnreserveRequest(
            id=self.next_id("unreserve"),
            organization_id="usmf",
            reservation_id=reservation_id if reservation_id != "refused" else "no-such-id",
            quantity=quantity,
        )
        [result] = self.run(
            unreserve(self.container.uow, self.principal, self.environment, [request])
        )
        self.sent.append(("unreserve", request, result))
        if reservation_id == "refused":
            assert result.bucket is Bucket.NOT_FOUND
            return
        row, reserved, offset = self.held[reservation_id]
        applied = min(quantity, reserved - offset)
        assert result.body["totalInvalidOffsetQtyByReservId"] == quantity - applied
        expected = Bucket.PARTIAL_SUCCESS if quantity > applied else Bucket.SUCCESS
        assert result.bucket is expected
        self.held[reservation_id] = (row, reserved, offset + applied)
        self.rows[row]["@iv.@softreserved"] -= applied

    @precondition(lambda self: any(first.error is None for _, _, first in self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        accepted = [sent for sent in self.sent if sent[2].error is None]
        kind, request, first = data.draw(st.sampled_from(accepted))
        service = self.services[kind]
        before = self.journal_length()
        [again] = self.run(service(self.container.uow, self.principal, self.environment, [request]))
        assert again.replayed
        assert again.bucket is first.bucket
        assert again.body == first.body
        assert self.journal_length() == before

    # -- invariants ---------------------------------------------------------------------------

    def journal_length(self) -> int:
        return len(self.journal())

    def journal(self) -> list[Any]:
        page = self.run(
            list_journal(
                self.container.uow,
                self.principal,
                self.environment,
                JournalFilter(limit=1000),
            )
        )
        return page.entries

    @invariant()
    def measures_and_availability_follow_from_the_journal(self) -> None:
        recomputed: defaultdict[Row, defaultdict[str, Decimal]] = defaultdict(
            lambda: defaultdict(Decimal)
        )
        for entry in self.journal():
            for effect in entry.effects:
                if "measure" in effect:
                    recomputed[_row(effect["dimensions"])][effect["measure"]] += Decimal(
                        effect["delta"]
                    )
        model = {row: {m: v for m, v in values.items() if v} for row, values in self.rows.items()}
        journal = {
            row: {m: v for m, v in values.items() if v} for row, values in recomputed.items()
        }
        assert {r: v for r, v in journal.items() if v} == {r: v for r, v in model.items() if v}

        for level in (
            [dict(SITE)]
            + [{**SITE, "colorId": c} for c in COLOURS]
            + [{**SITE, "colorId": c, "sizeId": s} for c in COLOURS for s in SIZES]
        ):
            rows = self.run(
                query_onhand_index(
                    self.container.uow,
                    self.principal,
                    self.environment,
                    IndexQueryRequest(
                        filters={
                            "organizationId": ["usmf"],
                            "productId": [PRODUCT],
                            **{name: [value] for name, value in level.items()},
                        },
                        return_negative=True,
                    ),
                )
            )
            queried = sum(
                (row.quantities["@iv"]["@available_to_reserve"] for row in rows), Decimal(0)
            )
            from_journal = Decimal(0)
            for row, values in recomputed.items():
                if _matches(row, level):
                    from_journal += sum((values[m] * c for m, c in SUPPLY.items()), Decimal(0))
                    from_journal -= sum((values[m] for m in HELD), Decimal(0))
            assert queried == from_journal == self.available(level), level

    @invariant()
    def no_reservation_is_negative(self) -> None:
        page = self.run(
            list_reservations(
                self.container.uow,
                self.principal,
                self.environment,
                ReservationFilter(limit=1000),
            )
        )
        for reservation in page.reservations:
            assert 0 <= reservation.offset <= reservation.quantity
            _, reserved, offset = self.held[reservation.reservation_id]
            assert (reservation.quantity, reservation.offset) == (reserved, offset)
        assert len(page.reservations) == len(self.held)


@pytest.mark.slow
def test_reservations_keep_every_level_consistent_with_the_journal(database_url: str) -> None:
    class OnThisDatabase(ReservationMachine):
        def __init__(self) -> None:
            super().__init__(database_url)

    run_state_machine_as_test(
        OnThisDatabase,
        settings=settings(
            max_examples=15 * SCALE,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
