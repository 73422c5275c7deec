"""On-hand change events and stock counts (set on-hand): validation and effects.

Requests arrive as :class:`OnHandChangeRequest` / :class:`SetOnHandRequest` (already of the right
JSON types) and are validated against the environment's configuration into
:class:`OnHandChange` / :class:`SetOnHand`, which know their partition, record and effects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

from ringfence.domain.configuration import Configuration, MeasureRef
from ringfence.domain.dimensions import Dimensions, check_identifier
from ringfence.domain.errors import FieldIssue, Invalid, Location
from ringfence.domain.ledger import Ledger, Needs
from ringfence.domain.measures import MeasureChange, MeasureKey
from ringfence.domain.operations import OperationKind, PartitionKey
from ringfence.domain.quantity import parse_quantity

__all__ = [
    "OnHandChange",
    "OnHandChangeRequest",
    "SetOnHand",
    "SetOnHandRequest",
    "validate_onhand_change",
    "validate_set_onhand",
]

MAX_MEASURES_PER_EVENT = 64


@dataclass(frozen=True, slots=True)
class OnHandChangeRequest:
    """An on-hand change event as received: ``quantities`` are deltas by data source and measure."""

    id: str
    organization_id: str
    product_id: str
    dimensions: Mapping[str, str]
    quantities: Mapping[str, Mapping[str, object]]
    dimension_data_source: str | None = None


@dataclass(frozen=True, slots=True)
class SetOnHandRequest(OnHandChangeRequest):
    """A stock count as received: ``quantities`` overwrite the named measures."""

    modified_at: datetime | None = None


def _measures(
    config: Configuration,
    quantities: Mapping[str, Mapping[str, object]],
    *,
    only_data_source: str | None = None,
) -> tuple[tuple[MeasureRef, Decimal], ...]:
    if not quantities:
        raise Invalid(
            "invalid-quantities",
            'quantities: name at least one data source and measure, e.g. {"pos": {"inbound": 1}}',
            (FieldIssue(("quantities",), "must not be empty"),),
        )
    result: list[tuple[MeasureRef, Decimal]] = []
    for data_source, measures in quantities.items():
        if only_data_source is not None and data_source != only_data_source:
            location: Location = ("quantities", data_source)
            message = f"this call sets data source {only_data_source!r} only (from the path)"
            raise Invalid(
                "data-source-mismatch",
                f"quantities.{data_source}: {message}",
                (FieldIssue(location, message),),
            )
        if not measures:
            message = "name at least one measure"
            raise Invalid(
                "invalid-quantities",
                f"quantities.{data_source}: {message}",
                (FieldIssue(("quantities", data_source), message),),
            )
        for measure, value in measures.items():
            location = ("quantities", data_source, measure)
            ref = config.writable_measure(data_source, measure, location)
            result.append((ref, parse_quantity(value, location)))
    if len(result) > MAX_MEASURES_PER_EVENT:
        message = f"at most {MAX_MEASURES_PER_EVENT} measures per event"
        raise Invalid(
            "invalid-quantities", f"quantities: {message}", (FieldIssue(("quantities",), message),)
        )
    return tuple(result)


def _partition(organization_id: str, product_id: str) -> PartitionKey:
    return PartitionKey(
        check_identifier(organization_id, ("organizationId",), "organizationId"),
        check_identifier(product_id, ("productId",), "productId"),
    )


@dataclass(frozen=True, slots=True)
class _MeasureOperation:
    """What change events and counts share: one product, exact dimensions, some measures."""

    id: str
    partition: PartitionKey
    dimensions: Dimensions
    quantities: tuple[tuple[MeasureRef, Decimal], ...]

    kind: ClassVar[OperationKind]

    def to_record(self) -> dict[str, object]:
        return {
            "id": self.id,
            "organizationId": self.partition.organization_id,
            "productId": self.partition.product_id,
            "dimensions": self.dimensions.as_dict(),
            "quantities": _quantities_record(self.quantities),
        }

    def keys(self) -> tuple[MeasureKey, ...]:
        return tuple(MeasureKey(self.partition, self.dimensions, ref) for ref, _ in self.quantities)

    def needs(self) -> Needs:
        return Needs(measures=set(self.keys()))


@dataclass(frozen=True, slots=True)
class OnHandChange(_MeasureOperation):
    """A validated change event: ``quantities`` are deltas."""

    kind: ClassVar[OperationKind] = OperationKind.ONHAND_CHANGE

    def apply(self, ledger: Ledger) -> tuple[MeasureChange, ...]:
        """Add the deltas (raises :class:`Invalid` and changes nothing if out of range)."""
        return ledger.add(zip(self.keys(), (delta for _, delta in self.quantities), strict=True))


@dataclass(frozen=True, slots=True)
class SetOnHand(_MeasureOperation):
    """A validated stock count: ``quantities`` are the counted values."""

    modified_at: datetime
    """When the count was taken: as requested, else when it was received."""
    requested_at: datetime | None = None
    """``modifiedDateTimeUTC`` as requested (part of the request's meaning; the receipt time
    of a retry is not)."""

    kind: ClassVar[OperationKind] = OperationKind.SET_ONHAND

    def to_record(self) -> dict[str, object]:
        requested = self.requested_at.isoformat() if self.requested_at is not None else None
        return {**_MeasureOperation.to_record(self), "modifiedDateTimeUTC": requested}

    def apply(self, ledger: Ledger) -> tuple[tuple[MeasureChange, ...], tuple[MeasureRef, ...]]:
        """Overwrite each measure unless a later count already did (last write wins).

        Returns the changes made and the measures left alone because their stored count is newer.
        """
        fresh: list[tuple[MeasureKey, Decimal]] = []
        superseded: list[MeasureRef] = []
        for key, (ref, value) in zip(self.keys(), self.quantities, strict=True):
            stored_at = ledger.measures.state(key).set_at
            if stored_at is not None and stored_at > self.modified_at:
                superseded.append(ref)
            else:
                fresh.append((key, value))
        return ledger.assign(fresh, set_at=self.modified_at), tuple(superseded)


def _quantities_record(values: tuple[tuple[MeasureRef, Decimal], ...]) -> dict[str, object]:
    record: dict[str, dict[str, Decimal]] = {}
    for ref, value in values:
        record.setdefault(ref.data_source, {})[ref.measure] = value
    return dict(record)


def validate_onhand_change(config: Configuration, request: OnHandChangeRequest) -> OnHandChange:
    """Check an on-hand change event against the configuration."""
    operation_id = check_identifier(request.id, ("id",), "id")
    partition = _partition(request.organization_id, request.product_id)
    source = config.check_dimension_data_source(
        request.dimension_data_source, ("dimensionDataSource",)
    )
    dimensions = config.resolve_dimensions(
        request.dimensions, ("dimensions",), data_source=source, require_partition=True
    )
    return OnHandChange(operation_id, partition, dimensions, _measures(config, request.quantities))


def validate_set_onhand(
    config: Configuration, data_source: str, request: SetOnHandRequest, received_at: datetime
) -> SetOnHand:
    """Check a stock count against the configuration; without a time it counts as received now."""
    operation_id = check_identifier(request.id, ("id",), "id")
    partition = _partition(request.organization_id, request.product_id)
    source = config.check_dimension_data_source(
        request.dimension_data_source, ("dimensionDataSource",)
    )
    dimensions = config.resolve_dimensions(
        request.dimensions, ("dimensions",), data_source=source, require_partition=True
    )
    values = _measures(config, request.quantities, only_data_source=data_source)
    requested = _utc(request.modified_at) if request.modified_at is not None else None
    return SetOnHand(
        operation_id, partition, dimensions, values, requested or _utc(received_at), requested
    )


def _utc(moment: datetime) -> datetime:
    """Times without a zone are UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
