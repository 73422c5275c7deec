"""The ``ringfence`` command as an operator uses it: tokens, configuration, database, demo."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli, Server, start_server

VALID_TOML = """
partitionDimensions = ["siteId", "locationId"]
dimensionHierarchy = ["siteId", "locationId", "colorId", "sizeId"]
allocationGroups = ["channel", "customerGroup", "region", "orderType"]

[dataSources.fno]
measures = ["availphysical", "ordered", "onorder"]
readOnly = true

[dataSources.pos]
measures = ["inbound", "outbound", "returned"]
dimensionMappings = { store = "siteId" }

[dataSources."@iv"]
measures = [
    "@allocated", "@cumulative_allocated", "@consumed", "@cumulative_consumed", "@softreserved",
]

[calculatedMeasures]
"iv.onhand" = "fno.availphysical + pos.inbound + pos.returned - pos.outbound"
"@iv.@available_to_reserve" = "iv.onhand - @iv.@softreserved - @iv.@allocated"
"@iv.@available_to_allocate" = "iv.onhand - @iv.@softreserved - @iv.@allocated"

[reservationMappings]
"@iv.@softreserved" = "@iv.@available_to_reserve"
"""


def test_config_validate_accepts_a_toml_file_and_names_each_problem_of_a_bad_one(
    cli: Cli, tmp_path: Path
) -> None:
    good = tmp_path / "ringfence.toml"
    good.write_text(VALID_TOML)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "dataSources": {"pos": {"measures": ["inbound", "inbound"]}},
                "calculatedMeasures": {"iv.onhand": "pos.inbound + pos.missing"},
                "partitionDimensions": ["siteId"],
                "dimensionHierarchy": ["colorId"],
            }
        )
    )

    accepted = cli.run("config", "validate", str(good))
    refused = cli.run("config", "validate", str(bad), check=False)

    assert accepted.returncode == 0, accepted.stderr
    assert refused.returncode == 3
    for field in (
        "dataSources.pos.measures[1]",
        "calculatedMeasures.iv.onhand",
        "dimensionHierarchy",
        "dataSources",
    ):
        assert field in refused.stderr


def test_config_apply_makes_a_new_version_that_config_show_prints(cli: Cli, tmp_path: Path) -> None:
    cli.token("retail", "reader")
    file = tmp_path / "ringfence.toml"
    file.write_text(VALID_TOML)

    applied = cli.run("config", "apply", str(file), "--env", "retail")
    shown = json.loads(cli.run("config", "show", "--env", "retail").stdout)
    first = json.loads(cli.run("config", "show", "--env", "retail", "--version", "1").stdout)

    assert "version 2" in applied.stdout
    assert shown["version"] == 2
    assert shown["dataSources"]["pos"]["measures"] == ["inbound", "outbound", "returned"]
    assert shown["dataSources"]["pos"]["dimensionMappings"] == {"store": "siteId"}
    assert first["dataSources"]["pos"]["measures"] == ["inbound", "outbound"]


def test_config_apply_to_an_unknown_environment_fails_with_not_found(
    cli: Cli, tmp_path: Path
) -> None:
    file = tmp_path / "ringfence.toml"
    file.write_text(VALID_TOML)

    result = cli.run("config", "apply", str(file), "--env", "nowhere", check=False)

    assert result.returncode == 4
    assert "environment-not-found" in result.stderr


def test_tokens_are_listed_without_secrets_and_a_revoked_token_is_refused_at_once(
    cli: Cli, server: Server
) -> None:
    token = cli.token("shop", "reader", "--name", "dashboard", "--org", "usmf")
    url = f"{server.url}/api/environment/shop/configuration"
    headers = {"Authorization": f"Bearer {token}"}
    before = httpx.get(url, headers=headers)

    listing = cli.run("token", "list", "--env", "shop").stdout
    cli.run("token", "revoke", "dashboard", "--env", "shop")
    after = httpx.get(url, headers=headers)
    again = cli.run("token", "revoke", "missing", "--env", "shop", check=False)

    assert before.status_code == 200
    assert "dashboard" in listing
    assert "usmf" in listing
    assert token not in listing
    assert after.status_code == 401
    assert again.returncode == 4


def test_token_create_refuses_an_unknown_role_and_a_taken_name(cli: Cli) -> None:
    cli.token("shop", "writer", "--name", "feed")

    unknown = cli.run("token", "create", "--env", "shop", "--role", "owner", check=False)
    taken = cli.run(
        "token", "create", "--env", "shop", "--role", "writer", "--name", "feed", check=False
    )

    assert unknown.returncode == 3
    assert "invalid-role" in unknown.stderr
    assert taken.returncode == 5
    assert "token-name-taken" in taken.stderr


def test_db_upgrade_can_run_again(cli: Cli) -> None:
    first = cli.run("db", "upgrade")
    second = cli.run("db", "upgrade")

    assert "schema revision" in first.stdout
    assert second.returncode == 0


@pytest.mark.slow
def test_demo_loads_a_queryable_environment_and_prints_a_working_token(cli: Cli) -> None:
    result = cli.run("demo", "--products", "12")
    token = result.stdout.strip().splitlines()[-1]
    server = start_server(cli)
    try:
        rows = httpx.post(
            f"{server.url}/api/environment/demo/onhand/indexquery",
            json={"filters": {"organizationId": ["usmf"], "productId": []}},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
    finally:
        server.stop()

    assert token.startswith("rf_")
    assert len({row["productId"] for row in rows}) == 12
    assert {row["dimensions"]["siteId"] for row in rows} <= {"1", "2", "3"}
    assert all(row["quantities"]["fno"]["availphysical"] >= 0 for row in rows)


def test_serve_warns_that_several_processes_on_sqlite_are_slower(cli: Cli) -> None:
    server = start_server(cli, workers=2)
    try:
        log = server.log.read_text()
    finally:
        server.stop()

    warned = "SQLite has one writer" in log
    assert warned == cli.database_url.startswith("sqlite")
