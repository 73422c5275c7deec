"""Allocation: ring-fence stock for group paths, then consume only what was allocated.

The *virtual common pool* is a calculated measure, ``@iv.@available_to_allocate`` (ATA), which
subtracts what is allocated and what is soft-reserved. Rules (DESIGN §2):

- **allocate** ``q`` to a group path at dimensions ``D`` only if ATA covers ``q`` at ``D`` and at
  every level above it up to the partition dimensions; the path's ``allocated`` and
  ``cumulative allocated`` grow by ``q``;
- **unallocate** ``q``: the path must hold ``q``; back to the pool;
- **reallocate** ``q`` from one path to another (any two) in one step; the pool does not change;
- **consume** ``q``: the path must hold ``q`` (oversell control); ``allocated`` falls and
  ``consumed`` grows by ``q``, and each ``physicalMeasures`` entry becomes an on-hand change of
  ``+q`` (Addition) or ``-q`` (Subtraction). Consume must leave the pool unchanged at every level;
  consuming into the reservation measure makes a soft reservation.

The ``@iv`` measures at ``D`` always equal the sums over the paths at ``D``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import ClassVar

from ringfence.domain.configuration import SYSTEM_DATA_SOURCE, Configuration, MeasureRef
from ringfence.domain.dimensions import Dimensions, check_identifier
from ringfence.domain.errors import Conflict, FieldIssue, Invalid, Location
from ringfence.domain.ledger import (
    AllocationKey,
    AllocationState,
    GroupPath,
    Ledger,
    LevelScope,
    Needs,
    Reservation,
)
from ringfence.domain.measures import MeasureChange, MeasureKey
from ringfence.domain.operations import Context, OperationKind, PartitionKey
from ringfence.domain.quantity import ZERO, format_quantity, parse_quantity
from ringfence.domain.reservations import new_reservation_id

__all__ = [
    "ALLOCATED",
    "AVAILABLE_TO_ALLOCATE",
    "Allocate",
    "AllocationRequest",
    "AllocationRow",
    "Consume",
    "ConsumeRequest",
    "Reallocate",
    "ReallocateRequest",
    "Unallocate",
    "allocation_rows",
    "pool_neutral_modifiers",
    "resolve_group_path",
    "validate_allocate",
    "validate_consume",
    "validate_reallocate",
    "validate_unallocate",
]

AVAILABLE_TO_ALLOCATE = MeasureRef(SYSTEM_DATA_SOURCE, "@available_to_allocate")
ALLOCATED = MeasureRef(SYSTEM_DATA_SOURCE, "@allocated")
CUMULATIVE_ALLOCATED = MeasureRef(SYSTEM_DATA_SOURCE, "@cumulative_allocated")
CONSUMED = MeasureRef(SYSTEM_DATA_SOURCE, "@consumed")
CUMULATIVE_CONSUMED = MeasureRef(SYSTEM_DATA_SOURCE, "@cumulative_consumed")
MODIFIERS = {"addition": 1, "subtraction": -1}


def _invalid(code: str, location: Location, message: str) -> Invalid:
    issue = FieldIssue(location, message)
    return Invalid(code, f"{issue.path}: {message}" if issue.path else message, (issue,))


# -- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """An allocate, unallocate or consume as received (IV's body)."""

    id: str
    organization_id: str
    product_id: str
    dimensions: Mapping[str, str]
    groups: Mapping[str, str]
    quantity: object
    dimension_data_source: str | None = None


@dataclass(frozen=True, slots=True)
class ReallocateRequest(AllocationRequest):
    """``groups`` is the target, ``source_groups`` the path the quantity leaves."""

    source_groups: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ConsumeRequest(AllocationRequest):
    physical_measures: Mapping[str, Mapping[str, str]] | None = None
    """``{dataSource: {measure: "Addition" | "Subtraction"}}``."""


def resolve_group_path(
    configuration: Configuration, groups: object, location: Location, *, allow_empty: bool = False
) -> GroupPath:
    """Group names (case-insensitive) filled top-down with no gaps, in configured spelling."""
    if not isinstance(groups, Mapping):
        raise _invalid("invalid-group-path", location, "must be an object of group: value")
    configured = configuration.allocation_groups
    lookup = {name.lower(): name for name in configured}
    given: dict[str, str] = {}
    for name, value in groups.items():
        canonical = lookup.get(name.lower()) if isinstance(name, str) else None
        if canonical is None:
            raise _invalid(
                "invalid-group-path",
                (*location, str(name)),
                f"unknown allocation group {name!r}; groups, top level first: "
                f"{', '.join(configured)}",
            )
        if canonical in given:
            raise _invalid("invalid-group-path", (*location, name), f"{canonical} is given twice")
        given[canonical] = check_identifier(value, (*location, name), "group value")
    depth = len(given)
    if depth == 0 and not allow_empty:
        raise _invalid(
            "invalid-group-path",
            location,
            f"name at least the top allocation group, {configured[0]}"
            if configured
            else "no allocation groups are configured",
        )
    expected = configured[:depth]
    if set(given) != set(expected):
        missing = [name for name in expected if name not in given]
        raise _invalid(
            "invalid-group-path",
            location,
            f"groups are filled top-down without gaps ({' > '.join(configured)}); "
            f"missing {', '.join(missing)}",
        )
    return GroupPath(tuple((name, given[name]) for name in expected))


@dataclass(frozen=True, slots=True)
class _Target:
    """The validated common part: one product at a hierarchy level, one group path."""

    id: str
    partition: PartitionKey
    dimensions: Dimensions
    path: GroupPath
    quantity: Decimal

    def key(self, path: GroupPath | None = None) -> AllocationKey:
        return AllocationKey(self.partition, self.dimensions, path or self.path)

    def measure(self, ref: MeasureRef) -> MeasureKey:
        return MeasureKey(self.partition, self.dimensions, ref)


def _target(
    configuration: Configuration, request: AllocationRequest, groups_field: str = "groups"
) -> _Target:
    if not configuration.features.get("allocation", True):
        raise Conflict(
            "feature-disabled",
            "allocation is switched off in this environment's configuration (features.allocation)",
        )
    operation_id = check_identifier(request.id, ("id",), "id")
    partition = PartitionKey(
        check_identifier(request.organization_id, ("organizationId",), "organizationId"),
        check_identifier(request.product_id, ("productId",), "productId"),
    )
    source = configuration.check_dimension_data_source(
        request.dimension_data_source, ("dimensionDataSource",)
    )
    dimensions = configuration.check_hierarchy_level(
        configuration.resolve_dimensions(
            request.dimensions, ("dimensions",), data_source=source, require_partition=True
        ),
        ("dimensions",),
    )
    path = resolve_group_path(configuration, request.groups, (groups_field,))
    quantity = parse_quantity(request.quantity, ("quantity",), positive=True)
    return _Target(operation_id, partition, dimensions, path, quantity)


def _record(target: _Target, **more: object) -> dict[str, object]:
    return {
        "id": target.id,
        "organizationId": target.partition.organization_id,
        "productId": target.partition.product_id,
        "dimensions": target.dimensions.as_dict(),
        "groups": target.path.as_dict(),
        "quantity": target.quantity,
        **more,
    }


def _path_effect(
    key: AllocationKey, before: AllocationState, after: AllocationState
) -> dict[str, object]:
    """How one path's figures changed, as journaled."""
    record: dict[str, object] = {
        "dimensions": key.dimensions.as_dict(),
        "groups": key.path.as_dict(),
    }
    for name in ("allocated", "cumulative_allocated", "consumed", "cumulative_consumed"):
        delta = getattr(after, name) - getattr(before, name)
        if delta:
            record[_camel(name)] = delta
    return record


def path_effect(key: AllocationKey, **deltas: Decimal) -> dict[str, object]:
    """The journaled effect of moving a path's figures by ``deltas`` (as :func:`_change_path`
    journals it)."""
    return _path_effect(key, AllocationState(), AllocationState(**deltas))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _insufficient_allocated(path: GroupPath, held: Decimal, requested: Decimal) -> Conflict:
    return Conflict(
        "insufficient-allocated",
        f"path {path} holds {format_quantity(held)} allocated here; "
        f"{format_quantity(requested)} requested",
        extra={"groups": path.as_dict(), "allocated": held, "requested": requested},
    )


def _change_path(ledger: Ledger, key: AllocationKey, **deltas: Decimal) -> dict[str, object]:
    before = ledger.allocations.state(key)
    after = replace(
        before, **{name: getattr(before, name) + delta for name, delta in deltas.items()}
    )
    ledger.allocations.put(key, after)
    return _path_effect(key, before, after)


def _records(effects: Iterable[MeasureChange]) -> list[dict[str, object]]:
    return [effect.to_record() for effect in effects]


# -- operations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PathOperation:
    """What the four moves share: one target (product, dimensions, path, quantity)."""

    target: _Target

    kind: ClassVar[OperationKind]

    @property
    def id(self) -> str:
        return self.target.id

    @property
    def partition(self) -> PartitionKey:
        return self.target.partition

    @property
    def paths(self) -> tuple[GroupPath, ...]:
        """Every path the operation touches (a token's group scope must cover them all)."""
        return (self.target.path,)

    def to_record(self) -> dict[str, object]:
        return _record(self.target)


@dataclass(frozen=True, slots=True)
class Allocate(_PathOperation):
    scope: LevelScope

    kind: ClassVar[OperationKind] = OperationKind.ALLOCATE

    def needs(self) -> Needs:
        t = self.target
        return Needs(
            measures={t.measure(ALLOCATED), t.measure(CUMULATIVE_ALLOCATED)},
            levels={self.scope},
            allocations={t.key()},
        )

    def apply(self, ledger: Ledger) -> list[dict[str, object]]:
        t = self.target
        ledger.require_available(
            AVAILABLE_TO_ALLOCATE,
            t.partition,
            t.dimensions,
            t.quantity,
            code="insufficient-available-to-allocate",
            what="available to allocate",
        )
        changes = ledger.add(
            [(t.measure(ALLOCATED), t.quantity), (t.measure(CUMULATIVE_ALLOCATED), t.quantity)]
        )
        path = _change_path(ledger, t.key(), allocated=t.quantity, cumulative_allocated=t.quantity)
        return [*_records(changes), path]


@dataclass(frozen=True, slots=True)
class Unallocate(_PathOperation):
    kind: ClassVar[OperationKind] = OperationKind.UNALLOCATE

    def needs(self) -> Needs:
        t = self.target
        return Needs(measures={t.measure(ALLOCATED)}, allocations={t.key()})

    def apply(self, ledger: Ledger) -> list[dict[str, object]]:
        t = self.target
        held = ledger.allocations.state(t.key()).allocated
        if held < t.quantity:
            raise _insufficient_allocated(t.path, held, t.quantity)
        changes = ledger.add([(t.measure(ALLOCATED), -t.quantity)])
        return [*_records(changes), _change_path(ledger, t.key(), allocated=-t.quantity)]


@dataclass(frozen=True, slots=True)
class Reallocate(_PathOperation):
    source: GroupPath

    kind: ClassVar[OperationKind] = OperationKind.REALLOCATE

    def to_record(self) -> dict[str, object]:
        return _record(self.target, sourceGroups=self.source.as_dict())

    @property
    def paths(self) -> tuple[GroupPath, ...]:
        return (self.source, self.target.path)

    def needs(self) -> Needs:
        t = self.target
        return Needs(
            measures={t.measure(CUMULATIVE_ALLOCATED)},
            allocations={t.key(), t.key(self.source)},
        )

    def apply(self, ledger: Ledger) -> list[dict[str, object]]:
        t = self.target
        source = t.key(self.source)
        held = ledger.allocations.state(source).allocated
        if held < t.quantity:
            raise _insufficient_allocated(self.source, held, t.quantity)
        # The pool does not change: @allocated at these dimensions stays; what arrives on the
        # target counts in its (and the dimensions') cumulative allocated.
        changes = ledger.add([(t.measure(CUMULATIVE_ALLOCATED), t.quantity)])
        leaving = _change_path(ledger, source, allocated=-t.quantity)
        arriving = _change_path(
            ledger, t.key(), allocated=t.quantity, cumulative_allocated=t.quantity
        )
        return [*_records(changes), leaving, arriving]


@dataclass(frozen=True, slots=True)
class Consume(_PathOperation):
    physical: tuple[tuple[MeasureRef, int], ...]
    """Each physical measure with +1 (Addition) or -1 (Subtraction)."""
    reservation_measure: MeasureRef | None
    """Set when consuming into the reservation measure: a soft reservation is made."""

    kind: ClassVar[OperationKind] = OperationKind.CONSUME

    def to_record(self) -> dict[str, object]:
        measures: dict[str, dict[str, str]] = {}
        for ref, sign in self.physical:
            measures.setdefault(ref.data_source, {})[ref.measure] = (
                "Addition" if sign > 0 else "Subtraction"
            )
        return _record(self.target, physicalMeasures=measures)

    def path_deltas(self) -> dict[str, Decimal]:
        """How the path's figures move (journaled as the path's effect)."""
        q = self.target.quantity
        return {"allocated": -q, "consumed": q, "cumulative_consumed": q}

    @property
    def moves(self) -> tuple[tuple[MeasureRef, int], ...]:
        """Each measure a unit consumed moves, with +1 or -1, in the order effects list them."""
        return ((ALLOCATED, -1), (CONSUMED, 1), (CUMULATIVE_CONSUMED, 1), *self.physical)

    def needs(self) -> Needs:
        t = self.target
        return Needs(
            measures={t.measure(ref) for ref, _ in self.moves},
            allocations={t.key()},
        )

    def apply(
        self, ledger: Ledger, context: Context
    ) -> tuple[list[dict[str, object]], Reservation | None]:
        t = self.target
        held = ledger.allocations.state(t.key()).allocated
        if held < t.quantity:
            raise _insufficient_allocated(t.path, held, t.quantity)
        q = t.quantity
        changes = ledger.add([(t.measure(ref), sign * q) for ref, sign in self.moves])
        path = _change_path(ledger, t.key(), **self.path_deltas())
        effects = [*_records(changes), path]
        reservation = None
        if self.reservation_measure is not None:
            reservation = Reservation(
                reservation_id=new_reservation_id(context, ledger.reservations.created),
                partition=t.partition,
                dimensions=t.dimensions,
                measure=self.reservation_measure,
                quantity=q,
                offset=ZERO,
                operation_id=t.id,
                origin="consume",
                created_at=context.now,
                created_by=context.actor,
            )
            ledger.reservations.put(reservation)
            effects.append({"reservation": reservation.reservation_id, "reserved": q})
        return effects, reservation


# -- validation ---------------------------------------------------------------------------------


def validate_allocate(configuration: Configuration, request: AllocationRequest) -> Allocate:
    target = _target(configuration, request)
    return Allocate(
        target,
        LevelScope(
            target.partition,
            target.dimensions.restricted_to(configuration.partition_dimensions),
        ),
    )


def validate_unallocate(configuration: Configuration, request: AllocationRequest) -> Unallocate:
    return Unallocate(_target(configuration, request))


def validate_reallocate(configuration: Configuration, request: ReallocateRequest) -> Reallocate:
    target = _target(configuration, request)
    if request.source_groups is None:
        raise _invalid("invalid-group-path", ("sourceGroups",), "name the path to move from")
    source = resolve_group_path(configuration, request.source_groups, ("sourceGroups",))
    if source == target.path:
        raise _invalid(
            "invalid-group-path", ("groups",), "the target path is the source path; nothing moves"
        )
    return Reallocate(target, source)


def _modifier(text: object, location: Location) -> int:
    sign = MODIFIERS.get(text.lower()) if isinstance(text, str) else None
    if sign is None:
        raise _invalid("invalid-modifier", location, 'must be "Addition" or "Subtraction"')
    return sign


def _pool_effect(configuration: Configuration, physical: Sequence[tuple[MeasureRef, int]]) -> int:
    """How much the pool moves per unit consumed (0 when pool-neutral)."""
    coefficients = configuration.expansions.get(AVAILABLE_TO_ALLOCATE, {})
    moves = {ALLOCATED: -1, CONSUMED: 1, CUMULATIVE_CONSUMED: 1}
    for ref, sign in physical:
        moves[ref] = moves.get(ref, 0) + sign
    return sum(coefficients.get(ref, 0) * delta for ref, delta in moves.items())


def pool_neutral_modifiers(configuration: Configuration) -> list[tuple[MeasureRef, str]]:
    """Single physicalMeasures entries that keep the pool unchanged, e.g. (pos.outbound,
    "Addition")."""
    coefficients = configuration.expansions.get(AVAILABLE_TO_ALLOCATE, {})
    wanted = -_pool_effect(configuration, ())
    choices = []
    for ref, coefficient in coefficients.items():
        source = configuration.data_source_by_name.get(ref.data_source)
        if source is None or source.read_only:
            continue
        if ref.data_source == SYSTEM_DATA_SOURCE and ref not in configuration.reservation_mappings:
            continue
        for name, sign in MODIFIERS.items():
            if coefficient * sign == wanted:
                choices.append((ref, name.title()))
    return choices


def validate_consume(configuration: Configuration, request: ConsumeRequest) -> Consume:
    target = _target(configuration, request)
    physical: list[tuple[MeasureRef, int]] = []
    reservation_measure: MeasureRef | None = None
    for data_source, measures in (request.physical_measures or {}).items():
        for measure, modifier in measures.items():
            location: Location = ("physicalMeasures", data_source, measure)
            ref = MeasureRef(data_source, measure)
            sign = _modifier(modifier, location)
            if ref in configuration.reservation_mappings:
                if sign < 0:
                    raise _invalid(
                        "invalid-modifier",
                        location,
                        f"consuming into {ref} makes a soft reservation: use Addition",
                    )
                reservation_measure = ref
            else:
                source = configuration.data_source_by_name.get(data_source)
                if source is not None and source.read_only:
                    raise _invalid(
                        "read-only-data-source",
                        location,
                        f"{data_source} is read-only: its quantities come only from its own "
                        "system, never from a consume",
                    )
                ref = configuration.writable_measure(data_source, measure, location)
            physical.append((ref, sign))
    movement = _pool_effect(configuration, physical)
    if movement:
        choices = [
            f'{{"{ref.data_source}": {{"{ref.measure}": "{modifier}"}}}}'
            for ref, modifier in pool_neutral_modifiers(configuration)
        ]
        hint = (
            "; to keep the pool unchanged, use physicalMeasures such as " + " or ".join(choices)
            if choices
            else ""
        )
        raise _invalid(
            "consume-not-pool-neutral",
            ("physicalMeasures",),
            f"this consume would change available to allocate by {movement:+d} per unit "
            f"consumed at every level{hint}",
        )
    return Consume(target, tuple(physical), reservation_measure)


# -- query --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllocationRow:
    """A path's own figures and those of its subtree (the path and every path below it)."""

    path: GroupPath
    own: AllocationState
    subtree_allocated: Decimal
    subtree_consumed: Decimal


def allocation_rows(
    paths: Mapping[GroupPath, AllocationState], prefix: GroupPath
) -> list[AllocationRow]:
    """Every path under ``prefix`` that ever held quantity, in path order, with subtree sums."""
    under = {path: state for path, state in paths.items() if path.starts_with(prefix)}
    rows = []
    for path in sorted(under, key=lambda p: p.items):
        below = [state for other, state in under.items() if other.starts_with(path)]
        rows.append(
            AllocationRow(
                path,
                under[path],
                sum((state.allocated for state in below), ZERO),
                sum((state.consumed for state in below), ZERO),
            )
        )
    return rows
