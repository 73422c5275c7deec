"""On-hand queries: selections from index and exact requests, answer rows from sums."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.configuration import (
    DEFAULT_DOCUMENT,
    Configuration,
    MeasureRef,
    default_configuration,
    parse_configuration,
)
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.errors import Invalid
from ringfence.domain.query import (
    AggregateRow,
    ExactQueryRequest,
    IndexQueryRequest,
    OnHandSelection,
    build_exact_selection,
    build_index_selection,
    onhand_rows,
)
from ringfence.jsoncodec import dumps

INBOUND = MeasureRef("pos", "inbound")
OUTBOUND = MeasureRef("pos", "outbound")
AVAILPHYSICAL = MeasureRef("fno", "availphysical")
ALLOCATED = MeasureRef("@iv", "@allocated")


def index_selection(
    filters: Mapping[str, Sequence[str]],
    group_by: Sequence[str] = (),
    dimension_data_source: str | None = None,
) -> OnHandSelection:
    configuration = default_configuration()
    if dimension_data_source is not None:
        document = copy.deepcopy(dict(DEFAULT_DOCUMENT))
        sources = document["dataSources"]
        assert isinstance(sources, dict)
        sources["pos"]["dimensionMappings"] = {"store": "siteId"}
        configuration = parse_configuration(document)
    return build_index_selection(
        configuration,
        IndexQueryRequest(filters, group_by, dimension_data_source=dimension_data_source),
    )


def index_refusal(filters: Mapping[str, object], group_by: Sequence[str] = ()) -> Invalid:
    with pytest.raises(Invalid) as caught:
        build_index_selection(
            default_configuration(),
            IndexQueryRequest(filters, group_by),  # type: ignore[arg-type]
        )
    return caught.value


def exact_selection(
    dimensions: Sequence[str],
    values: Sequence[Sequence[str]],
    group_by: Sequence[str] = (),
) -> OnHandSelection:
    return build_exact_selection(
        default_configuration(),
        ExactQueryRequest(["usmf"], ["T-shirt"], dimensions, values, group_by),
    )


def exact_refusal(dimensions: Sequence[str], values: Sequence[object]) -> Invalid:
    with pytest.raises(Invalid) as caught:
        build_exact_selection(
            default_configuration(),
            ExactQueryRequest(["usmf"], [], dimensions, values),  # type: ignore[arg-type]
        )
    return caught.value


# -- index selections ----------------------------------------------------------------------------


def test_index_selection_requires_organization_id() -> None:
    error = index_refusal({"productId": ["T-shirt"]})

    assert error.code == "invalid-query"
    assert error.issues[0].path == "filters.organizationId"


def test_index_selection_refuses_an_empty_list_of_organizations() -> None:
    assert index_refusal({"organizationId": []}).code == "invalid-query"


def test_index_selection_refuses_a_string_where_a_list_is_expected() -> None:
    assert index_refusal({"organizationId": "usmf"}).code == "invalid-query"


def test_index_selection_reads_filter_keys_case_insensitively() -> None:
    selection = index_selection(
        {"OrganizationID": ["usmf", "usrt"], "PRODUCTID": ["T-shirt"], "COLORID": ["red"]}
    )

    assert selection.organization_ids == ("usmf", "usrt")
    assert selection.product_ids == ("T-shirt",)
    assert selection.dimension_filters == {"colorId": ("red",)}


def test_index_selection_maps_dimension_filters_to_base_names() -> None:
    selection = index_selection(
        {"organizationId": ["usmf"], "siteid": ["1", "2", "1"], "SizeId": ["M"]}
    )

    assert selection.dimension_filters == {"siteId": ("1", "2"), "sizeId": ("M",)}
    assert selection.product_ids == ()


def test_index_selection_maps_a_data_source_s_dimension_names() -> None:
    selection = index_selection(
        {"organizationId": ["usmf"], "Store": ["1"]},
        group_by=["store"],
        dimension_data_source="pos",
    )

    assert selection.dimension_filters == {"siteId": ("1",)}
    assert selection.group_by == ("siteId", "locationId")


def test_index_selection_refuses_an_unknown_dimension() -> None:
    error = index_refusal({"organizationId": ["usmf"], "shelf": ["top"]})

    assert error.code == "unknown-dimension"
    assert error.issues[0].path == "filters.shelf"


def test_index_selection_refuses_an_unknown_group_by_dimension() -> None:
    assert index_refusal({"organizationId": ["usmf"]}, ["shelf"]).code == "unknown-dimension"


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ([], ("siteId", "locationId")),
        (["colorId"], ("siteId", "locationId", "colorId")),
        (["SIZEID", "colorid"], ("siteId", "locationId", "sizeId", "colorId")),
        (["locationId"], ("siteId", "locationId")),
        (["colorId", "siteId", "colorId"], ("siteId", "locationId", "colorId")),
    ],
)
def test_index_selection_groups_by_the_partition_dimensions_first(
    group_by: list[str], expected: tuple[str, ...]
) -> None:
    assert index_selection({"organizationId": ["usmf"]}, group_by).group_by == expected


# -- exact selections ----------------------------------------------------------------------------


def test_exact_selection_keeps_the_named_dimensions_and_their_tuples() -> None:
    selection = exact_selection(
        ["SiteId", "locationId", "COLORID"],
        [["1", "11", "red"], ["2", "21", "blue"], ["1", "11", "red"]],
    )

    assert selection.exact_dimensions == ("siteId", "locationId", "colorId")
    assert selection.exact_values == (("1", "11", "red"), ("2", "21", "blue"))
    assert selection.group_by == ("siteId", "locationId", "colorId")
    assert selection.organization_ids == ("usmf",)
    assert selection.product_ids == ("T-shirt",)


def test_exact_selection_adds_group_by_dimensions_after_the_named_ones() -> None:
    selection = exact_selection(["locationId", "siteId"], [["11", "1"]], group_by=["sizeId"])

    assert selection.group_by == ("siteId", "locationId", "sizeId")
    assert selection.exact_dimensions == ("locationId", "siteId")


def test_exact_selection_requires_the_partition_dimensions() -> None:
    error = exact_refusal(["siteId", "colorId"], [["1", "red"]])

    assert error.code == "missing-partition-dimension"
    assert error.issues[0].path == "filters.dimensions"


@pytest.mark.parametrize(
    "values",
    [
        [["1", "11"], ["1"]],
        [["1", "11"], ["1", "11", "red"]],
        [["1", "11"], "111"],
        [["1", "11"], []],
    ],
)
def test_exact_selection_requires_one_value_per_dimension_in_each_tuple(
    values: list[object],
) -> None:
    error = exact_refusal(["siteId", "locationId"], values)

    assert error.code == "invalid-query"
    assert error.issues[0].path == "filters.values[1]"


def test_exact_selection_requires_at_least_one_tuple() -> None:
    assert exact_refusal(["siteId", "locationId"], []).code == "invalid-query"


def test_exact_selection_refuses_a_dimension_named_twice() -> None:
    assert exact_refusal(["siteId", "locationId", "SITEID"], [["1", "11", "1"]]).code == (
        "invalid-query"
    )


def test_exact_selection_refuses_an_unknown_dimension() -> None:
    assert exact_refusal(["siteId", "locationId", "shelf"], [["1", "11", "x"]]).code == (
        "unknown-dimension"
    )


def test_exact_selection_refuses_empty_values() -> None:
    error = exact_refusal(["siteId", "locationId"], [["1", "11"], ["1", ""]])

    assert error.issues[0].path == "filters.values[1][1]"


# -- rows ----------------------------------------------------------------------------------------

COLOR_SELECTION = OnHandSelection(("usmf",), (), ("siteId", "locationId", "colorId"))


def aggregate(
    group: tuple[str | None, ...], measure: MeasureRef, value: str, product: str = "T-shirt"
) -> AggregateRow:
    return AggregateRow("usmf", product, group, measure, Decimal(value))


def test_onhand_rows_sum_each_group_and_compute_calculated_measures() -> None:
    red = ("1", "11", "red")
    rows = onhand_rows(
        default_configuration(),
        COLOR_SELECTION,
        [
            aggregate(red, INBOUND, "5"),
            aggregate(red, INBOUND, "3.5"),
            aggregate(red, OUTBOUND, "2"),
            aggregate(red, AVAILPHYSICAL, "10"),
            aggregate(red, ALLOCATED, "4"),
        ],
        return_negative=False,
    )

    [row] = rows
    assert row.organization_id == "usmf"
    assert row.product_id == "T-shirt"
    assert row.dimensions == Dimensions([("siteId", "1"), ("locationId", "11"), ("colorId", "red")])
    assert row.quantities["pos"] == {"inbound": Decimal("8.5"), "outbound": Decimal(2)}
    assert row.quantities["iv"] == {"onhand": Decimal("16.5")}
    assert row.quantities["@iv"]["@available_to_allocate"] == Decimal("12.5")
    assert row.quantities["@iv"]["@available_to_reserve"] == Decimal("12.5")


def test_onhand_rows_show_every_configured_measure_in_every_row() -> None:
    configuration = default_configuration()

    [row] = onhand_rows(
        configuration,
        COLOR_SELECTION,
        [aggregate(("1", "11", "red"), INBOUND, "1")],
        return_negative=False,
    )

    assert {data_source: list(measures) for data_source, measures in row.quantities.items()} == {
        data_source: [ref.measure for ref in refs]
        for data_source, refs in configuration.measure_layout.items()
    }
    assert row.quantities["fno"] == {
        "availphysical": Decimal(0),
        "ordered": Decimal(0),
        "onorder": Decimal(0),
    }


def test_onhand_rows_show_negative_values_with_return_negative() -> None:
    group = ("1", "11", "red")
    aggregates = [aggregate(group, INBOUND, "-3"), aggregate(group, OUTBOUND, "4")]

    [row] = onhand_rows(default_configuration(), COLOR_SELECTION, aggregates, return_negative=True)

    assert row.quantities["pos"]["inbound"] == -3
    assert row.quantities["iv"]["onhand"] == -7
    assert row.quantities["@iv"]["@available_to_allocate"] == -7


def test_onhand_rows_report_negative_values_as_zero_without_return_negative() -> None:
    group = ("1", "11", "red")
    aggregates = [aggregate(group, INBOUND, "-3"), aggregate(group, OUTBOUND, "4")]

    [row] = onhand_rows(default_configuration(), COLOR_SELECTION, aggregates, return_negative=False)

    assert row.quantities["pos"] == {"inbound": 0, "outbound": 4}
    assert row.quantities["iv"]["onhand"] == 0
    assert row.quantities["@iv"]["@available_to_allocate"] == 0


def test_onhand_rows_are_sorted_and_omit_dimensions_a_group_lacks() -> None:
    rows = onhand_rows(
        default_configuration(),
        COLOR_SELECTION,
        [
            aggregate(("2", "21", "red"), INBOUND, "1"),
            aggregate(("1", "11", "red"), INBOUND, "1", product="Shoe"),
            aggregate(("1", "12", "blue"), INBOUND, "1"),
            aggregate(("1", "11", None), INBOUND, "1"),
            aggregate(("1", "11", "blue"), INBOUND, "1"),
        ],
        return_negative=False,
    )

    assert [(row.product_id, row.dimensions.as_dict()) for row in rows] == [
        ("Shoe", {"siteId": "1", "locationId": "11", "colorId": "red"}),
        ("T-shirt", {"siteId": "1", "locationId": "11"}),
        ("T-shirt", {"siteId": "1", "locationId": "11", "colorId": "blue"}),
        ("T-shirt", {"siteId": "1", "locationId": "12", "colorId": "blue"}),
        ("T-shirt", {"siteId": "2", "locationId": "21", "colorId": "red"}),
    ]


def test_onhand_rows_of_no_sums_are_empty() -> None:
    assert onhand_rows(default_configuration(), COLOR_SELECTION, [], return_negative=True) == []


# -- the shaping of many rows, held to its definition ----------------------------------------


def nested_configuration() -> Configuration:
    """The default, plus calculated measures over calculated ones (coefficients beyond 1)."""
    document = copy.deepcopy(dict(DEFAULT_DOCUMENT))
    calculated = document["calculatedMeasures"]
    assert isinstance(calculated, dict)
    calculated["x.twice"] = "iv.onhand + pos.inbound"
    calculated["x.net"] = "x.twice - iv.onhand - pos.outbound - pos.outbound"
    return parse_configuration(document)


CONFIGURATIONS = [default_configuration(), nested_configuration()]
MEASURES = [
    *nested_configuration().physical_measures,
    MeasureRef("pos", "retired"),  # stored, no longer configured
    MeasureRef("iv", "onhand"),  # stored while it was physical, calculated now
]
GROUPS = [("1", "11", "red"), ("1", "11", None), ("2", "21", "blue"), (None, None, None)]


def reference_rows(
    configuration: Configuration,
    selection: OnHandSelection,
    aggregates: Sequence[AggregateRow],
    *,
    return_negative: bool,
) -> list[tuple[str, str, dict[str, str], dict[str, dict[str, Decimal]]]]:
    """DESIGN's definition, computed the slow way: every measure of the layout, calculated
    ones from every term of their formulas, negative values as 0 unless asked for."""
    sums: dict[tuple[str, str, tuple[str | None, ...]], dict[MeasureRef, Decimal]] = {}
    for row in aggregates:
        found = sums.setdefault((row.organization_id, row.product_id, row.group), {})
        found[row.measure] = found.get(row.measure, Decimal(0)) + row.value
    shaped = []
    for (organization, product, group), values in sums.items():
        quantities: dict[str, dict[str, Decimal]] = {}
        for data_source, refs in configuration.measure_layout.items():
            for ref in refs:
                if ref in configuration.expansions:
                    value = configuration.evaluate(ref, values)
                else:
                    value = values.get(ref, Decimal(0))
                shown = value if return_negative or value >= 0 else Decimal(0)
                quantities.setdefault(data_source, {})[ref.measure] = shown
        dimensions = {
            name: text
            for name, text in zip(selection.group_by, group, strict=True)
            if text is not None
        }
        shaped.append((organization, product, dimensions, quantities))
    return sorted(
        shaped,
        key=lambda row: (
            row[0],
            row[1],
            [(name in row[2], row[2].get(name, "")) for name in selection.group_by],
        ),
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["usmf", "usrt"]),
            st.sampled_from(["Shoe", "T-shirt", "Hat"]),
            st.sampled_from(GROUPS),
            st.sampled_from(MEASURES),
            st.decimals(min_value=-1000, max_value=1000, places=2),
        ),
        max_size=40,
    ),
    st.booleans(),
    st.sampled_from(CONFIGURATIONS),
)
def test_onhand_rows_follow_the_definition(
    raw: list[tuple[str, str, tuple[str | None, ...], MeasureRef, Decimal]],
    return_negative: bool,
    configuration: Configuration,
) -> None:
    aggregates = [AggregateRow(*fields) for fields in raw]

    rows = onhand_rows(configuration, COLOR_SELECTION, aggregates, return_negative=return_negative)

    # As answered: the JSON text, so the order of data sources and measures counts too.
    assert dumps(
        [
            (row.organization_id, row.product_id, row.dimensions.as_dict(), row.quantities)
            for row in rows
        ]
    ) == dumps(
        reference_rows(configuration, COLOR_SELECTION, aggregates, return_negative=return_negative)
    )
