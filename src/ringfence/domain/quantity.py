"""Exact quantities.

A quantity is a :class:`~decimal.Decimal` with at most :data:`SCALE` fractional digits and an
absolute value of at most :data:`MAX_QUANTITY`. Binary floating point never enters: the API
parses JSON numbers straight into ``Decimal``, storage keeps whole *units* of
``10**-SCALE`` in 64-bit integers, and answers are written from the decimal digits.
Anything that cannot be held exactly is refused, never rounded.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ringfence.domain.errors import FieldIssue, Invalid, Location

__all__ = [
    "MAX_QUANTITY",
    "SCALE",
    "ZERO",
    "check_in_range",
    "format_quantity",
    "from_units",
    "parse_quantity",
    "to_units",
]

SCALE = 6
"""Fractional digits kept exactly."""

MAX_QUANTITY = Decimal("999999999999.999999")
"""The largest absolute quantity in a request and in any stored measure (just under 10**12)."""

ZERO = Decimal(0)

_QUANTUM = Decimal(1).scaleb(-SCALE)
_MAX_ADJUSTED = MAX_QUANTITY.adjusted()
_UNITS_PER_ONE = 10**SCALE
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,4})?")
_MAX_TEXT = 64


def _refuse(location: Location, message: str) -> Invalid:
    return Invalid(
        "invalid-quantity",
        f"{FieldIssue(location, message).path or 'quantity'}: {message}",
        issues=(FieldIssue(location, message),),
    )


def parse_quantity(
    value: object, location: Location = ("quantity",), *, positive: bool = False
) -> Decimal:
    """Read a quantity from a JSON number (already a ``Decimal`` or ``int``) or a numeric string.

    Raises :class:`Invalid` (``invalid-quantity``) for booleans, floats, NaN, infinities, text
    that is not a plain number, more than ``SCALE`` fractional digits, values beyond
    ``MAX_QUANTITY`` and, with ``positive``, values that are not greater than zero.
    """
    number: Decimal
    if isinstance(value, bool) or isinstance(value, float):
        # A float has already lost exactness; a bool is a JSON true/false, not a number.
        raise _refuse(location, "must be a JSON number or a numeric string")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        if abs(value) > MAX_QUANTITY:
            raise _refuse(location, f"must be between -{MAX_QUANTITY} and {MAX_QUANTITY}")
        number = Decimal(value)
    elif isinstance(value, str):
        if len(value) > _MAX_TEXT or not _NUMBER.fullmatch(value):
            raise _refuse(location, "must be a plain decimal number such as 12 or 12.5")
        try:
            number = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
            raise _refuse(location, "must be a plain decimal number") from None
    else:
        raise _refuse(location, "must be a JSON number or a numeric string")

    if not number.is_finite():
        raise _refuse(location, "must be a finite number (not NaN or infinity)")
    # Compare exponents first: arithmetic on a huge exponent would overflow the context.
    if number.adjusted() > _MAX_ADJUSTED or abs(number) > MAX_QUANTITY:
        raise _refuse(location, f"must be between -{MAX_QUANTITY} and {MAX_QUANTITY}")
    exact = number.quantize(_QUANTUM) if number.adjusted() >= -SCALE - 1 else ZERO
    if exact != number:
        raise _refuse(location, f"has more than {SCALE} fractional digits")
    if positive and exact <= 0:
        raise _refuse(location, "must be greater than zero")
    return exact


def check_in_range(value: Decimal, location: Location) -> None:
    """Refuse a computed measure value that storage could not hold."""
    if abs(value) > MAX_QUANTITY:
        raise Invalid(
            "quantity-out-of-range",
            f"{FieldIssue(location, '').path}: the result {format_quantity(value)} would exceed "
            f"the supported range of ±{MAX_QUANTITY}",
            issues=(FieldIssue(location, "result out of range"),),
        )


def to_units(value: Decimal) -> int:
    """The exact number of ``10**-SCALE`` units in ``value`` (which must be a parsed quantity)."""
    return int(value.scaleb(SCALE))


def from_units(units: int) -> Decimal:
    """The quantity that ``units`` whole units of ``10**-SCALE`` make."""
    return Decimal(units).scaleb(-SCALE)


def format_quantity(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros: ``10``, ``-2.5``, ``0.000001``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        return "0"
    return text
