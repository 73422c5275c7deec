"""The configuration document: defaults, formulas, validation, writable measures."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.configuration import (
    ALLOCATION_MEASURES,
    DEFAULT_DOCUMENT,
    Configuration,
    MeasureRef,
    default_configuration,
    parse_configuration,
)
from ringfence.domain.errors import Invalid

AVAILPHYSICAL = MeasureRef("fno", "availphysical")
INBOUND = MeasureRef("pos", "inbound")
OUTBOUND = MeasureRef("pos", "outbound")
SOFTRESERVED = MeasureRef("@iv", "@softreserved")
ALLOCATED = MeasureRef("@iv", "@allocated")
ONHAND = MeasureRef("iv", "onhand")
AVAILABLE_TO_ALLOCATE = MeasureRef("@iv", "@available_to_allocate")
AVAILABLE_TO_RESERVE = MeasureRef("@iv", "@available_to_reserve")

amounts = st.decimals(
    min_value=-1_000_000, max_value=1_000_000, places=6, allow_nan=False, allow_infinity=False
)


def document(**changes: Any) -> dict[str, Any]:
    """A deep copy of the default document with top-level fields replaced (None removes one)."""
    result: dict[str, Any] = copy.deepcopy(dict(DEFAULT_DOCUMENT))
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def with_calculated(**formulas: str) -> dict[str, Any]:
    """The default document plus calculated measures given as ``x_net="..."`` for ``x.net``."""
    result = document()
    result["calculatedMeasures"].update(
        {name.replace("_", ".", 1): formula for name, formula in formulas.items()}
    )
    return result


def problems(raw: object) -> list[str]:
    """The paths of every issue found in ``raw`` (which must be refused)."""
    with pytest.raises(Invalid) as caught:
        parse_configuration(raw)
    assert caught.value.code == "invalid-configuration"
    return [issue.path for issue in caught.value.issues]


# -- the default ---------------------------------------------------------------------------------


def test_default_document_parses_into_the_documented_default() -> None:
    configuration = parse_configuration(DEFAULT_DOCUMENT)

    assert configuration == default_configuration()
    assert configuration.partition_dimensions == ("siteId", "locationId")
    assert configuration.dimension_hierarchy == ("siteId", "locationId", "colorId", "sizeId")
    assert configuration.allocation_groups == ("channel", "customerGroup", "region", "orderType")
    assert configuration.reservation_mappings == {SOFTRESERVED: AVAILABLE_TO_RESERVE}
    assert configuration.features == {"reservation": True, "allocation": True}
    assert configuration.data_source_by_name["fno"].read_only
    assert not configuration.data_source_by_name["pos"].read_only
    assert configuration.data_source_by_name["@iv"].measures == ALLOCATION_MEASURES


def test_default_configuration_round_trips_through_its_document() -> None:
    configuration = default_configuration()

    written = configuration.to_document()
    again = parse_configuration(written)

    assert again == configuration
    assert again.to_document() == written


def test_a_configuration_with_mappings_and_negative_formulas_round_trips() -> None:
    raw = with_calculated(x_neg="-pos.outbound + pos.inbound", x_net="iv.onhand - pos.outbound")
    raw["dataSources"]["pos"]["dimensionMappings"] = {"store": "siteId"}
    raw["features"] = {"allocation": False}
    configuration = parse_configuration(raw)

    again = parse_configuration(configuration.to_document())

    assert again == configuration
    assert again.calculated_by_ref[MeasureRef("x", "neg")].formula == (
        "-pos.outbound + pos.inbound"
    )
    assert again.features == {"reservation": True, "allocation": False}


def test_default_calculated_measures_evaluate_to_the_documented_formulas() -> None:
    configuration = default_configuration()
    values = {
        AVAILPHYSICAL: Decimal(100),
        INBOUND: Decimal("20.5"),
        OUTBOUND: Decimal(5),
        SOFTRESERVED: Decimal(7),
        ALLOCATED: Decimal(30),
        MeasureRef("fno", "ordered"): Decimal(1000),
    }

    assert configuration.evaluate(ONHAND, values) == Decimal("115.5")
    assert configuration.evaluate(AVAILABLE_TO_ALLOCATE, values) == Decimal("78.5")
    assert configuration.evaluate(AVAILABLE_TO_RESERVE, values) == Decimal("78.5")


def test_calculated_measures_read_missing_physical_measures_as_zero() -> None:
    configuration = default_configuration()

    assert configuration.evaluate(ONHAND, {INBOUND: Decimal(3)}) == 3
    assert configuration.evaluate(AVAILABLE_TO_ALLOCATE, {}) == 0


@given(amounts, amounts, amounts, amounts, amounts)
@settings(max_examples=100)
def test_available_to_allocate_is_onhand_minus_softreserved_minus_allocated(
    availphysical: Decimal,
    inbound: Decimal,
    outbound: Decimal,
    softreserved: Decimal,
    allocated: Decimal,
) -> None:
    configuration = default_configuration()
    values = {
        AVAILPHYSICAL: availphysical,
        INBOUND: inbound,
        OUTBOUND: outbound,
        SOFTRESERVED: softreserved,
        ALLOCATED: allocated,
    }

    onhand = configuration.evaluate(ONHAND, values)

    assert onhand == availphysical + inbound - outbound
    assert configuration.evaluate(AVAILABLE_TO_ALLOCATE, values) == (
        onhand - softreserved - allocated
    )
    assert configuration.evaluate(AVAILABLE_TO_RESERVE, values) == (
        onhand - softreserved - allocated
    )


def test_default_expansions_are_sums_of_physical_measures() -> None:
    expansions = default_configuration().expansions

    assert expansions[ONHAND] == {AVAILPHYSICAL: 1, INBOUND: 1, OUTBOUND: -1}
    assert expansions[AVAILABLE_TO_ALLOCATE] == {
        AVAILPHYSICAL: 1,
        INBOUND: 1,
        OUTBOUND: -1,
        SOFTRESERVED: -1,
        ALLOCATED: -1,
    }


def test_calculated_measures_may_refer_to_other_calculated_measures() -> None:
    configuration = parse_configuration(
        with_calculated(
            x_net="iv.onhand - pos.outbound",
            x_double="x.net + x.net",
            x_free="@iv.@available_to_allocate - x.net",
        )
    )

    net, double, free = MeasureRef("x", "net"), MeasureRef("x", "double"), MeasureRef("x", "free")
    assert configuration.expansions[net] == {AVAILPHYSICAL: 1, INBOUND: 1, OUTBOUND: -2}
    assert configuration.expansions[double] == {AVAILPHYSICAL: 2, INBOUND: 2, OUTBOUND: -4}
    assert configuration.expansions[free] == {OUTBOUND: 1, SOFTRESERVED: -1, ALLOCATED: -1}
    values = {AVAILPHYSICAL: Decimal(10), INBOUND: Decimal(4), OUTBOUND: Decimal(3)}
    assert configuration.evaluate(double, values) == 2 * (10 + 4 - 3 - 3)


def test_expansions_drop_measures_that_cancel_out() -> None:
    configuration = parse_configuration(
        with_calculated(x_zero="iv.onhand - fno.availphysical - pos.inbound + pos.outbound")
    )

    assert configuration.expansions[MeasureRef("x", "zero")] == {}
    assert configuration.evaluate(MeasureRef("x", "zero"), {INBOUND: Decimal(5)}) == 0


def test_measure_layout_lists_every_measure_by_data_source_physical_first() -> None:
    layout = default_configuration().measure_layout

    assert [str(ref) for ref in layout["pos"]] == ["pos.inbound", "pos.outbound"]
    assert layout["iv"] == (ONHAND,)
    assert layout["@iv"][-2:] == (AVAILABLE_TO_RESERVE, AVAILABLE_TO_ALLOCATE)
    assert set(layout) == {"fno", "pos", "@iv", "iv"}


# -- validation ----------------------------------------------------------------------------------


def test_an_unknown_top_level_field_is_named() -> None:
    assert problems(document(colour="blue")) == ["colour"]


def test_a_version_field_is_tolerated_at_the_top_level() -> None:
    assert parse_configuration(document(version=3)) == default_configuration()


@pytest.mark.parametrize("duplicate", ["inbound", "Inbound"])
def test_a_measure_listed_twice_is_named(duplicate: str) -> None:
    raw = document()
    raw["dataSources"]["pos"]["measures"] = ["inbound", "outbound", duplicate]

    assert problems(raw) == ["dataSources.pos.measures[2]"]


@pytest.mark.parametrize("name", ["1pos", "po-s", "p os", "pos!", ""])
def test_a_bad_data_source_name_is_named(name: str) -> None:
    raw = document()
    raw["dataSources"][name] = {"measures": ["x"]}

    assert problems(raw) == [f"dataSources.{name}"]


def test_a_data_source_starting_with_at_other_than_the_system_one_is_refused() -> None:
    raw = document()
    raw["dataSources"]["@erp"] = {"measures": ["stock"]}

    assert problems(raw) == ["dataSources.@erp"]


def test_the_system_data_source_must_keep_its_allocation_measures() -> None:
    raw = document()
    raw["dataSources"]["@iv"]["measures"] = [
        m for m in ALLOCATION_MEASURES if m not in ("@consumed", "@cumulative_consumed")
    ]

    with pytest.raises(Invalid) as caught:
        parse_configuration(raw)

    [issue] = caught.value.issues
    assert issue.path == "dataSources.@iv.measures"
    assert "@consumed" in issue.message
    assert "@cumulative_consumed" in issue.message


def test_the_system_data_source_is_required() -> None:
    raw = document(
        calculatedMeasures={"iv.onhand": "pos.inbound"},
        reservationMappings={},
        features={"allocation": False},
    )
    del raw["dataSources"]["@iv"]

    assert problems(raw) == ["dataSources"]


def test_allocation_needs_the_pool_measure_and_a_group() -> None:
    raw = document(
        calculatedMeasures={"iv.onhand": "pos.inbound"}, reservationMappings={}, allocationGroups=[]
    )

    assert problems(raw) == ["calculatedMeasures", "allocationGroups"]


def test_the_system_data_source_cannot_be_read_only() -> None:
    raw = document()
    raw["dataSources"]["@iv"]["readOnly"] = True

    assert problems(raw) == ["dataSources.@iv.readOnly"]


def test_a_formula_referencing_an_unknown_measure_is_named() -> None:
    raw = document()
    raw["calculatedMeasures"]["iv.onhand"] = "pos.inbound - pos.returned"

    with pytest.raises(Invalid) as caught:
        parse_configuration(raw)

    [issue] = caught.value.issues
    assert issue.location == ("calculatedMeasures", "iv.onhand")
    assert issue.path == "calculatedMeasures.iv.onhand"
    assert "pos.returned" in issue.message


@pytest.mark.parametrize(
    "formula",
    [
        "pos.inbound pos.outbound",
        "pos.inbound +",
        "pos.inbound * 2",
        "pos.inbound -- pos.outbound",
        "inbound - outbound",
        "",
        "   ",
        5,
        None,
    ],
)
def test_an_unreadable_formula_is_named(formula: object) -> None:
    raw = with_calculated()
    raw["calculatedMeasures"]["x.net"] = formula

    assert problems(raw) == ["calculatedMeasures.x.net"]


def test_a_calculated_measure_may_not_reuse_a_physical_measure_s_name() -> None:
    raw = with_calculated(pos_inbound="pos.outbound")

    assert problems(raw) == ["calculatedMeasures.pos.inbound"]


def test_a_cycle_between_calculated_measures_is_named_with_its_path() -> None:
    raw = with_calculated(x_a="x.b + pos.inbound", x_b="x.a - pos.outbound")

    with pytest.raises(Invalid) as caught:
        parse_configuration(raw)

    [issue] = caught.value.issues
    assert issue.path == "calculatedMeasures.x.a"
    assert "x.a -> x.b -> x.a" in issue.message


def test_a_calculated_measure_referring_to_itself_is_a_cycle() -> None:
    assert problems(with_calculated(x_a="pos.inbound + x.a")) == ["calculatedMeasures.x.a"]


def test_a_longer_cycle_is_reported_once() -> None:
    raw = with_calculated(x_a="x.b", x_b="x.c", x_c="x.a + pos.inbound", x_d="x.a")

    assert problems(raw) == ["calculatedMeasures.x.a"]


def test_the_dimension_hierarchy_must_start_with_the_partition_dimensions() -> None:
    raw = document(dimensionHierarchy=["locationId", "siteId", "colorId"])

    assert problems(raw) == ["dimensionHierarchy"]


def test_the_dimension_hierarchy_may_extend_the_partition_dimensions() -> None:
    raw = document(dimensionHierarchy=["siteId", "locationId", "sizeId", "colorId", "batchId"])

    assert parse_configuration(raw).dimension_hierarchy[2:] == ("sizeId", "colorId", "batchId")


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("partitionDimensions", ["siteId", "shelfId"], "partitionDimensions[1]"),
        ("dimensionHierarchy", ["siteId", "locationId", "colour"], "dimensionHierarchy[2]"),
        ("indexSets", [["siteId"], ["siteId", "bogus"]], "indexSets[1][1]"),
        ("dimensionHierarchy", ["siteId", "locationId", 7], "dimensionHierarchy[2]"),
    ],
)
def test_names_that_are_not_base_dimensions_are_named(field: str, value: object, path: str) -> None:
    assert path in problems(document(**{field: value}))


def test_dimension_names_in_the_document_are_case_insensitive() -> None:
    raw = document(
        partitionDimensions=["SITEID", "locationid"],
        dimensionHierarchy=["siteid", "LocationId", "COLORID"],
    )

    configuration = parse_configuration(raw)

    assert configuration.partition_dimensions == ("siteId", "locationId")
    assert configuration.dimension_hierarchy == ("siteId", "locationId", "colorId")


def test_at_most_eight_allocation_groups() -> None:
    eight = [f"level{n}" for n in range(8)]

    assert parse_configuration(document(allocationGroups=eight)).allocation_groups == tuple(eight)
    assert problems(document(allocationGroups=[*eight, "level8"])) == ["allocationGroups"]


def test_a_reservation_mapping_must_point_at_a_calculated_measure() -> None:
    raw = document(reservationMappings={"@iv.@softreserved": "pos.inbound"})

    assert problems(raw) == ["reservationMappings.@iv.@softreserved"]


def test_a_reservation_mapping_must_start_from_a_physical_measure() -> None:
    raw = document(reservationMappings={"iv.onhand": "@iv.@available_to_reserve"})

    assert problems(raw) == ["reservationMappings.iv.onhand"]


def test_an_unknown_feature_is_named() -> None:
    assert problems(document(features={"teleport": True})) == ["features.teleport"]


def test_a_feature_switch_must_be_a_boolean() -> None:
    assert problems(document(features={"allocation": "yes"})) == ["features.allocation"]


@pytest.mark.parametrize("field", ["dataSources", "partitionDimensions", "dimensionHierarchy"])
def test_required_fields_are_named_when_missing(field: str) -> None:
    assert field in problems(document(**{field: None}))


def test_a_document_that_is_not_an_object_is_refused() -> None:
    assert "" in problems(["not", "an", "object"])


def test_several_problems_are_all_reported_at_once() -> None:
    raw = document(colour="blue", features={"teleport": True})
    raw["dataSources"]["@erp"] = {"measures": ["stock"]}
    raw["dataSources"]["pos"]["measures"] = ["inbound", "outbound", "inbound"]
    raw["calculatedMeasures"]["x.a"] = "x.a"

    with pytest.raises(Invalid) as caught:
        parse_configuration(raw)

    paths = {issue.path for issue in caught.value.issues}
    assert paths == {
        "colour",
        "dataSources.@erp",
        "dataSources.pos.measures[2]",
        "calculatedMeasures.x.a",
        "features.teleport",
    }
    assert "5 problems" in caught.value.detail


# -- writable measures ---------------------------------------------------------------------------


def writable_refusal(configuration: Configuration, data_source: object, measure: object) -> Invalid:
    with pytest.raises(Invalid) as caught:
        configuration.writable_measure(data_source, measure, ("quantities", "x", "y"))
    return caught.value


def test_writable_measure_accepts_physical_measures_of_configured_data_sources() -> None:
    configuration = default_configuration()

    assert configuration.writable_measure("pos", "inbound", ("q",)) == INBOUND
    assert configuration.writable_measure("fno", "availphysical", ("q",)) == AVAILPHYSICAL


@pytest.mark.parametrize("data_source", ["erp", "POS", 5, None])
def test_writable_measure_refuses_an_unknown_data_source(data_source: object) -> None:
    assert writable_refusal(default_configuration(), data_source, "inbound").code == (
        "unknown-data-source"
    )


@pytest.mark.parametrize("measure", ["returned", "Inbound", 5])
def test_writable_measure_refuses_an_unknown_measure(measure: object) -> None:
    assert writable_refusal(default_configuration(), "pos", measure).code == "unknown-measure"


def test_writable_measure_refuses_a_calculated_measure() -> None:
    configuration = parse_configuration(with_calculated(pos_net="pos.inbound - pos.outbound"))

    assert writable_refusal(configuration, "pos", "net").code == "calculated-measure"
    system = writable_refusal(default_configuration(), "@iv", "@available_to_allocate")
    assert system.code == "calculated-measure"


@pytest.mark.parametrize("measure", ALLOCATION_MEASURES)
def test_writable_measure_refuses_the_system_data_source(measure: str) -> None:
    error = writable_refusal(default_configuration(), "@iv", measure)

    assert error.code == "system-data-source"
    assert error.issues[0].path == "quantities.x.y"


def test_measure_ref_parse_reads_data_source_and_measure() -> None:
    assert MeasureRef.parse("@iv.@allocated") == ALLOCATED
    assert str(MeasureRef.parse("pos.inbound")) == "pos.inbound"
    assert MeasureRef.parse("inbound") is None
    assert MeasureRef.parse("pos.") is None
    assert MeasureRef.parse("pos.in-bound") is None


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(parse_configuration(DEFAULT_DOCUMENT).physical_measures),
        st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False),
    )
)
def test_evaluate_all_agrees_with_evaluating_each_calculated_measure(
    physical: dict[MeasureRef, Decimal],
) -> None:
    configuration = parse_configuration(DEFAULT_DOCUMENT)

    every = configuration.evaluate_all(physical)

    for calculated in configuration.calculated_measures:
        assert every.get(calculated.ref, Decimal(0)) == configuration.evaluate(
            calculated.ref, physical
        )
