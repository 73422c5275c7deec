"""Fingerprints are journaled and compared with those of retries: their bytes never change."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.operations import OperationKind, to_json_value
from ringfence.services.fingerprints import fingerprint

REQUEST: dict[str, object] = {
    "id": "op-1",
    "organizationId": "usmf",
    "productId": "T-shirt",
    "dimensions": {"siteId": "1", "colorId": 'Rød\u001f\t"x"\\'},
    "quantities": {"pos": {"inbound": Decimal("10.500")}},
    "when": datetime(2026, 3, 1, tzinfo=UTC),
    "note": None,
    "flag": True,
}


def canonical(kind: OperationKind, request: dict[str, object]) -> str:
    """The definition: SHA-256 of the standard library's canonical JSON of the request."""
    text = json.dumps(
        [str(kind), to_json_value(request)],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_known_request_keeps_its_journaled_fingerprint() -> None:
    assert fingerprint(OperationKind.ONHAND_CHANGE, REQUEST) == (
        "38a0123ea3c8b179c56be9be9a3d0963e8684c71021c8c44a0a8ce9eea064651"
    )


def test_integers_beyond_64_bits_keep_their_fingerprint_too() -> None:
    request = {**REQUEST, "n": 12345678901234567890123}

    assert fingerprint(OperationKind.ONHAND_CHANGE, request) == (
        "438869408f41649f6ab1da51dd0baa978b9c8ab9d1c9660657f5ff3735dc9c47"
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False, places=6),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.sampled_from(OperationKind)
)
@settings(max_examples=500)
def test_fingerprints_are_the_digest_of_canonical_json(
    request: dict[str, object], kind: OperationKind
) -> None:
    assert fingerprint(kind, request) == canonical(kind, request)
