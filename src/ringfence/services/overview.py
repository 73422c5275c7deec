"""Use cases behind the planner's dashboard and workbench: figures at a glance."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from ringfence.domain.access import Principal, Role
from ringfence.domain.allocation import ALLOCATED, AVAILABLE_TO_ALLOCATE, CONSUMED
from ringfence.domain.configuration import Configuration, MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.ledger import AllocationKey, AllocationState, GroupPath
from ringfence.domain.operations import PartitionKey
from ringfence.domain.quantity import ZERO
from ringfence.domain.query import OnHandSelection, onhand_rows
from ringfence.services.allocation import group_scope
from ringfence.services.configuration import load_configuration
from ringfence.services.ports import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "Dashboard",
    "LevelFigures",
    "PathFigures",
    "ProductOverview",
    "dashboard",
    "dimension_values",
    "product_catalog",
]

NEARLY_USED_UP = Decimal("0.2")
"""A path is nearly used up when it keeps at most this share of what it received."""


@dataclass(frozen=True, slots=True)
class LevelFigures:
    """A product's figures at one dimension level."""

    dimensions: Dimensions
    supply: Decimal
    allocated: Decimal
    consumed: Decimal
    reserved: Decimal
    available_to_allocate: Decimal
    available_to_reserve: Decimal


@dataclass(frozen=True, slots=True)
class PathFigures:
    """What a group path holds and has consumed of a product, over all its dimensions."""

    path: GroupPath
    allocated: Decimal
    consumed: Decimal


@dataclass(frozen=True, slots=True)
class ProductOverview:
    partition: PartitionKey
    levels: list[LevelFigures]
    """At the partition dimensions, each followed by the next hierarchy level below it."""
    paths: list[PathFigures]


@dataclass(frozen=True, slots=True)
class Dashboard:
    products: list[ProductOverview]
    total_products: int
    shortfalls: list[tuple[PartitionKey, LevelFigures]]
    nearly_used_up: list[tuple[AllocationKey, AllocationState]]


def _figures(
    configuration: Configuration,
    dimensions: Dimensions,
    quantities: Mapping[str, Mapping[str, Decimal]],
) -> LevelFigures:
    def value(ref: MeasureRef) -> Decimal:
        return quantities.get(ref.data_source, {}).get(ref.measure, ZERO)

    reserved = sum((value(ref) for ref in configuration.reservation_mappings), ZERO)
    availability = next(iter(configuration.reservation_mappings.values()), AVAILABLE_TO_ALLOCATE)
    allocated = value(ALLOCATED)
    available = value(AVAILABLE_TO_ALLOCATE)
    return LevelFigures(
        dimensions=dimensions,
        supply=available + allocated + reserved,
        allocated=allocated,
        consumed=value(CONSUMED),
        reserved=reserved,
        available_to_allocate=available,
        available_to_reserve=value(availability),
    )


async def _level_figures(
    work: UnitOfWork,
    environment_id: str,
    configuration: Configuration,
    organizations: tuple[str, ...],
    products: tuple[str, ...],
    depth: int,
) -> dict[PartitionKey, list[LevelFigures]]:
    """Figures by product at the first ``depth`` hierarchy dimensions."""
    selection = OnHandSelection(
        organization_ids=organizations,
        product_ids=products,
        group_by=configuration.dimension_hierarchy[:depth],
    )
    aggregates = await work.onhand.aggregate(environment_id, selection)
    found: dict[PartitionKey, list[LevelFigures]] = {}
    for row in onhand_rows(configuration, selection, aggregates, return_negative=True):
        if len(row.dimensions) < depth:
            # Rows without the deepest dimension (e.g. allocations made at site and location,
            # without a colour) are not a level of their own: their parent level counts them.
            continue
        key = PartitionKey(row.organization_id, row.product_id)
        found.setdefault(key, []).append(_figures(configuration, row.dimensions, row.quantities))
    return found


def _visible(scope: GroupPath | None, path: GroupPath) -> bool:
    return scope is None or path.starts_with(scope)


