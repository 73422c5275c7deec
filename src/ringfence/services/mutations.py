"""How every mutation runs: validated, serialized per partition, idempotent, journaled, atomic.

:func:`run_mutations` takes a batch of requests of one kind (one for a single call, up to 512 for
a bulk call, or, later, whatever a per-partition coalescer gathered) and, in one unit of work:

1. validates each against the current configuration (a bad one fails alone);
2. locks the partitions of the valid ones, in sorted order, and then reads, in as few round
   trips as storage can (:meth:`~ringfence.services.ports.UnitOfWork.lock_and_read`):
3. their ids in the journal: a known id with the same fingerprint is *replayed*, with
   another fingerprint refused as ``idempotency-key-reuse``;
4. what the operations need, into a :class:`~ringfence.domain.ledger.Ledger`; they are applied
   in arrival order, each all or nothing;
5. writes the changed state (measures, allocations, reservations) and the journal entries,
   and commits.

Each request gets exactly the outcome it would have had alone, in the order given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Generic, Protocol, TypeVar

from ringfence.domain.access import Principal
from ringfence.domain.configuration import Configuration
from ringfence.domain.errors import Conflict, RingfenceError, Unavailable
from ringfence.domain.ledger import Ledger, Needs
from ringfence.domain.operations import (
    Bucket,
    Context,
    ItemResult,
    JournalEntry,
    OperationKind,
    PartitionKey,
)
from ringfence.services.configuration import (
    ConfigurationVersion,
    forget,
    is_current,
    last_loaded,
    load_configuration,
)
from ringfence.services.fingerprints import fingerprint
from ringfence.services.ports import (
    BatchReads,
    BatchWrites,
    DuplicateOperation,
    UnitOfWorkFactory,
)
from ringfence.services.tokens import confirm_token, revoked

__all__ = [
    "Applied",
    "AtOnce",
    "ConfigurationChanged",
    "Operation",
    "Prepared",
    "replay",
    "run_mutations",
    "success_body",
]

_ATTEMPTS = 3


class ConfigurationChanged(Exception):
    """The configuration a batch assumed is no longer the environment's: decide it again."""


class Operation(Protocol):
    """A validated mutation."""

    kind: ClassVar[OperationKind]

    @property
    def id(self) -> str: ...

    @property
    def partition(self) -> PartitionKey: ...

    def to_record(self) -> dict[str, object]: ...

    def needs(self) -> Needs: ...


Request = TypeVar("Request")
Op = TypeVar("Op", bound=Operation)


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one operation did: its effects (as journaled) and its answer's fields."""

    effects: tuple[Mapping[str, object], ...]
    answer: Mapping[str, object]
    status: Bucket = Bucket.SUCCESS
    message: str = ""


def success_body(
    operation_id: str, status: Bucket, message: str, answer: Mapping[str, object]
) -> dict[str, object]:
    return {
        "id": operation_id,
        "processingStatus": status.value,
        "message": message,
        "statusCode": 200,
        **answer,
    }


@dataclass(frozen=True)
class Prepared(Generic[Op]):
    """A batch validated against the configuration its process assumes, before any lock."""

    environment_id: str
    configuration: ConfigurationVersion
    items: list[Op | ItemResult]
    """Each request's operation, or its refusal, in request order."""
    meanings: Mapping[int, tuple[dict[str, object], str]]
    """Each operation's record and fingerprint, by its index in ``items``."""
    context: Context
    token_id: str | None = None
    """The caller's token if it is still to be confirmed not revoked (the caller is not
    :attr:`~ringfence.domain.access.Principal.confirmed`): by the batch's own transaction,
    before anything is written; :func:`~ringfence.services.tokens.revoked` if it is."""


AtOnce = Callable[[UnitOfWorkFactory, Prepared[Op]], Awaitable[list[ItemResult] | None]]
"""Decides a prepared batch another way than loading, applying and writing (one statement, for
like consumes and for on-hand change events, a transaction of its own): its results, or None
if it does not apply or committed nothing (the batch is then decided in process, in a unit of
work). :class:`ConfigurationChanged` if the configuration is no longer the environment's."""


def _request_id(request: object) -> str | None:
    value = getattr(request, "id", None)
    return value if isinstance(value, str) else None


async def run_mutations(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    kind: OperationKind,
    requests: Sequence[Request],
    validate: Callable[[Configuration, Request], Op],
    apply: Callable[[Op, Ledger, Context], Applied],
    *,
    authorize: Callable[[Op], None] | None = None,
    at_once: AtOnce[Op] | None = None,
) -> list[ItemResult]:
    """Run a batch of mutations of one kind; one result per request, in request order."""
    attempts = 0
    while attempts < _ATTEMPTS:
        try:
            return await _attempt(
                uow, principal, environment_id, kind, requests, validate, apply, authorize, at_once
            )
        except DuplicateOperation:
            # A concurrent call journaled one of these ids first: decide again, now seeing it.
            pass
        except ConfigurationChanged:
            forget(environment_id)  # the next attempt loads the new one
        attempts += 1
    raise Unavailable(
        "contention",
        "too many concurrent calls reused the same operation ids or changed the configuration; "
        "retry",
    )


