"""The one error tree of Ringfence.

Every expected failure is a :class:`RingfenceError` with a stable ``code`` (a short kebab-case
word that clients may branch on) and a ``detail`` a person can act on. Each class carries its
HTTP meaning (``status``); entry points render the classes, never the codes: the API as problem
details (``ringfence.api.errors``), the web pages next to their forms, the CLI as exit codes
(``ringfence.cli.main``).

::

    RingfenceError
    ├── Invalid            the request is malformed or breaks a rule of the configuration (422)
    │   └── PayloadTooLarge    the request is larger than a stated limit (413)
    ├── Unauthenticated    no credentials, or credentials that are not valid (401)
    ├── Forbidden          valid credentials, but outside their role or scope (403)
    ├── NotFound           the thing named does not exist (404)
    ├── Conflict           a business rule or the current state refuses the request (409)
    └── Unavailable        a dependency (the database) cannot serve now; retry later (503)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "Conflict",
    "FieldIssue",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PayloadTooLarge",
    "RingfenceError",
    "Unauthenticated",
    "Unavailable",
]

Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem with one field of a request or document, e.g. ``("dimensions", "colour")``."""

    location: Location
    message: str

    @property
    def path(self) -> str:
        """The location written as a dotted path: ``quantities.pos.inbound``, ``items[3].id``."""
        text = ""
        for part in self.location:
            if isinstance(part, int):
                text += f"[{part}]"
            else:
                text += f".{part}" if text else part
        return text


@dataclass(eq=False)
class RingfenceError(Exception):
    """Base of every expected failure. ``extra`` holds machine-readable facts (e.g. ``level``)."""

    code: str
    detail: str
    issues: Sequence[FieldIssue] = field(default_factory=tuple)
    extra: Mapping[str, object] = field(default_factory=dict)

    title: ClassVar[str] = "Request failed"
    status: ClassVar[int] = 400

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def __str__(self) -> str:
        return self.detail


class Invalid(RingfenceError):
    title = "Invalid request"
    status = 422


class PayloadTooLarge(Invalid):
    title = "Request too large"
    status = 413


class Unauthenticated(RingfenceError):
    title = "Authentication required"
    status = 401


class Forbidden(RingfenceError):
    title = "Forbidden"
    status = 403


class NotFound(RingfenceError):
    title = "Not found"
    status = 404


class Conflict(RingfenceError):
    title = "Conflict"
    status = 409


class Unavailable(RingfenceError):
    title = "Service unavailable"
    status = 503
