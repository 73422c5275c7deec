"""Journal idempotency lookups lead with the operation id.

The unique key was (environment, kind, operation id). A lookup of a batch's ids
(``operation_id = ANY(...)``) then depended on the planner's statistics: on a journal that grew
faster than autovacuum analyzed it, PostgreSQL estimated one row for (environment, kind), used
only that prefix of the index and filtered every entry of the kind (12 ms at 23,000 entries,
growing with the journal). Leading with the operation id makes the ids themselves the index
condition whatever the statistics say.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("journal") as batch:
        batch.drop_constraint("uq_journal_environment_id_kind_operation_id", type_="unique")
        batch.create_unique_constraint(
            "uq_journal_operation_id_environment_id_kind",
            ["operation_id", "environment_id", "kind"],
        )


def downgrade() -> None:
    with op.batch_alter_table("journal") as batch:
        batch.drop_constraint("uq_journal_operation_id_environment_id_kind", type_="unique")
        batch.create_unique_constraint(
            "uq_journal_environment_id_kind_operation_id",
            ["environment_id", "kind", "operation_id"],
        )
