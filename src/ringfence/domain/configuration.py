"""An environment's configuration: data sources, measures, formulas, dimensions, groups.

The configuration is one JSON document (TOML files use the same schema)::

    {
      "dataSources": {"pos": {"measures": ["inbound", "outbound"], "readOnly": false,
                              "dimensionMappings": {"store": "siteId"}}, ...},
      "calculatedMeasures": {"iv.onhand": "fno.availphysical + pos.inbound - pos.outbound", ...},
      "partitionDimensions": ["siteId", "locationId"],
      "dimensionHierarchy": ["siteId", "locationId", "colorId", "sizeId"],
      "indexSets": [["siteId", "locationId", "colorId"]],
      "allocationGroups": ["channel", "customerGroup", "region", "orderType"],
      "reservationMappings": {"@iv.@softreserved": "@iv.@available_to_reserve"},
      "features": {"reservation": true, "allocation": true}
    }

:func:`parse_configuration` validates a document completely and reports every problem with the
field it concerns; :meth:`Configuration.to_document` writes it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

from ringfence.domain.dimensions import BASE_DIMENSIONS, MAX_DIMENSION_VALUE_LENGTH, Dimensions
from ringfence.domain.dimensions import check_text as _check_text
from ringfence.domain.errors import FieldIssue, Invalid, Location

_ZERO = Decimal(0)

__all__ = [
    "ALLOCATION_MEASURES",
    "DEFAULT_DOCUMENT",
    "SYSTEM_DATA_SOURCE",
    "CalculatedMeasure",
    "Configuration",
    "DataSource",
    "MeasureRef",
    "default_configuration",
    "parse_configuration",
]

SYSTEM_DATA_SOURCE = "@iv"
"""Ringfence's own data source: allocation and reservation measures, written only by those
operations."""

ALLOCATION_MEASURES = (
    "@allocated",
    "@cumulative_allocated",
    "@consumed",
    "@cumulative_consumed",
    "@softreserved",
)
MAX_ALLOCATION_GROUPS = 8
MAX_DIMENSIONS = 2 * len(BASE_DIMENSIONS)
"""Most names a request's dimensions may have (base names and data source names, twice over)."""
FEATURES = ("reservation", "allocation")

_NAME = re.compile(r"@?[A-Za-z][A-Za-z0-9_]{0,62}")
_GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
_TERM = re.compile(r"\s*([+-])?\s*([^\s+-]+)\s*")


@dataclass(frozen=True, slots=True, order=True)
class MeasureRef:
    """A measure by its full name, ``dataSource.measure`` (``pos.inbound``)."""

    data_source: str
    measure: str

    def __str__(self) -> str:
        return f"{self.data_source}.{self.measure}"

    @classmethod
    def parse(cls, text: str) -> MeasureRef | None:
        """``"pos.inbound"`` -> ``MeasureRef("pos", "inbound")``; None if not of that form."""
        data_source, dot, measure = text.partition(".")
        if not dot or not _NAME.fullmatch(data_source) or not _NAME.fullmatch(measure):
            return None
        return cls(data_source, measure)


@dataclass(frozen=True, slots=True)
class DataSource:
    name: str
    measures: tuple[str, ...]
    read_only: bool = False
    dimension_mappings: Mapping[str, str] = field(default_factory=dict)
    """External dimension name (as configured) -> base dimension name."""


@dataclass(frozen=True, slots=True)
class CalculatedMeasure:
    ref: MeasureRef
    terms: tuple[tuple[int, MeasureRef], ...]
    """``(+1 | -1, measure)`` in formula order."""

    @property
    def formula(self) -> str:
        text = ""
        for sign, term in self.terms:
            if text:
                text += " + " if sign > 0 else " - "
            elif sign < 0:
                text = "-"
            text += str(term)
        return text


