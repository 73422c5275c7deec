"""Initial schema: environments, configurations, tokens, partitions, on-hand measures, journal.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the column types of this revision (never import the live schema here).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
ENV = sa.String(64)
ID = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("environment_id", ENV, nullable=False),
        sa.Column("configuration_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("environment_id", name="pk_environments"),
    )
    op.create_table(
        "configurations",
        sa.Column("environment_id", ENV, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ID, nullable=False),
        sa.PrimaryKeyConstraint("environment_id", "version", name="pk_configurations"),
    )
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("environment_id", ENV, nullable=False),
        sa.Column("name", ID, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("organizations", JSON, nullable=True),
        sa.Column("group_scope", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("token_id", name="pk_tokens"),
        sa.UniqueConstraint("environment_id", "name", name="uq_tokens_environment_id_name"),
    )
    op.create_table(
        "partitions",
        sa.Column("environment_id", ENV, nullable=False),
        sa.Column("organization_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "environment_id", "organization_id", "product_id", name="pk_partitions"
        ),
    )
    op.create_table(
        "onhand_measures",
        sa.Column("environment_id", ENV, nullable=False),
        sa.Column("organization_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("dimensions_key", sa.Text(), nullable=False),
        sa.Column("data_source", sa.String(64), nullable=False),
        sa.Column("measure", sa.String(64), nullable=False),
        sa.Column("dimensions", JSON, nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("set_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint(
            "environment_id",
            "organization_id",
            "product_id",
            "dimensions_key",
            "data_source",
            "measure",
            name="pk_onhand_measures",
        ),
    )
    op.create_table(
        "journal",
        sa.Column(
            "sequence",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("environment_id", ENV, nullable=False),
        sa.Column("organization_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("operation_id", ID, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("request", JSON, nullable=False),
        sa.Column("effects", JSON, nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("actor", ID, nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_journal"),
        sa.UniqueConstraint(
            "environment_id",
            "kind",
            "operation_id",
            name="uq_journal_environment_id_kind_operation_id",
        ),
    )
    op.create_index("ix_journal_environment_sequence", "journal", ["environment_id", "sequence"])
    op.create_index(
        "ix_journal_partition_sequence",
        "journal",
        ["environment_id", "organization_id", "product_id", "sequence"],
    )
    op.create_index(
        "ix_journal_environment_recorded_at", "journal", ["environment_id", "recorded_at"]
    )


def downgrade() -> None:
    for table in (
        "journal",
        "onhand_measures",
        "partitions",
        "tokens",
        "configurations",
        "environments",
    ):
        op.drop_table(table)