async def _attempt(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    kind: OperationKind,
    requests: Sequence[Request],
    validate: Callable[[Configuration, Request], Op],
    apply: Callable[[Op, Ledger, Context], Applied],
    authorize: Callable[[Op], None] | None,
    at_once: AtOnce[Op] | None,
) -> list[ItemResult]:
    assumed = last_loaded(environment_id)
    if assumed is None:
        async with uow(read_only=True) as work:
            assumed = await load_configuration(work, environment_id)
    configuration = assumed.configuration
    prepared: list[Op | ItemResult] = []
    # What each operation means (its record and fingerprint) does not depend on the stored
    # state: worked out before the locks, which the batch then holds for less time.
    meanings: dict[int, tuple[dict[str, object], str]] = {}
    for index, request in enumerate(requests):
        try:
            # Scope first: a refusal must not tell what exists in another organization.
            named = getattr(request, "organization_id", None)
            if isinstance(named, str):
                principal.require_organization(named)
            operation = validate(configuration, request)
            principal.require_organization(operation.partition.organization_id)
            if authorize is not None:
                authorize(operation)
            record = operation.to_record()
            meanings[index] = (record, fingerprint(operation.kind, record))
            prepared.append(operation)
        except RingfenceError as error:
            prepared.append(ItemResult.refused(index, _request_id(request), error))
    operations = [item for item in prepared if not isinstance(item, ItemResult)]
    context = Context(principal.actor, datetime.now(UTC))
    if operations and at_once is not None:
        # A transaction of its own where storage can: no unit of work is opened for it.
        token = None if principal.confirmed else principal.token_id
        done = await at_once(
            uow, Prepared(environment_id, assumed, prepared, meanings, context, token)
        )
        if done is not None:
            return done
    async with uow() as work:
        if not operations:
            await confirm_token(work, principal)
            # Refused by the configuration alone: the one they were checked against must
            # still be the environment's (with operations, the locks' read tells).
            if not is_current(assumed, await work.configurations.current_stamp(environment_id)):
                raise ConfigurationChanged
            return [item for item in prepared if isinstance(item, ItemResult)]

        needs = Needs()
        for operation in operations:
            needs.update(operation.needs())
        read = await work.lock_and_read(
            BatchReads(
                environment_id=environment_id,
                kind=kind,
                partitions=sorted({operation.partition for operation in operations}),
                operation_ids={operation.id for operation in operations},
                needs=needs,
                below=tuple(
                    configuration.dimension_hierarchy[len(configuration.partition_dimensions) :]
                ),
                token_id=None if principal.confirmed else principal.token_id,
            )
        )
        if not read.authorized:  # read under the locks, before anything is decided
            raise revoked(principal.token_id)
        if not is_current(assumed, read.stamp):
            raise ConfigurationChanged
        known = read.known
        ledger = Ledger(
            configuration,
            measures=read.measures,
            known_measures=read.measure_keys,
            levels=read.levels,
            allocations=read.allocations,
            reservations=read.reservations,
        )
        results: list[ItemResult] = []
        entries: list[JournalEntry] = []
        for index, item in enumerate(prepared):
            if isinstance(item, ItemResult):
                results.append(item)
                continue
            operation = item
            record, meaning = meanings[index]
            previous = known.get(operation.id)
            if previous is not None:
                results.append(
                    replay(index, operation, meaning, previous.fingerprint, previous.result)
                )
                continue
            try:
                applied = apply(operation, ledger, context)
            except RingfenceError as error:
                results.append(ItemResult.refused(index, operation.id, error))
                continue
            body = success_body(operation.id, applied.status, applied.message, applied.answer)
            entry = JournalEntry(
                kind=kind,
                operation_id=operation.id,
                partition=operation.partition,
                fingerprint=meaning,
                request=record,
                effects=applied.effects,
                result=body,
                actor=context.actor,
                recorded_at=context.now,
            )
            known[operation.id] = entry
            entries.append(entry)
            results.append(ItemResult(index, operation.id, applied.status, body))
        if entries:
            await work.write_and_commit(
                BatchWrites(
                    environment_id=environment_id,
                    measures=list(ledger.measures.dirty()),
                    allocations=list(ledger.allocations.dirty()),
                    reservations=list(ledger.reservations.dirty()),
                    entries=entries,
                )
            )
        return results


def replay(
    index: int,
    operation: Operation,
    meaning: str,
    journaled: str,
    result: Mapping[str, object],
) -> ItemResult:
    """The answer to an operation whose id is journaled (with fingerprint ``journaled`` and
    ``result``): that result again, or a refusal if the id meant something else."""
    if journaled != meaning:
        return ItemResult.refused(
            index,
            operation.id,
            Conflict(
                "idempotency-key-reuse",
                f"id {operation.id!r} was already used for a different {operation.kind.value} "
                "request; use a new id for a new operation",
            ),
        )
    status = Bucket(str(result.get("processingStatus", Bucket.SUCCESS.value)))
    return ItemResult(index, operation.id, status, result, replayed=True)