@dataclass(frozen=True)
class Configuration:
    """A validated configuration. Build it with :func:`parse_configuration`."""

    data_sources: tuple[DataSource, ...]
    calculated_measures: tuple[CalculatedMeasure, ...]
    partition_dimensions: tuple[str, ...]
    dimension_hierarchy: tuple[str, ...]
    index_sets: tuple[tuple[str, ...], ...]
    allocation_groups: tuple[str, ...]
    reservation_mappings: Mapping[MeasureRef, MeasureRef]
    features: Mapping[str, bool]

    # -- measures ----------------------------------------------------------------------------

    @cached_property
    def data_source_by_name(self) -> Mapping[str, DataSource]:
        return {source.name: source for source in self.data_sources}

    @cached_property
    def physical_measures(self) -> tuple[MeasureRef, ...]:
        return tuple(
            MeasureRef(source.name, measure)
            for source in self.data_sources
            for measure in source.measures
        )

    @cached_property
    def calculated_by_ref(self) -> Mapping[MeasureRef, CalculatedMeasure]:
        return {calculated.ref: calculated for calculated in self.calculated_measures}

    @cached_property
    def expansions(self) -> Mapping[MeasureRef, Mapping[MeasureRef, int]]:
        """Each calculated measure as a sum of physical measures with integer coefficients."""
        done: dict[MeasureRef, dict[MeasureRef, int]] = {}

        def expand(ref: MeasureRef) -> dict[MeasureRef, int]:
            if ref in done:
                return done[ref]
            result: dict[MeasureRef, int] = {}
            for sign, term in self.calculated_by_ref[ref].terms:
                parts = expand(term) if term in self.calculated_by_ref else {term: 1}
                for physical, coefficient in parts.items():
                    result[physical] = result.get(physical, 0) + sign * coefficient
            done[ref] = {key: value for key, value in result.items() if value}
            return done[ref]

        for calculated in self.calculated_measures:
            expand(calculated.ref)
        return done

    @cached_property
    def measure_layout(self) -> Mapping[str, tuple[MeasureRef, ...]]:
        """Every measure, physical then calculated, grouped by data source: the answer shape."""
        layout: dict[str, list[MeasureRef]] = {}
        for ref in (*self.physical_measures, *(c.ref for c in self.calculated_measures)):
            layout.setdefault(ref.data_source, []).append(ref)
        return {name: tuple(refs) for name, refs in layout.items()}

    @cached_property
    def contributions(self) -> Mapping[MeasureRef, tuple[tuple[MeasureRef, int], ...]]:
        """For each physical measure, the calculated measures it enters and its coefficient:
        :meth:`expansions` inverted, to evaluate every calculated measure from the physical
        values present (usually a few) rather than from every term of every formula."""
        inverted: dict[MeasureRef, list[tuple[MeasureRef, int]]] = {}
        for ref, terms in self.expansions.items():
            for term, coefficient in terms.items():
                inverted.setdefault(term, []).append((ref, coefficient))
        return {term: tuple(pairs) for term, pairs in inverted.items()}

    def evaluate_all(self, physical: Mapping[MeasureRef, Decimal]) -> dict[MeasureRef, Decimal]:
        """Every calculated measure that is not 0 over ``physical`` (the others are 0)."""
        values: dict[MeasureRef, Decimal] = {}
        contributions = self.contributions
        for term, value in physical.items():
            if not value:
                continue
            for ref, coefficient in contributions.get(term, ()):
                values[ref] = values.get(ref, _ZERO) + value * coefficient
        return values

    def evaluate(self, ref: MeasureRef, physical: Mapping[MeasureRef, Decimal]) -> Decimal:
        """The value of calculated measure ``ref`` over physical values (missing ones are 0)."""
        return sum(
            (
                physical.get(term, Decimal(0)) * coefficient
                for term, coefficient in self.expansions[ref].items()
            ),
            Decimal(0),
        )

    def writable_measure(
        self, data_source: object, measure: object, location: Location
    ) -> MeasureRef:
        """The physical measure an on-hand change or set may write, or :class:`Invalid`.

        Refuses unknown data sources and measures, calculated measures and the system data
        source ``@iv`` (whose measures only allocation and reservation operations move).
        """
        if isinstance(data_source, str) and isinstance(measure, str):
            ref = MeasureRef(data_source, measure)
            if ref in self.calculated_by_ref:
                message = f"{ref} is a calculated measure; post its physical measures instead"
                raise _invalid("calculated-measure", location, message)
        if not isinstance(data_source, str) or data_source not in self.data_source_by_name:
            known = ", ".join(sorted(self.data_source_by_name))
            raise _invalid(
                "unknown-data-source",
                location[:-1],
                f"unknown data source {data_source!r}; configured: {known}",
            )
        source = self.data_source_by_name[data_source]
        if not isinstance(measure, str) or measure not in source.measures:
            raise _invalid(
                "unknown-measure",
                location,
                f"unknown measure {measure!r} of data source {data_source!r}; "
                f"configured: {', '.join(source.measures)}",
            )
        if data_source == SYSTEM_DATA_SOURCE:
            raise _invalid(
                "system-data-source",
                location,
                f"{data_source}.{measure} is kept by allocation and reservation operations "
                "and cannot be posted as an on-hand change",
            )
        return MeasureRef(data_source, measure)

    # -- dimensions --------------------------------------------------------------------------

    @cached_property
    def _base_lookup(self) -> Mapping[str, str]:
        return {name.lower(): name for name in BASE_DIMENSIONS}

    @cached_property
    def _mapping_lookup(self) -> Mapping[str, Mapping[str, str]]:
        return {
            source.name: {
                external.lower(): base for external, base in source.dimension_mappings.items()
            }
            for source in self.data_sources
        }

    def check_dimension_data_source(self, name: object, location: Location) -> str | None:
        if name is None:
            return None
        if not isinstance(name, str) or name not in self.data_source_by_name:
            known = ", ".join(sorted(self.data_source_by_name))
            raise _invalid(
                "unknown-data-source",
                location,
                f"unknown dimension data source {name!r}; configured: {known}",
            )
        return name

    def dimension_name(self, name: str, data_source: str | None = None) -> str | None:
        """The base dimension that ``name`` means (case-insensitively), or None."""
        lowered = name.lower()
        if data_source is not None:
            mapped = self._mapping_lookup[data_source].get(lowered)
            if mapped is not None:
                return mapped
        return self._base_lookup.get(lowered)

    def resolve_dimensions(
        self,
        raw: object,
        location: Location,
        *,
        data_source: str | None = None,
        require_partition: bool = False,
    ) -> Dimensions:
        """Validate request dimensions and translate them to base dimension names."""
        if not isinstance(raw, Mapping):
            raise _invalid("invalid-dimensions", location, "must be an object of name: value")
        if len(raw) > MAX_DIMENSIONS:
            raise _invalid("invalid-dimensions", location, f"at most {MAX_DIMENSIONS} dimensions")
        problems: list[tuple[str, FieldIssue]] = []
        values: dict[str, str] = {}
        for name, value in raw.items():
            where = (*location, str(name))
            base = self.dimension_name(name, data_source) if isinstance(name, str) else None
            if base is None:
                allowed = "a base dimension" + (
                    f" or a dimension of {data_source}" if data_source else ""
                )
                message = f"unknown dimension {name!r}; expected {allowed}"
                problems.append(("unknown-dimension", FieldIssue(where, message)))
                continue
            try:
                text = _check_text(
                    value, where, max_length=MAX_DIMENSION_VALUE_LENGTH, what="dimension value"
                )
            except Invalid as error:
                problems.extend(("invalid-dimensions", issue) for issue in error.issues)
                continue
            if base in values and values[base] != text:
                message = f"{base} is given twice with different values"
                problems.append(("invalid-dimensions", FieldIssue(where, message)))
                continue
            values[base] = text
        if require_partition:
            missing = [name for name in self.partition_dimensions if name not in values]
            if missing:
                message = (
                    f"the partition dimension{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)} must be given "
                    f"(partition dimensions: {', '.join(self.partition_dimensions)})"
                )
                problems.append(("missing-partition-dimension", FieldIssue(location, message)))
        if problems:
            issues = tuple(issue for _, issue in problems)
            detail = "; ".join(f"{issue.path}: {issue.message}" for issue in issues)
            raise Invalid(problems[0][0], detail, issues)
        return Dimensions(values.items())

    def check_hierarchy_level(self, dimensions: Dimensions, location: Location) -> Dimensions:
        """Refuse dimensions that are not a prefix of the dimension hierarchy (no gaps, nothing
        else, at least the partition dimensions): reservations and allocations live there."""
        depth = len(dimensions)
        expected = self.dimension_hierarchy[:depth]
        if (
            depth < len(self.partition_dimensions)
            or depth > len(self.dimension_hierarchy)
            or set(dimensions) != set(expected)
        ):
            levels = ", ".join(
                "(" + ", ".join(self.dimension_hierarchy[:n]) + ")"
                for n in range(len(self.partition_dimensions), len(self.dimension_hierarchy) + 1)
            )
            given = ", ".join(dimensions) or "none"
            raise _invalid(
                "not-a-hierarchy-level",
                location,
                f"dimensions must be a level of the dimension hierarchy, one of {levels}; "
                f"given: ({given})",
            )
        return dimensions

    def levels(self, dimensions: Dimensions) -> tuple[Dimensions, ...]:
        """The hierarchy levels from ``dimensions`` (a hierarchy level) up to the partition
        dimensions, deepest first: (site, loc, colour), (site, loc)."""
        names = self.dimension_hierarchy
        return tuple(
            dimensions.restricted_to(names[:depth])
            for depth in range(len(dimensions), len(self.partition_dimensions) - 1, -1)
        )

    def resolve_dimension_names(
        self, names: Iterable[object], location: Location, data_source: str | None = None
    ) -> tuple[str, ...]:
        """Translate a list of dimension names (group-by, exact-query keys)."""
        resolved: list[str] = []
        for index, name in enumerate(names):
            base = self.dimension_name(name, data_source) if isinstance(name, str) else None
            if base is None:
                raise _invalid(
                    "unknown-dimension", (*location, index), f"unknown dimension {name!r}"
                )
            if base not in resolved:
                resolved.append(base)
        return tuple(resolved)

    # -- document ----------------------------------------------------------------------------

    def to_document(self) -> dict[str, object]:
        return {
            "dataSources": {
                source.name: {
                    "measures": list(source.measures),
                    "readOnly": source.read_only,
                    "dimensionMappings": dict(source.dimension_mappings),
                }
                for source in self.data_sources
            },
            "calculatedMeasures": {
                str(calculated.ref): calculated.formula for calculated in self.calculated_measures
            },
            "partitionDimensions": list(self.partition_dimensions),
            "dimensionHierarchy": list(self.dimension_hierarchy),
            "indexSets": [list(index_set) for index_set in self.index_sets],
            "allocationGroups": list(self.allocation_groups),
            "reservationMappings": {
                str(reservation): str(availability)
                for reservation, availability in self.reservation_mappings.items()
            },
            "features": dict(self.features),
        }


