"""Dimensions: where and what the stock is (``siteId``, ``locationId``, ``colorId``, ...).

Names are matched case-insensitively and always carried in their configured (base) spelling;
values are case-sensitive strings. A :class:`Dimensions` value is immutable, ordered by the
base dimension list, and has a canonical text :attr:`Dimensions.key` used to store it.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Iterable, Iterator, Mapping

from ringfence.domain.errors import FieldIssue, Invalid, Location

__all__ = [
    "BASE_DIMENSIONS",
    "MAX_DIMENSION_VALUE_LENGTH",
    "MAX_IDENTIFIER_LENGTH",
    "Dimensions",
    "check_identifier",
    "check_text",
]

BASE_DIMENSIONS: tuple[str, ...] = (
    "siteId",
    "locationId",
    "colorId",
    "sizeId",
    "styleId",
    "configId",
    "batchId",
    "serialId",
    "statusId",
    "wmsLocationId",
    "wmsPalletId",
    "licensePlateId",
    "versionId",
    *(f"inventDimension{n}" for n in range(1, 13)),
    *(f"extendedDimension{n}" for n in range(1, 9)),
)
"""The base dimensions, as in Inventory Visibility, in their canonical spelling and order."""

_ORDER = {name: position for position, name in enumerate(BASE_DIMENSIONS)}

MAX_IDENTIFIER_LENGTH = 128
"""Longest organization, product, operation or reservation id."""

MAX_DIMENSION_VALUE_LENGTH = 128


def check_text(value: object, location: Location, *, max_length: int, what: str) -> str:
    """Refuse anything but a non-empty string of printable characters up to ``max_length``."""
    if not isinstance(value, str):
        raise _invalid("invalid-identifier", location, f"{what} must be a string")
    if not value:
        raise _invalid("invalid-identifier", location, f"{what} must not be empty")
    if len(value) > max_length:
        raise _invalid(
            "invalid-identifier", location, f"{what} must be at most {max_length} characters"
        )
    # isprintable() is False for every control, format, surrogate, private-use or unassigned
    # character (category C), and for separators other than the space, which are allowed: the
    # character-by-character check runs only then (at C speed otherwise, on every id and value).
    if not value.isprintable() and any(unicodedata.category(char)[0] == "C" for char in value):
        raise _invalid(
            "invalid-identifier", location, f"{what} must not contain control characters"
        )
    return value


def check_identifier(value: object, location: Location, what: str) -> str:
    """An organization, product, operation or reservation id."""
    return check_text(value, location, max_length=MAX_IDENTIFIER_LENGTH, what=what)


def _invalid(code: str, location: Location, message: str) -> Invalid:
    issue = FieldIssue(location, message)
    return Invalid(code, f"{issue.path}: {message}", issues=(issue,))


_KEY_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""Writes :attr:`Dimensions.key` (built once: ``json.dumps`` with options builds one per call)."""


class Dimensions(Mapping[str, str]):
    """An immutable set of base dimension values, ordered by :data:`BASE_DIMENSIONS`."""

    __slots__ = ("_items", "_key")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        ordered = tuple(sorted(items, key=lambda item: (_ORDER.get(item[0], len(_ORDER)), item[0])))
        self._items: dict[str, str] = dict(ordered)
        self._key = _KEY_ENCODER.encode(ordered)

    @classmethod
    def from_key(cls, key: str) -> Dimensions:
        """Rebuild from :attr:`key` (as stored)."""
        return cls((str(name), str(value)) for name, value in json.loads(key))

    @property
    def key(self) -> str:
        """Canonical text: equal dimensions have equal keys."""
        return self._key

    def __getitem__(self, name: str) -> str:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dimensions):
            return self._key == other._key
        return NotImplemented

    def __repr__(self) -> str:
        return f"Dimensions({self._items!r})"

    def restricted_to(self, names: Iterable[str]) -> Dimensions:
        """The values of ``names`` only (those present)."""
        return _restricted(self, tuple(names))

    def as_dict(self) -> dict[str, str]:
        return dict(self._items)


@functools.lru_cache(maxsize=4096)
def _restricted(dimensions: Dimensions, names: tuple[str, ...]) -> Dimensions:
    """Memoized: a batch restricts the same few dimensions to the same levels again and again
    (immutable values, so sharing them is safe)."""
    return Dimensions((name, dimensions[name]) for name in names if name in dimensions)
