"""Use cases of environments and their configuration."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ringfence.domain.access import Principal, Role
from ringfence.domain.configuration import (
    DEFAULT_DOCUMENT,
    Configuration,
    MeasureRef,
    parse_configuration,
)
from ringfence.domain.errors import Conflict, FieldIssue, Invalid, NotFound
from ringfence.services.ports import (
    ConfigurationStamp,
    StoredConfiguration,
    UnitOfWork,
    UnitOfWorkFactory,
)

__all__ = [
    "ConfigurationVersion",
    "apply_configuration",
    "check_environment_id",
    "configuration_history",
    "ensure_environment",
    "forget",
    "get_configuration",
    "is_current",
    "last_loaded",
    "load_configuration",
    "validate_configuration",
]

_ENVIRONMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CACHE_SIZE = 256
_parsed: OrderedDict[tuple[str, int, datetime], Configuration] = OrderedDict()
"""Parsed configurations by (environment, version, creation time): an environment deleted and
created again (as the demo does) has versions of the same numbers but other times."""
_latest: OrderedDict[str, ConfigurationVersion] = OrderedDict()
"""The version each environment had when this process last loaded it (see :func:`last_loaded`)."""


@dataclass(frozen=True, slots=True)
class ConfigurationVersion:
    """A configuration as stored: its document, version and provenance."""

    environment_id: str
    version: int
    configuration: Configuration
    created_at: datetime
    created_by: str

    @property
    def document(self) -> dict[str, object]:
        return self.configuration.to_document()

    @property
    def stamp(self) -> ConfigurationStamp:
        """What identifies this version in storage (see :func:`is_current`)."""
        return ConfigurationStamp(
            self.environment_id, self.version, self.created_at, self.created_by
        )


def check_environment_id(environment_id: str) -> str:
    if not _ENVIRONMENT_ID.fullmatch(environment_id):
        message = "an environment id is 1-64 letters, digits, '.', '_' or '-'"
        raise Invalid("invalid-environment-id", message, (FieldIssue(("environmentId",), message),))
    return environment_id


def _version(stored: StoredConfiguration) -> ConfigurationVersion:
    key = (stored.environment_id, stored.version, stored.created_at)
    configuration = _parsed.get(key)
    if configuration is None:
        configuration = parse_configuration(stored.document)
        _parsed[key] = configuration
        if len(_parsed) > _CACHE_SIZE:
            _parsed.popitem(last=False)
    else:
        _parsed.move_to_end(key)
    return ConfigurationVersion(
        stored.environment_id, stored.version, configuration, stored.created_at, stored.created_by
    )


async def load_configuration(work: UnitOfWork, environment_id: str) -> ConfigurationVersion:
    """The environment's current configuration (read and parsed once per version and process:
    otherwise only its stamp is read)."""
    stamp = await work.configurations.current_stamp(environment_id)
    if stamp is None:
        raise NotFound("environment-not-found", f"environment {environment_id!r} does not exist")
    key = (stamp.environment_id, stamp.version, stamp.created_at)
    cached = _parsed.get(key)
    if cached is not None:
        _parsed.move_to_end(key)
        loaded = ConfigurationVersion(
            stamp.environment_id, stamp.version, cached, stamp.created_at, stamp.created_by
        )
    else:
        stored = await work.configurations.current(environment_id)
        if stored is None:
            message = f"environment {environment_id!r} does not exist"
            raise NotFound("environment-not-found", message)
        loaded = _version(stored)
    _latest[environment_id] = loaded
    _latest.move_to_end(environment_id)
    if len(_latest) > _CACHE_SIZE:
        _latest.popitem(last=False)
    return loaded


def last_loaded(environment_id: str) -> ConfigurationVersion | None:
    """The configuration :func:`load_configuration` last found for the environment in this
    process, without reading anything; None if it has not, or if it was :func:`forget`-ten.

    A batch of mutations assumes it and checks it under its locks
    (:meth:`~ringfence.services.ports.UnitOfWork.lock_and_read` reads the stamp): a
    configuration rarely changes, so the batch's first round trip already takes its locks.
    """
    return _latest.get(environment_id)


def forget(environment_id: str) -> None:
    """Stop assuming the environment's last loaded configuration (it changed)."""
    _latest.pop(environment_id, None)


def is_current(version: ConfigurationVersion, stamp: ConfigurationStamp | None) -> bool:
    """Whether ``stamp`` (read from storage) names ``version``."""
    return (
        stamp is not None
        and stamp.environment_id == version.environment_id
        and stamp.version == version.version
        and stamp.created_at == version.created_at
    )


async def ensure_environment(
    uow: UnitOfWorkFactory, environment_id: str, *, actor: str = "system"
) -> bool:
    """Create the environment with the default configuration unless it exists; True if created."""
    check_environment_id(environment_id)
    async with uow() as work:
        if await work.environments.exists(environment_id):
            return False
        now = datetime.now(UTC)
        await work.environments.create(environment_id, now)
        await work.configurations.add(
            StoredConfiguration(environment_id, 1, dict(DEFAULT_DOCUMENT), now, actor)
        )
        await work.commit()
        return True


