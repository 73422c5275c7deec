"""Request and response schemas of the HTTP API, in Inventory Visibility's camelCase.

Request models check the JSON *shape* (types, required fields); the rules of meaning
(dimensions, measures, quantity precision and range, identifier limits) are the domain's, so
they hold the same for every entry point. Quantities are documented as JSON numbers; numeric
strings are accepted too.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

from ringfence.domain.quantity import MAX_QUANTITY, SCALE

__all__ = [
    "AllocationItem",
    "AllocationPublic",
    "AllocationQueryBody",
    "AllocationQueryPublic",
    "BulkResult",
    "ConfigurationDocument",
    "ConfigurationSummary",
    "ConsumeItem",
    "ExactQuery",
    "IndexQuery",
    "JournalEntryPublic",
    "JournalPagePublic",
    "OnHandChange",
    "OnHandRowPublic",
    "OperationResult",
    "Problem",
    "ReallocateItem",
    "ReservationPagePublic",
    "ReservationPublic",
    "ReserveItem",
    "SetOnHandItem",
    "TokenCreate",
    "TokenIssued",
    "TokenPublic",
    "UnreserveItem",
]

QuantityIn = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "maximum": float(MAX_QUANTITY), "minimum": -float(MAX_QUANTITY)},
                {"type": "string", "pattern": r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"},
            ],
            "description": f"An exact decimal with at most {SCALE} fractional digits.",
        }
    ),
]
QuantityOut = Annotated[Decimal, WithJsonSchema({"type": "number"})]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class OnHandChange(_Model):
    """One on-hand change event: ``quantities`` are signed deltas."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "pos-2026-11-25-0001",
                    "organizationId": "usmf",
                    "productId": "T-shirt",
                    "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                    "quantities": {"pos": {"inbound": 1}},
                }
            ]
        }
    )

    id: str
    organization_id: str
    product_id: str
    dimension_data_source: str | None = None
    dimensions: dict[str, str]
    quantities: dict[str, dict[str, QuantityIn]]


class SetOnHandItem(OnHandChange):
    """One stock count: ``quantities`` overwrite the measures; the latest count wins."""

    modified_date_time_utc: datetime | None = Field(default=None, alias="modifiedDateTimeUTC")


class ReserveItem(_Model):
    """One soft reservation (IV's reserve body)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "order-1001-line-1",
                    "organizationId": "usmf",
                    "productId": "T-shirt",
                    "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                    "quantityDataSource": "@iv",
                    "modifier": "@softreserved",
                    "quantity": 2,
                    "ifCheckAvailForReserv": True,
                }
            ]
        }
    )

    id: str
    organization_id: str
    product_id: str
    dimension_data_source: str | None = None
    dimensions: dict[str, str]
    quantity_data_source: str | None = None
    modifier: str | None = None
    quantity: QuantityIn
    if_check_avail_for_reserv: bool = True


class UnreserveItem(_Model):
    """Release (part of) one reservation by its id (IV's unreserve body)."""

    id: str
    organization_id: str
    product_id: str | None = None
    reservation_id: str
    dimension_data_source: str | None = None
    dimensions: dict[str, str] | None = None
    offset_qty: QuantityIn = Field(
        validation_alias=AliasChoices("OffsetQty", "offsetQty"), serialization_alias="OffsetQty"
    )


class ReservationPublic(_Model):
    reservation_id: str
    organization_id: str
    product_id: str
    dimensions: dict[str, str]
    measure: str
    reserved: QuantityOut
    offset: QuantityOut
    remaining: QuantityOut
    origin: str
    operation_id: str
    created_at: datetime
    created_by: str


class ReservationPagePublic(_Model):
    reservations: list[ReservationPublic]
    next: str | None = None


class AllocationItem(_Model):
    """Allocate, unallocate (IV's body). ``targetGroups`` is accepted as the old name of
    ``groups``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "plan-2026-w48-web-vip-us",
                    "organizationId": "usmf",
                    "productId": "Bike",
                    "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                    "groups": {"channel": "Web", "customerGroup": "VIP", "region": "US"},
                    "quantity": 10,
                }
            ]
        }
    )

    id: str
    organization_id: str
    product_id: str
    dimension_data_source: str | None = None
    dimensions: dict[str, str]
    groups: dict[str, str] | None = None
    target_groups: dict[str, str] | None = None
    quantity: QuantityIn

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if self.groups is None and self.target_groups is None:
            raise ValueError("give groups (or its old name, targetGroups)")
        if (
            self.groups is not None
            and self.target_groups is not None
            and self.groups != self.target_groups
        ):
            raise ValueError("groups and targetGroups differ; give one of them")
        return self

    @property
    def path(self) -> dict[str, str]:
        return self.groups if self.groups is not None else self.target_groups or {}


class ReallocateItem(AllocationItem):
    """Move a quantity from ``sourceGroups`` to ``groups`` (or ``targetGroups``)."""

    source_groups: dict[str, str]


class ConsumeItem(AllocationItem):
    """Consume an allocation; each ``physicalMeasures`` entry becomes an on-hand change."""

    physical_measures: dict[str, dict[str, str]] | None = None


class AllocationQueryBody(_Model):
    organization_id: str
    product_id: str
    dimension_data_source: str | None = None
    dimensions: dict[str, str]
    groups: dict[str, str] = Field(default_factory=dict)


class SubtreePublic(_Model):
    allocated: QuantityOut
    consumed: QuantityOut


class AllocationPublic(_Model):
    groups: dict[str, str]
    allocated: QuantityOut
    cumulative_allocated: QuantityOut
    consumed: QuantityOut
    cumulative_consumed: QuantityOut
    subtree: SubtreePublic


class AllocationQueryPublic(_Model):
    organization_id: str
    product_id: str
    dimensions: dict[str, str]
    available_to_allocate: QuantityOut
    allocations: list[AllocationPublic]


class TokenCreate(_Model):
    """A new token of this environment."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "web-shop", "role": "writer", "groups": ["channel=Web"]}]
        }
    )

    name: str | None = None
    role: str
    organizations: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class TokenPublic(_Model):
    name: str
    role: str
    organizations: list[str] | None
    groups: list[str]
    created_at: datetime
    revoked_at: datetime | None


