"""The SQL unit of work: one connection, one transaction, the repositories bound to it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from ringfence.domain.errors import Unavailable
from ringfence.domain.operations import OperationKind
from ringfence.services.ports import (
    BatchObserver,
    BatchReads,
    BatchState,
    BatchTiming,
    BatchWrites,
    ChangedAtOnce,
    ChangesAtOnce,
    ConsumeAtOnce,
    ConsumedAtOnce,
    UnitOfWork,
    lock_and_read_in_turn,
    token_valid,
)
from ringfence.storage.engine import Database, defer_begin
from ringfence.storage.repositories import (
    SqlAllocationRepository,
    SqlConfigurationRepository,
    SqlEnvironmentRepository,
    SqlJournalRepository,
    SqlOnHandRepository,
    SqlPartitionRepository,
    SqlReservationRepository,
    SqlSessionRepository,
    SqlTokenRepository,
    changed_at_once,
    consumed_at_once,
    driver_errors,
    journal_keys,
    pipelined,
    written,
)

__all__ = ["SqlUnitOfWork", "SqlUnitOfWorkFactory"]

RETRY_AFTER_SECONDS = 2

T = TypeVar("T")


class SqlUnitOfWork:
    def __init__(self, connection: AsyncConnection, observer: BatchObserver | None = None) -> None:
        self._connection = connection
        self._observer = observer
        self._batch: tuple[BatchReads, float, float] | None = None
        """The batch read last: its reads, when they were sent and when they were answered."""
        self.environments = SqlEnvironmentRepository(connection)
        self.configurations = SqlConfigurationRepository(connection)
        self.tokens = SqlTokenRepository(connection)
        self.partitions = SqlPartitionRepository(connection)
        self.onhand = SqlOnHandRepository(connection)
        self.reservations = SqlReservationRepository(connection)
        self.allocations = SqlAllocationRepository(connection)
        self.journal = SqlJournalRepository(connection)
        self.sessions = SqlSessionRepository(connection)

    async def lock_and_read(self, reads: BatchReads) -> BatchState:
        """On PostgreSQL, one round trip (two when reservations are read: their measures come
        with them): the lock and the reads sent together in pipeline mode, which the server
        runs in order, each read after the locks are taken; the transaction's BEGIN goes with
        them when they are its first statements. Under load, every round trip
        inside the locks also waited for the event loop's other work while holding them.
        """
        started = time.perf_counter()
        state = await self._lock_and_read(reads)
        self._batch = (reads, started, time.perf_counter())
        return state

    async def _lock_and_read(self, reads: BatchReads) -> BatchState:
        """The reads of :meth:`lock_and_read`."""
        if self._connection.dialect.name != "postgresql":
            return await lock_and_read_in_turn(self, reads)
        environment, needs = reads.environment_id, reads.needs
        lock = self.partitions.lock_read(environment, reads.partitions)
        stamp = self.configurations.current_stamp_read(environment)
        find = self.journal.find_read(environment, reads.kind, reads.operation_ids)
        levels = self.onhand.level_sums_read(environment, needs.levels, reads.below)
        allocations = self.allocations.load_read(environment, needs.allocations)
        # A token to confirm goes with the first trip, read after the locks like the rest.
        token = () if reads.token_id is None else (self.tokens.get_many_read([reads.token_id]),)
        if needs.reservations:
            _, current, known, reserved, *confirmed = await pipelined(
                self._connection,
                lock,
                stamp,
                find,
                self.reservations.load_read(environment, needs.reservations),
                *token,
            )
            measure_keys = needs.measures_with(reserved.values())
            measures, sums, allocated = await pipelined(
                self._connection,
                self.onhand.load_read(environment, measure_keys),
                levels,
                allocations,
            )
        else:
            reserved, measure_keys = {}, needs.measures
            _, current, known, measures, sums, allocated, *confirmed = await pipelined(
                self._connection,
                lock,
                stamp,
                find,
                self.onhand.load_read(environment, measure_keys),
                levels,
                allocations,
                *token,
            )
        return BatchState(
            known=known,
            measures=measures,
            measure_keys=measure_keys,
            levels=sums if needs.levels else None,
            allocations=allocated if needs.allocations else None,
            reservations=reserved,
            stamp=current,
            authorized=reads.token_id is None or token_valid(confirmed[0], reads.token_id),
        )

    async def write_and_commit(self, writes: BatchWrites) -> None:
        """On PostgreSQL, one round trip: the upserts, the journal's rows and COMMIT. Then the
        observer, if any, is told how long the batch took in each step."""
        started = time.perf_counter()
        await self._write_and_commit(writes)
        if self._observer is not None and self._batch is not None:
            reads, sent, answered = self._batch
            self._observer(
                BatchTiming(
                    kind=reads.kind,
                    operations=len(reads.operation_ids),
                    lock_and_read=answered - sent,
                    decide=started - answered,
                    write_and_commit=time.perf_counter() - started,
                )
            )

    async def _write_and_commit(self, writes: BatchWrites) -> None:
        environment = writes.environment_id
        with journal_keys():
            await written(
                self._connection,
                self.onhand.save_write(environment, writes.measures),
                self.allocations.save_write(environment, writes.allocations),
                self.reservations.save_write(environment, writes.reservations),
                self.journal.append_write(environment, writes.entries),
                commit=True,
            )

    async def commit(self) -> None:
        await self._connection.commit()


def _unavailable(error: DBAPIError) -> bool:
    return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)


class SqlUnitOfWorkFactory:
    """Opens :class:`SqlUnitOfWork` on a :class:`Database`; what is not committed rolls back.

    A database that cannot be reached (or is locked beyond the busy timeout) becomes
    :class:`Unavailable`, which the API answers with 503 and ``Retry-After``.
    """

    def __init__(self, database: Database, *, at_once: bool = True) -> None:
        self.database = database
        self.at_once = at_once
        """Whether batches of like consumes and of on-hand change events are decided in one
        statement (PostgreSQL)."""
        self.observer: BatchObserver | None = None
        """Told of every committed batch's timing (:meth:`Container.observe_batches`)."""

    @asynccontextmanager
    async def __call__(self, *, read_only: bool = False) -> AsyncIterator[UnitOfWork]:
        engine = self.database.reader if read_only else self.database.writer
        deferred = self.database.deferred_begin and not read_only
        with _unavailable_as_503():
            async with engine.connect() as connection:
                await connection.begin()
                if not deferred:
                    yield SqlUnitOfWork(connection, self.observer)
                    return
                info = connection.sync_connection.info  # type: ignore[union-attr]
                defer_begin(info)
                try:
                    yield SqlUnitOfWork(connection, self.observer)
                finally:
                    defer_begin(info, False)

    async def consume_at_once(self, batch: ConsumeAtOnce) -> ConsumedAtOnce | None:
        """On PostgreSQL (unless switched off), the partition's lock, the statement of
        :func:`~ringfence.storage.repositories.consumed_at_once` and COMMIT in one round trip."""
        started = time.perf_counter()
        done = await self._on_the_driver(lambda driver: consumed_at_once(driver, batch))
        if done is not None:
            lines = sum(len(group.lines) for group in batch.groups)
            self._observe_one_statement(OperationKind.CONSUME, lines, started)
        return done

    async def changes_at_once(self, batch: ChangesAtOnce) -> ChangedAtOnce | None:
        """On PostgreSQL (unless switched off), the partitions' locks, the statement of
        :func:`~ringfence.storage.repositories.changed_at_once` and COMMIT in one round trip."""
        started = time.perf_counter()
        done = await self._on_the_driver(lambda driver: changed_at_once(driver, batch))
        if done is not None and done.applied:
            self._observe_one_statement(OperationKind.ONHAND_CHANGE, len(batch.lines), started)
        return done

    async def _on_the_driver(
        self, decide: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
    ) -> T | None:
        """``decide`` on a connection of the bare driver
        (:class:`~ringfence.storage.engine.DriverPool`): a batch decided at once is a
        transaction of its own, and needs no unit of work around it. None where it is not
        done (SQLite, or switched off)."""
        if not self.at_once or self.database.driver is None:
            return None
        with _unavailable_as_503(), journal_keys(), driver_errors():  # errors connecting
            async with self.database.driver.connection() as driver:
                with driver_errors(driver):
                    return await decide(driver)

    def _observe_one_statement(self, kind: OperationKind, operations: int, started: float) -> None:
        if self.observer is not None:
            self.observer(
                BatchTiming(
                    kind=kind,
                    operations=operations,
                    lock_and_read=0.0,
                    decide=0.0,
                    write_and_commit=time.perf_counter() - started,
                    in_one_statement=True,
                )
            )


@contextmanager
def _unavailable_as_503() -> Iterator[None]:
    """A database that cannot be reached (or a pool with no connection free in time) raised as
    :class:`Unavailable`."""
    try:
        yield
    except (DBAPIError, PoolTimeout) as error:
        if isinstance(error, DBAPIError) and not _unavailable(error):
            raise
        raise Unavailable(
            "database-unavailable",
            "the database cannot serve right now; retry shortly with the same id "
            "(an operation that was applied is never applied twice)",
            extra={"retryAfter": RETRY_AFTER_SECONDS},
        ) from error
