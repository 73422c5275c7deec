"""Configuration use cases on the in-memory unit of work: versions, conflicts, blockers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ringfence.domain.access import Principal, Role
from ringfence.domain.configuration import DEFAULT_DOCUMENT, MeasureRef, default_configuration
from ringfence.domain.errors import Conflict, Forbidden, Invalid, NotFound
from ringfence.domain.operations import Bucket
from ringfence.services.configuration import (
    apply_configuration,
    configuration_history,
    ensure_environment,
    get_configuration,
)
from ringfence.services.onhand import post_onhand_changes
from ringfence.storage.memory import MemoryUnitOfWorkFactory
from tests.unit.conftest import change


def with_pos_measures(*measures: str) -> dict[str, Any]:
    """The default document with ``pos`` measuring ``measures`` (formulas kept consistent)."""
    document: dict[str, Any] = copy.deepcopy(dict(DEFAULT_DOCUMENT))
    document["dataSources"]["pos"]["measures"] = list(measures)
    if "outbound" not in measures:
        supply = "fno.availphysical + pos.inbound"
        available = f"{supply} - @iv.@softreserved - @iv.@allocated"
        document["calculatedMeasures"] = {
            "iv.onhand": supply,
            "@iv.@available_to_reserve": available,
            "@iv.@available_to_allocate": available,
        }
    return document


async def test_ensure_environment_creates_the_default_configuration_once(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    assert not await ensure_environment(uow, environment_id)

    current = await get_configuration(uow, admin, environment_id)

    assert current.version == 1
    assert current.configuration == default_configuration()


async def test_ensure_environment_refuses_a_malformed_environment_id(
    uow: MemoryUnitOfWorkFactory,
) -> None:
    with pytest.raises(Invalid) as caught:
        await ensure_environment(uow, "no spaces/or slashes")

    assert caught.value.code == "invalid-environment-id"


async def test_apply_configuration_activates_a_new_version(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    applied = await apply_configuration(
        uow, admin, environment_id, with_pos_measures("inbound", "outbound", "damaged")
    )

    current = await get_configuration(uow, admin, environment_id)
    assert applied.version == 2
    assert applied.created_by == admin.actor
    assert current.version == 2
    assert MeasureRef("pos", "damaged") in current.configuration.physical_measures
    first = await get_configuration(uow, admin, environment_id, version=1)
    assert first.configuration == default_configuration()
    history = await configuration_history(uow, admin, environment_id)
    assert [version.version for version in history] == [2, 1]


async def test_apply_configuration_with_the_current_expected_version_succeeds(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    applied = await apply_configuration(
        uow, admin, environment_id, dict(DEFAULT_DOCUMENT), expected_version=1
    )

    assert applied.version == 2


async def test_apply_configuration_refuses_a_stale_expected_version(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    await apply_configuration(uow, admin, environment_id, dict(DEFAULT_DOCUMENT))

    with pytest.raises(Conflict) as caught:
        await apply_configuration(
            uow,
            admin,
            environment_id,
            with_pos_measures("inbound", "outbound", "damaged"),
            expected_version=1,
        )

    assert caught.value.code == "configuration-version-conflict"
    assert caught.value.extra["currentVersion"] == 2
    current = await get_configuration(uow, admin, environment_id)
    assert current.version == 2
    assert MeasureRef("pos", "damaged") not in current.configuration.physical_measures


async def test_apply_configuration_refuses_to_remove_a_measure_that_holds_quantities(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    await post_onhand_changes(
        uow, admin, environment_id, [change("e1", {"pos": {"inbound": 5, "outbound": 2}})]
    )

    with pytest.raises(Conflict) as caught:
        await apply_configuration(uow, admin, environment_id, with_pos_measures("inbound"))

    assert caught.value.code == "configuration-change-blocked"
    [blocker] = caught.value.issues
    assert blocker.path == "dataSources.pos.measures"
    assert "pos.outbound" in blocker.message
    assert "pos.outbound" in caught.value.detail
    assert (await get_configuration(uow, admin, environment_id)).version == 1


async def test_apply_configuration_lists_every_measure_that_blocks_it(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    await apply_configuration(
        uow, admin, environment_id, with_pos_measures("inbound", "outbound", "damaged", "lost")
    )
    await post_onhand_changes(
        uow, admin, environment_id, [change("e1", {"pos": {"damaged": 1, "lost": 2}})]
    )

    with pytest.raises(Conflict) as caught:
        await apply_configuration(uow, admin, environment_id, with_pos_measures("inbound"))

    blocking = {issue.message.split()[0] for issue in caught.value.issues}
    assert blocking == {"pos.damaged", "pos.lost"}


async def test_apply_configuration_may_remove_a_measure_brought_back_to_zero(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    await post_onhand_changes(
        uow,
        admin,
        environment_id,
        [change("e1", {"pos": {"outbound": 2}}), change("e2", {"pos": {"outbound": -2}})],
    )

    applied = await apply_configuration(uow, admin, environment_id, with_pos_measures("inbound"))

    assert applied.configuration.physical_measures.count(MeasureRef("pos", "outbound")) == 0


async def test_apply_configuration_adding_a_measure_makes_it_writable(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    await post_onhand_changes(uow, admin, environment_id, [change("e1")])
    [before] = await post_onhand_changes(
        uow, admin, environment_id, [change("e2", {"pos": {"damaged": 1}})]
    )

    await apply_configuration(
        uow, admin, environment_id, with_pos_measures("inbound", "outbound", "damaged")
    )
    [after] = await post_onhand_changes(
        uow, admin, environment_id, [change("e3", {"pos": {"damaged": 1}})]
    )

    assert before.bucket is Bucket.FAILURE
    assert after.bucket is Bucket.SUCCESS


async def test_apply_configuration_may_add_a_calculated_measure_while_data_exists(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    await post_onhand_changes(uow, admin, environment_id, [change("e1")])
    document = with_pos_measures("inbound", "outbound")
    document["calculatedMeasures"]["pos.net"] = "pos.inbound - pos.outbound"

    applied = await apply_configuration(uow, admin, environment_id, document)

    assert MeasureRef("pos", "net") in applied.configuration.calculated_by_ref


async def test_apply_configuration_refuses_to_change_partition_dimensions_once_data_exists(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    document = with_pos_measures("inbound", "outbound")
    document["partitionDimensions"] = ["siteId"]
    await post_onhand_changes(uow, admin, environment_id, [change("e1")])

    with pytest.raises(Conflict) as caught:
        await apply_configuration(uow, admin, environment_id, document)

    assert caught.value.code == "configuration-change-blocked"
    assert [issue.path for issue in caught.value.issues] == ["partitionDimensions"]


async def test_apply_configuration_may_change_partition_dimensions_before_any_data(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    document = with_pos_measures("inbound", "outbound")
    document["partitionDimensions"] = ["siteId"]

    applied = await apply_configuration(uow, admin, environment_id, document)

    assert applied.configuration.partition_dimensions == ("siteId",)


@pytest.mark.parametrize("role", [Role.READER, Role.WRITER, Role.PLANNER])
async def test_apply_configuration_needs_the_admin_role(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str, role: Role
) -> None:
    with pytest.raises(Forbidden) as caught:
        await apply_configuration(
            uow, Principal(environment_id, role, "someone"), environment_id, dict(DEFAULT_DOCUMENT)
        )

    assert caught.value.code == "insufficient-role"
    assert (await get_configuration(uow, admin, environment_id)).version == 1


async def test_apply_configuration_refuses_an_invalid_document(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await apply_configuration(uow, admin, environment_id, {"dataSources": {}})

    assert caught.value.code == "invalid-configuration"
    assert (await get_configuration(uow, admin, environment_id)).version == 1


async def test_apply_configuration_to_an_unknown_environment_is_not_found(
    uow: MemoryUnitOfWorkFactory,
) -> None:
    with pytest.raises(NotFound):
        await apply_configuration(
            uow, Principal("nowhere", Role.ADMIN, "ada"), "nowhere", dict(DEFAULT_DOCUMENT)
        )


async def test_get_configuration_of_an_unknown_version_is_not_found(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await get_configuration(uow, admin, environment_id, version=7)

    assert caught.value.code == "configuration-version-not-found"


async def test_a_recreated_environment_uses_the_configuration_applied_to_it(
    uow: MemoryUnitOfWorkFactory, admin: Principal, environment_id: str
) -> None:
    # The demo loader deletes and recreates its environment, so version numbers start again:
    # version 2 of the new environment must not be mistaken for version 2 of the old one.
    await apply_configuration(
        uow, admin, environment_id, with_pos_measures("inbound", "outbound", "damaged")
    )
    async with uow() as work:
        await work.environments.delete(environment_id)
        await work.commit()
    await ensure_environment(uow, environment_id)

    applied = await apply_configuration(
        uow, admin, environment_id, with_pos_measures("inbound", "outbound", "returned")
    )
    [result] = await post_onhand_changes(
        uow, admin, environment_id, [change("e1", {"pos": {"returned": 1}})]
    )

    assert MeasureRef("pos", "returned") in applied.configuration.physical_measures
    assert result.bucket is Bucket.SUCCESS
