"""What the services need from storage: a unit of work and its repositories.

``ringfence.storage`` implements these for SQLite and PostgreSQL (``SqlUnitOfWork``) and in memory
(``MemoryUnitOfWork``, for fast unit tests). A unit of work is one database transaction; nothing
it wrote is visible to others, or kept, until :meth:`UnitOfWork.commit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from ringfence.domain.access import Role
from ringfence.domain.configuration import MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.ledger import (
    AllocationKey,
    AllocationState,
    Group,
    GroupPath,
    LevelScope,
    Needs,
    Reservation,
)
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.operations import JournalEntry, OperationKind, PartitionKey
from ringfence.domain.query import AggregateRow, OnHandSelection

__all__ = [
    "AllocationRepository",
    "BatchReads",
    "BatchState",
    "BatchWrites",
    "ChangeLine",
    "ChangedAtOnce",
    "ChangesAtOnce",
    "ConfigurationRepository",
    "ConfigurationStamp",
    "ConsumeAtOnce",
    "ConsumeGroup",
    "ConsumeLine",
    "ConsumedAtOnce",
    "DuplicateOperation",
    "EnvironmentRepository",
    "GroupConsumed",
    "JournalFilter",
    "JournalRepository",
    "OnHandRepository",
    "PartitionRepository",
    "ReservationFilter",
    "ReservationRepository",
    "SessionRecord",
    "SessionRepository",
    "StoredConfiguration",
    "TokenRecord",
    "TokenRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "lock_and_read_in_turn",
    "token_valid",
    "write_and_commit_in_turn",
]


class DuplicateOperation(Exception):
    """A concurrent transaction journaled an operation with the same id first.

    Raised by :meth:`JournalRepository.append` and :meth:`UnitOfWork.write_and_commit`; the
    service retries its whole unit of work, which then finds that operation and replays it or
    refuses the id's reuse.
    """


@dataclass(frozen=True, slots=True)
class StoredConfiguration:
    environment_id: str
    version: int
    document: Mapping[str, object]
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class ConfigurationStamp:
    """What identifies a stored configuration version, without its document."""

    environment_id: str
    version: int
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    environment_id: str
    name: str
    role: Role
    secret_hash: str
    created_at: datetime
    organizations: tuple[str, ...] | None = None
    group_scope: tuple[tuple[str, str], ...] = ()
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JournalFilter:
    organization_id: str | None = None
    organizations: tuple[str, ...] | None = None
    """Only these organizations (a token's scope); None: all."""
    product_id: str | None = None
    kind: OperationKind | None = None
    operation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int | None = None
    """Sequence cursor: entries after it (before it when ``descending``)."""
    descending: bool = False
    limit: int = 100


class EnvironmentRepository(Protocol):
    async def exists(self, environment_id: str) -> bool: ...

    async def create(self, environment_id: str, created_at: datetime) -> None: ...

    async def delete(self, environment_id: str) -> None:
        """Remove the environment and everything in it."""
        ...


class ConfigurationRepository(Protocol):
    async def current(self, environment_id: str) -> StoredConfiguration | None: ...

    async def current_stamp(self, environment_id: str) -> ConfigurationStamp | None:
        """The current version's stamp: enough to find its parsed document in a cache."""
        ...

    async def version(self, environment_id: str, version: int) -> StoredConfiguration | None: ...

    async def history(self, environment_id: str) -> list[StoredConfiguration]:
        """Every version, newest first."""
        ...

    async def lock_current_version(self, environment_id: str) -> int | None:
        """Lock the environment against concurrent configuration changes; its current version."""
        ...

    async def add(self, configuration: StoredConfiguration) -> None:
        """Store a new version and make it the current one."""
        ...


class TokenRepository(Protocol):
    async def add(self, record: TokenRecord) -> None: ...

    async def get(self, token_id: str) -> TokenRecord | None: ...

    async def get_many(self, token_ids: Sequence[str]) -> dict[str, TokenRecord]:
        """The records of those of ``token_ids`` that exist, by id."""
        ...

    async def get_by_name(self, environment_id: str, name: str) -> TokenRecord | None: ...

    async def list_for(self, environment_id: str) -> list[TokenRecord]: ...

    async def revoke(self, token_id: str, revoked_at: datetime) -> None: ...


class PartitionRepository(Protocol):
    async def lock(self, environment_id: str, partitions: Sequence[PartitionKey]) -> None:
        """Serialize with every other unit of work touching these partitions until commit.

        ``partitions`` must be sorted, so that units of work locking several never deadlock.
        """
        ...

    async def catalog(
        self,
        environment_id: str,
        *,
        organizations: Sequence[str] | None = None,
        search: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[PartitionKey], int]:
        """Products that ever changed, ordered, whose id contains ``search``; and their count."""
        ...


class OnHandRepository(Protocol):
    async def load(
        self, environment_id: str, keys: Iterable[MeasureKey]
    ) -> dict[MeasureKey, MeasureState]:
        """The stored state of these counters (absent ones are omitted)."""
        ...

    async def save(
        self, environment_id: str, states: Iterable[tuple[MeasureKey, MeasureState]]
    ) -> None: ...

    async def aggregate(
        self, environment_id: str, selection: OnHandSelection
    ) -> list[AggregateRow]: ...

    async def level_sums(
        self, environment_id: str, scopes: Iterable[LevelScope], below: Sequence[str]
    ) -> dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]]:
        """For each scope (a product at partition-dimension values), every physical measure
        summed by the values of the hierarchy dimensions ``below`` the partition dimensions."""
        ...

    async def measures_in_use(self, environment_id: str) -> set[MeasureRef]:
        """Physical measures holding a non-zero quantity anywhere in the environment."""
        ...

    async def has_rows(self, environment_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ReservationFilter:
    organization_id: str | None = None
    organizations: tuple[str, ...] | None = None
    """Only these organizations (a token's scope); None: all."""
    product_id: str | None = None
    open_only: bool = False
    after: str | None = None
    """Reservation id cursor: those created after it."""
    limit: int = 100


class ReservationRepository(Protocol):
    async def load(self, environment_id: str, ids: Iterable[str]) -> dict[str, Reservation]: ...

    async def locate(self, environment_id: str, ids: Iterable[str]) -> dict[str, PartitionKey]:
        """The partition of each known reservation id."""
        ...

    async def save(self, environment_id: str, reservations: Iterable[Reservation]) -> None:
        """Insert new reservations and update changed ones."""
        ...

    async def list_reservations(
        self, environment_id: str, reservation_filter: ReservationFilter
    ) -> list[Reservation]:
        """In id order (ids sort by creation time)."""
        ...

    async def any_open(self, environment_id: str) -> bool:
        """Whether any reservation still holds something."""
        ...


class AllocationRepository(Protocol):
    async def load(
        self, environment_id: str, keys: Iterable[AllocationKey]
    ) -> dict[AllocationKey, AllocationState]: ...

    async def save(
        self, environment_id: str, states: Iterable[tuple[AllocationKey, AllocationState]]
    ) -> None: ...

    async def at(
        self, environment_id: str, partition: PartitionKey, dimensions: Dimensions
    ) -> dict[GroupPath, AllocationState]:
        """Every path that ever held quantity of a product at exact dimensions."""
        ...

    async def in_use(self, environment_id: str) -> bool:
        """Whether any path holds an allocated quantity."""
        ...

    async def for_products(
        self, environment_id: str, partitions: Sequence[PartitionKey]
    ) -> list[tuple[AllocationKey, AllocationState]]:
        """Every allocation row of these products, at any dimensions."""
        ...

    async def nearly_used_up(
        self, environment_id: str, *, remaining_share: Decimal, limit: int
    ) -> list[tuple[AllocationKey, AllocationState]]:
        """Paths that received something and keep at most ``remaining_share`` of it, least first."""
        ...


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_hash: str
    token_id: str
    csrf: str
    created_at: datetime
    expires_at: datetime


class SessionRepository(Protocol):
    async def add(self, record: SessionRecord) -> None: ...

    async def get(self, session_hash: str) -> SessionRecord | None: ...

    async def delete(self, session_hash: str) -> None: ...


class JournalRepository(Protocol):
    async def find(
        self, environment_id: str, kind: OperationKind, operation_ids: Iterable[str]
    ) -> dict[str, JournalEntry]: ...

    async def append(self, environment_id: str, entries: Sequence[JournalEntry]) -> None:
        """Append entries; :class:`DuplicateOperation` if one's (kind, id) is already there."""
        ...

    async def list_entries(
        self, environment_id: str, journal_filter: JournalFilter
    ) -> list[JournalEntry]: ...


class UnitOfWork(Protocol):
    @property
    def environments(self) -> EnvironmentRepository: ...

    @property
    def configurations(self) -> ConfigurationRepository: ...

    @property
    def tokens(self) -> TokenRepository: ...

    @property
    def partitions(self) -> PartitionRepository: ...

    @property
    def onhand(self) -> OnHandRepository: ...

    @property
    def reservations(self) -> ReservationRepository: ...

    @property
    def allocations(self) -> AllocationRepository: ...

    @property
    def journal(self) -> JournalRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    async def lock_and_read(self, reads: BatchReads) -> BatchState:
        """Lock a batch's partitions, then read what it needs (:class:`BatchReads`).

        The reads run after the locks are taken, so they see every write committed before,
        the configuration's stamp among them: what :func:`lock_and_read_in_turn` does, in as
        few round trips as storage can.
        """
        ...

    async def write_and_commit(self, writes: BatchWrites) -> None:
        """Write a batch's changes and journal entries and commit, in as few round trips as
        storage can (:func:`write_and_commit_in_turn` says what). :class:`DuplicateOperation`
        if an entry's (kind, id) is already journaled: nothing is then kept."""
        ...

    async def commit(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ConsumeLine:
    """One consume of a :class:`ConsumeAtOnce` batch, as it is journaled if applied."""

    position: int
    """Its place in the batch (the order operations are decided in)."""
    operation_id: str
    fingerprint: str
    request: Mapping[str, object]
    result: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class ConsumeGroup:
    """Consumes of one quantity at one allocation path and dimensions, moving the same measures.

    Decided as one by one in order: each consume whose id is journaled is a replay; of the
    others, the first ``n`` are applied, ``n`` being the most that the path's allocated
    quantity covers and that keep every measure within the supported range (each consume moves
    every measure the same way, so the first refusal refuses all that follow).
    """

    key: AllocationKey
    measures: tuple[tuple[MeasureRef, int], ...]
    """Each measure with +1 or -1: how it moves per unit, in the order effects list them."""
    quantity: Decimal
    lines: tuple[ConsumeLine, ...]
    path_effect: Mapping[str, object]
    """The path's journaled effect (its deltas), the same for every line."""


@dataclass(frozen=True, slots=True)
class ConsumeAtOnce:
    """Groups of like consumes (:class:`ConsumeGroup`), no two at the same product and
    dimensions (so no two move the same measure), no id twice. How many of each group's fresh
    lines are applied is all storage decides; the answers are the service's."""

    environment_id: str
    configuration: ConfigurationStamp
    """The configuration the lines were validated with: if it is no longer the environment's,
    nothing is written."""
    groups: tuple[ConsumeGroup, ...]
    actor: str
    recorded_at: datetime
    token_id: str | None = None
    """A token to confirm not revoked in the same transaction (its operations' caller was
    recognized without a read): if it is revoked or gone, nothing is written."""

    @property
    def partitions(self) -> list[PartitionKey]:
        """The groups' partitions, sorted (the order their locks are taken in)."""
        return sorted({group.key.partition for group in self.groups})


@dataclass(frozen=True, slots=True)
class GroupConsumed:
    """What storage found and did for one :class:`ConsumeGroup`."""

    held: Decimal
    """The path's allocated quantity before the batch."""
    values: tuple[Decimal, ...]
    """Each measure's value before the batch (in the group's order)."""
    applied: int
    """How many of the lines not journaled before were applied: the first ones."""


@dataclass(frozen=True, slots=True)
class ConsumedAtOnce:
    """What storage found and did for a :class:`ConsumeAtOnce` batch."""

    current: bool
    """The configuration was still the environment's (else nothing was written)."""
    groups: tuple[GroupConsumed, ...]
    """In the batch's order of groups."""
    known: Mapping[str, tuple[str, Mapping[str, object]]]
    """Journaled lines by id: their fingerprint and result."""
    authorized: bool = True
    """The batch's ``token_id``, if any, was found not revoked (else nothing was written)."""


@dataclass(frozen=True, slots=True)
class ChangeLine:
    """One on-hand change event of a :class:`ChangesAtOnce` batch, as it is journaled if
    applied."""

    position: int
    operation_id: str
    fingerprint: str
    request: Mapping[str, object]
    result: Mapping[str, object]
    partition: PartitionKey
    dimensions: Dimensions
    deltas: tuple[tuple[MeasureRef, Decimal], ...]
    """Each measure's delta, in the order its effects list them (no measure twice)."""


@dataclass(frozen=True, slots=True)
class ChangesAtOnce:
    """On-hand change events, no id twice: decided as one by one in order, each event whose id
    is journaled is a replay and every other one is applied, unless one would take a measure
    beyond the supported range: then storage applies none and says so (the batch is then
    decided in process, where that event alone is refused)."""

    environment_id: str
    configuration: ConfigurationStamp
    """The configuration the lines were validated with: if it is no longer the environment's,
    nothing is written."""
    lines: tuple[ChangeLine, ...]
    actor: str
    recorded_at: datetime
    token_id: str | None = None
    """A token to confirm not revoked in the same transaction (its operations' caller was
    recognized without a read): if it is revoked or gone, nothing is written."""

    @property
    def partitions(self) -> list[PartitionKey]:
        """The lines' partitions, sorted (the order their locks are taken in)."""
        return sorted({line.partition for line in self.lines})


@dataclass(frozen=True, slots=True)
class ChangedAtOnce:
    """What storage found and did for a :class:`ChangesAtOnce` batch."""

    current: bool
    """The configuration was still the environment's (else nothing was written)."""
    applied: bool
    """Every line not journaled before was applied (else none was: one left the range)."""
    known: Mapping[str, tuple[str, Mapping[str, object]]]
    """Journaled lines by id: their fingerprint and result."""
    authorized: bool = True
    """The batch's ``token_id``, if any, was found not revoked (else nothing was written)."""


@dataclass(frozen=True, slots=True)
class BatchTiming:
    """Where a committed batch's time went, in seconds: taking its partitions' locks and
    reading what it needs, deciding its operations (in process, under the locks), and writing
    and committing (which releases them)."""

    kind: OperationKind
    operations: int
    lock_and_read: float
    decide: float
    write_and_commit: float
    in_one_statement: bool = False
    """Decided by storage in one round trip (:class:`ConsumeAtOnce`, :class:`ChangesAtOnce`):
    all of its time is then
    ``write_and_commit``'s."""


BatchObserver = Callable[[BatchTiming], None]
"""Told of every committed batch (the API turns them into metrics)."""


@dataclass(frozen=True)
class BatchWrites:
    """What a batch of mutations changed, and its journal entries."""

    environment_id: str
    measures: list[tuple[MeasureKey, MeasureState]]
    allocations: list[tuple[AllocationKey, AllocationState]]
    reservations: list[Reservation]
    entries: list[JournalEntry]


async def write_and_commit_in_turn(work: UnitOfWork, writes: BatchWrites) -> None:
    """:meth:`UnitOfWork.write_and_commit` one statement after the other."""
    await work.onhand.save(writes.environment_id, writes.measures)
    await work.allocations.save(writes.environment_id, writes.allocations)
    await work.reservations.save(writes.environment_id, writes.reservations)
    await work.journal.append(writes.environment_id, writes.entries)
    await work.commit()


@dataclass(frozen=True)
class BatchReads:
    """What a batch of mutations reads under its partition locks."""

    environment_id: str
    kind: OperationKind
    partitions: Sequence[PartitionKey]
    """Sorted: units of work locking several never deadlock."""
    operation_ids: set[str]
    """Looked up in the journal (of ``kind``): replays and reused ids."""
    needs: Needs
    below: tuple[str, ...]
    """The hierarchy's dimensions below the partition dimensions (for level sums)."""
    token_id: str | None = None
    """A token to confirm not revoked under the locks (its operations' caller was recognized
    without a read): :attr:`BatchState.authorized`."""


@dataclass(frozen=True)
class BatchState:
    """What :meth:`UnitOfWork.lock_and_read` read."""

    known: dict[str, JournalEntry]
    measures: dict[MeasureKey, MeasureState]
    measure_keys: set[MeasureKey]
    """Every measure looked up (with those of the reservations read): absent ones are 0."""
    levels: dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]] | None
    allocations: dict[AllocationKey, AllocationState] | None
    reservations: dict[str, Reservation]
    stamp: ConfigurationStamp | None
    """The environment's configuration as the locks found it (None: no such environment)."""
    authorized: bool = True
    """The reads' ``token_id``, if any, is not revoked (nor gone)."""


