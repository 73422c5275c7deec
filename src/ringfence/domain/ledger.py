"""The state a batch of operations works on, loaded once, changed in memory, saved once.

A :class:`Ledger` holds, for the partitions a batch touches:

- the physical measure rows the operations change (a :class:`MeasureTable`);
- the sums of every physical measure by hierarchy group within each loaded *scope* (the values
  of the partition dimensions), from which availability at any hierarchy level is computed:
  :class:`LevelTotals`;
- the allocation rows (per dimensions and group path) the operations touch;
- the soft reservations the operations touch.

Every change to a measure goes through the ledger, which keeps the level sums in step, so each
operation of a batch sees the effects of those before it: the outcome of each is exactly the one
it would have had alone, in that order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from ringfence.domain.configuration import Configuration, MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.errors import Conflict
from ringfence.domain.measures import MeasureChange, MeasureKey, MeasureState, MeasureTable
from ringfence.domain.operations import PartitionKey
from ringfence.domain.quantity import ZERO, format_quantity

__all__ = [
    "AllocationKey",
    "AllocationState",
    "AllocationTable",
    "GroupPath",
    "Ledger",
    "LevelScope",
    "LevelTotals",
    "Needs",
    "Reservation",
    "ReservationBook",
]


# -- level sums ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelScope:
    """One product at one set of partition-dimension values (site 1, location 11)."""

    partition: PartitionKey
    anchor: Dimensions

    def __lt__(self, other: object) -> bool:  # Dimensions are not orderable; keys are.
        if not isinstance(other, LevelScope):
            return NotImplemented
        return (self.partition, self.anchor.key) < (other.partition, other.anchor.key)


Group = tuple[str | None, ...]
"""Values of the hierarchy dimensions below the partition dimensions (None: absent)."""


class LevelTotals:
    """Sums of physical measures by hierarchy group, within loaded scopes."""

    def __init__(
        self,
        configuration: Configuration,
        loaded: Mapping[LevelScope, Mapping[Group, Mapping[MeasureRef, Decimal]]] | None = None,
    ) -> None:
        self._partition_dimensions = configuration.partition_dimensions
        self._below = configuration.dimension_hierarchy[len(configuration.partition_dimensions) :]
        self._sums: dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]] = {
            scope: {group: dict(values) for group, values in groups.items()}
            for scope, groups in (loaded or {}).items()
        }

    def scope(self, partition: PartitionKey, dimensions: Dimensions) -> LevelScope:
        return LevelScope(partition, dimensions.restricted_to(self._partition_dimensions))

    def group(self, dimensions: Dimensions) -> Group:
        return tuple(dimensions.get(name) for name in self._below)

    def sums(self, partition: PartitionKey, level: Dimensions) -> dict[MeasureRef, Decimal]:
        """Each physical measure summed over every row at or below ``level``."""
        groups = self._sums.get(self.scope(partition, level))
        if groups is None:
            raise LookupError(f"level sums of {partition} at {level!r} were not loaded")
        wanted = tuple(level.get(name) for name in self._below)
        totals: dict[MeasureRef, Decimal] = {}
        for group, values in groups.items():
            if all(w is None or w == g for w, g in zip(wanted, group, strict=True)):
                for ref, value in values.items():
                    totals[ref] = totals.get(ref, ZERO) + value
        return totals

    def add(self, change: MeasureChange) -> None:
        if not self._sums:  # no level was loaded: nothing to keep up to date
            return
        scope = self.scope(change.key.partition, change.key.dimensions)
        groups = self._sums.get(scope)
        if groups is None:
            return
        values = groups.setdefault(self.group(change.key.dimensions), {})
        values[change.key.measure] = values.get(change.key.measure, ZERO) + change.delta


# -- allocations --------------------------------------------------------------------------------


_PATH_KEY_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""Writes :attr:`GroupPath.key` (built once: ``json.dumps`` with options builds one per call)."""


@dataclass(frozen=True, slots=True)
class GroupPath:
    """Allocation group values filled top-down without gaps: ``[Web, VIP, US]``."""

    items: tuple[tuple[str, str], ...]
    """(group name, value), in hierarchy order."""

    @property
    def key(self) -> str:
        return _PATH_KEY_ENCODER.encode([list(item) for item in self.items])

    @classmethod
    def from_key(cls, key: str) -> GroupPath:
        return cls(tuple((str(name), str(value)) for name, value in json.loads(key)))

    def starts_with(self, prefix: GroupPath) -> bool:
        return self.items[: len(prefix.items)] == prefix.items

    def as_dict(self) -> dict[str, str]:
        return dict(self.items)

    def __str__(self) -> str:
        return "[" + ", ".join(value for _, value in self.items) + "]"


@dataclass(frozen=True, slots=True)
class AllocationKey:
    partition: PartitionKey
    dimensions: Dimensions
    path: GroupPath


@dataclass(frozen=True, slots=True)
class AllocationState:
    allocated: Decimal = ZERO
    cumulative_allocated: Decimal = ZERO
    consumed: Decimal = ZERO
    cumulative_consumed: Decimal = ZERO


class AllocationTable:
    """Loaded allocation rows; unknown rows read as all zero."""

    def __init__(self, loaded: Mapping[AllocationKey, AllocationState] | None = None) -> None:
        self._states: dict[AllocationKey, AllocationState] = dict(loaded or {})
        self._dirty: set[AllocationKey] = set()

    def state(self, key: AllocationKey) -> AllocationState:
        return self._states.get(key) or AllocationState()

    def put(self, key: AllocationKey, state: AllocationState) -> None:
        self._states[key] = state
        self._dirty.add(key)

    def dirty(self) -> Iterator[tuple[AllocationKey, AllocationState]]:
        for key in self._dirty:
            yield key, self._states[key]


