"""schemathesis against the app's own OpenAPI document, over real HTTP, every operation.

With a valid admin token, generated requests (valid and invalid) must never cause a 5xx, and
every answer must match the document: a documented status, content type and schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Err

from tests.e2e.conftest import Cli, start_server

pytestmark = pytest.mark.slow

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 40
FIGURES = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"


def test_no_request_causes_a_server_error_and_every_answer_matches_the_document(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    cli = Cli(f"sqlite:///{folder / 'ringfence.db'}", folder)
    token = cli.token("fuzz", "admin", "--name", "fuzzer")
    server = start_server(cli)
    failures: dict[str, str] = {}
    tried = 0
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                failures[f"invalid operation {len(failures)}"] = str(result.err())
                continue
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def fuzz(case: Any) -> None:
                nonlocal tried
                tried += 1
                if "environmentId" in (case.path_parameters or {}):
                    case.path_parameters["environmentId"] = "fuzz"
                case.call_and_validate(
                    base_url=server.url,
                    headers={"Authorization": f"Bearer {token}"},
                    checks=CHECKS,
                )

            try:
                fuzz()
            except Exception as failure:
                failures[operation.label] = str(failure)[:2000]
    finally:
        server.stop()

    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "openapi-fuzz.json").write_text(
        json.dumps({"generated_requests": tried, "failing_operations": len(failures)}, indent=2)
    )
    assert tried > 0
    assert failures == {}, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
