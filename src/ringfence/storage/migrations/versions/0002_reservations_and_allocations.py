"""Soft reservations and allocations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
ENV = sa.String(64)
ID = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("environment_id", ENV, nullable=False),
        sa.Column("organization_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("reservation_id", sa.String(64), nullable=False),
        sa.Column("dimensions_key", sa.Text(), nullable=False),
        sa.Column("dimensions", JSON, nullable=False),
        sa.Column("data_source", sa.String(64), nullable=False),
        sa.Column("measure", sa.String(64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("offset_quantity", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("operation_id", ID, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ID, nullable=False),
        sa.PrimaryKeyConstraint(
            "environment_id",
            "organization_id",
            "product_id",
            "reservation_id",
            name="pk_reservations",
        ),
    )
    op.create_index(
        "ix_reservations_environment_reservation",
        "reservations",
        ["environment_id", "reservation_id"],
    )
    op.create_table(
        "allocations",
        sa.Column("environment_id", ENV, nullable=False),
        sa.Column("organization_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("dimensions_key", sa.Text(), nullable=False),
        sa.Column("group_path", sa.Text(), nullable=False),
        sa.Column("dimensions", JSON, nullable=False),
        sa.Column("allocated", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_allocated", sa.BigInteger(), nullable=False),
        sa.Column("consumed", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_consumed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "environment_id",
            "organization_id",
            "product_id",
            "dimensions_key",
            "group_path",
            name="pk_allocations",
        ),
    )


def downgrade() -> None:
    op.drop_table("allocations")
    op.drop_table("reservations")
