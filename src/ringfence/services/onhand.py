"""Use cases of on-hand inventory: change events, stock counts and queries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ringfence.domain.access import Principal, Role
from ringfence.domain.configuration import Configuration
from ringfence.domain.ledger import Ledger
from ringfence.domain.measures import MeasureChange
from ringfence.domain.onhand import (
    OnHandChange,
    OnHandChangeRequest,
    SetOnHand,
    SetOnHandRequest,
    validate_onhand_change,
    validate_set_onhand,
)
from ringfence.domain.operations import Bucket, Context, ItemResult, OperationKind
from ringfence.domain.query import (
    ExactQueryRequest,
    IndexQueryRequest,
    OnHandRow,
    OnHandSelection,
    build_exact_selection,
    build_index_selection,
    onhand_rows,
)
from ringfence.services.configuration import load_configuration
from ringfence.services.mutations import (
    Applied,
    ConfigurationChanged,
    Prepared,
    replay,
    run_mutations,
    success_body,
)
from ringfence.services.ports import ChangeLine, ChangesAtOnce, UnitOfWorkFactory
from ringfence.services.tokens import revoked

__all__ = [
    "post_onhand_changes",
    "query_onhand_exact",
    "query_onhand_index",
    "set_onhand",
]


def _records(effects: tuple[MeasureChange, ...]) -> tuple[dict[str, object], ...]:
    return tuple(effect.to_record() for effect in effects)


def _apply_change(change: OnHandChange, ledger: Ledger, _: Context) -> Applied:
    return Applied(_records(change.apply(ledger)), {})


def _apply_set(count: SetOnHand, ledger: Ledger, _: Context) -> Applied:
    effects, superseded = count.apply(ledger)
    if not superseded:
        return Applied(_records(effects), {})
    names = ", ".join(str(ref) for ref in superseded)
    return Applied(
        _records(effects),
        {"superseded": [str(ref) for ref in superseded]},
        message=f"{names} left unchanged: a count with a later modifiedDateTimeUTC was applied",
    )


async def post_onhand_changes(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    requests: Sequence[OnHandChangeRequest],
) -> list[ItemResult]:
    """Add on-hand change events (deltas); one result per event, in order."""
    principal.require(Role.WRITER, environment_id)
    return await run_mutations(
        uow,
        principal,
        environment_id,
        OperationKind.ONHAND_CHANGE,
        requests,
        validate_onhand_change,
        _apply_change,
        at_once=_changes_at_once,
    )


async def _changes_at_once(
    uow: UnitOfWorkFactory, batch: Prepared[OnHandChange]
) -> list[ItemResult] | None:
    """Change events with no id twice, applied by storage in one statement under their
    products' locks (:class:`~ringfence.services.ports.ChangesAtOnce`); None where storage
    cannot, or for a batch that names an id twice.

    An event only adds its deltas, so each one not journaled before is applied, unless a
    measure would leave the supported range: then storage applies none of them and the batch
    is decided in process, where the domain's rule refuses that event alone.
    """
    operations = [item for item in batch.items if isinstance(item, OnHandChange)]
    if len({operation.id for operation in operations}) != len(operations):
        return None
    bodies: dict[int, dict[str, object]] = {}
    lines: list[ChangeLine] = []
    for index, item in enumerate(batch.items):
        if isinstance(item, OnHandChange):
            record, meaning = batch.meanings[index]
            bodies[index] = success_body(item.id, Bucket.SUCCESS, "", {})
            lines.append(
                ChangeLine(
                    index,
                    item.id,
                    meaning,
                    record,
                    bodies[index],
                    item.partition,
                    item.dimensions,
                    item.quantities,
                )
            )
    done = await uow.changes_at_once(
        ChangesAtOnce(
            environment_id=batch.environment_id,
            configuration=batch.configuration.stamp,
            lines=tuple(lines),
            actor=batch.context.actor,
            recorded_at=batch.context.now,
            token_id=batch.token_id,
        )
    )
    if done is None:
        return None
    if not done.authorized:
        raise revoked(batch.token_id)
    if not done.current:
        raise ConfigurationChanged
    if not done.applied:
        return None  # an event was refused, which only the domain's rule answers
    results: list[ItemResult] = []
    for index, item in enumerate(batch.items):
        if not isinstance(item, OnHandChange):
            results.append(item)
            continue
        journaled = done.known.get(item.id)
        if journaled is not None:
            results.append(replay(index, item, batch.meanings[index][1], *journaled))
        else:
            results.append(ItemResult(index, item.id, Bucket.SUCCESS, bodies[index]))
    return results


async def set_onhand(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    data_source: str,
    requests: Sequence[SetOnHandRequest],
) -> list[ItemResult]:
    """Overwrite measures of ``data_source`` with counted quantities (last count wins)."""
    principal.require(Role.WRITER, environment_id)
    received_at = datetime.now(UTC)

    def validate(configuration: Configuration, request: SetOnHandRequest) -> SetOnHand:
        return validate_set_onhand(configuration, data_source, request, received_at)

    return await run_mutations(
        uow,
        principal,
        environment_id,
        OperationKind.SET_ONHAND,
        requests,
        validate,
        _apply_set,
    )


async def _query(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    build: Callable[[Configuration], OnHandSelection],
    return_negative: bool,
) -> list[OnHandRow]:
    principal.require(Role.READER, environment_id)
    async with uow(read_only=True) as work:
        configuration = (await load_configuration(work, environment_id)).configuration
        selection = build(configuration)
        if principal.organizations is not None:
            for organization in selection.organization_ids:
                principal.require_organization(organization)
        aggregates = await work.onhand.aggregate(environment_id, selection)
    return onhand_rows(configuration, selection, aggregates, return_negative=return_negative)


async def query_onhand_index(
    uow: UnitOfWorkFactory, principal: Principal, environment_id: str, query: IndexQueryRequest
) -> list[OnHandRow]:
    """Sum measures over the rows matching the filters, grouped as asked."""
    return await _query(
        uow,
        principal,
        environment_id,
        lambda configuration: build_index_selection(configuration, query),
        query.return_negative,
    )


async def query_onhand_exact(
    uow: UnitOfWorkFactory, principal: Principal, environment_id: str, query: ExactQueryRequest
) -> list[OnHandRow]:
    """Like the index query, but rows must match one of the given tuples of dimension values."""
    return await _query(
        uow,
        principal,
        environment_id,
        lambda configuration: build_exact_selection(configuration, query),
        query.return_negative,
    )
