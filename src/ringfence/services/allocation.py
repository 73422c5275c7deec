"""Use cases of allocation: allocate, unallocate, reallocate, consume, query."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

from ringfence.domain.access import Principal, Role
from ringfence.domain.allocation import (
    AVAILABLE_TO_ALLOCATE,
    Allocate,
    AllocationRequest,
    AllocationRow,
    Consume,
    ConsumeRequest,
    Reallocate,
    ReallocateRequest,
    Unallocate,
    allocation_rows,
    path_effect,
    resolve_group_path,
    validate_allocate,
    validate_consume,
    validate_reallocate,
    validate_unallocate,
)
from ringfence.domain.configuration import Configuration
from ringfence.domain.dimensions import Dimensions, check_identifier
from ringfence.domain.errors import Conflict, Forbidden, RingfenceError
from ringfence.domain.ledger import (
    AllocationKey,
    AllocationState,
    GroupPath,
    Ledger,
    LevelScope,
)
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.operations import Bucket, Context, ItemResult, OperationKind, PartitionKey
from ringfence.services.configuration import load_configuration
from ringfence.services.mutations import (
    Applied,
    AtOnce,
    ConfigurationChanged,
    Operation,
    Prepared,
    replay,
    run_mutations,
    success_body,
)
from ringfence.services.ports import (
    ConsumeAtOnce,
    ConsumeGroup,
    ConsumeLine,
    UnitOfWorkFactory,
)
from ringfence.services.tokens import revoked

__all__ = [
    "AllocationQuery",
    "AllocationView",
    "allocate",
    "consume",
    "group_scope",
    "query_allocations",
    "reallocate",
    "unallocate",
]

Request = TypeVar("Request", bound=AllocationRequest)
Op = TypeVar("Op", bound="_PathOperation")


class _PathOperation(Operation, Protocol):
    @property
    def paths(self) -> tuple[GroupPath, ...]: ...


def group_scope(configuration: Configuration, principal: Principal) -> GroupPath | None:
    """The group-path prefix a token is limited to (None: every path)."""
    if not principal.group_scope:
        return None
    return resolve_group_path(configuration, dict(principal.group_scope), ("groups",))


def _out_of_scope(scope: GroupPath) -> Forbidden:
    return Forbidden(
        "group-out-of-scope",
        f"this token is limited to the allocation subtree {scope} "
        f"({', '.join(f'{k}={v}' for k, v in scope.items)})",
    )


async def _run(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    role: Role,
    kind: OperationKind,
    requests: Sequence[Request],
    validate: Callable[[Configuration, Request], Op],
    apply: Callable[[Op, Ledger, Context], Applied],
    at_once: AtOnce[Op] | None = None,
) -> list[ItemResult]:
    principal.require(role, environment_id)

    def checked(configuration: Configuration, request: Request) -> Op:
        operation = validate(configuration, request)
        scope = group_scope(configuration, principal)
        if scope is not None and not all(path.starts_with(scope) for path in operation.paths):
            raise _out_of_scope(scope)
        return operation

    return await run_mutations(
        uow, principal, environment_id, kind, requests, checked, apply, at_once=at_once
    )


def _apply_allocate(operation: Allocate, ledger: Ledger, _: Context) -> Applied:
    return Applied(tuple(operation.apply(ledger)), {})


def _apply_unallocate(operation: Unallocate, ledger: Ledger, _: Context) -> Applied:
    return Applied(tuple(operation.apply(ledger)), {})


def _apply_reallocate(operation: Reallocate, ledger: Ledger, _: Context) -> Applied:
    return Applied(tuple(operation.apply(ledger)), {})


def _apply_consume(operation: Consume, ledger: Ledger, context: Context) -> Applied:
    effects, reservation = operation.apply(ledger, context)
    answer = {"reservationId": reservation.reservation_id} if reservation is not None else {}
    return Applied(tuple(effects), answer)


async def allocate(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    requests: Sequence[AllocationRequest],
) -> list[ItemResult]:
    """Ring-fence quantities for group paths (planner)."""
    return await _run(
        uow,
        principal,
        environment_id,
        Role.PLANNER,
        OperationKind.ALLOCATE,
        requests,
        validate_allocate,
        _apply_allocate,
    )


async def unallocate(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    requests: Sequence[AllocationRequest],
) -> list[ItemResult]:
    """Return allocated quantities to the pool (planner)."""
    return await _run(
        uow,
        principal,
        environment_id,
        Role.PLANNER,
        OperationKind.UNALLOCATE,
        requests,
        validate_unallocate,
        _apply_unallocate,
    )


async def reallocate(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    requests: Sequence[ReallocateRequest],
) -> list[ItemResult]:
    """Move allocated quantities between paths in one step (planner)."""
    return await _run(
        uow,
        principal,
        environment_id,
        Role.PLANNER,
        OperationKind.REALLOCATE,
        requests,
        validate_reallocate,
        _apply_reallocate,
    )


async def consume(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    requests: Sequence[ConsumeRequest],
) -> list[ItemResult]:
    """Sell against an allocation, never beyond it (writer)."""
    return await _run(
        uow,
        principal,
        environment_id,
        Role.WRITER,
        OperationKind.CONSUME,
        requests,
        validate_consume,
        _apply_consume,
        _consume_at_once,
    )


MAX_GROUPS_AT_ONCE = 64
"""A batch of more groups goes the Python way (the statement's work grows with their square)."""


async def _consume_at_once(
    uow: UnitOfWorkFactory, batch: Prepared[Consume]
) -> list[ItemResult] | None:
    """A batch of consumes with no soft reservation and no id twice, in groups of like ones
    (one quantity at one path and dimensions, the same measures) no two of which share a
    product and dimensions, decided by storage in one statement under the products' locks
    (:class:`~ringfence.services.ports.ConsumeAtOnce`); None for any other batch, or where
    storage cannot.

    Storage decides only how many of each group's consumes not journaled before are applied
    (the first ones); the answers are built here, each refusal by the domain's own rule on the
    state the applied ones left, exactly as deciding them one by one would.
    """
    operations = [item for item in batch.items if isinstance(item, Consume)]
    if len({operation.id for operation in operations}) != len(operations) or any(
        operation.reservation_measure is not None for operation in operations
    ):
        return None
    members: dict[tuple[object, ...], list[tuple[int, Consume]]] = {}
    for index, item in enumerate(batch.items):
        if isinstance(item, Consume):
            like = (item.target.key(), item.target.quantity, item.physical)
            members.setdefault(like, []).append((index, item))
    firsts = [consumes[0][1] for consumes in members.values()]
    places = {(first.target.partition, first.target.dimensions) for first in firsts}
    if (
        len(members) > MAX_GROUPS_AT_ONCE
        or len(places) != len(members)
        or any(len({ref for ref, _ in first.moves}) != len(first.moves) for first in firsts)
    ):
        return None
    bodies: dict[int, dict[str, object]] = {}
    group_of: dict[int, int] = {}
    groups: list[ConsumeGroup] = []
    for number, (first, consumes) in enumerate(zip(firsts, members.values(), strict=True)):
        lines: list[ConsumeLine] = []
        for index, item in consumes:
            record, meaning = batch.meanings[index]
            bodies[index] = success_body(item.id, Bucket.SUCCESS, "", {})
            group_of[index] = number
            lines.append(ConsumeLine(index, item.id, meaning, record, bodies[index]))
        groups.append(
            ConsumeGroup(
                key=first.target.key(),
                measures=first.moves,
                quantity=first.target.quantity,
                lines=tuple(lines),
                path_effect=path_effect(first.target.key(), **first.path_deltas()),
            )
        )
    configuration = batch.configuration
    done = await uow.consume_at_once(
        ConsumeAtOnce(
            environment_id=batch.environment_id,
            configuration=configuration.stamp,
            groups=tuple(groups),
            actor=batch.context.actor,
            recorded_at=batch.context.now,
            token_id=batch.token_id,
        )
    )
    if done is None:
        return None
    if not done.authorized:
        raise revoked(batch.token_id)
    if not done.current:
        raise ConfigurationChanged
    # The state the applied consumes left, on which every later one is refused.
    measures: dict[MeasureKey, MeasureState] = {}
    allocations: dict[AllocationKey, AllocationState] = {}
    for first, group, outcome in zip(firsts, groups, done.groups, strict=True):
        q, n = group.quantity, outcome.applied
        for (ref, sign), value in zip(group.measures, outcome.values, strict=True):
            measures[first.target.measure(ref)] = MeasureState(value + sign * q * n)
        allocations[group.key] = AllocationState(allocated=outcome.held - q * n)
    ledger = Ledger(
        configuration.configuration,
        measures=measures,
        known_measures=set(measures),
        allocations=allocations,
    )
    fresh = [0] * len(groups)
    results: list[ItemResult] = []
    for index, item in enumerate(batch.items):
        if not isinstance(item, Consume):
            results.append(item)
            continue
        meaning = batch.meanings[index][1]
        journaled = done.known.get(item.id)
        if journaled is not None:
            results.append(replay(index, item, meaning, *journaled))
            continue
        number = group_of[index]
        fresh[number] += 1
        if fresh[number] <= done.groups[number].applied:
            results.append(ItemResult(index, item.id, Bucket.SUCCESS, bodies[index]))
            continue
        try:
            item.apply(ledger, batch.context)
        except RingfenceError as error:
            results.append(ItemResult.refused(index, item.id, error))
            continue
        raise AssertionError(f"consume {item.id} was refused by storage, not by its rule")
    return results


@dataclass(frozen=True, slots=True)
class AllocationQuery:
    organization_id: str
    product_id: str
    dimensions: Mapping[str, str]
    groups: Mapping[str, str]
    dimension_data_source: str | None = None


@dataclass(frozen=True, slots=True)
class AllocationView:
    partition: PartitionKey
    dimensions: Dimensions
    available_to_allocate: Decimal
    rows: list[AllocationRow]
    pool_by_level: list[tuple[Dimensions, Decimal]]
    """The pool at the dimensions and at every level above them, deepest first."""


async def query_allocations(
    uow: UnitOfWorkFactory, principal: Principal, environment_id: str, query: AllocationQuery
) -> AllocationView:
    """The pool at exact dimensions and every path under a prefix that ever held quantity."""
    principal.require(Role.READER, environment_id)
    async with uow(read_only=True) as work:
        configuration = (await load_configuration(work, environment_id)).configuration
        if not configuration.features.get("allocation", True):
            raise Conflict(
                "feature-disabled",
                "allocation is switched off in this environment's configuration",
            )
        partition = PartitionKey(
            check_identifier(query.organization_id, ("organizationId",), "organizationId"),
            check_identifier(query.product_id, ("productId",), "productId"),
        )
        principal.require_organization(partition.organization_id)
        source = configuration.check_dimension_data_source(
            query.dimension_data_source, ("dimensionDataSource",)
        )
        dimensions = configuration.check_hierarchy_level(
            configuration.resolve_dimensions(
                query.dimensions, ("dimensions",), data_source=source, require_partition=True
            ),
            ("dimensions",),
        )
        prefix = resolve_group_path(configuration, query.groups, ("groups",), allow_empty=True)
        scope = group_scope(configuration, principal)
        if scope is not None:
            if scope.starts_with(prefix):
                prefix = scope
            elif not prefix.starts_with(scope):
                raise _out_of_scope(scope)
        paths = await work.allocations.at(environment_id, partition, dimensions)
        anchor = dimensions.restricted_to(configuration.partition_dimensions)
        below = configuration.dimension_hierarchy[len(configuration.partition_dimensions) :]
        scope_key = LevelScope(partition, anchor)
        levels = await work.onhand.level_sums(environment_id, [scope_key], below)
    ledger = Ledger(configuration, levels=levels)
    pools = [
        (level, ledger.available(AVAILABLE_TO_ALLOCATE, partition, level))
        for level in configuration.levels(dimensions)
    ]
    return AllocationView(partition, dimensions, pools[0][1], allocation_rows(paths, prefix), pools)
