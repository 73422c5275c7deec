"""On-hand change events and stock counts: validation, effects and fingerprints."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ringfence.domain.configuration import (
    DEFAULT_DOCUMENT,
    MeasureRef,
    default_configuration,
    parse_configuration,
)
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.errors import Invalid
from ringfence.domain.ledger import Ledger
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.onhand import (
    OnHandChange,
    OnHandChangeRequest,
    SetOnHand,
    SetOnHandRequest,
    validate_onhand_change,
    validate_set_onhand,
)
from ringfence.domain.operations import PartitionKey
from ringfence.domain.quantity import MAX_QUANTITY
from ringfence.services.fingerprints import fingerprint
from tests.unit.conftest import change

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARTITION = PartitionKey("usmf", "T-shirt")
SITE = Dimensions([("siteId", "1"), ("locationId", "11")])
INBOUND = MeasureRef("pos", "inbound")
OUTBOUND = MeasureRef("pos", "outbound")
AVAILPHYSICAL = MeasureRef("fno", "availphysical")
ORDERED = MeasureRef("fno", "ordered")


def _ledger(measures: dict[MeasureKey, MeasureState] | None = None) -> Ledger:
    return Ledger(default_configuration(), measures=measures)


def count(
    operation_id: str,
    quantities: Mapping[str, Mapping[str, object]] | None = None,
    *,
    dimensions: Mapping[str, str] | None = None,
    modified_at: datetime | None = None,
    product: str = "T-shirt",
) -> SetOnHandRequest:
    return SetOnHandRequest(
        id=operation_id,
        organization_id="usmf",
        product_id=product,
        dimensions=dict(dimensions or {"siteId": "1", "locationId": "11"}),
        quantities={"fno": {"availphysical": 10}} if quantities is None else quantities,
        modified_at=modified_at,
    )


def validated_change(request: OnHandChangeRequest) -> OnHandChange:
    return validate_onhand_change(default_configuration(), request)


def validated_count(request: SetOnHandRequest, data_source: str = "fno") -> SetOnHand:
    return validate_set_onhand(default_configuration(), data_source, request, RECEIVED)


def change_refusal(request: OnHandChangeRequest) -> Invalid:
    with pytest.raises(Invalid) as caught:
        validated_change(request)
    return caught.value


def key(measure: MeasureRef, dimensions: Dimensions = SITE) -> MeasureKey:
    return MeasureKey(PARTITION, dimensions, measure)


# -- validation ----------------------------------------------------------------------------------


def test_validate_onhand_change_resolves_partition_dimensions_and_quantities() -> None:
    operation = validated_change(
        change(
            "e1",
            {"pos": {"inbound": "10.5", "outbound": 2}},
            dimensions={"LOCATIONID": "11", "siteid": "1", "colorId": "red"},
        )
    )

    assert operation.id == "e1"
    assert operation.partition == PARTITION
    assert operation.dimensions.as_dict() == {"siteId": "1", "locationId": "11", "colorId": "red"}
    assert operation.quantities == ((INBOUND, Decimal("10.5")), (OUTBOUND, Decimal(2)))


def test_validate_onhand_change_translates_the_dimension_data_source_s_names() -> None:
    document = copy.deepcopy(dict(DEFAULT_DOCUMENT))
    sources = document["dataSources"]
    assert isinstance(sources, dict)
    sources["pos"]["dimensionMappings"] = {"store": "siteId"}
    configuration = parse_configuration(document)

    operation = validate_onhand_change(
        configuration,
        change("e1", dimensions={"store": "1", "locationId": "11"}, dimension_data_source="pos"),
    )

    assert operation.dimensions == SITE


def test_validate_onhand_change_refuses_an_unknown_dimension_data_source() -> None:
    error = change_refusal(change("e1", dimension_data_source="erp"))

    assert error.code == "unknown-data-source"
    assert error.issues[0].path == "dimensionDataSource"


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        (change(""), "id"),
        (change("a\x00b"), "id"),
        (change("x" * 129), "id"),
        (change("e1", organization=""), "organizationId"),
        (change("e1", organization="us\nmf"), "organizationId"),
        (change("e1", product=""), "productId"),
        (change("e1", product="T\tshirt"), "productId"),
    ],
)
def test_validate_onhand_change_checks_its_ids(request_: OnHandChangeRequest, path: str) -> None:
    error = change_refusal(request_)

    assert error.code == "invalid-identifier"
    assert error.issues[0].path == path


def test_validate_onhand_change_requires_the_partition_dimensions() -> None:
    error = change_refusal(change("e1", dimensions={"siteId": "1", "colorId": "red"}))

    assert error.code == "missing-partition-dimension"
    assert "locationId" in error.detail


def test_validate_onhand_change_refuses_empty_quantities() -> None:
    assert change_refusal(change("e1", {})).code == "invalid-quantities"
    assert change_refusal(change("e1", {"pos": {}})).code == "invalid-quantities"


@pytest.mark.parametrize(
    ("quantities", "code", "path"),
    [
        ({"pos": {"returned": 1}}, "unknown-measure", "quantities.pos.returned"),
        ({"erp": {"inbound": 1}}, "unknown-data-source", "quantities.erp"),
        ({"@iv": {"@allocated": 1}}, "system-data-source", "quantities.@iv.@allocated"),
        ({"iv": {"onhand": 1}}, "calculated-measure", "quantities.iv.onhand"),
        ({"pos": {"inbound": 1.5}}, "invalid-quantity", "quantities.pos.inbound"),
        ({"pos": {"inbound": "0.0000001"}}, "invalid-quantity", "quantities.pos.inbound"),
    ],
)
def test_validate_onhand_change_refuses_bad_quantities_naming_them(
    quantities: Mapping[str, Mapping[str, object]], code: str, path: str
) -> None:
    error = change_refusal(change("e1", quantities))

    assert error.code == code
    assert error.issues[0].path == path


def test_validate_set_onhand_accepts_measures_of_the_path_s_data_source() -> None:
    moment = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)

    operation = validated_count(count("c1", {"fno": {"availphysical": "7.25"}}, modified_at=moment))

    assert operation.quantities == ((AVAILPHYSICAL, Decimal("7.25")),)
    assert operation.modified_at == moment
    assert operation.dimensions == SITE


def test_validate_set_onhand_refuses_another_data_source_than_the_path_s() -> None:
    with pytest.raises(Invalid) as caught:
        validated_count(count("c1", {"pos": {"inbound": 3}}), data_source="fno")

    assert caught.value.code == "data-source-mismatch"
    assert caught.value.issues[0].path == "quantities.pos"


def test_validate_set_onhand_requires_ids_partition_and_quantities() -> None:
    with pytest.raises(Invalid) as missing_id:
        validated_count(count(""))
    with pytest.raises(Invalid) as missing_partition:
        validated_count(count("c1", dimensions={"siteId": "1"}))
    with pytest.raises(Invalid) as empty:
        validated_count(count("c1", {}))

    assert missing_id.value.code == "invalid-identifier"
    assert missing_partition.value.code == "missing-partition-dimension"
    assert empty.value.code == "invalid-quantities"


def test_validate_set_onhand_dates_a_count_without_time_when_received() -> None:
    assert validated_count(count("c1")).modified_at == RECEIVED


def test_validate_set_onhand_reads_times_without_zone_as_utc_and_converts_others() -> None:
    naive = validated_count(count("c1", modified_at=datetime(2026, 2, 1, 8, 30)))
    paris = validated_count(
        count("c1", modified_at=datetime(2026, 2, 1, 9, 30, tzinfo=timezone(timedelta(hours=1))))
    )

    assert naive.modified_at == datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    assert paris.modified_at == naive.modified_at
    assert paris.modified_at.utcoffset() == timedelta(0)


# -- effects -------------------------------------------------------------------------------------


def test_onhand_change_adds_its_deltas_to_the_stored_values() -> None:
    table = _ledger({key(INBOUND): MeasureState(Decimal(5))})
    operation = validated_change(change("e1", {"pos": {"inbound": "2.5", "outbound": 1}}))

    effects = operation.apply(table)

    assert table.measures.value(key(INBOUND)) == Decimal("7.5")
    assert table.measures.value(key(OUTBOUND)) == 1
    assert {(e.key.measure, e.delta, e.value) for e in effects} == {
        (INBOUND, Decimal("2.5"), Decimal("7.5")),
        (OUTBOUND, Decimal(1), Decimal(1)),
    }
    assert dict(table.measures.dirty()) == {
        key(INBOUND): MeasureState(Decimal("7.5")),
        key(OUTBOUND): MeasureState(Decimal(1)),
    }


def test_onhand_change_may_take_a_measure_below_zero() -> None:
    table = _ledger()

    validated_change(change("e1", {"pos": {"inbound": -3}})).apply(table)

    assert table.measures.value(key(INBOUND)) == -3


def test_onhand_change_changes_nothing_when_one_result_would_leave_the_range() -> None:
    table = _ledger(
        {key(INBOUND): MeasureState(MAX_QUANTITY - 1), key(OUTBOUND): MeasureState(Decimal(4))}
    )
    operation = validated_change(change("e1", {"pos": {"outbound": 1, "inbound": 2}}))

    with pytest.raises(Invalid) as caught:
        operation.apply(table)

    assert caught.value.code == "quantity-out-of-range"
    assert caught.value.issues[0].path == "quantities.pos.inbound"
    assert table.measures.value(key(INBOUND)) == MAX_QUANTITY - 1
    assert table.measures.value(key(OUTBOUND)) == 4
    assert list(table.measures.dirty()) == []


def test_onhand_change_may_reach_the_range_limit_exactly() -> None:
    table = _ledger({key(INBOUND): MeasureState(MAX_QUANTITY - 1)})

    validated_change(change("e1", {"pos": {"inbound": 1}})).apply(table)

    assert table.measures.value(key(INBOUND)) == MAX_QUANTITY


def test_onhand_change_keeps_the_time_of_the_last_count() -> None:
    counted = datetime(2026, 1, 1, tzinfo=UTC)
    table = _ledger({key(INBOUND): MeasureState(Decimal(5), counted)})

    validated_change(change("e1", {"pos": {"inbound": 1}})).apply(table)

    assert table.measures.state(key(INBOUND)) == MeasureState(Decimal(6), counted)


def test_set_onhand_overwrites_the_stored_values() -> None:
    moment = datetime(2026, 2, 1, tzinfo=UTC)
    table = _ledger({key(AVAILPHYSICAL): MeasureState(Decimal(50))})
    operation = validated_count(count("c1", {"fno": {"availphysical": 10}}, modified_at=moment))

    effects, superseded = operation.apply(table)

    assert superseded == ()
    assert table.measures.state(key(AVAILPHYSICAL)) == MeasureState(Decimal(10), moment)
    [effect] = effects
    assert (effect.delta, effect.value) == (Decimal(-40), Decimal(10))


def test_set_onhand_older_than_the_stored_count_leaves_that_measure_unchanged() -> None:
    later = datetime(2026, 2, 2, tzinfo=UTC)
    earlier = later - timedelta(seconds=1)
    table = _ledger({key(AVAILPHYSICAL): MeasureState(Decimal(50), later)})
    operation = validated_count(
        count("c1", {"fno": {"availphysical": 10, "ordered": 3}}, modified_at=earlier)
    )

    effects, superseded = operation.apply(table)

    assert superseded == (AVAILPHYSICAL,)
    assert table.measures.state(key(AVAILPHYSICAL)) == MeasureState(Decimal(50), later)
    assert table.measures.state(key(ORDERED)) == MeasureState(Decimal(3), earlier)
    assert [effect.key.measure for effect in effects] == [ORDERED]


def test_set_onhand_at_the_same_time_as_the_stored_count_overwrites_it() -> None:
    moment = datetime(2026, 2, 2, tzinfo=UTC)
    table = _ledger({key(AVAILPHYSICAL): MeasureState(Decimal(50), moment)})

    _, superseded = validated_count(count("c1", modified_at=moment)).apply(table)

    assert superseded == ()
    assert table.measures.value(key(AVAILPHYSICAL)) == 10


def test_set_onhand_newer_than_the_stored_count_overwrites_it() -> None:
    earlier = datetime(2026, 2, 2, tzinfo=UTC)
    table = _ledger({key(AVAILPHYSICAL): MeasureState(Decimal(50), earlier)})

    validated_count(count("c1", modified_at=earlier + timedelta(microseconds=1))).apply(table)

    assert table.measures.value(key(AVAILPHYSICAL)) == 10


# -- fingerprints --------------------------------------------------------------------------------


def meaning(operation: OnHandChange | SetOnHand) -> str:
    """The operation's fingerprint: the digest of its record."""
    return fingerprint(operation.kind, operation.to_record())


