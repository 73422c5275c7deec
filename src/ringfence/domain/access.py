"""Who may do what: roles, token scopes and the principal of a request.

Roles are ordered: ``reader`` < ``writer`` (on-hand, reservations, consume) < ``planner``
(allocate, unallocate, reallocate) < ``admin`` (configuration, tokens). A token belongs to one
environment and may be narrowed to organizations and to an allocation group-path prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ringfence.domain.dimensions import check_identifier
from ringfence.domain.errors import FieldIssue, Forbidden, Invalid

__all__ = ["Principal", "Role", "parse_group_scope"]


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"
    PLANNER = "planner"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls(text.lower())
        except ValueError:
            names = ", ".join(role.value for role in cls)
            message = f"unknown role {text!r}; roles: {names}"
            raise Invalid("invalid-role", message, (FieldIssue(("role",), message),)) from None


_RANKS = {role: rank for rank, role in enumerate(Role)}
"""Each role's place, least first: a role includes those before it."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    environment_id: str
    role: Role
    name: str
    token_id: str | None = None
    organizations: frozenset[str] | None = None
    """None: every organization."""
    group_scope: tuple[tuple[str, str], ...] = ()
    """A group-path prefix, e.g. ``(("channel", "Web"),)``; empty: every path."""
    confirmed: bool = True
    """False: the token was recognized without reading it from the database for this request
    (what it grants never changes); that it is not revoked is still to be confirmed, by the
    transaction of the request's operation, before anything is answered."""

    @classmethod
    def operator(cls, environment_id: str, name: str = "operator") -> Principal:
        """Whoever holds the database itself (the command line): an administrator."""
        return cls(environment_id, Role.ADMIN, name)

    @property
    def actor(self) -> str:
        """How the journal names this caller."""
        return self.name

    def require(self, role: Role, environment_id: str) -> None:
        """Refuse (403) a caller outside ``environment_id`` or below ``role``."""
        if environment_id != self.environment_id:
            raise Forbidden(
                "forbidden",
                "this token does not grant access to that environment",
            )
        if not self.role.includes(role):
            raise Forbidden(
                "insufficient-role",
                f"this operation needs the {role.value} role; the token has {self.role.value}",
                extra={"requiredRole": role.value, "role": self.role.value},
            )

    def require_organization(self, organization_id: str) -> None:
        if self.organizations is not None and organization_id not in self.organizations:
            raise Forbidden(
                "organization-out-of-scope",
                f"this token is limited to organizations {', '.join(sorted(self.organizations))}",
            )


def parse_group_scope(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Read ``["channel=Web", "customerGroup=VIP"]`` into a group-path prefix."""
    scope: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        name, equals, value = item.partition("=")
        if not equals or not name or not value:
            message = f"{item!r} is not of the form group=value"
            raise Invalid("invalid-group-scope", message, (FieldIssue(("groups", index), message),))
        check_identifier(value, ("groups", index), "group value")
        scope.append((name, value))
    return tuple(scope)
