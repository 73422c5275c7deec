"""The database schema (SQLAlchemy Core). Alembic migrations create and change it.

Every table holding inventory state leads its primary key with the partition key
(environment, organization, product), so the data can be distributed by that key. Quantities
are 64-bit integers of ``10**-6`` units (see ``ringfence.domain.quantity``): exact on every
database, summed exactly in SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "allocations",
    "configurations",
    "environments",
    "journal",
    "metadata",
    "onhand_measures",
    "partitions",
    "reservations",
    "sessions",
    "tokens",
]


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON()
"""JSON kept as written (key order, exact numbers); never queried inside."""
QueryableJson = JSON().with_variant(JSONB(), "postgresql")
"""JSON that queries look inside (dimensions of on-hand rows): JSONB on PostgreSQL."""
Sequence_ = BigInteger().with_variant(Integer(), "sqlite")
Id = String(128)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

environments = Table(
    "environments",
    metadata,
    Column("environment_id", String(64), primary_key=True),
    Column("configuration_version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

configurations = Table(
    "configurations",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("document", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", Id, nullable=False),
    PrimaryKeyConstraint("environment_id", "version"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("environment_id", String(64), nullable=False),
    Column("name", Id, nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("organizations", Json, nullable=True),
    Column("group_scope", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    UniqueConstraint("environment_id", "name"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("token_id", String(32), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_sessions_token", "token_id"),
)
"""Web sessions: a browser signed in with a token (only a digest of the session id is kept)."""

partitions = Table(
    "partitions",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("product_id", Id, nullable=False),
    Column("version", BigInteger, nullable=False),
    PrimaryKeyConstraint("environment_id", "organization_id", "product_id"),
)
"""One row per partition: every mutation upserts it first, which locks the partition."""

onhand_measures = Table(
    "onhand_measures",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("product_id", Id, nullable=False),
    Column("dimensions_key", Text, nullable=False),
    Column("data_source", String(64), nullable=False),
    Column("measure", String(64), nullable=False),
    Column("dimensions", QueryableJson, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("set_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint(
        "environment_id",
        "organization_id",
        "product_id",
        "dimensions_key",
        "data_source",
        "measure",
    ),
)
"""One physical measure of a product at exact dimensions."""

reservations = Table(
    "reservations",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("product_id", Id, nullable=False),
    Column("reservation_id", String(64), nullable=False),
    Column("dimensions_key", Text, nullable=False),
    Column("dimensions", Json, nullable=False),
    Column("data_source", String(64), nullable=False),
    Column("measure", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("offset_quantity", BigInteger, nullable=False),
    Column("origin", String(16), nullable=False),
    Column("operation_id", Id, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", Id, nullable=False),
    PrimaryKeyConstraint("environment_id", "organization_id", "product_id", "reservation_id"),
    Index("ix_reservations_environment_reservation", "environment_id", "reservation_id"),
)
"""Soft reservations: what each holds and how much of it was released."""

allocations = Table(
    "allocations",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("product_id", Id, nullable=False),
    Column("dimensions_key", Text, nullable=False),
    Column("group_path", Text, nullable=False),
    Column("dimensions", Json, nullable=False),
    Column("allocated", BigInteger, nullable=False),
    Column("cumulative_allocated", BigInteger, nullable=False),
    Column("consumed", BigInteger, nullable=False),
    Column("cumulative_consumed", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "environment_id", "organization_id", "product_id", "dimensions_key", "group_path"
    ),
)
"""What each allocation group path holds of a product at exact dimensions."""

journal = Table(
    "journal",
    metadata,
    Column("sequence", Sequence_, primary_key=True, autoincrement=True),
    Column("environment_id", String(64), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("product_id", Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("operation_id", Id, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("request", Json, nullable=False),
    Column("effects", Json, nullable=False),
    Column("result", Json, nullable=False),
    Column("actor", Id, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint("environment_id", "kind", "operation_id"),
    Index("ix_journal_environment_sequence", "environment_id", "sequence"),
    Index(
        "ix_journal_partition_sequence",
        "environment_id",
        "organization_id",
        "product_id",
        "sequence",
    ),
    Index("ix_journal_environment_recorded_at", "environment_id", "recorded_at"),
)
"""Every accepted mutation; also the idempotency record of its (kind, id)."""