def _paths(
    rows: Iterable[tuple[AllocationKey, AllocationState]], scope: GroupPath | None
) -> dict[PartitionKey, list[PathFigures]]:
    sums: dict[tuple[PartitionKey, GroupPath], tuple[Decimal, Decimal]] = {}
    for key, state in rows:
        if not _visible(scope, key.path):
            continue
        allocated, consumed = sums.get((key.partition, key.path), (ZERO, ZERO))
        sums[(key.partition, key.path)] = (allocated + state.allocated, consumed + state.consumed)
    found: dict[PartitionKey, list[PathFigures]] = {}
    for (partition, path), (allocated, consumed) in sorted(
        sums.items(), key=lambda item: (item[0][0], item[0][1].items)
    ):
        found.setdefault(partition, []).append(PathFigures(path, allocated, consumed))
    return found


async def dashboard(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    *,
    search: str = "",
    page: int = 1,
    page_size: int = 20,
) -> Dashboard:
    """A page of products with their figures by level and by path, and what needs attention."""
    principal.require(Role.READER, environment_id)
    scope_organizations = (
        tuple(sorted(principal.organizations)) if principal.organizations else None
    )
    async with uow(read_only=True) as work:
        configuration = (await load_configuration(work, environment_id)).configuration
        scope = group_scope(configuration, principal)
        products, total = await work.partitions.catalog(
            environment_id,
            organizations=scope_organizations,
            search=search,
            offset=(max(page, 1) - 1) * page_size,
            limit=page_size,
        )
        depth = len(configuration.partition_dimensions)
        organizations = tuple(sorted({p.organization_id for p in products}))
        product_ids = tuple(sorted({p.product_id for p in products}))
        by_partition: dict[PartitionKey, list[LevelFigures]] = {}
        below: dict[PartitionKey, list[LevelFigures]] = {}
        if products:
            by_partition = await _level_figures(
                work, environment_id, configuration, organizations, product_ids, depth
            )
            below = await _level_figures(
                work, environment_id, configuration, organizations, product_ids, depth + 1
            )
        everywhere = [
            await _level_figures(
                work, environment_id, configuration, scope_organizations or (), (), level
            )
            for level in (depth, depth + 1)
        ]
        paths = _paths(await work.allocations.for_products(environment_id, products), scope)
        nearly = await work.allocations.nearly_used_up(
            environment_id, remaining_share=NEARLY_USED_UP, limit=50
        )
    overviews = []
    for partition in products:
        levels: list[LevelFigures] = []
        for top in by_partition.get(partition, []):
            levels.append(top)
            levels.extend(
                level
                for level in below.get(partition, [])
                if level.dimensions.restricted_to(top.dimensions) == top.dimensions
                and len(level.dimensions) > len(top.dimensions)
            )
        overviews.append(ProductOverview(partition, levels, paths.get(partition, [])))
    shortfalls = sorted(
        (
            (partition, level)
            for by_product in everywhere
            for partition, levels in by_product.items()
            for level in levels
            if level.available_to_allocate < 0
        ),
        key=lambda item: item[1].available_to_allocate,
    )
    visible_nearly = [
        (key, state)
        for key, state in nearly
        if _visible(scope, key.path)
        and (
            principal.organizations is None
            or key.partition.organization_id in principal.organizations
        )
    ][:20]
    return Dashboard(overviews, total, shortfalls[:20], visible_nearly)


async def dimension_values(
    uow: UnitOfWorkFactory, principal: Principal, environment_id: str, partition: PartitionKey
) -> dict[str, list[str]]:
    """The values each hierarchy dimension takes in a product's stock: input suggestions."""
    principal.require(Role.READER, environment_id)
    principal.require_organization(partition.organization_id)
    async with uow(read_only=True) as work:
        configuration = (await load_configuration(work, environment_id)).configuration
        selection = OnHandSelection(
            organization_ids=(partition.organization_id,),
            product_ids=(partition.product_id,),
            group_by=configuration.dimension_hierarchy,
        )
        aggregates = await work.onhand.aggregate(environment_id, selection)
    values: dict[str, set[str]] = {name: set() for name in configuration.dimension_hierarchy}
    for row in aggregates:
        for name, value in zip(selection.group_by, row.group, strict=True):
            if value is not None:
                values[name].add(value)
    return {name: sorted(found) for name, found in values.items()}


async def product_catalog(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    *,
    search: str = "",
    limit: int = 500,
) -> list[PartitionKey]:
    """Products that ever had stock or operations (input suggestions), first ``limit``."""
    principal.require(Role.READER, environment_id)
    organizations = tuple(sorted(principal.organizations)) if principal.organizations else None
    async with uow(read_only=True) as work:
        products, _ = await work.partitions.catalog(
            environment_id, organizations=organizations, search=search, limit=limit
        )
    return products
