"""Exact JSON: quantities (``Decimal``) are written as the JSON numbers they are, and read back
as ``Decimal``, never through binary floating point. Used by the API and by storage."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def _plain(value: Decimal) -> bytes:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return b"0" if text in ("-0", "") else text.encode()


# Answers of many rows repeat a few quantities (0 above all): each is written once, then taken
# from here. Equal decimals write the same text (1.0 and 1 both as 1), so equality is the key.
_FRAGMENTS: dict[Decimal, orjson.Fragment] = {}
_FRAGMENTS_MAX = 4096


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        fragment = _FRAGMENTS.get(value)
        if fragment is None:
            fragment = orjson.Fragment(_plain(value))
            if len(_FRAGMENTS) < _FRAGMENTS_MAX:
                _FRAGMENTS[value] = fragment
        return fragment
    if isinstance(value, datetime):  # pragma: no cover - orjson writes datetimes itself
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: object) -> bytes:
    """JSON bytes; every ``Decimal`` exactly, without exponent or trailing zeros."""
    return orjson.dumps(value, default=_default)


def loads(text: str | bytes) -> Any:
    """Trusted JSON (written by :func:`dumps`): fractions come back as ``Decimal``."""
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _DECODER.decode(text)


_DECODER = json.JSONDecoder(parse_float=Decimal)
"""Built once: ``json.loads`` with an option builds a decoder per call."""
