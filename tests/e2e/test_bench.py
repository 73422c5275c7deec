"""``make bench`` as a developer runs it, on its shortest settings: the hot_consume workload
against real servers, wrk and pgbench, with the results file the issue's tooling reads and
DESIGN §2's invariants counted, not assumed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench.trace import windows
from sqlalchemy import make_url

from tests.conftest import IN_CI, POSTGRESQL_ADMIN_URL, require_postgresql

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"ops_per_s", "p50_ms", "p99_ms", "baseline", "baseline_ops_per_s", "ratio", "oversold"}


def require_tools() -> None:
    missing = [tool for tool in ("wrk", "pgbench") if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"the benchmark needs {' and '.join(missing)} (Debian: apt-get install wrk)"
    if IN_CI:
        pytest.fail(f"{reason}; CI=true: the benchmark's test must run")
    pytest.skip(reason)


def _bench(module: str, *arguments: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <arguments>`` with the ``BENCH_*`` ``settings``, on the tests'
    PostgreSQL server."""
    postgresql = make_url(POSTGRESQL_ADMIN_URL).set(drivername="postgresql")
    return subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        env={
            **os.environ,
            "BENCH_POSTGRESQL": postgresql.render_as_string(hide_password=False),
            **settings,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_hot_consume_workload_runs_and_counts_its_invariants(tmp_path: Path) -> None:
    require_postgresql()
    require_tools()
    done = _bench(
        "bench",
        BENCH_ONLY="hot_consume,flash_sale",
        BENCH_SECONDS="1",
        BENCH_ROUNDS="1",
        BENCH_HOT_CLIENTS="16",
        BENCH_RESULTS=str(tmp_path),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["machine"]["cpus"] >= 1
    assert report["machine"]["mode"] == "quick"
    assert report["machine"]["rounds"] == 1
    workloads = report["workloads"]
    assert set(workloads) == {"hot_consume_16", "flash_sale"}
    # The flash sale, through the asyncio load client: every one of its 10,000 consumes was
    # answered, exactly the allocation's 1,000 with a 200.
    sale = workloads.pop("flash_sale")
    assert sale["successes"] == [1000]
    assert sale["answered"] == [10_000]
    assert sale["oversold"] == sale["undersold"] == sale["invariant_violations"] == 0
    for name, figures in workloads.items():
        assert KEYS <= set(figures), name
        assert figures["baseline"] == "raw_hot_update"
        assert figures["ops_per_s"] > 0
        assert figures["baseline_ops_per_s"] > 0
        assert figures["ratio"] == pytest.approx(
            figures["ops_per_s"] / figures["baseline_ops_per_s"], abs=0.001
        )
        assert figures["p50_ms"] <= figures["p99_ms"]
        # None sold beyond what was allocated, every acknowledged consume committed.
        assert figures["oversold"] == 0
        assert figures["undersold"] == 0
        assert figures["invariant_violations"] == 0
        assert figures["lost"] == 0
        # wrk stops with requests in flight: committed, never answered to it.
        in_flight = figures["clients"]
        assert 0 < figures["acknowledged"] <= figures["committed"]
        assert figures["committed"] <= figures["acknowledged"] + in_flight


def test_two_versions_are_compared_in_alternating_turns() -> None:
    """``python -m bench.ab``: both versions served at once, each started first for half of
    the pairs, every turn's rate and CPU reported, and the pairs' ratios."""
    require_postgresql()
    require_tools()
    source = str(ROOT / "src")

    done = _bench(
        "bench.ab",
        source,
        source,
        BENCH_PAIRS="2",
        BENCH_SECONDS="1",
        BENCH_CLIENTS="4",
        BENCH_WORKERS="1",
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    turns = [line for line in lines if line.startswith(("A: ", "B: ")) and "median" not in line]
    # A then B with A's server started first; B then A with B's.
    assert [turn[0] for turn in turns] == ["A", "B", "B", "A"]
    assert all("/s" in turn and "µs server CPU" in turn for turn in turns)
    ratios = next(line for line in lines if line.startswith("B/A per pair"))
    assert ratios.count(",") == 1  # two pairs
    assert any(line.startswith("B/A server CPU per operation") for line in lines)


def test_a_unit_of_work_is_measured_against_the_bare_driver() -> None:
    require_postgresql()

    done = _bench("bench.unit_of_work", BENCH_CYCLES="50")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "unit of work",
        "driver pool",
        "bare driver",
    ] * 2
    assert all(float(line.split(": ")[1].split()[0]) > 0 for line in lines), lines


@pytest.mark.parametrize("workload", ["hot", "trivial"])
def test_the_cpu_per_operation_is_measured_from_the_processes_counters(workload: str) -> None:
    """``python -m bench.cost``: server and PostgreSQL CPU per acknowledged operation, from
    ``/proc``; Ringfence's batch figures from ``/metrics`` (none for ``trivial_post``)."""
    require_postgresql()
    require_tools()

    done = _bench(
        "bench.cost",
        BENCH_WORKLOAD=workload,
        BENCH_SECONDS="1",
        BENCH_CLIENTS="4",
        BENCH_WORKERS="1",
    )

    assert done.returncode == 0, done.stdout + done.stderr
    [line] = done.stdout.splitlines()
    figures = json.loads(line)
    assert figures["workload"] == workload
    assert figures["ops_per_s"] > 0
    assert set(figures["statuses"]) == {"200"}
    assert figures["server_cpu_us_per_op"] > 0
    if workload == "hot":
        assert figures["postgresql_cpu_us_per_op"] > 0
        assert figures["one_process"]["batch_size_mean"] >= 1
    else:
        assert figures["one_process"] == {}


def test_an_unknown_cost_workload_is_refused() -> None:
    done = _bench("bench.cost", BENCH_WORKLOAD="cold")

    assert done.returncode != 0
    assert "BENCH_WORKLOAD is hot, bulk, spread or trivial" in done.stderr


def test_an_open_loop_is_traced_window_by_window() -> None:
    """``python -m bench.trace``: the run's p50 and p99, then every window in order, each
    request counted in the window it was due in."""
    require_postgresql()
    require_tools()

    done = _bench(
        "bench.trace",
        BENCH_RATE="200",
        BENCH_SECONDS="1",
        BENCH_WINDOW_MS="250",
        BENCH_WORKERS="1",
    )

    assert done.returncode == 0, done.stdout + done.stderr
    head, *rows = done.stdout.splitlines()
    assert head.startswith("200 requests at 200/s over 1 s: p50 ")
    assert "{'200': 200}" in head
    assert [row.split()[0] for row in rows] == ["0.00", "0.25", "0.50", "0.75"]
    assert sum(int(row.split()[2]) for row in rows) == 200


def test_windows_group_latencies_by_when_each_request_was_due() -> None:
    # In the order answers came, not the order requests were due.
    found = windows([100.0, 5.0, 9.0, 7.0], [0.3, 0.05, 0.74, 0.2], 0.25)

    assert found == [(0.0, 2, 6.0, 7.0), (0.25, 1, 100.0, 100.0), (0.5, 1, 9.0, 9.0)]
