"""What every mutation shares: its kind, its partition, its record, its outcome, its journal
entry.

A mutation is identified by the client's ``id`` within (environment, :class:`OperationKind`). The
first accepted request with an id is journaled together with its result; a later request with the
same id and the same fingerprint (the digest of its record, :func:`to_json_value` of
``to_record()``) gets that result again (a *replay*) and changes nothing; one with another
fingerprint is refused (``idempotency-key-reuse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from ringfence.domain.errors import Conflict, NotFound, RingfenceError
from ringfence.domain.quantity import format_quantity

__all__ = [
    "Bucket",
    "Context",
    "ItemResult",
    "JournalEntry",
    "OperationKind",
    "PartitionKey",
    "bucket_for",
    "to_json_value",
]


class OperationKind(StrEnum):
    """The scope of an idempotency key, together with the environment."""

    ONHAND_CHANGE = "onhand"
    SET_ONHAND = "setonhand"
    RESERVE = "reserve"
    UNRESERVE = "unreserve"
    ALLOCATE = "allocate"
    UNALLOCATE = "unallocate"
    REALLOCATE = "reallocate"
    CONSUME = "consume"


class Bucket(StrEnum):
    """Inventory Visibility's result buckets of bulk calls; also an item's processingStatus."""

    SUCCESS = "success"
    PARTIAL_SUCCESS = "partialSuccess"
    FAILURE = "failure"
    CONFLICT = "conflict"
    NOT_FOUND = "notFound"


@dataclass(frozen=True, slots=True, order=True)
class PartitionKey:
    """The unit of serialization: every mutation touches exactly one (within an environment)."""

    organization_id: str
    product_id: str


def bucket_for(error: RingfenceError) -> Bucket:
    if isinstance(error, NotFound):
        return Bucket.NOT_FOUND
    if isinstance(error, Conflict):
        return Bucket.CONFLICT
    return Bucket.FAILURE


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one operation of a call: an accepted (or replayed) result, or an error.

    ``body`` is the Inventory Visibility shaped answer (``id``, ``processingStatus``, ``message``,
    ``statusCode`` and operation-specific fields) of an accepted operation; ``error`` is set
    instead when the operation was refused, and nothing of it was applied.
    """

    index: int
    id: str | None
    bucket: Bucket
    body: Mapping[str, object] = field(default_factory=dict)
    error: RingfenceError | None = None
    replayed: bool = False

    @classmethod
    def refused(cls, index: int, operation_id: str | None, error: RingfenceError) -> ItemResult:
        return cls(index, operation_id, bucket_for(error), error=error)


@dataclass(frozen=True, slots=True)
class Context:
    """Who applies an operation, and when."""

    actor: str
    now: datetime


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted mutation, as appended to the journal (``sequence`` is given by storage)."""

    kind: OperationKind
    operation_id: str
    partition: PartitionKey
    fingerprint: str
    request: Mapping[str, object]
    effects: tuple[Mapping[str, object], ...]
    result: Mapping[str, object]
    actor: str
    recorded_at: datetime
    sequence: int | None = field(default=None, compare=False)


def to_json_value(value: object) -> object:
    """Canonical JSON data: quantities become their exact decimal text (``10`` for 10.000)."""
    if isinstance(value, Decimal):
        return format_quantity(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    return value
