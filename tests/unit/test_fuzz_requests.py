"""Hostile input, fuzzed: any JSON at all, through each request model and the domain's rules,
ends as a valid operation or a clear refusal (a RingfenceError), never anything else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from ringfence.api.jsonio import loads
from ringfence.api.results import parse_single
from ringfence.api.schemas import (
    AllocationItem,
    ConsumeItem,
    OnHandChange,
    ReallocateItem,
    ReserveItem,
    SetOnHandItem,
    UnreserveItem,
)
from ringfence.domain.allocation import (
    AllocationRequest,
    ConsumeRequest,
    ReallocateRequest,
    validate_allocate,
    validate_consume,
    validate_reallocate,
)
from ringfence.domain.configuration import default_configuration, parse_configuration
from ringfence.domain.errors import RingfenceError
from ringfence.domain.onhand import (
    OnHandChangeRequest,
    SetOnHandRequest,
    validate_onhand_change,
    validate_set_onhand,
)
from ringfence.domain.operations import PartitionKey
from ringfence.domain.quantity import parse_quantity
from ringfence.domain.reservations import (
    ReserveRequest,
    UnreserveRequest,
    validate_reserve,
    validate_unreserve,
)

CONFIGURATION = default_configuration()
NOW = datetime(2026, 11, 25, tzinfo=UTC)

words = st.sampled_from(
    [
        "siteId",
        "SITEID",
        "locationId",
        "colorId",
        "sizeId",
        "batchId",
        "channel",
        "region",
        "customerGroup",
        "pos",
        "fno",
        "@iv",
        "inbound",
        "outbound",
        "@softreserved",
        "@allocated",
        "Addition",
        "Subtraction",
        "usmf",
        "Bike",
        "1",
        "11",
        "red",
        "",
        " ",
        "\x00",
        "é",
        "\N{MATHEMATICAL SCRIPT CAPITAL X}",
    ]
) | st.text(max_size=12)
numbers = (
    st.integers(min_value=-(10**20), max_value=10**20)
    | st.decimals(allow_nan=True, allow_infinity=True, places=None)
    | st.floats()
    | st.sampled_from([Decimal("1E+1000000"), Decimal("-0"), Decimal("0.0000001"), 10**13])
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | words,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=5),
    max_leaves=20,
)


def shaped(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that mostly have the expected keys, with hostile values, plus stray keys."""
    return st.fixed_dictionaries(
        {}, optional={**fields, **dict.fromkeys(("extra", "Id", "quantities"), json_values)}
    )


common = {
    "id": words | json_values,
    "organizationId": words | json_values,
    "productId": words | json_values,
    "dimensionDataSource": words | st.none(),
    "dimensions": st.dictionaries(words, words | json_values, max_size=6) | json_values,
}
quantity_values = numbers | words | json_values
groups = st.dictionaries(words, words | json_values, max_size=5) | json_values


def accept_or_refuse(action: Callable[[], object]) -> None:
    try:
        action()
    except RingfenceError:
        pass


def through(
    model: type[BaseModel],
    convert: Callable[[Any], Any],
    validate: Callable[[Any], Any],
    data: object,
) -> None:
    valid, refused = parse_single(data, model, convert)
    assert len(valid) + len(refused) == 1
    for request in valid:
        try:
            validate(request)
        except RingfenceError:
            pass


SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(
    shaped(
        {
            **common,
            "quantities": st.dictionaries(
                words, st.dictionaries(words, quantity_values, max_size=3), max_size=3
            )
            | json_values,
        }
    )
)
def test_any_on_hand_change_is_accepted_or_refused_clearly(data: dict[str, Any]) -> None:
    through(
        OnHandChange,
        lambda m: OnHandChangeRequest(
            m.id,
            m.organization_id,
            m.product_id,
            m.dimensions,
            m.quantities,
            m.dimension_data_source,
        ),
        lambda r: validate_onhand_change(CONFIGURATION, r),
        data,
    )


