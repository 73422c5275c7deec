"""JSON in and out without binary floating point."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.api.jsonio import MAX_DEPTH, _depth, dumps, loads
from ringfence.domain.errors import Invalid
from ringfence.domain.quantity import MAX_QUANTITY


def malformed(body: bytes) -> Invalid:
    with pytest.raises(Invalid) as caught:
        loads(body)
    return caught.value


def test_loads_reads_fractional_numbers_as_exact_decimals() -> None:
    parsed = loads(b'{"quantities": {"pos": {"inbound": 0.1, "outbound": 10.500}}}')

    inbound = parsed["quantities"]["pos"]["inbound"]
    outbound = parsed["quantities"]["pos"]["outbound"]
    assert isinstance(inbound, Decimal)
    assert inbound == Decimal("0.1")
    assert isinstance(outbound, Decimal)
    assert outbound == Decimal("10.5")


def test_loads_reads_exponent_numbers_as_decimals() -> None:
    parsed = loads(b"[1e2, 2.5E-3]")

    assert parsed == [Decimal(100), Decimal("0.0025")]
    assert all(isinstance(value, Decimal) for value in parsed)


def test_loads_reads_whole_numbers_exactly() -> None:
    parsed = loads(b"[12345678901234567890123, -7, 0]")

    assert parsed == [12345678901234567890123, -7, 0]
    assert not any(isinstance(value, float) for value in parsed)


@pytest.mark.parametrize(
    "body",
    [b"NaN", b"Infinity", b"-Infinity", b'{"q": NaN}', b'{"q": [1, Infinity]}', b"[-Infinity]"],
)
def test_loads_refuses_nan_and_infinity_literals(body: bytes) -> None:
    error = malformed(body)

    assert error.code == "malformed-json"
    assert error.issues[0].path == "body"


@pytest.mark.parametrize(
    "body", [b"", b"{", b"{'a': 1}", b'{"a": 1,}', b"\xff\xfe", b"[1] [2]", b"nul"]
)
def test_loads_refuses_text_that_is_not_json(body: bytes) -> None:
    assert malformed(body).code == "malformed-json"


@pytest.mark.parametrize("body", [b"1e999999999999999999999", b'{"q": -1E+999999999999999999999}'])
def test_loads_refuses_numbers_with_exponents_no_decimal_can_hold(body: bytes) -> None:
    # Exponent abuse is a client error (422), never an unexpected exception (500).
    malformed(body)


def test_loads_accepts_nesting_up_to_max_depth() -> None:
    body = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH

    parsed = loads(body)

    assert _depth(body) == MAX_DEPTH
    for _ in range(MAX_DEPTH - 1):
        [parsed] = parsed
    assert parsed == []


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_loads_refuses_nesting_deeper_than_max_depth(depth: int) -> None:
    error = malformed(b'{"a":' * depth + b"1" + b"}" * depth)

    assert error.code == "malformed-json"
    assert str(MAX_DEPTH) in error.detail


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}], "c": {}}', 4),
        (b'["[[[[", "{{{{"]', 1),
        (b'["\\"[[[[", "]]"]', 1),
        (b'{"a\\\\": [[]]}', 3),
    ],
)
def test_depth_counts_nesting_outside_strings_only(body: bytes, depth: int) -> None:
    assert _depth(body) == depth


def test_loads_accepts_brackets_inside_strings_beyond_max_depth() -> None:
    text = "[" * (MAX_DEPTH * 2)

    assert loads(f'{{"note": "{text}"}}'.encode()) == {"note": text}


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (Decimal("10.500000"), b"10.5"),
        (Decimal("10.000000"), b"10"),
        (Decimal("-0.000000"), b"0"),
        (Decimal("0.000001"), b"0.000001"),
        (Decimal("1E+3"), b"1000"),
        (MAX_QUANTITY, b"999999999999.999999"),
    ],
)
def test_dumps_writes_decimals_as_plain_json_numbers(value: Decimal, written: bytes) -> None:
    assert dumps(value) == written


def test_dumps_writes_equal_decimals_alike_however_often_they_repeat() -> None:
    values = [Decimal("1"), Decimal("1.000000"), Decimal("0"), Decimal("-0.000000")] * 3

    assert dumps(values) == b"[" + b",".join([b"1", b"1", b"0", b"0"] * 3) + b"]"


def test_dumps_writes_more_distinct_quantities_than_it_remembers() -> None:
    values = [Decimal(units).scaleb(-6) for units in range(-5_000, 5_000)]

    assert loads(dumps(values)) == values
    assert loads(dumps(values)) == values


def test_dumps_never_writes_a_decimal_as_a_string() -> None:
    assert dumps({"quantities": {"pos": {"inbound": Decimal("10.500000")}}}) == (
        b'{"quantities":{"pos":{"inbound":10.5}}}'
    )


def test_dumps_refuses_values_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        dumps({"when": object()})


@given(
    st.decimals(
        min_value=-MAX_QUANTITY,
        max_value=MAX_QUANTITY,
        places=6,
        allow_nan=False,
        allow_infinity=False,
    )
)
@settings(max_examples=200)
def test_dumps_then_loads_gives_back_the_same_quantity(value: Decimal) -> None:
    [read] = loads(dumps([value]))

    assert read == value
    assert not isinstance(read, float)


def _nesting(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_nesting(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_nesting(item) for item in value.values()), default=0)
    return 0


documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


@given(documents, st.booleans())
@settings(max_examples=300)
def test_depth_is_the_nesting_of_any_document(document: object, ascii_only: bool) -> None:
    # Strings hold brackets, quotes and backslashes, escaped as any JSON writer does.
    body = json.dumps(document, ensure_ascii=ascii_only).encode()

    assert _depth(body) == _nesting(document)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "\\ud800"}',
        b'{"id": "x\\uDFFFy"}',
        b'{"\\udbff": 1}',
        b'["ok", {"deep": ["\\ud83d"]}]',
        b'{"id": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes
    ],
)
def test_loads_refuses_strings_that_are_not_unicode_text(body: bytes) -> None:
    error = malformed(body)

    assert error.code == "malformed-json"
    assert "surrogate" in error.detail


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"id": "\\ud83d\\ude00"}', "\U0001f600"),  # a pair: one character
        (b'{"id": "\\\\ud800"}', "\\ud800"),  # an escaped backslash, then plain letters
    ],
)
def test_loads_accepts_surrogate_pairs_and_escaped_backslashes(body: bytes, text: str) -> None:
    assert loads(body) == {"id": text}


def test_loads_checks_text_beside_numbers_of_any_size() -> None:
    body = b'{"id": "\\ud83d\\ude00", "n": 123456789012345678901234567890, "q": 1.5}'

    assert loads(body) == {
        "id": "\U0001f600",
        "n": 123456789012345678901234567890,
        "q": Decimal("1.5"),
    }