def _invalid(code: str, location: Location, message: str) -> Invalid:
    issue = FieldIssue(location, message)
    return Invalid(code, f"{issue.path}: {message}" if issue.path else message, (issue,))


# -- parsing -----------------------------------------------------------------------------------

_KNOWN_KEYS = (
    "dataSources",
    "calculatedMeasures",
    "partitionDimensions",
    "dimensionHierarchy",
    "indexSets",
    "allocationGroups",
    "reservationMappings",
    "features",
)


class _Parser:
    """Collects every problem of a document, each with its location."""

    def __init__(self) -> None:
        self.issues: list[FieldIssue] = []

    def fail(self, location: Location, message: str) -> None:
        self.issues.append(FieldIssue(location, message))

    def mapping(self, value: object, location: Location) -> Mapping[str, object]:
        if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
            return value
        self.fail(location, "must be an object")
        return {}

    def names(self, value: object, location: Location, pattern: re.Pattern[str]) -> list[str]:
        if not isinstance(value, list):
            self.fail(location, "must be a list of names")
            return []
        seen: set[str] = set()
        result: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not pattern.fullmatch(item):
                self.fail((*location, index), f"{item!r} is not a valid name")
            elif item.lower() in seen:
                self.fail((*location, index), f"{item!r} is listed twice")
            else:
                seen.add(item.lower())
                result.append(item)
        return result

    def dimensions(self, value: object, location: Location) -> list[str]:
        if not isinstance(value, list):
            self.fail(location, "must be a list of base dimension names")
            return []
        lookup = {name.lower(): name for name in BASE_DIMENSIONS}
        result: list[str] = []
        for index, item in enumerate(value):
            base = lookup.get(item.lower()) if isinstance(item, str) else None
            if base is None:
                self.fail((*location, index), f"{item!r} is not a base dimension")
            elif base in result:
                self.fail((*location, index), f"{base} is listed twice")
            else:
                result.append(base)
        return result

    def data_sources(self, value: object) -> list[DataSource]:
        location: Location = ("dataSources",)
        sources: list[DataSource] = []
        for name, body in self.mapping(value, location).items():
            where = (*location, name)
            if not _NAME.fullmatch(name):
                self.fail(where, "a data source name is letters, digits and _, optionally after @")
                continue
            if name.startswith("@") and name != SYSTEM_DATA_SOURCE:
                self.fail(where, f"names starting with @ are reserved; only {SYSTEM_DATA_SOURCE}")
                continue
            spec = self.mapping(body, where)
            unknown = set(spec) - {"measures", "readOnly", "dimensionMappings"}
            for key in sorted(unknown):
                self.fail((*where, key), "unknown field")
            measures = self.names(spec.get("measures", []), (*where, "measures"), _NAME)
            read_only = spec.get("readOnly", False)
            if not isinstance(read_only, bool):
                self.fail((*where, "readOnly"), "must be true or false")
                read_only = False
            mappings: dict[str, str] = {}
            raw_mappings = self.mapping(
                spec.get("dimensionMappings", {}), (*where, "dimensionMappings")
            )
            base_lookup = {base.lower(): base for base in BASE_DIMENSIONS}
            for external, base in raw_mappings.items():
                at = (*where, "dimensionMappings", external)
                target = base_lookup.get(base.lower()) if isinstance(base, str) else None
                if not _GROUP_NAME.fullmatch(external):
                    self.fail(at, "a dimension name is letters, digits and _")
                elif target is None:
                    self.fail(at, f"{base!r} is not a base dimension")
                elif external.lower() in (key.lower() for key in mappings):
                    self.fail(at, f"{external!r} is mapped twice")
                else:
                    mappings[external] = target
            if name == SYSTEM_DATA_SOURCE:
                missing = [m for m in ALLOCATION_MEASURES if m not in measures]
                if missing:
                    self.fail((*where, "measures"), f"{name} must keep {', '.join(missing)}")
                if read_only:
                    self.fail((*where, "readOnly"), f"{name} cannot be read-only")
            sources.append(DataSource(name, tuple(measures), read_only, mappings))
        if SYSTEM_DATA_SOURCE not in {source.name for source in sources}:
            self.fail(location, f"the system data source {SYSTEM_DATA_SOURCE} is required")
        return sources

    def calculated_measures(
        self, value: object, physical: set[MeasureRef]
    ) -> list[CalculatedMeasure]:
        location: Location = ("calculatedMeasures",)
        parsed: list[tuple[MeasureRef, list[tuple[int, MeasureRef]], Location]] = []
        for name, formula in self.mapping(value, location).items():
            where = (*location, name)
            ref = MeasureRef.parse(name)
            if ref is None:
                self.fail(where, "a calculated measure is named dataSource.measure")
                continue
            if ref in physical:
                self.fail(where, f"{ref} is already a physical measure")
                continue
            terms = self.formula(formula, where)
            if terms is not None:
                parsed.append((ref, terms, where))
        defined = physical | {ref for ref, _, _ in parsed}
        for _, terms, where in parsed:
            for _, term in terms:
                if term not in defined:
                    self.fail(where, f"{term} is not a configured measure")
        graph = {ref: [term for _, term in terms] for ref, terms, _ in parsed}
        for cycle in _cycles(graph):
            self.fail(
                (*location, str(cycle[0])),
                "formula refers to itself: " + " -> ".join(str(ref) for ref in cycle),
            )
        return [CalculatedMeasure(ref, tuple(terms)) for ref, terms, _ in parsed]

    def formula(self, value: object, location: Location) -> list[tuple[int, MeasureRef]] | None:
        if not isinstance(value, str) or not value.strip():
            self.fail(location, "must be a formula such as 'pos.inbound - pos.outbound'")
            return None
        terms: list[tuple[int, MeasureRef]] = []
        position = 0
        while position < len(value):
            match = _TERM.match(value, position)
            if match is None or match.end() == position:
                break
            sign_text, name = match.groups()
            if terms and sign_text is None:
                self.fail(location, f"expected + or - before {name!r}")
                return None
            ref = MeasureRef.parse(name)
            if ref is None:
                self.fail(location, f"{name!r} is not a measure name (dataSource.measure)")
                return None
            terms.append((-1 if sign_text == "-" else 1, ref))
            position = match.end()
        if position != len(value) or not terms:
            self.fail(location, f"cannot read formula {value!r}")
            return None
        return terms