@SETTINGS
@given(
    shaped(
        {
            **common,
            "quantities": st.dictionaries(
                words, st.dictionaries(words, quantity_values, max_size=3), max_size=3
            ),
            "modifiedDateTimeUTC": words | json_values,
        }
    )
)
def test_any_stock_count_is_accepted_or_refused_clearly(data: dict[str, Any]) -> None:
    through(
        SetOnHandItem,
        lambda m: SetOnHandRequest(
            m.id,
            m.organization_id,
            m.product_id,
            m.dimensions,
            m.quantities,
            m.dimension_data_source,
            m.modified_date_time_utc,
        ),
        lambda r: validate_set_onhand(CONFIGURATION, "pos", r, NOW),
        data,
    )


@SETTINGS
@given(
    shaped(
        {
            **common,
            "quantity": quantity_values,
            "quantityDataSource": words | st.none(),
            "modifier": words | st.none(),
            "ifCheckAvailForReserv": st.booleans() | words,
        }
    )
)
def test_any_reserve_is_accepted_or_refused_clearly(data: dict[str, Any]) -> None:
    through(
        ReserveItem,
        lambda m: ReserveRequest(
            m.id,
            m.organization_id,
            m.product_id,
            m.dimensions,
            m.quantity,
            m.quantity_data_source,
            m.modifier,
            m.if_check_avail_for_reserv,
            m.dimension_data_source,
        ),
        lambda r: validate_reserve(CONFIGURATION, r),
        data,
    )


@SETTINGS
@given(shaped({**common, "reservationId": words | json_values, "OffsetQty": quantity_values}))
def test_any_unreserve_is_accepted_or_refused_clearly(data: dict[str, Any]) -> None:
    located = {"r1": PartitionKey("usmf", "Bike")}
    through(
        UnreserveItem,
        lambda m: UnreserveRequest(
            m.id,
            m.organization_id,
            m.reservation_id,
            m.offset_qty,
            m.product_id,
            m.dimensions,
            m.dimension_data_source,
        ),
        lambda r: validate_unreserve(CONFIGURATION, r, located),
        data,
    )


@SETTINGS
@given(
    shaped(
        {
            **common,
            "groups": groups,
            "targetGroups": groups,
            "quantity": quantity_values,
            "sourceGroups": groups,
            "physicalMeasures": st.dictionaries(
                words, st.dictionaries(words, words, max_size=3), max_size=3
            )
            | json_values,
        }
    )
)
def test_any_allocation_move_is_accepted_or_refused_clearly(data: dict[str, Any]) -> None:
    def fields(m: AllocationItem) -> dict[str, Any]:
        return {
            "id": m.id,
            "organization_id": m.organization_id,
            "product_id": m.product_id,
            "dimensions": m.dimensions,
            "groups": m.path,
            "quantity": m.quantity,
            "dimension_data_source": m.dimension_data_source,
        }

    through(
        AllocationItem,
        lambda m: AllocationRequest(**fields(m)),
        lambda r: validate_allocate(CONFIGURATION, r),
        data,
    )
    through(
        ReallocateItem,
        lambda m: ReallocateRequest(**fields(m), source_groups=m.source_groups),
        lambda r: validate_reallocate(CONFIGURATION, r),
        data,
    )
    through(
        ConsumeItem,
        lambda m: ConsumeRequest(**fields(m), physical_measures=m.physical_measures),
        lambda r: validate_consume(CONFIGURATION, r),
        data,
    )


@SETTINGS
@given(json_values)
def test_any_configuration_document_is_accepted_or_refused_clearly(document: object) -> None:
    accept_or_refuse(lambda: parse_configuration(document))


@SETTINGS
@given(json_values)
def test_any_value_is_a_quantity_or_refused_clearly(value: object) -> None:
    accept_or_refuse(lambda: parse_quantity(value))


@SETTINGS
@given(st.binary(max_size=300) | json_values.map(lambda v: repr(v).encode()))
def test_any_bytes_are_json_or_refused_clearly(body: bytes) -> None:
    accept_or_refuse(lambda: loads(body))


@pytest.mark.parametrize("depth", [31, 33, 5000])
def test_deep_nesting_is_refused_past_the_limit_and_never_crashes(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    if depth <= 32:
        assert loads(body) is not None
    else:
        with pytest.raises(RingfenceError):
            loads(body)
