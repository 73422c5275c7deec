"""Exact quantities: reading, storing as units, writing back as text."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.errors import Invalid
from ringfence.domain.quantity import (
    MAX_QUANTITY,
    SCALE,
    check_in_range,
    format_quantity,
    from_units,
    parse_quantity,
    to_units,
)

MAX_UNITS = 999_999_999_999_999_999
STEP = Decimal("0.000001")

quantities = st.decimals(
    min_value=-MAX_QUANTITY,
    max_value=MAX_QUANTITY,
    places=SCALE,
    allow_nan=False,
    allow_infinity=False,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, Decimal(0)),
        (10, Decimal(10)),
        (-3, Decimal(-3)),
        (999_999_999_999, Decimal(999_999_999_999)),
        (Decimal("2.5"), Decimal("2.5")),
        (Decimal("-0.000001"), Decimal("-0.000001")),
        (Decimal("10.0"), Decimal(10)),
        (MAX_QUANTITY, MAX_QUANTITY),
        (-MAX_QUANTITY, -MAX_QUANTITY),
        ("12", Decimal(12)),
        ("0", Decimal(0)),
        ("-7", Decimal(-7)),
        ("12.125", Decimal("12.125")),
        ("0.000001", Decimal("0.000001")),
        ("999999999999.999999", MAX_QUANTITY),
        ("-999999999999.999999", -MAX_QUANTITY),
    ],
)
def test_parse_quantity_accepts_ints_decimals_and_plain_numeric_strings(
    value: object, expected: Decimal
) -> None:
    parsed = parse_quantity(value)

    assert isinstance(parsed, Decimal)
    assert parsed == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("1e3", Decimal(1000)), ("2.5E-1", Decimal("0.25"))]
)
def test_parse_quantity_accepts_exponent_strings_within_range(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("value", [True, False])
def test_parse_quantity_refuses_booleans(value: bool) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(value)
    assert caught.value.code == "invalid-quantity"


@pytest.mark.parametrize("value", [1.5, 0.0, 10.0, float("nan"), float("inf")])
def test_parse_quantity_refuses_floats_even_whole_ones(value: float) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(value)
    assert caught.value.code == "invalid-quantity"


@pytest.mark.parametrize(
    "value",
    [
        Decimal("NaN"),
        Decimal("-NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "sNaN",
    ],
)
def test_parse_quantity_refuses_nan_and_infinity_as_decimals_and_as_strings(
    value: object,
) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(value)
    assert caught.value.code == "invalid-quantity"


@pytest.mark.parametrize("text", ["1e12", "1E13", "-1e13", "1e9999", "1e99999", "1e100000000"])
def test_parse_quantity_refuses_exponent_strings_beyond_range(text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(text)
    assert caught.value.code == "invalid-quantity"


@pytest.mark.parametrize(
    "value",
    ["0.0000001", "1.1234567", "-0.0000005", "1e-7", Decimal("0.0000001"), Decimal("1E-30")],
)
def test_parse_quantity_refuses_more_than_six_fractional_digits(value: object) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(value)
    assert caught.value.code == "invalid-quantity"
    assert "fractional digits" in caught.value.detail


@pytest.mark.parametrize(
    "value",
    [
        10**12,
        -(10**12),
        10**40,
        MAX_QUANTITY + STEP,
        -MAX_QUANTITY - STEP,
        Decimal("1E+13"),
        "1000000000000",
        "999999999999.9999991",
    ],
)
def test_parse_quantity_refuses_values_beyond_max_quantity(value: object) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(value)
    assert caught.value.code == "invalid-quantity"


@pytest.mark.parametrize("value", [Decimal("1E+1000000"), Decimal("-1E+1000000")])
def test_parse_quantity_refuses_a_decimal_whose_exponent_overflows_the_decimal_context(
    value: Decimal,
) -> None:
    # A JSON body may carry 1E+1000000: the parser makes it a Decimal without complaint, and
    # reading it as a quantity must be a 422, not an ArithmeticError (a 500).
    with pytest.raises(Invalid) as caught:
        parse_quantity(value)
    assert caught.value.code == "invalid-quantity"


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "+1", ".5", "5.", "0x10", "1_000", "01", "1,5", "--1", "1e", "abc", "\uff11"],
)
def test_parse_quantity_refuses_text_that_is_not_a_plain_number(text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(text)
    assert caught.value.code == "invalid-quantity"


def test_parse_quantity_refuses_overlong_text() -> None:
    with pytest.raises(Invalid):
        parse_quantity("0." + "0" * 70)


@pytest.mark.parametrize("value", [None, [1], {"value": 1}, b"1", object()])
def test_parse_quantity_refuses_values_of_other_types(value: object) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(value)
    assert caught.value.code == "invalid-quantity"


@pytest.mark.parametrize("value", [0, "0", Decimal("0.000000"), Decimal("-0"), -1, "-0.000001"])
def test_parse_quantity_refuses_non_positive_values_when_positive_is_required(
    value: object,
) -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity(value, positive=True)
    assert caught.value.code == "invalid-quantity"
    assert "greater than zero" in caught.value.detail


def test_parse_quantity_accepts_the_smallest_positive_quantity_when_positive_is_required() -> None:
    assert parse_quantity("0.000001", positive=True) == STEP


def test_parse_quantity_names_the_location_of_the_refused_value() -> None:
    with pytest.raises(Invalid) as caught:
        parse_quantity("lots", ("quantities", "pos", "inbound"))
    [issue] = caught.value.issues
    assert issue.path == "quantities.pos.inbound"
    assert caught.value.detail.startswith("quantities.pos.inbound: ")


@given(quantities)
@settings(max_examples=200)
def test_parse_quantity_accepts_every_quantity_in_range_given_as_text(value: Decimal) -> None:
    assert parse_quantity(str(value)) == value
    assert parse_quantity(format_quantity(value)) == value


def test_to_units_counts_millionths() -> None:
    assert to_units(Decimal("1.5")) == 1_500_000
    assert to_units(Decimal("-0.000001")) == -1
    assert to_units(MAX_QUANTITY) == MAX_UNITS
    assert from_units(MAX_UNITS) == MAX_QUANTITY
    assert from_units(-1) == Decimal("-0.000001")


@given(quantities)
@settings(max_examples=300)
def test_to_units_and_from_units_round_trip_every_quantity_exactly(value: Decimal) -> None:
    units = to_units(parse_quantity(value))

    assert isinstance(units, int)
    assert from_units(units) == value
    assert to_units(from_units(units)) == units


@given(st.integers(min_value=-MAX_UNITS, max_value=MAX_UNITS))
@settings(max_examples=200)
def test_from_units_and_to_units_round_trip_every_storable_integer(units: int) -> None:
    assert to_units(from_units(units)) == units


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("10.000000"), "10"),
        (Decimal("10.500000"), "10.5"),
        (Decimal("-2.500000"), "-2.5"),
        (Decimal("0.000001"), "0.000001"),
        (Decimal("1E-6"), "0.000001"),
        (Decimal("1E+3"), "1000"),
        (Decimal("100"), "100"),
        (Decimal("0E-6"), "0"),
        (Decimal("-0.000000"), "0"),
        (Decimal("-0"), "0"),
        (MAX_QUANTITY, "999999999999.999999"),
    ],
)
def test_format_quantity_writes_plain_decimal_text(value: Decimal, text: str) -> None:
    assert format_quantity(value) == text


@given(quantities)
@settings(max_examples=300)
def test_format_quantity_never_uses_exponent_notation_and_strips_trailing_zeros(
    value: Decimal,
) -> None:
    text = format_quantity(value)

    assert Decimal(text) == value
    assert "e" not in text.lower()
    if "." in text:
        assert not text.endswith("0")
        assert not text.endswith(".")


@given(
    st.decimals(
        min_value=Decimal("-1e15"),
        max_value=Decimal("1e15"),
        allow_nan=False,
        allow_infinity=False,
    )
)
@settings(max_examples=200)
def test_format_quantity_is_exact_for_any_finite_decimal(value: Decimal) -> None:
    text = format_quantity(value)

    assert Decimal(text) == value
    assert "e" not in text.lower()


def test_check_in_range_accepts_the_bounds_and_refuses_beyond_them() -> None:
    check_in_range(MAX_QUANTITY, ("quantities", "pos", "inbound"))
    check_in_range(-MAX_QUANTITY, ("quantities", "pos", "inbound"))

    with pytest.raises(Invalid) as caught:
        check_in_range(MAX_QUANTITY + STEP, ("quantities", "pos", "inbound"))
    assert caught.value.code == "quantity-out-of-range"
    assert caught.value.issues[0].path == "quantities.pos.inbound"
