"""On-hand queries: what to select, how to group, and the answer rows.

Filters are ORed within a key and ANDed across keys. Rows are always grouped by the partition
dimensions plus ``groupByValues`` (plus, for exact queries, the dimensions named in the filter);
every configured measure appears in every row, calculated measures computed after aggregation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ringfence.domain.configuration import Configuration, MeasureRef
from ringfence.domain.dimensions import (
    MAX_DIMENSION_VALUE_LENGTH,
    Dimensions,
    check_identifier,
    check_text,
)
from ringfence.domain.errors import FieldIssue, Invalid, Location
from ringfence.domain.quantity import ZERO

__all__ = [
    "MAX_PRODUCTS_PER_QUERY",
    "AggregateRow",
    "ExactQueryRequest",
    "IndexQueryRequest",
    "OnHandRow",
    "OnHandSelection",
    "build_exact_selection",
    "build_index_selection",
    "onhand_rows",
]

MAX_PRODUCTS_PER_QUERY = 5000
MAX_VALUES_PER_FILTER = 1000


@dataclass(frozen=True, slots=True)
class IndexQueryRequest:
    filters: Mapping[str, Sequence[str]]
    group_by: Sequence[str] = ()
    return_negative: bool = False
    dimension_data_source: str | None = None


@dataclass(frozen=True, slots=True)
class ExactQueryRequest:
    organization_ids: Sequence[str]
    product_ids: Sequence[str]
    dimensions: Sequence[str]
    values: Sequence[Sequence[str]]
    group_by: Sequence[str] = ()
    return_negative: bool = False
    dimension_data_source: str | None = None


@dataclass(frozen=True, slots=True)
class OnHandSelection:
    """A validated selection, in base dimension names, for storage to aggregate."""

    organization_ids: tuple[str, ...]
    """Empty: every organization (queries from the API always name at least one)."""
    product_ids: tuple[str, ...]
    """Empty: every product."""
    group_by: tuple[str, ...]
    dimension_filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exact_dimensions: tuple[str, ...] = ()
    exact_values: tuple[tuple[str, ...], ...] = ()
    """With ``exact_dimensions``: the rows must match one of these tuples."""


@dataclass(frozen=True, slots=True)
class AggregateRow:
    """The sum of one physical measure over the rows of one group (from storage)."""

    organization_id: str
    product_id: str
    group: tuple[str | None, ...]
    """Values of ``OnHandSelection.group_by``, None where a row lacks that dimension."""
    measure: MeasureRef
    value: Decimal


@dataclass(frozen=True, slots=True)
class OnHandRow:
    organization_id: str
    product_id: str
    dimensions: Dimensions
    quantities: Mapping[str, Mapping[str, Decimal]]


def _values(raw: object, location: Location, what: str, limit: int) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise _invalid(location, "must be a list of strings")
    if len(raw) > limit:
        raise _invalid(location, f"at most {limit} values")
    return tuple(
        dict.fromkeys(
            check_text(item, (*location, index), max_length=MAX_DIMENSION_VALUE_LENGTH, what=what)
            for index, item in enumerate(raw)
        )
    )


def _invalid(location: Location, message: str, code: str = "invalid-query") -> Invalid:
    issue = FieldIssue(location, message)
    return Invalid(code, f"{issue.path}: {message}", (issue,))


def _organizations(raw: object, location: Location) -> tuple[str, ...]:
    organizations = _values(raw, location, "organizationId", MAX_VALUES_PER_FILTER)
    if not organizations:
        raise _invalid(location, "name at least one organization")
    for index, organization in enumerate(organizations):
        check_identifier(organization, (*location, index), "organizationId")
    return organizations


def _group_by(
    config: Configuration, names: Sequence[str], extra: Iterable[str], source: str | None
) -> tuple[str, ...]:
    resolved = config.resolve_dimension_names(names, ("groupByValues",), source)
    return tuple(dict.fromkeys((*config.partition_dimensions, *extra, *resolved)))


def build_index_selection(config: Configuration, request: IndexQueryRequest) -> OnHandSelection:
    source = config.check_dimension_data_source(
        request.dimension_data_source, ("dimensionDataSource",)
    )
    organizations: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    filters: dict[str, tuple[str, ...]] = {}
    seen_organizations = False
    for key, raw in request.filters.items():
        location: Location = ("filters", key)
        if key.lower() == "organizationid":
            organizations = _organizations(raw, location)
            seen_organizations = True
        elif key.lower() == "productid":
            products = _values(raw, location, "productId", MAX_PRODUCTS_PER_QUERY)
        else:
            name = config.dimension_name(key, source)
            if name is None:
                raise _invalid(location, f"unknown dimension {key!r}", "unknown-dimension")
            values = _values(raw, location, "dimension value", MAX_VALUES_PER_FILTER)
            if values:
                filters[name] = tuple(dict.fromkeys((*filters.get(name, ()), *values)))
    if not seen_organizations:
        raise _invalid(("filters", "organizationId"), "is required (a list of organization ids)")
    return OnHandSelection(
        organization_ids=organizations,
        product_ids=products,
        group_by=_group_by(config, request.group_by, (), source),
        dimension_filters=filters,
    )


def build_exact_selection(config: Configuration, request: ExactQueryRequest) -> OnHandSelection:
    source = config.check_dimension_data_source(
        request.dimension_data_source, ("dimensionDataSource",)
    )
    organizations = _organizations(request.organization_ids, ("filters", "organizationId"))
    products = _values(
        request.product_ids, ("filters", "productId"), "productId", MAX_PRODUCTS_PER_QUERY
    )
    names = config.resolve_dimension_names(request.dimensions, ("filters", "dimensions"), source)
    if len(names) != len(request.dimensions):
        raise _invalid(("filters", "dimensions"), "a dimension is named twice")
    missing = [name for name in config.partition_dimensions if name not in names]
    if missing:
        raise _invalid(
            ("filters", "dimensions"),
            f"must include the partition dimensions {', '.join(config.partition_dimensions)}",
            "missing-partition-dimension",
        )
    if not request.values:
        raise _invalid(("filters", "values"), "give at least one tuple of values")
    if len(request.values) > MAX_VALUES_PER_FILTER:
        raise _invalid(("filters", "values"), f"at most {MAX_VALUES_PER_FILTER} tuples")
    tuples: list[tuple[str, ...]] = []
    for index, row in enumerate(request.values):
        location: Location = ("filters", "values", index)
        values = tuple(
            check_text(v, (*location, i), max_length=MAX_DIMENSION_VALUE_LENGTH, what="value")
            for i, v in enumerate(
                row if isinstance(row, Sequence) and not isinstance(row, str) else ()
            )
        )
        if len(values) != len(names):
            raise _invalid(location, f"must have {len(names)} values, one per dimension")
        tuples.append(values)
    return OnHandSelection(
        organization_ids=organizations,
        product_ids=products,
        group_by=_group_by(config, request.group_by, names, source),
        exact_dimensions=names,
        exact_values=tuple(dict.fromkeys(tuples)),
    )


def onhand_rows(
    config: Configuration,
    selection: OnHandSelection,
    aggregates: Iterable[AggregateRow],
    *,
    return_negative: bool,
) -> list[OnHandRow]:
    """Shape storage sums into answer rows with every physical and calculated measure.

    Answers run to tens of thousands of rows, which hold a few measures each out of a dozen or
    more. Each row is shaped in time proportional to what it holds: every measure starts at 0
    (data sources a row does not touch share one mapping of zeros), and the measures a row's
    sums do touch are set by a plan computed once per set of measures present.
    """
    groups: dict[tuple[str, str], dict[tuple[str | None, ...], dict[MeasureRef, Decimal]]] = {}
    for row in aggregates:
        of_product = groups.get(pair := (row.organization_id, row.product_id))
        if of_product is None:
            of_product = groups[pair] = {}
        sums = of_product.get(row.group)
        if sums is None:
            of_product[row.group] = {row.measure: row.value}
        else:
            sums[row.measure] = sums.get(row.measure, ZERO) + row.value
    zeros = {
        data_source: dict.fromkeys((ref.measure for ref in refs), ZERO)
        for data_source, refs in config.measure_layout.items()
    }
    plans: dict[tuple[MeasureRef, ...], _Plan] = {}
    shapes: dict[tuple[str | None, ...], Dimensions] = {}
    # Groups repeat across products: each is ranked once.
    distinct = {group for of_product in groups.values() for group in of_product}
    rank = {group: n for n, group in enumerate(sorted(distinct, key=_sortable))}.__getitem__
    rows: list[OnHandRow] = []
    for pair in sorted(groups):
        of_product = groups[pair]
        for group in sorted(of_product, key=rank):
            sums = of_product[group]
            present = tuple(sums)
            plan = plans.get(present)
            if plan is None:
                plan = plans[present] = _plan(config, present, zeros)
            quantities = plan.apply(tuple(sums.values()), zeros, return_negative)
            dimensions = shapes.get(group)
            if dimensions is None:
                dimensions = shapes[group] = Dimensions(
                    (name, text)
                    for name, text in zip(selection.group_by, group, strict=True)
                    if text is not None
                )
            rows.append(OnHandRow(*pair, dimensions, quantities))
    return rows


@dataclass(frozen=True, slots=True)
class _Plan:
    """How the measures of a row follow from its sums of the physical measures ``present``."""

    touched: tuple[str, ...]
    """Data sources with a measure to set (the row gets its own mapping of them)."""
    targets: tuple[tuple[str, str, tuple[tuple[int, int], ...]], ...]
    """(data source, measure, terms): the sum of ``sums[present[index]] * coefficient``; the
    physical measures present first, then the calculated ones they enter."""

    def apply(
        self,
        values: tuple[Decimal, ...],
        zeros: Mapping[str, dict[str, Decimal]],
        return_negative: bool,
    ) -> dict[str, dict[str, Decimal]]:
        """The row's measures by data source, from its sums in the order of ``present``."""
        quantities = dict(zeros)
        for data_source in self.touched:
            quantities[data_source] = dict(zeros[data_source])
        for data_source, measure, terms in self.targets:
            if len(terms) == 1:
                index, coefficient = terms[0]
                value = values[index] if coefficient == 1 else values[index] * coefficient
            else:
                value = sum([values[index] * coefficient for index, coefficient in terms], ZERO)
            quantities[data_source][measure] = (
                value if return_negative or not value < ZERO else ZERO
            )
        return quantities


def _plan(
    config: Configuration,
    present: tuple[MeasureRef, ...],
    layout: Mapping[str, Mapping[str, Decimal]],
) -> _Plan:
    def shown(ref: MeasureRef) -> bool:
        return ref.measure in layout.get(ref.data_source, ())

    position = {ref: index for index, ref in enumerate(present)}
    # A calculated measure shows its formula's value, even over stored sums of the physical
    # measure it once was.
    targets: list[tuple[str, str, tuple[tuple[int, int], ...]]] = [
        (ref.data_source, ref.measure, ((index, 1),))
        for index, ref in enumerate(present)
        if shown(ref) and ref not in config.expansions
    ]
    for ref, expansion in config.expansions.items():
        terms = tuple(
            (position[term], coefficient)
            for term, coefficient in expansion.items()
            if term in position
        )
        if terms and shown(ref):
            targets.append((ref.data_source, ref.measure, terms))
    return _Plan(tuple(dict.fromkeys(t[0] for t in targets)), tuple(targets))


def _sortable(group: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is not None, value or "") for value in group)