@pytest.mark.parametrize("quantity", ["10", 10, Decimal("10.0"), Decimal("10.000000"), "1e1"])
def test_onhand_change_fingerprints_are_equal_for_equal_quantities(quantity: object) -> None:
    reference = validated_change(change("e1", {"pos": {"inbound": 10}}))

    operation = validated_change(change("e1", {"pos": {"inbound": quantity}}))

    assert meaning(operation) == meaning(reference)


def test_onhand_change_fingerprints_ignore_name_spelling_and_order() -> None:
    first = validated_change(
        change(
            "e1",
            {"pos": {"inbound": 1, "outbound": 2}},
            dimensions={"siteId": "1", "locationId": "11", "colorId": "red"},
        )
    )
    second = validated_change(
        change(
            "e1",
            {"pos": {"outbound": "2", "inbound": "1.0"}},
            dimensions={"COLORID": "red", "locationid": "11", "SiteId": "1"},
        )
    )

    assert meaning(first) == meaning(second)


@pytest.mark.parametrize(
    "other",
    [
        change("e2", {"pos": {"inbound": 10}}),
        change("e1", {"pos": {"inbound": 11}}),
        change("e1", {"pos": {"inbound": "10.000001"}}),
        change("e1", {"pos": {"outbound": 10}}),
        change("e1", {"pos": {"inbound": 10, "outbound": 0}}),
        change("e1", {"pos": {"inbound": 10}}, product="Jeans"),
        change("e1", {"pos": {"inbound": 10}}, organization="other"),
        change("e1", {"pos": {"inbound": 10}}, dimensions={"siteId": "1", "locationId": "12"}),
        change(
            "e1",
            {"pos": {"inbound": 10}},
            dimensions={"siteId": "1", "locationId": "11", "colorId": "red"},
        ),
    ],
)
def test_onhand_change_fingerprints_differ_for_a_different_meaning(
    other: OnHandChangeRequest,
) -> None:
    reference = validated_change(change("e1", {"pos": {"inbound": 10}}))

    assert meaning(validated_change(other)) != meaning(reference)


def test_set_onhand_fingerprints_depend_on_quantities_and_time_only_by_meaning() -> None:
    moment = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    in_paris = moment.astimezone(timezone(timedelta(hours=1)))
    reference = validated_count(count("c1", {"fno": {"availphysical": 10}}, modified_at=moment))

    same = validated_count(count("c1", {"fno": {"availphysical": "10.0"}}, modified_at=in_paris))
    later = validated_count(
        count("c1", {"fno": {"availphysical": 10}}, modified_at=moment + timedelta(seconds=1))
    )
    other = validated_count(count("c1", {"fno": {"availphysical": 9}}, modified_at=moment))

    assert meaning(same) == meaning(reference)
    assert meaning(later) != meaning(reference)
    assert meaning(other) != meaning(reference)


def test_a_count_and_a_change_with_the_same_content_have_different_fingerprints() -> None:
    as_change = validated_change(change("x", {"fno": {"availphysical": 10}}))
    as_count = validated_count(count("x", {"fno": {"availphysical": 10}}, modified_at=RECEIVED))

    assert meaning(as_change) != meaning(as_count)
