"""Soft reservations: reserve and unreserve.

A reservation holds a quantity for an order line at a level of the dimension hierarchy. It adds
to a reservation measure (``@iv.@softreserved``), which the mapped availability measure
(``@iv.@available_to_reserve``) subtracts. A *checked* reservation must leave that availability
at or above zero at its own level **and at every level above it** up to the partition dimensions,
so the same units can never be reserved twice at two levels. Every reservation has its own id;
unreserving offsets it, never below zero (the excess is reported as ``partialSuccess``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from ringfence.domain.configuration import Configuration, MeasureRef
from ringfence.domain.dimensions import Dimensions, check_identifier
from ringfence.domain.errors import FieldIssue, Invalid, Location, NotFound
from ringfence.domain.ledger import Ledger, LevelScope, Needs, Reservation
from ringfence.domain.measures import MeasureChange, MeasureKey
from ringfence.domain.operations import Bucket, Context, OperationKind, PartitionKey
from ringfence.domain.quantity import ZERO, parse_quantity

__all__ = [
    "Reserve",
    "ReserveRequest",
    "Unreserve",
    "UnreserveRequest",
    "new_reservation_id",
    "validate_reserve",
    "validate_unreserve",
]


def new_reservation_id(context: Context, serial: int) -> str:
    """A unique id that sorts by creation: 14 hex digits of microseconds, 4 of the serial
    number within the batch (which shares one time), 12 random."""
    micros = int(context.now.timestamp() * 1_000_000)
    return f"{micros:014x}{serial:04x}{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    id: str
    organization_id: str
    product_id: str
    dimensions: Mapping[str, str]
    quantity: object
    quantity_data_source: str | None = None
    modifier: str | None = None
    check_availability: bool = True
    """IV's ``ifCheckAvailForReserv``: False reserves even beyond what is available."""
    dimension_data_source: str | None = None


@dataclass(frozen=True, slots=True)
class UnreserveRequest:
    id: str
    organization_id: str
    reservation_id: str
    quantity: object
    """IV's ``OffsetQty``."""
    product_id: str | None = None
    dimensions: Mapping[str, str] | None = None
    dimension_data_source: str | None = None


def _invalid(code: str, location: Location, message: str) -> Invalid:
    issue = FieldIssue(location, message)
    return Invalid(code, f"{issue.path}: {message}", (issue,))


def reservation_measure(
    configuration: Configuration, data_source: str | None, modifier: str | None
) -> MeasureRef:
    """The reservation measure named by ``quantityDataSource`` and ``modifier``.

    Both may be omitted when exactly one reservation measure is configured.
    """
    mappings = configuration.reservation_mappings
    if not mappings:
        raise Invalid("reservation-not-configured", "no reservation measure is configured")
    if data_source is None and modifier is None and len(mappings) == 1:
        return next(iter(mappings))
    ref = MeasureRef(data_source or "", modifier or "")
    if ref not in mappings:
        known = ", ".join(f"{r.data_source}.{r.measure}" for r in mappings)
        raise _invalid(
            "not-a-reservation-measure",
            ("modifier",),
            f"{data_source}.{modifier} is not a reservation measure; configured: {known} "
            '(send quantityDataSource and modifier, e.g. "@iv" and "@softreserved")',
        )
    return ref


def _hierarchy_dimensions(
    configuration: Configuration,
    raw: Mapping[str, str],
    data_source: str | None,
) -> Dimensions:
    source = configuration.check_dimension_data_source(data_source, ("dimensionDataSource",))
    dimensions = configuration.resolve_dimensions(
        raw, ("dimensions",), data_source=source, require_partition=True
    )
    return configuration.check_hierarchy_level(dimensions, ("dimensions",))


@dataclass(frozen=True, slots=True)
class Reserve:
    id: str
    partition: PartitionKey
    dimensions: Dimensions
    measure: MeasureRef
    availability: MeasureRef
    quantity: Decimal
    checked: bool
    scope: LevelScope

    kind: ClassVar[OperationKind] = OperationKind.RESERVE

    def to_record(self) -> dict[str, object]:
        return {
            "id": self.id,
            "organizationId": self.partition.organization_id,
            "productId": self.partition.product_id,
            "dimensions": self.dimensions.as_dict(),
            "quantityDataSource": self.measure.data_source,
            "modifier": self.measure.measure,
            "quantity": self.quantity,
            "ifCheckAvailForReserv": self.checked,
        }

    @property
    def key(self) -> MeasureKey:
        return MeasureKey(self.partition, self.dimensions, self.measure)

    def needs(self) -> Needs:
        return Needs(measures={self.key}, levels={self.scope} if self.checked else set())

    def apply(self, ledger: Ledger, context: Context) -> tuple[Reservation, MeasureChange]:
        """Hold the quantity; refused (409) if checked and any level would go short."""
        if self.checked:
            ledger.require_available(
                self.availability,
                self.partition,
                self.dimensions,
                self.quantity,
                code="insufficient-available-to-reserve",
                what="available to reserve",
            )
        [effect] = ledger.add([(self.key, self.quantity)])
        reservation = Reservation(
            reservation_id=new_reservation_id(context, ledger.reservations.created),
            partition=self.partition,
            dimensions=self.dimensions,
            measure=self.measure,
            quantity=self.quantity,
            offset=ZERO,
            operation_id=self.id,
            origin="reserve",
            created_at=context.now,
            created_by=context.actor,
        )
        ledger.reservations.put(reservation)
        return reservation, effect


