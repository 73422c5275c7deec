"""A stateful property test of allocation against a model, on SQLite and PostgreSQL.

It extends the reservation model with allocate, unallocate, reallocate and consume (to the
store's outbound, or into a soft reservation). A plain model predicts every outcome. Besides the
reservation invariants (every level's availability equals what the journal's effects add up to;
replays change nothing), after each step:

- no path holds a negative allocation, and each path's figures equal the model's;
- each path's subtree figures equal its own plus all its descendants';
- the ``@iv`` allocation measures at each level equal the sums over its paths.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from ringfence.domain.allocation import AllocationRequest, ConsumeRequest, ReallocateRequest
from ringfence.domain.operations import Bucket, ItemResult
from ringfence.services.allocation import (
    AllocationQuery,
    allocate,
    consume,
    query_allocations,
    reallocate,
    unallocate,
)
from tests.conftest import SCALE
from tests.integration.test_reservation_model import (
    COLOURS,
    PRODUCT,
    SITE,
    ReservationMachine,
    Row,
    quantities,
)

Path = tuple[tuple[str, str], ...]

PATHS: list[Path] = [
    (("channel", "Web"),),
    (("channel", "Web"), ("customerGroup", "VIP")),
    (("channel", "Web"), ("customerGroup", "VIP"), ("region", "US")),
    (("channel", "Web"), ("customerGroup", "VIP"), ("region", "EU")),
    (("channel", "Store"),),
]
ALLOCATION_LEVELS = [dict(SITE), *({**SITE, "colorId": c} for c in COLOURS)]

paths = st.sampled_from(PATHS)
allocation_levels = st.sampled_from(ALLOCATION_LEVELS)


def _row(level: dict[str, str]) -> Row:
    return tuple(sorted(level.items()))


class AllocationMachine(ReservationMachine):
    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        # (level, path) -> [allocated, cumulative allocated, consumed, cumulative consumed]
        self.paths: defaultdict[tuple[Row, Path], list[Decimal]] = defaultdict(
            lambda: [Decimal(0)] * 4
        )
        self.services.update(
            allocate=allocate, unallocate=unallocate, reallocate=reallocate, consume=consume
        )

    def request(
        self, kind: str, level: dict[str, str], path: Path, quantity: Decimal
    ) -> AllocationRequest:
        return AllocationRequest(
            id=self.next_id(kind),
            organization_id="usmf",
            product_id=PRODUCT,
            dimensions=level,
            groups=dict(path),
            quantity=quantity,
        )

    def send(self, kind: str, request: AllocationRequest) -> Bucket:
        results: list[ItemResult] = self.run(
            self.services[kind](self.container.uow, self.principal, self.environment, [request])
        )
        [result] = results
        self.sent.append((kind, request, result))
        if result.error is not None:
            expected = {
                "allocate": "insufficient-available-to-allocate",
            }.get(kind, "insufficient-allocated")
            assert result.error.code == expected, result.error
        return result.bucket

    # -- rules ----------------------------------------------------------------------------------

    @rule(level=allocation_levels, path=paths, quantity=quantities)
    def allocate(self, level: dict[str, str], path: Path, quantity: Decimal) -> None:
        ok = all(self.available(above) >= quantity for above in self.levels_of(level))
        bucket = self.send("allocate", self.request("allocate", level, path, quantity))
        assert bucket is (Bucket.SUCCESS if ok else Bucket.CONFLICT)
        if ok:
            figures = self.paths[(_row(level), path)]
            figures[0] += quantity
            figures[1] += quantity
            self.rows[_row(level)]["@iv.@allocated"] += quantity
            self.rows[_row(level)]["@iv.@cumulative_allocated"] += quantity

    @rule(level=allocation_levels, path=paths, quantity=quantities)
    def unallocate(self, level: dict[str, str], path: Path, quantity: Decimal) -> None:
        figures = self.paths[(_row(level), path)]
        ok = figures[0] >= quantity
        bucket = self.send("unallocate", self.request("unallocate", level, path, quantity))
        assert bucket is (Bucket.SUCCESS if ok else Bucket.CONFLICT)
        if ok:
            figures[0] -= quantity
            self.rows[_row(level)]["@iv.@allocated"] -= quantity

    @rule(level=allocation_levels, source=paths, destination=paths, quantity=quantities)
    def reallocate(
        self, level: dict[str, str], source: Path, destination: Path, quantity: Decimal
    ) -> None:
        if source == destination:
            return
        leaving = self.paths[(_row(level), source)]
        ok = leaving[0] >= quantity
        request = ReallocateRequest(
            id=self.next_id("reallocate"),
            organization_id="usmf",
            product_id=PRODUCT,
            dimensions=level,
            groups=dict(destination),
            quantity=quantity,
            source_groups=dict(source),
        )
        assert self.send("reallocate", request) is (Bucket.SUCCESS if ok else Bucket.CONFLICT)
        if ok:
            arriving = self.paths[(_row(level), destination)]
            leaving[0] -= quantity
            arriving[0] += quantity
            arriving[1] += quantity
            self.rows[_row(level)]["@iv.@cumulative_allocated"] += quantity

    @rule(
        target=ReservationMachine.reservations,
        level=allocation_levels,
        path=paths,
        quantity=quantities,
        into_reservation=st.booleans(),
    )
    def consume(
        self, level: dict[str, str], path: Path, quantity: Decimal, into_reservation: bool
    ) -> str:
        figures = self.paths[(_row(level), path)]
        ok = figures[0] >= quantity
        measure = ("@iv", "@softreserved") if into_reservation else ("pos", "outbound")
        request = ConsumeRequest(
            id=self.next_id("consume"),
            organization_id="usmf",
            product_id=PRODUCT,
            dimensions=level,
            groups=dict(path),
            quantity=quantity,
            physical_measures={measure[0]: {measure[1]: "Addition"}},
        )
        assert self.send("consume", request) is (Bucket.SUCCESS if ok else Bucket.CONFLICT)
        if not ok:
            return "refused"
        figures[0] -= quantity
        figures[2] += quantity
        figures[3] += quantity
        row = self.rows[_row(level)]
        row["@iv.@allocated"] -= quantity
        row["@iv.@consumed"] += quantity
        row["@iv.@cumulative_consumed"] += quantity
        row[".".join(measure)] += quantity
        if not into_reservation:
            return "refused"
        reservation_id = str(self.sent[-1][2].body["reservationId"])
        self.held[reservation_id] = (_row(level), quantity, Decimal(0))
        return reservation_id

    # -- invariants -------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.paths))
    @invariant()
    def paths_match_the_model_and_subtrees_add_up(self) -> None:
        for level in ALLOCATION_LEVELS:
            view = self.run(
                query_allocations(
                    self.container.uow,
                    self.principal,
                    self.environment,
                    AllocationQuery("usmf", PRODUCT, level, {}),
                )
            )
            own = {row.path.items: row.own for row in view.rows}
            for row in view.rows:
                assert row.own.allocated >= 0
                below = [
                    state
                    for path, state in own.items()
                    if path[: len(row.path.items)] == row.path.items
                ]
                assert row.subtree_allocated == sum((s.allocated for s in below), Decimal(0))
                assert row.subtree_consumed == sum((s.consumed for s in below), Decimal(0))
            expected = {
                path: figures
                for (row, path), figures in self.paths.items()
                if row == _row(level) and any(figures)
            }
            assert {
                path: [
                    state.allocated,
                    state.cumulative_allocated,
                    state.consumed,
                    state.cumulative_consumed,
                ]
                for path, state in own.items()
            } == expected
            assert (
                sum((s.allocated for s in own.values()), Decimal(0))
                == self.rows[_row(level)]["@iv.@allocated"]
            )
            assert view.available_to_allocate == self.available(level)


@pytest.mark.slow
def test_allocations_keep_every_level_and_path_consistent(database_url: str) -> None:
    class OnThisDatabase(AllocationMachine):
        def __init__(self) -> None:
            super().__init__(database_url)

    run_state_machine_as_test(
        OnThisDatabase,
        settings=settings(
            max_examples=20 * SCALE,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
