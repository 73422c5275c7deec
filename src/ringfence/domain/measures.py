"""Physical measure values held in memory while a unit of work decides what to change.

Storage loads the rows an operation needs into a :class:`MeasureTable`; the domain changes them
there, all or nothing per operation; storage writes back what is :meth:`MeasureTable.dirty`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ringfence.domain.configuration import MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.operations import PartitionKey
from ringfence.domain.quantity import ZERO, check_in_range

__all__ = ["MeasureChange", "MeasureKey", "MeasureState", "MeasureTable"]


@dataclass(frozen=True, slots=True)
class MeasureKey:
    """One stored counter: a physical measure of a product at exact dimensions."""

    partition: PartitionKey
    dimensions: Dimensions
    measure: MeasureRef


@dataclass(frozen=True, slots=True)
class MeasureState:
    value: Decimal
    set_at: datetime | None = None
    """When a set-on-hand (stock count) last overwrote it: its ``modifiedDateTimeUTC``."""


@dataclass(frozen=True, slots=True)
class MeasureChange:
    """The effect of an operation on one counter, as journaled."""

    key: MeasureKey
    delta: Decimal
    value: Decimal

    def to_record(self) -> dict[str, object]:
        return {
            "dimensions": self.key.dimensions.as_dict(),
            "measure": str(self.key.measure),
            "delta": self.delta,
            "value": self.value,
        }


class MeasureTable:
    """The loaded state of some counters; a loaded counter without a row reads as zero.

    With ``known``, touching a counter that was not asked for when loading is a defect (its
    stored value is unknown, and writing it back would overwrite it): it raises ``LookupError``.
    """

    def __init__(
        self,
        loaded: Mapping[MeasureKey, MeasureState] | None = None,
        *,
        known: set[MeasureKey] | None = None,
    ) -> None:
        self._states: dict[MeasureKey, MeasureState] = dict(loaded or {})
        self._known = known
        self._dirty: set[MeasureKey] = set()

    def state(self, key: MeasureKey) -> MeasureState:
        if self._known is not None and key not in self._known and key not in self._states:
            raise LookupError(f"{key} was not loaded")
        return self._states.get(key) or MeasureState(ZERO)

    def value(self, key: MeasureKey) -> Decimal:
        return self.state(key).value

    def apply(
        self, changes: Iterable[tuple[MeasureKey, Decimal]], *, set_at: datetime | None = None
    ) -> tuple[MeasureChange, ...]:
        """Add each delta; all or nothing: if any result is out of range, nothing changes."""
        planned: dict[MeasureKey, Decimal] = {}
        for key, delta in changes:
            planned[key] = planned.get(key, self.value(key)) + delta
        return self._commit(planned, set_at)

    def assign(
        self, values: Iterable[tuple[MeasureKey, Decimal]], *, set_at: datetime | None
    ) -> tuple[MeasureChange, ...]:
        """Overwrite each value (a stock count); all or nothing."""
        return self._commit(dict(values), set_at)

    def _commit(
        self, planned: Mapping[MeasureKey, Decimal], set_at: datetime | None
    ) -> tuple[MeasureChange, ...]:
        for key, value in planned.items():
            check_in_range(value, ("quantities", key.measure.data_source, key.measure.measure))
        effects: list[MeasureChange] = []
        for key, value in planned.items():
            before = self.state(key)
            new_set_at = set_at if set_at is not None else before.set_at
            self._states[key] = MeasureState(value, new_set_at)
            self._dirty.add(key)
            effects.append(MeasureChange(key, value - before.value, value))
        return tuple(effects)

    def dirty(self) -> Iterator[tuple[MeasureKey, MeasureState]]:
        """The counters changed since loading, with their new state."""
        for key in self._dirty:
            yield key, self._states[key]
