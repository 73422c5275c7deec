"""Use case of reading the journal: every accepted mutation, filterable and paged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ringfence.domain.access import Principal, Role
from ringfence.domain.errors import FieldIssue, Invalid
from ringfence.domain.operations import JournalEntry
from ringfence.services.ports import JournalFilter, UnitOfWorkFactory

__all__ = ["MAX_PAGE_SIZE", "JournalPage", "list_journal"]

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class JournalPage:
    entries: list[JournalEntry]
    next_cursor: int | None
    """Pass as ``after`` to get the following page; None on the last page."""


def _utc(moment: datetime | None) -> datetime | None:
    """Times without a zone are UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


async def list_journal(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    journal_filter: JournalFilter,
) -> JournalPage:
    principal.require(Role.READER, environment_id)
    journal_filter = replace(
        journal_filter,
        since=_utc(journal_filter.since),
        until=_utc(journal_filter.until),
    )
    if not 1 <= journal_filter.limit <= MAX_PAGE_SIZE:
        message = f"must be between 1 and {MAX_PAGE_SIZE}"
        raise Invalid("invalid-query", f"limit: {message}", (FieldIssue(("limit",), message),))
    if journal_filter.organization_id is not None:
        principal.require_organization(journal_filter.organization_id)
    scope = tuple(sorted(principal.organizations)) if principal.organizations else None
    async with uow(read_only=True) as work:
        entries = await work.journal.list_entries(
            environment_id,
            replace(journal_filter, limit=journal_filter.limit + 1, organizations=scope),
        )
    more = len(entries) > journal_filter.limit
    entries = entries[: journal_filter.limit]
    cursor = entries[-1].sequence if more and entries else None
    if principal.group_scope:
        # A token narrowed to a subtree sees no allocation outside it, not even in history
        # (a page may then hold fewer entries than asked; `next` still continues after it).
        entries = [entry for entry in entries if _within_scope(entry, principal.group_scope)]
    return JournalPage(entries, cursor)


def _within_scope(entry: JournalEntry, scope: tuple[tuple[str, str], ...]) -> bool:
    prefix = [(name.lower(), value) for name, value in scope]
    for field in ("groups", "sourceGroups"):
        groups = entry.request.get(field)
        if isinstance(groups, Mapping):
            path = [(str(name).lower(), value) for name, value in groups.items()]
            if path[: len(prefix)] != prefix:
                return False
    return True
