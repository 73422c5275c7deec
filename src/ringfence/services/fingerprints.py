"""Fingerprints: what a mutation means, as a digest its retries are compared with.

A mutation's record (``to_record()``, made by the domain) holds its meaning: equal records for
requests that would do the same thing. Its fingerprint is the SHA-256 of canonical JSON of
``[kind, record]``: keys sorted, no spaces, text unescaped but for JSON's own escapes, each
quantity its exact decimal text (:func:`~ringfence.domain.operations.to_json_value`).
Journaled fingerprints are compared with those of retries, so the bytes never change: orjson
writes them (a tenth of the time), the standard library what orjson cannot (integers beyond
64 bits), and the tests hold the two equal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import orjson

from ringfence.domain.operations import OperationKind, to_json_value

__all__ = ["fingerprint"]


def fingerprint(kind: OperationKind, record: Mapping[str, object]) -> str:
    """The digest of ``[kind, record]``: equal for requests that would do the same thing."""
    try:
        text = orjson.dumps([str(kind), record], default=_canonical, option=_CANONICAL)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = json.dumps(
            [str(kind), to_json_value(record)],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
    return hashlib.sha256(text).hexdigest()


_CANONICAL = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _canonical(value: object) -> object:
    """What orjson does not write as :func:`to_json_value` does (anything else: the standard
    library decides, as before)."""
    if isinstance(value, Decimal | datetime):
        return to_json_value(value)
    raise TypeError(type(value).__name__)
