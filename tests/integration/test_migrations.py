"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from ringfence.storage.engine import sync_url
from ringfence.storage.migrate import current_revision, head_revision
from ringfence.storage.tables import metadata


def test_the_migrated_schema_matches_the_declared_tables(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_the_database_is_at_the_head_revision(database_url: str) -> None:
    assert current_revision(database_url) == head_revision()
