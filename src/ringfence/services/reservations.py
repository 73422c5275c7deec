"""Use cases of soft reservations: reserve, unreserve, list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ringfence.domain.access import Principal, Role
from ringfence.domain.configuration import Configuration
from ringfence.domain.errors import Conflict, FieldIssue, Invalid
from ringfence.domain.ledger import Ledger, Reservation
from ringfence.domain.operations import Context, ItemResult, OperationKind
from ringfence.domain.quantity import format_quantity
from ringfence.domain.reservations import (
    Reserve,
    ReserveRequest,
    Unreserve,
    UnreserveRequest,
    validate_reserve,
    validate_unreserve,
)
from ringfence.services.mutations import Applied, run_mutations
from ringfence.services.ports import ReservationFilter, UnitOfWorkFactory

__all__ = [
    "MAX_PAGE_SIZE",
    "ReservationPage",
    "list_reservations",
    "reservation_record",
    "reserve",
    "unreserve",
]

MAX_PAGE_SIZE = 1000


def reservation_record(reservation: Reservation) -> dict[str, object]:
    """A reservation as the journal and the API show it."""
    return {
        "reservationId": reservation.reservation_id,
        "organizationId": reservation.partition.organization_id,
        "productId": reservation.partition.product_id,
        "dimensions": reservation.dimensions.as_dict(),
        "measure": str(reservation.measure),
        "reserved": reservation.quantity,
        "offset": reservation.offset,
        "remaining": reservation.remaining,
        "origin": reservation.origin,
        "operationId": reservation.operation_id,
        "createdAt": reservation.created_at.isoformat(),
        "createdBy": reservation.created_by,
    }


def _require_feature(configuration: Configuration) -> None:
    if not configuration.features.get("reservation", True):
        raise Conflict(
            "feature-disabled",
            "soft reservations are switched off in this environment's configuration "
            "(features.reservation)",
        )


def _validate_reserve(configuration: Configuration, request: ReserveRequest) -> Reserve:
    _require_feature(configuration)
    return validate_reserve(configuration, request)


def _apply_reserve(operation: Reserve, ledger: Ledger, context: Context) -> Applied:
    reservation, effect = operation.apply(ledger, context)
    return Applied(
        (effect.to_record(), {"reservation": reservation.reservation_id, "reserved": effect.delta}),
        {"reservationId": reservation.reservation_id},
    )


def _apply_unreserve(operation: Unreserve, ledger: Ledger, _: Context) -> Applied:
    reservation, excess, effects, status = operation.apply(ledger)
    applied = operation.quantity - excess
    message = (
        f"{format_quantity(excess)} more than remained was asked; the reservation is now at zero"
        if excess
        else ""
    )
    return Applied(
        (
            *(effect.to_record() for effect in effects),
            {"reservation": reservation.reservation_id, "offset": applied},
        ),
        {
            "reservationId": reservation.reservation_id,
            "totalInvalidOffsetQtyByReservId": excess,
        },
        status=status,
        message=message,
    )


async def reserve(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    requests: Sequence[ReserveRequest],
) -> list[ItemResult]:
    """Soft-reserve; each successful reserve answers its own ``reservationId``."""
    principal.require(Role.WRITER, environment_id)
    return await run_mutations(
        uow,
        principal,
        environment_id,
        OperationKind.RESERVE,
        requests,
        _validate_reserve,
        _apply_reserve,
    )


async def unreserve(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    requests: Sequence[UnreserveRequest],
) -> list[ItemResult]:
    """Offset reservations by id, each up to what remains of it."""
    principal.require(Role.WRITER, environment_id)
    # IV's unreserve body may leave out the product: find each reservation's partition first.
    # A reservation never moves, so this may be read before the partition is locked.
    async with uow(read_only=True) as work:
        located = await work.reservations.locate(
            environment_id, {request.reservation_id for request in requests}
        )

    def validate(configuration: Configuration, request: UnreserveRequest) -> Unreserve:
        _require_feature(configuration)
        return validate_unreserve(configuration, request, located)

    return await run_mutations(
        uow,
        principal,
        environment_id,
        OperationKind.UNRESERVE,
        requests,
        validate,
        _apply_unreserve,
    )


@dataclass(frozen=True, slots=True)
class ReservationPage:
    reservations: list[Reservation]
    next_cursor: str | None


async def list_reservations(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    reservation_filter: ReservationFilter,
) -> ReservationPage:
    """Reservations, oldest first, optionally only those with something remaining."""
    principal.require(Role.READER, environment_id)
    if not 1 <= reservation_filter.limit <= MAX_PAGE_SIZE:
        message = f"must be between 1 and {MAX_PAGE_SIZE}"
        raise Invalid("invalid-query", f"limit: {message}", (FieldIssue(("limit",), message),))
    if reservation_filter.organization_id is not None:
        principal.require_organization(reservation_filter.organization_id)
    scope = tuple(sorted(principal.organizations)) if principal.organizations else None
    wanted = ReservationFilter(
        organization_id=reservation_filter.organization_id,
        organizations=scope,
        product_id=reservation_filter.product_id,
        open_only=reservation_filter.open_only,
        after=reservation_filter.after,
        limit=reservation_filter.limit + 1,
    )
    async with uow(read_only=True) as work:
        found = await work.reservations.list_reservations(environment_id, wanted)
    page = found[: reservation_filter.limit]
    more = len(found) > reservation_filter.limit
    return ReservationPage(page, page[-1].reservation_id if more and page else None)