def validate_reserve(configuration: Configuration, request: ReserveRequest) -> Reserve:
    operation_id = check_identifier(request.id, ("id",), "id")
    partition = PartitionKey(
        check_identifier(request.organization_id, ("organizationId",), "organizationId"),
        check_identifier(request.product_id, ("productId",), "productId"),
    )
    measure = reservation_measure(configuration, request.quantity_data_source, request.modifier)
    dimensions = _hierarchy_dimensions(
        configuration, request.dimensions, request.dimension_data_source
    )
    quantity = parse_quantity(request.quantity, ("quantity",), positive=True)
    return Reserve(
        id=operation_id,
        partition=partition,
        dimensions=dimensions,
        measure=measure,
        availability=configuration.reservation_mappings[measure],
        quantity=quantity,
        checked=request.check_availability,
        scope=LevelScope(partition, dimensions.restricted_to(configuration.partition_dimensions)),
    )


@dataclass(frozen=True, slots=True)
class Unreserve:
    id: str
    partition: PartitionKey
    reservation_id: str
    dimensions: Dimensions | None
    quantity: Decimal
    product_given: bool

    kind: ClassVar[OperationKind] = OperationKind.UNRESERVE

    def to_record(self) -> dict[str, object]:
        return {
            "id": self.id,
            "organizationId": self.partition.organization_id,
            "productId": self.partition.product_id if self.product_given else None,
            "reservationId": self.reservation_id,
            "dimensions": self.dimensions.as_dict() if self.dimensions is not None else None,
            "OffsetQty": self.quantity,
        }

    def needs(self) -> Needs:
        return Needs(reservations={self.reservation_id})

    def apply(
        self, ledger: Ledger
    ) -> tuple[Reservation, Decimal, tuple[MeasureChange, ...], Bucket]:
        """Offset up to what remains. Returns the reservation after, the excess asked for, the
        effects and ``success`` or ``partialSuccess``."""
        reservation = ledger.reservations.get(self.reservation_id)
        if reservation is None or reservation.partition.organization_id != (
            self.partition.organization_id
        ):
            raise NotFound(
                "reservation-not-found",
                f"organization {self.partition.organization_id!r} has no reservation "
                f"{self.reservation_id!r}",
            )
        if reservation.partition != self.partition:
            raise _invalid(
                "reservation-mismatch",
                ("productId",),
                f"reservation {self.reservation_id} is for product "
                f"{reservation.partition.product_id!r}",
            )
        if self.dimensions is not None and self.dimensions != reservation.dimensions:
            given = ", ".join(f"{k}={v}" for k, v in self.dimensions.items())
            held = ", ".join(f"{k}={v}" for k, v in reservation.dimensions.items())
            raise _invalid(
                "reservation-mismatch",
                ("dimensions",),
                f"reservation {self.reservation_id} is at ({held}), not ({given})",
            )
        applied = min(self.quantity, reservation.remaining)
        excess = self.quantity - applied
        effects: tuple[MeasureChange, ...] = ()
        if applied > 0:
            effects = ledger.add([(reservation.key, -applied)])
        after = reservation.offset_by(applied)
        ledger.reservations.put(after)
        return after, excess, effects, Bucket.PARTIAL_SUCCESS if excess else Bucket.SUCCESS


def validate_unreserve(
    configuration: Configuration,
    request: UnreserveRequest,
    located: Mapping[str, PartitionKey],
) -> Unreserve:
    """Check an unreserve; ``located`` maps reservation ids to their partitions (looked up
    beforehand, because IV's body may leave out the product)."""
    operation_id = check_identifier(request.id, ("id",), "id")
    organization = check_identifier(request.organization_id, ("organizationId",), "organizationId")
    reservation_id = check_identifier(request.reservation_id, ("reservationId",), "reservationId")
    quantity = parse_quantity(request.quantity, ("OffsetQty",), positive=True)
    partition = located.get(reservation_id)
    if partition is None or partition.organization_id != organization:
        raise NotFound(
            "reservation-not-found",
            f"organization {organization!r} has no reservation {reservation_id!r}",
        )
    product_given = request.product_id is not None
    if request.product_id is not None:
        product = check_identifier(request.product_id, ("productId",), "productId")
        if product != partition.product_id:
            raise _invalid(
                "reservation-mismatch",
                ("productId",),
                f"reservation {reservation_id} is for product {partition.product_id!r}",
            )
    dimensions = None
    if request.dimensions is not None:
        source = configuration.check_dimension_data_source(
            request.dimension_data_source, ("dimensionDataSource",)
        )
        dimensions = configuration.resolve_dimensions(
            request.dimensions, ("dimensions",), data_source=source
        )
    return Unreserve(
        id=operation_id,
        partition=partition,
        reservation_id=reservation_id,
        dimensions=dimensions,
        quantity=quantity,
        product_given=product_given,
    )
