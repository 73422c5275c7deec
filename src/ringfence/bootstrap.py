"""The composition root: settings -> database -> unit-of-work factory.

Nothing here runs at import time; entry points call :func:`build` (and close what it returns).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from ringfence.services.ports import BatchObserver
from ringfence.settings import Settings
from ringfence.storage.engine import Database, open_database
from ringfence.storage.migrate import current_revision, head_revision, upgrade
from ringfence.storage.unit_of_work import SqlUnitOfWorkFactory

__all__ = ["Container", "build", "schema_status", "upgrade_schema"]


@dataclass(frozen=True)
class Container:
    settings: Settings
    database: Database
    uow: SqlUnitOfWorkFactory

    async def close(self) -> None:
        await self.database.dispose()

    def observe_batches(self, observer: BatchObserver | None) -> None:
        """Tell ``observer`` of every batch the units of work commit (None: nobody)."""
        self.uow.observer = observer

    async def readiness(self) -> str | None:
        """None when the database answers with the schema this code needs; else why not."""
        try:
            revision = await self.database.schema_revision()
        except (SQLAlchemyError, OSError) as error:
            return f"the database cannot be reached ({type(error).__name__})"
        head = head_revision()
        if revision != head:
            return (
                f"the database schema is at revision {revision}, this version needs {head}: "
                "run `ringfence db upgrade`"
            )
        return None


def build(settings: Settings | None = None) -> Container:
    settings = settings or Settings()
    database = open_database(settings.database_url, pool_size=settings.pool_size)
    uow = SqlUnitOfWorkFactory(database, at_once=settings.at_once)
    return Container(settings, database, uow)


def upgrade_schema(database_url: str) -> None:
    upgrade(database_url)


def schema_status(database_url: str) -> tuple[str | None, str]:
    """(the database's schema revision, the revision this code needs)."""
    return current_revision(database_url), head_revision()