# -- reservations -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reservation:
    """A soft reservation: ``quantity`` held at exact dimensions, ``offset`` of it released."""

    reservation_id: str
    partition: PartitionKey
    dimensions: Dimensions
    measure: MeasureRef
    quantity: Decimal
    offset: Decimal
    operation_id: str
    origin: str
    """``reserve``, or ``consume`` for a reservation made by consuming an allocation."""
    created_at: datetime
    created_by: str

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.offset

    @property
    def key(self) -> MeasureKey:
        """The measure it holds."""
        return MeasureKey(self.partition, self.dimensions, self.measure)

    def offset_by(self, quantity: Decimal) -> Reservation:
        return replace(self, offset=self.offset + quantity)


class ReservationBook:
    """Loaded and new reservations."""

    def __init__(self, loaded: Mapping[str, Reservation] | None = None) -> None:
        self._reservations: dict[str, Reservation] = dict(loaded or {})
        self._dirty: set[str] = set()
        self.created = 0
        """How many reservations this book has created (they are numbered in order)."""

    def get(self, reservation_id: str) -> Reservation | None:
        return self._reservations.get(reservation_id)

    def put(self, reservation: Reservation) -> None:
        if reservation.reservation_id not in self._reservations:
            self.created += 1
        self._reservations[reservation.reservation_id] = reservation
        self._dirty.add(reservation.reservation_id)

    def dirty(self) -> Iterator[Reservation]:
        for reservation_id in self._dirty:
            yield self._reservations[reservation_id]


# -- what to load, and the ledger ---------------------------------------------------------------


@dataclass(slots=True)
class Needs:
    """What a batch must load before its operations can be decided."""

    measures: set[MeasureKey] = field(default_factory=set)
    levels: set[LevelScope] = field(default_factory=set)
    allocations: set[AllocationKey] = field(default_factory=set)
    reservations: set[str] = field(default_factory=set)

    def update(self, other: Needs) -> None:
        self.measures |= other.measures
        self.levels |= other.levels
        self.allocations |= other.allocations
        self.reservations |= other.reservations

    def measures_with(self, reservations: Iterable[Reservation]) -> set[MeasureKey]:
        """The measures to load once ``reservations`` (those asked for) are read: each one's
        measure comes with it, since unreserving changes it."""
        return self.measures | {reservation.key for reservation in reservations}


class Ledger:
    """The loaded state of a batch; operations change it only through these methods."""

    def __init__(
        self,
        configuration: Configuration,
        *,
        measures: Mapping[MeasureKey, MeasureState] | None = None,
        levels: Mapping[LevelScope, Mapping[Group, Mapping[MeasureRef, Decimal]]] | None = None,
        allocations: Mapping[AllocationKey, AllocationState] | None = None,
        reservations: Mapping[str, Reservation] | None = None,
        known_measures: set[MeasureKey] | None = None,
    ) -> None:
        self.configuration = configuration
        self.measures = MeasureTable(measures, known=known_measures)
        self.levels = LevelTotals(configuration, levels)
        self.allocations = AllocationTable(allocations)
        self.reservations = ReservationBook(reservations)

    def add(
        self, changes: Iterable[tuple[MeasureKey, Decimal]], *, set_at: datetime | None = None
    ) -> tuple[MeasureChange, ...]:
        """Add deltas to measures, all or nothing (see :meth:`MeasureTable.apply`)."""
        return self._track(self.measures.apply(changes, set_at=set_at))

    def assign(
        self, values: Iterable[tuple[MeasureKey, Decimal]], *, set_at: datetime | None
    ) -> tuple[MeasureChange, ...]:
        """Overwrite measures, all or nothing (see :meth:`MeasureTable.assign`)."""
        return self._track(self.measures.assign(values, set_at=set_at))

    def _track(self, effects: tuple[MeasureChange, ...]) -> tuple[MeasureChange, ...]:
        for effect in effects:
            self.levels.add(effect)
        return effects

    def available(self, ref: MeasureRef, partition: PartitionKey, level: Dimensions) -> Decimal:
        """Calculated measure ``ref`` (e.g. available to reserve) at one hierarchy level."""
        return self.configuration.evaluate(ref, self.levels.sums(partition, level))

    def require_available(
        self,
        ref: MeasureRef,
        partition: PartitionKey,
        dimensions: Dimensions,
        requested: Decimal,
        *,
        code: str,
        what: str,
    ) -> None:
        """Refuse (409 ``code``) unless ``ref`` covers ``requested`` at ``dimensions`` and at
        every level above it up to the partition dimensions; name the level that binds."""
        short: list[tuple[Decimal, Dimensions]] = []
        for level in self.configuration.levels(dimensions):
            available = self.available(ref, partition, level)
            if available < requested:
                short.append((available, level))
        if not short:
            return
        available, level = min(short, key=lambda item: item[0])
        where = ", ".join(f"{name} {value}" for name, value in level.items())
        raise Conflict(
            code,
            f"only {format_quantity(available)} {what} at ({where}); "
            f"{format_quantity(requested)} requested",
            extra={
                "level": level.as_dict(),
                "available": available,
                "requested": requested,
            },
        )
