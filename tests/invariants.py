"""DESIGN §2's invariants, checked on everything stored for an environment.

Read straight from the database (not through the services that maintain them):

1. every measure row equals the sum of the journal's deltas for it (conservation);
2. at every dimensions, each ``@iv`` allocation measure equals the sum over its group paths;
3. no path holds a negative allocation; cumulative figures are at least the current ones;
4. every reservation has 0 <= released <= reserved, and each reservation measure row equals
   what its reservations still hold;
5. every (kind, id) is journaled once.

Returns the violations found (an empty list when all hold) and what was checked.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import create_engine, select

from ringfence.storage.engine import sync_url
from ringfence.storage.tables import allocations, journal, onhand_measures, reservations

UNITS = Decimal(10) ** 6
ALLOCATION_MEASURES = {
    "@iv.@allocated": "allocated",
    "@iv.@cumulative_allocated": "cumulative_allocated",
    "@iv.@consumed": "consumed",
    "@iv.@cumulative_consumed": "cumulative_consumed",
}


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    rows: int = 0
    journal_entries: int = 0
    paths: int = 0
    reservations: int = 0


def _key(dimensions: object) -> str:
    return json.dumps(dimensions, sort_keys=True)


def check(database_url: str, environment_id: str) -> Report:
    report = Report()
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            stored = {
                (
                    row.organization_id,
                    row.product_id,
                    _key(row.dimensions),
                    f"{row.data_source}.{row.measure}",
                ): Decimal(row.quantity) / UNITS
                for row in connection.execute(
                    select(onhand_measures).where(
                        onhand_measures.c.environment_id == environment_id
                    )
                )
            }
            entries = list(
                connection.execute(
                    select(journal).where(journal.c.environment_id == environment_id)
                )
            )
            paths = list(
                connection.execute(
                    select(allocations).where(allocations.c.environment_id == environment_id)
                )
            )
            held = list(
                connection.execute(
                    select(reservations).where(reservations.c.environment_id == environment_id)
                )
            )
    finally:
        engine.dispose()
    report.rows, report.journal_entries = len(stored), len(entries)
    report.paths, report.reservations = len(paths), len(held)

    # 1. conservation
    summed: defaultdict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for entry in entries:
        effects = entry.effects if isinstance(entry.effects, list) else json.loads(entry.effects)
        for effect in effects:
            if "measure" in effect:
                key = (
                    entry.organization_id,
                    entry.product_id,
                    _key(effect["dimensions"]),
                    effect["measure"],
                )
                summed[key] += Decimal(str(effect["delta"]))
    for key in set(stored) | set(summed):
        if stored.get(key, Decimal(0)) != summed.get(key, Decimal(0)):
            report.violations.append(
                f"measure {key} is {stored.get(key, 0)} but the journal adds up to "
                f"{summed.get(key, 0)}"
            )

    # 2 and 3. paths
    by_dimensions: defaultdict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for row in paths:
        figures = {
            name: Decimal(getattr(row, name)) / UNITS for name in ALLOCATION_MEASURES.values()
        }
        if figures["allocated"] < 0:
            report.violations.append(f"path {row.group_path} of {row.product_id} is negative")
        if figures["cumulative_allocated"] < figures["allocated"] or (
            figures["cumulative_consumed"] < figures["consumed"]
        ):
            report.violations.append(f"path {row.group_path} has cumulative below current")
        totals = by_dimensions[(row.organization_id, row.product_id, _key(row.dimensions))]
        for name, value in figures.items():
            totals[name] += value  # type: ignore[assignment]
    for (organization, product, dimensions), totals in by_dimensions.items():
        for measure, name in ALLOCATION_MEASURES.items():
            value = stored.get((organization, product, dimensions, measure), Decimal(0))
            if value != totals[name]:
                report.violations.append(
                    f"{measure} of {product} at {dimensions} is {value}, its paths hold "
                    f"{totals[name]}"
                )

    # 4. reservations
    remaining: defaultdict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for row in held:
        quantity, offset = Decimal(row.quantity) / UNITS, Decimal(row.offset_quantity) / UNITS
        if not 0 <= offset <= quantity:
            report.violations.append(f"reservation {row.reservation_id} released {offset}")
        remaining[
            (
                row.organization_id,
                row.product_id,
                _key(row.dimensions),
                f"{row.data_source}.{row.measure}",
            )
        ] += quantity - offset
    for key, value in remaining.items():
        if stored.get(key, Decimal(0)) != value:
            report.violations.append(
                f"{key[3]} of {key[1]} at {key[2]} is {stored.get(key, 0)}, its reservations "
                f"hold {value}"
            )

    # 5. once
    doubled = [
        key
        for key, count in Counter((e.kind, e.operation_id) for e in entries).items()
        if count > 1
    ]
    report.violations.extend(f"{kind} {operation} journaled twice" for kind, operation in doubled)
    return report
