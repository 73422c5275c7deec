"""Keep JSON documents as written on PostgreSQL (json, not jsonb), except queried dimensions.

jsonb reorders object keys, which changed the order of data sources in a configuration and of
fields in journal entries. Only on-hand dimensions, which queries look inside, stay jsonb.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = (
    ("configurations", "document"),
    ("tokens", "organizations"),
    ("tokens", "group_scope"),
    ("journal", "request"),
    ("journal", "effects"),
    ("journal", "result"),
    ("reservations", "dimensions"),
    ("allocations", "dimensions"),
)


def _convert(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps JSON as text either way
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind} USING {column}::{kind}")


def upgrade() -> None:
    _convert("json")


def downgrade() -> None:
    _convert("jsonb")