def _cycles(graph: Mapping[MeasureRef, Sequence[MeasureRef]]) -> list[list[MeasureRef]]:
    """The cycles of a dependency graph (each reported once, from its first node found)."""
    cycles: list[list[MeasureRef]] = []
    state: dict[MeasureRef, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: MeasureRef, stack: list[MeasureRef]) -> None:
        state[node] = 1
        stack.append(node)
        for following in graph.get(node, ()):
            if following not in graph:
                continue
            if state.get(following) == 1:
                cycles.append([*stack[stack.index(following) :], following])
            elif following not in state:
                visit(following, stack)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    return cycles


def parse_configuration(document: object) -> Configuration:
    """Validate a configuration document; :class:`Invalid` lists every problem found."""
    parser = _Parser()
    root = parser.mapping(document, ())
    for key in sorted(set(root) - set(_KNOWN_KEYS) - {"version"}):
        parser.fail((key,), f"unknown field; known fields: {', '.join(_KNOWN_KEYS)}")

    sources = parser.data_sources(root.get("dataSources", {}))
    physical = {MeasureRef(s.name, m) for s in sources for m in s.measures}
    calculated = parser.calculated_measures(root.get("calculatedMeasures", {}), physical)
    calculated_refs = {c.ref for c in calculated}

    partition = parser.dimensions(root.get("partitionDimensions", []), ("partitionDimensions",))
    if not partition and "partitionDimensions" in root:
        parser.fail(("partitionDimensions",), "at least one partition dimension is required")
    hierarchy = parser.dimensions(root.get("dimensionHierarchy", []), ("dimensionHierarchy",))
    if hierarchy[: len(partition)] != partition:
        parser.fail(
            ("dimensionHierarchy",),
            f"must start with the partition dimensions {', '.join(partition)}",
        )
    index_sets: list[tuple[str, ...]] = []
    raw_index_sets = root.get("indexSets", [])
    if not isinstance(raw_index_sets, list):
        parser.fail(("indexSets",), "must be a list of lists of dimension names")
    else:
        for index, index_set in enumerate(raw_index_sets):
            names = parser.dimensions(index_set, ("indexSets", index))
            if names:
                index_sets.append(tuple(names))

    groups = parser.names(root.get("allocationGroups", []), ("allocationGroups",), _GROUP_NAME)
    if len(groups) > MAX_ALLOCATION_GROUPS:
        parser.fail(("allocationGroups",), f"at most {MAX_ALLOCATION_GROUPS} levels")

    reservation_mappings: dict[MeasureRef, MeasureRef] = {}
    raw_reservations = parser.mapping(root.get("reservationMappings", {}), ("reservationMappings",))
    for name, target in raw_reservations.items():
        where: Location = ("reservationMappings", name)
        reservation = MeasureRef.parse(name)
        availability = MeasureRef.parse(target) if isinstance(target, str) else None
        if reservation is None or reservation not in physical:
            parser.fail(where, f"{name!r} is not a configured physical measure")
        elif availability is None or availability not in calculated_refs:
            parser.fail(where, f"{target!r} is not a configured calculated measure")
        else:
            reservation_mappings[reservation] = availability

    features: dict[str, bool] = dict.fromkeys(FEATURES, True)
    for name, enabled in parser.mapping(root.get("features", {}), ("features",)).items():
        if name not in FEATURES:
            parser.fail(("features", name), f"unknown feature; known: {', '.join(FEATURES)}")
        elif not isinstance(enabled, bool):
            parser.fail(("features", name), "must be true or false")
        else:
            features[name] = enabled

    available = MeasureRef(SYSTEM_DATA_SOURCE, "@available_to_allocate")
    if features["allocation"] and available not in calculated_refs:
        parser.fail(
            ("calculatedMeasures",),
            f"allocation needs the calculated measure {available} (the pool); "
            "define it or switch features.allocation off",
        )
    if features["allocation"] and not groups:
        parser.fail(("allocationGroups",), "allocation needs at least one allocation group")

    for required in ("dataSources", "partitionDimensions", "dimensionHierarchy"):
        if required not in root and isinstance(document, Mapping):
            parser.fail((required,), "is required")

    if parser.issues:
        count = len(parser.issues)
        summary = "; ".join(
            f"{issue.path or '(document)'}: {issue.message}" for issue in parser.issues[:5]
        )
        more = f" (and {count - 5} more)" if count > 5 else ""
        raise Invalid(
            "invalid-configuration",
            f"the configuration has {count} problem{'s' if count != 1 else ''}: {summary}{more}",
            tuple(parser.issues),
        )
    return Configuration(
        data_sources=tuple(sources),
        calculated_measures=tuple(calculated),
        partition_dimensions=tuple(partition),
        dimension_hierarchy=tuple(hierarchy),
        index_sets=tuple(index_sets),
        allocation_groups=tuple(groups),
        reservation_mappings=reservation_mappings,
        features=features,
    )