class TokenIssued(TokenPublic):
    token: str = Field(description="The secret: shown once, never again.")


class IndexQuery(_Model):
    """``filters`` name ``organizationId``, ``productId`` and dimensions, each a list of values."""

    dimension_data_source: str | None = None
    filters: dict[str, list[str]]
    group_by_values: list[str] = Field(default_factory=list)
    return_negative: bool = False


class ExactQueryFilters(_Model):
    organization_id: list[str]
    product_id: list[str] = Field(default_factory=list)
    dimensions: list[str]
    values: list[list[str]]


class ExactQuery(_Model):
    dimension_data_source: str | None = None
    filters: ExactQueryFilters
    group_by_values: list[str] = Field(default_factory=list)
    return_negative: bool = False


class OperationResult(_Model):
    """The answer to one operation (extra fields depend on the operation)."""

    model_config = ConfigDict(extra="allow")

    id: str | None
    processing_status: str
    message: str
    status_code: int


class BulkItemResult(OperationResult):
    index: int
    code: str | None = None


class BulkResult(_Model):
    """Per-item results of a bulk call, in Inventory Visibility's buckets."""

    success: list[BulkItemResult]
    partial_success: list[BulkItemResult]
    failure: list[BulkItemResult]
    conflict: list[BulkItemResult]
    not_found: list[BulkItemResult]


class OnHandRowPublic(_Model):
    organization_id: str
    product_id: str
    dimensions: dict[str, str]
    quantities: dict[str, dict[str, QuantityOut]]


class ConfigurationDocument(_Model):
    """An environment's configuration; see the configuration reference for every field."""

    model_config = ConfigDict(extra="allow")

    version: int | None = None
    data_sources: dict[str, Any]
    calculated_measures: dict[str, str] = Field(default_factory=dict)
    partition_dimensions: list[str]
    dimension_hierarchy: list[str]
    index_sets: list[list[str]] = Field(default_factory=list)
    allocation_groups: list[str] = Field(default_factory=list)
    reservation_mappings: dict[str, str] = Field(default_factory=dict)
    features: dict[str, bool] = Field(default_factory=dict)


class ConfigurationSummary(_Model):
    version: int
    created_at: datetime
    created_by: str


class JournalEntryPublic(_Model):
    sequence: int
    recorded_at: datetime
    actor: str
    kind: str
    id: str
    organization_id: str
    product_id: str
    request: dict[str, Any]
    effects: list[dict[str, Any]]
    result: dict[str, Any]


class JournalPagePublic(_Model):
    entries: list[JournalEntryPublic]
    next: str | None = None


class Problem(_Model):
    """An error (RFC 9457 problem details) with Inventory Visibility's fields."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    id: str | None = None
    processing_status: str
    message: str
    status_code: int
