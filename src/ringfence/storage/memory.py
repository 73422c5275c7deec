"""An in-memory unit of work: the same ports as SQL, for fast unit tests of services.

Writers are serialized by one lock (a stricter order than per partition) and work on a copy of
the state that replaces it on commit, so an uncommitted or failed unit changes nothing.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from ringfence.domain.configuration import MeasureRef
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.ledger import (
    AllocationKey,
    AllocationState,
    Group,
    GroupPath,
    LevelScope,
    Reservation,
)
from ringfence.domain.measures import MeasureKey, MeasureState
from ringfence.domain.operations import JournalEntry, OperationKind, PartitionKey
from ringfence.domain.quantity import ZERO
from ringfence.domain.query import AggregateRow, OnHandSelection
from ringfence.services.ports import (
    BatchReads,
    BatchState,
    BatchWrites,
    ChangedAtOnce,
    ChangesAtOnce,
    ConfigurationStamp,
    ConsumeAtOnce,
    ConsumedAtOnce,
    DuplicateOperation,
    JournalFilter,
    ReservationFilter,
    SessionRecord,
    StoredConfiguration,
    TokenRecord,
    UnitOfWork,
    lock_and_read_in_turn,
    write_and_commit_in_turn,
)

__all__ = ["MemoryState", "MemoryUnitOfWork", "MemoryUnitOfWorkFactory"]


@dataclass
class MemoryState:
    environments: dict[str, int] = field(default_factory=dict)
    """environment id -> current configuration version."""
    configurations: dict[tuple[str, int], StoredConfiguration] = field(default_factory=dict)
    tokens: dict[str, TokenRecord] = field(default_factory=dict)
    partitions: dict[tuple[str, PartitionKey], int] = field(default_factory=dict)
    measures: dict[tuple[str, MeasureKey], MeasureState] = field(default_factory=dict)
    reservations: dict[tuple[str, str], Reservation] = field(default_factory=dict)
    allocations: dict[tuple[str, AllocationKey], AllocationState] = field(default_factory=dict)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    journal: list[tuple[str, JournalEntry]] = field(default_factory=list)
    sequence: int = 0


class _Environments:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def exists(self, environment_id: str) -> bool:
        return environment_id in self._state.environments

    async def create(self, environment_id: str, created_at: datetime) -> None:
        self._state.environments[environment_id] = 0

    async def delete(self, environment_id: str) -> None:
        state = self._state
        state.environments.pop(environment_id, None)
        state.configurations = {
            k: v for k, v in state.configurations.items() if k[0] != environment_id
        }
        state.tokens = {k: v for k, v in state.tokens.items() if v.environment_id != environment_id}
        state.partitions = {k: v for k, v in state.partitions.items() if k[0] != environment_id}
        state.measures = {k: v for k, v in state.measures.items() if k[0] != environment_id}
        state.reservations = {k: v for k, v in state.reservations.items() if k[0] != environment_id}
        state.allocations = {k: v for k, v in state.allocations.items() if k[0] != environment_id}
        state.journal = [item for item in state.journal if item[0] != environment_id]


class _Configurations:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def current(self, environment_id: str) -> StoredConfiguration | None:
        version = self._state.environments.get(environment_id)
        if version is None:
            return None
        return self._state.configurations.get((environment_id, version))

    async def current_stamp(self, environment_id: str) -> ConfigurationStamp | None:
        stored = await self.current(environment_id)
        if stored is None:
            return None
        return ConfigurationStamp(
            stored.environment_id, stored.version, stored.created_at, stored.created_by
        )

    async def version(self, environment_id: str, version: int) -> StoredConfiguration | None:
        return self._state.configurations.get((environment_id, version))

    async def history(self, environment_id: str) -> list[StoredConfiguration]:
        found = [c for (env, _), c in self._state.configurations.items() if env == environment_id]
        return sorted(found, key=lambda c: c.version, reverse=True)

    async def lock_current_version(self, environment_id: str) -> int | None:
        return self._state.environments.get(environment_id)

    async def add(self, configuration: StoredConfiguration) -> None:
        stored = replace(configuration, document=copy.deepcopy(dict(configuration.document)))
        self._state.configurations[(configuration.environment_id, configuration.version)] = stored
        self._state.environments[configuration.environment_id] = configuration.version


class _Tokens:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def add(self, record: TokenRecord) -> None:
        self._state.tokens[record.token_id] = record

    async def get(self, token_id: str) -> TokenRecord | None:
        return self._state.tokens.get(token_id)

    async def get_many(self, token_ids: Sequence[str]) -> dict[str, TokenRecord]:
        return {i: self._state.tokens[i] for i in token_ids if i in self._state.tokens}

    async def get_by_name(self, environment_id: str, name: str) -> TokenRecord | None:
        for record in self._state.tokens.values():
            if record.environment_id == environment_id and record.name == name:
                return record
        return None

    async def list_for(self, environment_id: str) -> list[TokenRecord]:
        found = [r for r in self._state.tokens.values() if r.environment_id == environment_id]
        return sorted(found, key=lambda r: (r.created_at, r.name))

    async def revoke(self, token_id: str, revoked_at: datetime) -> None:
        self._state.tokens[token_id] = replace(self._state.tokens[token_id], revoked_at=revoked_at)


class _Partitions:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def lock(self, environment_id: str, partitions: Sequence[PartitionKey]) -> None:
        for key in partitions:
            self._state.partitions[(environment_id, key)] = (
                self._state.partitions.get((environment_id, key), 0) + 1
            )

    async def catalog(
        self,
        environment_id: str,
        *,
        organizations: Sequence[str] | None = None,
        search: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[PartitionKey], int]:
        found = sorted(
            key
            for env, key in self._state.partitions
            if env == environment_id
            and (organizations is None or key.organization_id in organizations)
            and search.lower() in key.product_id.lower()
        )
        return found[offset : offset + limit], len(found)


class _Sessions:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def add(self, record: SessionRecord) -> None:
        self._state.sessions[record.session_hash] = record

    async def get(self, session_hash: str) -> SessionRecord | None:
        return self._state.sessions.get(session_hash)

    async def delete(self, session_hash: str) -> None:
        self._state.sessions.pop(session_hash, None)


class _OnHand:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def load(
        self, environment_id: str, keys: Iterable[MeasureKey]
    ) -> dict[MeasureKey, MeasureState]:
        measures = self._state.measures
        return {
            key: measures[(environment_id, key)]
            for key in keys
            if (environment_id, key) in measures
        }

    async def save(
        self, environment_id: str, states: Iterable[tuple[MeasureKey, MeasureState]]
    ) -> None:
        for key, value in states:
            self._state.measures[(environment_id, key)] = value

    async def aggregate(
        self, environment_id: str, selection: OnHandSelection
    ) -> list[AggregateRow]:
        sums: dict[tuple[str, str, tuple[str | None, ...], MeasureRef], AggregateRow] = {}
        for (env, key), state in self._state.measures.items():
            dimensions = key.dimensions
            if (
                env != environment_id
                or (
                    selection.organization_ids
                    and key.partition.organization_id not in selection.organization_ids
                )
                or (selection.product_ids and key.partition.product_id not in selection.product_ids)
                or any(
                    dimensions.get(name) not in values
                    for name, values in selection.dimension_filters.items()
                )
                or (
                    selection.exact_dimensions
                    and tuple(dimensions.get(name) for name in selection.exact_dimensions)
                    not in selection.exact_values
                )
            ):
                continue
            group = tuple(dimensions.get(name) for name in selection.group_by)
            index = (key.partition.organization_id, key.partition.product_id, group, key.measure)
            previous = sums.get(index)
            total = state.value + (previous.value if previous else 0)
            sums[index] = AggregateRow(*index, value=total)
        return list(sums.values())

    async def level_sums(
        self, environment_id: str, scopes: Iterable[LevelScope], below: Sequence[str]
    ) -> dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]]:
        found: dict[LevelScope, dict[Group, dict[MeasureRef, Decimal]]] = {}
        for scope in scopes:
            sums: dict[Group, dict[MeasureRef, Decimal]] = {}
            for (env, key), state in self._state.measures.items():
                if (
                    env == environment_id
                    and key.partition == scope.partition
                    and all(key.dimensions.get(n) == v for n, v in scope.anchor.items())
                ):
                    group = tuple(key.dimensions.get(name) for name in below)
                    values = sums.setdefault(group, {})
                    values[key.measure] = values.get(key.measure, ZERO) + state.value
            found[scope] = sums
        return found

    async def measures_in_use(self, environment_id: str) -> set[MeasureRef]:
        return {
            key.measure
            for (env, key), state in self._state.measures.items()
            if env == environment_id and state.value != 0
        }

    async def has_rows(self, environment_id: str) -> bool:
        return any(env == environment_id for env, _ in self._state.measures)


class _Reservations:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def load(self, environment_id: str, ids: Iterable[str]) -> dict[str, Reservation]:
        found = {i: self._state.reservations.get((environment_id, i)) for i in ids}
        return {i: r for i, r in found.items() if r is not None}

    async def locate(self, environment_id: str, ids: Iterable[str]) -> dict[str, PartitionKey]:
        return {i: r.partition for i, r in (await self.load(environment_id, ids)).items()}

    async def save(self, environment_id: str, reservations: Iterable[Reservation]) -> None:
        for reservation in reservations:
            self._state.reservations[(environment_id, reservation.reservation_id)] = reservation

    async def list_reservations(
        self, environment_id: str, reservation_filter: ReservationFilter
    ) -> list[Reservation]:
        f = reservation_filter
        found = sorted(
            (
                r
                for (env, _), r in self._state.reservations.items()
                if env == environment_id
                and (f.organization_id is None or r.partition.organization_id == f.organization_id)
                and (f.organizations is None or r.partition.organization_id in f.organizations)
                and (f.product_id is None or r.partition.product_id == f.product_id)
                and (not f.open_only or r.remaining > 0)
                and (f.after is None or r.reservation_id > f.after)
            ),
            key=lambda r: r.reservation_id,
        )
        return found[: f.limit]

    async def any_open(self, environment_id: str) -> bool:
        return any(
            env == environment_id and r.remaining > 0
            for (env, _), r in self._state.reservations.items()
        )


class _Allocations:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def load(
        self, environment_id: str, keys: Iterable[AllocationKey]
    ) -> dict[AllocationKey, AllocationState]:
        found = {key: self._state.allocations.get((environment_id, key)) for key in keys}
        return {key: state for key, state in found.items() if state is not None}

    async def save(
        self, environment_id: str, states: Iterable[tuple[AllocationKey, AllocationState]]
    ) -> None:
        for key, state in states:
            self._state.allocations[(environment_id, key)] = state

    async def at(
        self, environment_id: str, partition: PartitionKey, dimensions: Dimensions
    ) -> dict[GroupPath, AllocationState]:
        return {
            key.path: state
            for (env, key), state in self._state.allocations.items()
            if env == environment_id and key.partition == partition and key.dimensions == dimensions
        }

    async def for_products(
        self, environment_id: str, partitions: Sequence[PartitionKey]
    ) -> list[tuple[AllocationKey, AllocationState]]:
        wanted = set(partitions)
        return [
            (key, state)
            for (env, key), state in self._state.allocations.items()
            if env == environment_id and key.partition in wanted
        ]

    async def nearly_used_up(
        self, environment_id: str, *, remaining_share: Decimal, limit: int
    ) -> list[tuple[AllocationKey, AllocationState]]:
        found = [
            (key, state)
            for (env, key), state in self._state.allocations.items()
            if env == environment_id
            and state.cumulative_allocated > 0
            and state.allocated <= state.cumulative_allocated * remaining_share
        ]
        found.sort(key=lambda item: (item[1].allocated, item[0].partition, item[0].path.key))
        return found[:limit]

    async def in_use(self, environment_id: str) -> bool:
        return any(
            env == environment_id and state.allocated != 0
            for (env, _), state in self._state.allocations.items()
        )


class _Journal:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def find(
        self, environment_id: str, kind: OperationKind, operation_ids: Iterable[str]
    ) -> dict[str, JournalEntry]:
        wanted = set(operation_ids)
        return {
            entry.operation_id: entry
            for env, entry in self._state.journal
            if env == environment_id and entry.kind == kind and entry.operation_id in wanted
        }

    async def append(self, environment_id: str, entries: Sequence[JournalEntry]) -> None:
        existing = {
            (entry.kind, entry.operation_id)
            for env, entry in self._state.journal
            if env == environment_id
        }
        for entry in entries:
            if (entry.kind, entry.operation_id) in existing:
                raise DuplicateOperation(entry.operation_id)
            existing.add((entry.kind, entry.operation_id))
            self._state.sequence += 1
            self._state.journal.append(
                (environment_id, replace(entry, sequence=self._state.sequence))
            )

    async def list_entries(
        self, environment_id: str, journal_filter: JournalFilter
    ) -> list[JournalEntry]:
        f = journal_filter

        def wanted(entry: JournalEntry) -> bool:
            sequence = entry.sequence or 0
            return (
                (f.organization_id is None or entry.partition.organization_id == f.organization_id)
                and (f.organizations is None or entry.partition.organization_id in f.organizations)
                and (f.product_id is None or entry.partition.product_id == f.product_id)
                and (f.kind is None or entry.kind == f.kind)
                and (f.operation_id is None or entry.operation_id == f.operation_id)
                and (f.since is None or entry.recorded_at >= f.since)
                and (f.until is None or entry.recorded_at < f.until)
                and (
                    f.after is None or (sequence < f.after if f.descending else sequence > f.after)
                )
            )

        found = [
            entry for env, entry in self._state.journal if env == environment_id and wanted(entry)
        ]
        if f.descending:
            found.reverse()
        return list(itertools.islice(found, f.limit))


class MemoryUnitOfWork:
    def __init__(self, state: MemoryState) -> None:
        self.state = state
        self.committed = False
        self.environments = _Environments(state)
        self.configurations = _Configurations(state)
        self.tokens = _Tokens(state)
        self.partitions = _Partitions(state)
        self.onhand = _OnHand(state)
        self.reservations = _Reservations(state)
        self.allocations = _Allocations(state)
        self.journal = _Journal(state)
        self.sessions = _Sessions(state)

    async def lock_and_read(self, reads: BatchReads) -> BatchState:
        return await lock_and_read_in_turn(self, reads)

    async def write_and_commit(self, writes: BatchWrites) -> None:
        await write_and_commit_in_turn(self, writes)

    async def commit(self) -> None:
        self.committed = True


class MemoryUnitOfWorkFactory:
    def __init__(self) -> None:
        self.state = MemoryState()
        self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def __call__(self, *, read_only: bool = False) -> AsyncIterator[UnitOfWork]:
        if read_only:
            yield MemoryUnitOfWork(self.state)
            return
        async with self._write_lock:
            work = MemoryUnitOfWork(copy.deepcopy(self.state))
            yield work
            if work.committed:
                self.state = work.state

    async def consume_at_once(self, batch: ConsumeAtOnce) -> ConsumedAtOnce | None:
        return None  # decided like any other batch

    async def changes_at_once(self, batch: ChangesAtOnce) -> ChangedAtOnce | None:
        return None