def token_valid(records: Mapping[str, TokenRecord], token_id: str) -> bool:
    """Whether ``token_id`` is among ``records`` (as read) and not revoked."""
    record = records.get(token_id)
    return record is not None and record.revoked_at is None


async def lock_and_read_in_turn(work: UnitOfWork, reads: BatchReads) -> BatchState:
    """:meth:`UnitOfWork.lock_and_read` one statement after the other."""
    environment, needs = reads.environment_id, reads.needs
    await work.partitions.lock(environment, reads.partitions)
    stamp = await work.configurations.current_stamp(environment)
    known = await work.journal.find(environment, reads.kind, reads.operation_ids)
    reservations = (
        await work.reservations.load(environment, needs.reservations) if needs.reservations else {}
    )
    measure_keys = needs.measures_with(reservations.values())
    return BatchState(
        known=known,
        measures=await work.onhand.load(environment, measure_keys),
        measure_keys=measure_keys,
        levels=(
            await work.onhand.level_sums(environment, needs.levels, reads.below)
            if needs.levels
            else None
        ),
        allocations=(
            await work.allocations.load(environment, needs.allocations)
            if needs.allocations
            else None
        ),
        reservations=reservations,
        stamp=stamp,
        authorized=(
            reads.token_id is None
            or token_valid(await work.tokens.get_many([reads.token_id]), reads.token_id)
        ),
    )


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work: ``async with uow() as work: ...; await work.commit()``.

    ``read_only`` units never write; they may run concurrently with writers.
    """

    def __call__(self, *, read_only: bool = False) -> AbstractAsyncContextManager[UnitOfWork]: ...

    async def consume_at_once(self, batch: ConsumeAtOnce) -> ConsumedAtOnce | None:
        """Decide and apply ``batch`` in one statement under its partition's lock, and commit:
        one round trip, a transaction of its own (no unit of work around it). None, having
        done nothing, where storage cannot (then the batch is decided as any other)."""
        ...

    async def changes_at_once(self, batch: ChangesAtOnce) -> ChangedAtOnce | None:
        """Apply ``batch`` in one statement under its partitions' locks, and commit: one round
        trip, a transaction of its own. None, having done nothing, where storage cannot."""
        ...