_SUPPLY = "fno.availphysical + pos.inbound - pos.outbound"
_AVAILABLE = f"{_SUPPLY} - @iv.@softreserved - @iv.@allocated"

DEFAULT_DOCUMENT: Mapping[str, object] = {
    "dataSources": {
        "fno": {"measures": ["availphysical", "ordered", "onorder"], "readOnly": True},
        "pos": {"measures": ["inbound", "outbound"]},
        SYSTEM_DATA_SOURCE: {"measures": list(ALLOCATION_MEASURES)},
    },
    "calculatedMeasures": {
        "iv.onhand": _SUPPLY,
        "@iv.@available_to_reserve": _AVAILABLE,
        "@iv.@available_to_allocate": _AVAILABLE,
    },
    "partitionDimensions": ["siteId", "locationId"],
    "dimensionHierarchy": ["siteId", "locationId", "colorId", "sizeId"],
    "indexSets": [["siteId", "locationId", "colorId", "sizeId"]],
    "allocationGroups": ["channel", "customerGroup", "region", "orderType"],
    "reservationMappings": {"@iv.@softreserved": "@iv.@available_to_reserve"},
    "features": {"reservation": True, "allocation": True},
}


def default_configuration() -> Configuration:
    """The configuration every new environment starts from."""
    return parse_configuration(DEFAULT_DOCUMENT)