async def get_configuration(
    uow: UnitOfWorkFactory, principal: Principal, environment_id: str, version: int | None = None
) -> ConfigurationVersion:
    principal.require(Role.READER, environment_id)
    async with uow(read_only=True) as work:
        if version is None:
            return await load_configuration(work, environment_id)
        stored = await work.configurations.version(environment_id, version)
        if stored is None:
            raise NotFound(
                "configuration-version-not-found",
                f"environment {environment_id!r} has no configuration version {version}",
            )
        return _version(stored)


async def configuration_history(
    uow: UnitOfWorkFactory, principal: Principal, environment_id: str
) -> list[ConfigurationVersion]:
    principal.require(Role.READER, environment_id)
    async with uow(read_only=True) as work:
        return [_version(stored) for stored in await work.configurations.history(environment_id)]


def validate_configuration(document: object) -> Configuration:
    """Validate a document on its own (no environment needed): :class:`Invalid` if it is wrong."""
    return parse_configuration(document)


@dataclass(frozen=True, slots=True)
class _StoredData:
    measures_in_use: set[MeasureRef]
    has_onhand_rows: bool
    allocations_in_use: bool
    reservations_open: bool


def _extends(proposed: tuple[str, ...], current: tuple[str, ...]) -> bool:
    """Whether ``proposed`` keeps ``current`` as it is, only adding levels below."""
    return proposed[: len(current)] == current


def _blockers(
    current: Configuration, proposed: Configuration, stored: _StoredData
) -> list[FieldIssue]:
    """What in the stored data a change of configuration would corrupt or hide."""
    blockers: list[FieldIssue] = []
    in_use, has_rows = stored.measures_in_use, stored.has_onhand_rows
    if stored.allocations_in_use and not _extends(
        proposed.allocation_groups, current.allocation_groups
    ):
        blockers.append(
            FieldIssue(
                ("allocationGroups",),
                "quantities are allocated along "
                f"{' > '.join(current.allocation_groups)}: levels can only be added below "
                "until every path is unallocated or consumed",
            )
        )
    if (stored.allocations_in_use or stored.reservations_open) and not _extends(
        proposed.dimension_hierarchy, current.dimension_hierarchy
    ):
        blockers.append(
            FieldIssue(
                ("dimensionHierarchy",),
                "allocations or open reservations are held at levels of "
                f"{', '.join(current.dimension_hierarchy)}: dimensions can only be added at "
                "the end",
            )
        )
    kept = set(proposed.physical_measures)
    for ref in sorted(in_use - kept):
        blockers.append(
            FieldIssue(
                ("dataSources", ref.data_source, "measures"),
                f"{ref} still holds quantities; bring them to zero before removing it",
            )
        )
    if has_rows and proposed.partition_dimensions != current.partition_dimensions:
        blockers.append(
            FieldIssue(
                ("partitionDimensions",),
                "on-hand data exists; the partition dimensions can no longer change",
            )
        )
    return blockers


async def apply_configuration(
    uow: UnitOfWorkFactory,
    principal: Principal,
    environment_id: str,
    document: Mapping[str, object],
    *,
    expected_version: int | None = None,
) -> ConfigurationVersion:
    """Validate and activate a new configuration version, atomically.

    Refused with ``configuration-version-conflict`` if ``expected_version`` is given and is not
    the current one, and with ``configuration-change-blocked`` (listing every blocker) if the
    change would corrupt stored data.
    """
    principal.require(Role.ADMIN, environment_id)
    proposed = parse_configuration(document)
    async with uow() as work:
        current_version = await work.configurations.lock_current_version(environment_id)
        if current_version is None:
            raise NotFound(
                "environment-not-found", f"environment {environment_id!r} does not exist"
            )
        if expected_version is not None and expected_version != current_version:
            raise Conflict(
                "configuration-version-conflict",
                f"the configuration is at version {current_version}, not {expected_version}; "
                "reload it and apply your change again",
                extra={"currentVersion": current_version},
            )
        current = await load_configuration(work, environment_id)
        data = _StoredData(
            measures_in_use=await work.onhand.measures_in_use(environment_id),
            has_onhand_rows=await work.onhand.has_rows(environment_id),
            allocations_in_use=await work.allocations.in_use(environment_id),
            reservations_open=await work.reservations.any_open(environment_id),
        )
        blockers = _blockers(current.configuration, proposed, data)
        if blockers:
            raise Conflict(
                "configuration-change-blocked",
                "the change would corrupt stored data: "
                + "; ".join(f"{issue.path}: {issue.message}" for issue in blockers),
                blockers,
            )
        stored = StoredConfiguration(
            environment_id,
            current_version + 1,
            proposed.to_document(),
            datetime.now(UTC),
            principal.actor,
        )
        await work.configurations.add(stored)
        await work.commit()
    return _version(stored)
