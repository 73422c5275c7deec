"""``make bench``: run the workloads, print the table, write ``bench/results/latest.json``.

Quick mode (the default) runs every workload three times for a few seconds each and takes
under three minutes; ``BENCH_FULL=1`` runs longer and sweeps hot_consume over client counts for
the chart in docs/performance.md. ``BENCH_ONLY=hot_consume,flash_sale`` runs a subset.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import workloads
from bench.harness import (
    RAW_HOT_UPDATE,
    RESULTS,
    BenchError,
    cli,
    machine,
    median_run,
    pgbench,
    postgresql_database,
    prepare_raw_hot_update,
    require_tools,
    ringfence_server,
    sqlalchemy_url,
    trivial_server,
)
from bench.workloads import Bench, Result
from ringfence.domain.access import Role

RAW_CLIENTS_MAX = 64
console = Console(width=None if sys.stdout.isatty() else 160)

ALL = (
    "hot_consume",
    "spread_consume",
    "flash_sale",
    "bulk_ingest",
    "latency",
    "sqlite_hot_consume",
    "index_query",  # last: its million rows would slow every VACUUM after it
)


def main() -> int:
    full = os.environ.get("BENCH_FULL", "") not in ("", "0")
    only = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
    unknown = set(only) - set(ALL)
    if unknown:
        console.print(f"[red]unknown workloads {sorted(unknown)}; choose from {', '.join(ALL)}")
        return 2
    chosen = only or list(ALL)
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    seconds = float(os.environ.get("BENCH_SECONDS", "10" if full else "2"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    hot_clients = [int(n) for n in os.environ.get("BENCH_HOT_CLIENTS", "32,64").split(",") if n]
    if rounds < 1 or not hot_clients or min(hot_clients) < 1:
        console.print("[red]BENCH_ROUNDS and BENCH_HOT_CLIENTS must be at least 1")
        return 2
    try:
        require_tools()
        return _run(
            chosen,
            full=full,
            workers=workers,
            seconds=seconds,
            rounds=rounds,
            hot_clients=hot_clients,
        )
    except BenchError as error:
        console.print(f"[bold red]bench failed:[/] {error}")
        return 1


def _say(message: str) -> None:
    console.print(f"  {message}")


def _run(
    chosen: list[str],
    *,
    full: bool,
    workers: int,
    seconds: float,
    rounds: int,
    hot_clients: list[int],
) -> int:
    started = time.perf_counter()
    results: list[Result] = []
    sweep: dict[str, list[dict[str, float]]] = {}
    info = machine()
    console.print(
        f"[bold]Ringfence benchmarks[/] ({'full' if full else 'quick'} mode, {seconds:g} s runs, "
        f"{workers} server workers, median of {rounds}) on {info['cpus']} x {info['cpu_model']}"
    )
    with ExitStack() as stack:
        database = stack.enter_context(postgresql_database("ringfence_bench"))
        url = sqlalchemy_url(database)
        cli(url, "db", "upgrade")
        bench_token = workloads.issue_token(database, workloads.ENVIRONMENT)
        query_token = workloads.issue_token(database, workloads.QUERY_ENVIRONMENT, Role.READER)
        ringfence = stack.enter_context(ringfence_server(url, workers=workers))
        trivial_pg = stack.enter_context(trivial_server(workers=workers))
        bench = Bench(database, ringfence, trivial_pg, bench_token, seconds, rounds, _say, full)

        def step(name: str) -> None:
            console.print(f"[cyan]{name}[/] ({time.perf_counter() - started:.0f} s)")

        hot_rate = 0.0
        if "hot_consume" in chosen or "flash_sale" in chosen or "latency" in chosen:
            step("hot_consume")
            for clients in hot_clients:
                result = workloads.hot_consume(bench, clients)
                workloads.judge_hot(result)
                results.append(result)
                hot_rate = max(hot_rate, result.run.ops_per_s)
        if "spread_consume" in chosen:
            step("spread_consume")
            results.append(workloads.spread_consume(bench))
        if "flash_sale" in chosen:
            step("flash_sale")
            results.append(workloads.flash_sale(bench, hot_rate))
        if "bulk_ingest" in chosen:
            step("bulk_ingest")
            results.extend(workloads.bulk_ingest(bench))
        if "latency" in chosen:
            step("latency")
            results.append(workloads.latency_loaded(bench, hot_rate))
            with ringfence_server(
                url, workers=workers, extra_env={"RINGFENCE_COALESCE": "off"}
            ) as uncoalesced:
                results.append(workloads.latency_idle(bench, uncoalesced))
        if "sqlite_hot_consume" in chosen:
            step("sqlite_hot_consume")
            with tempfile.TemporaryDirectory() as directory:
                sqlite = f"sqlite:///{directory}/ringfence.db"
                cli(sqlite, "db", "upgrade")
                sqlite_token = workloads.issue_token(sqlite, workloads.ENVIRONMENT)
                # One process: SQLite has one writer, and writers of several processes wait on
                # its file lock with sleeps (see docs/performance.md).
                with (
                    ringfence_server(sqlite, workers=1) as server,
                    trivial_server(workers=1) as trivial,
                ):
                    bench.trivial = trivial
                    results.append(
                        workloads.sqlite_hot_consume(bench, server, sqlite_token, sqlite)
                    )
                bench.trivial = trivial_pg
        if "index_query" in chosen:
            step("index_query")
            results.extend(workloads.index_query(bench, query_token))
        if full and "hot_consume" in chosen:
            step("hot_consume sweep")
            bench.use("sweep")
            sweep = _sweep(bench, database)
    elapsed = time.perf_counter() - started
    _table(results)
    report: dict[str, Any] = {
        "machine": {
            **info,
            "mode": "full" if full else "quick",
            "seconds_per_run": seconds,
            "server_workers": workers,
            "rounds": rounds,
            "elapsed_s": round(elapsed, 1),
        },
        "workloads": {result.name: result.as_json() for result in results},
    }
    if sweep:
        report["hot_consume_sweep"] = sweep
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    if full and sweep:
        (RESULTS / "full.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        from bench.chart import draw

        draw(sweep, Path(__file__).resolve().parent.parent / "docs" / "images" / "hot_consume.png")
    console.print(f"wrote {RESULTS / 'latest.json'} in {elapsed:.0f} s")
    bad = [r.name for r in results if r.oversold or r.violations or r.notes.get("lost")]
    if bad:
        console.print(f"[bold red]correctness failures in {', '.join(bad)}[/]")
        return 1
    return 0


def _sweep(bench: Bench, database: str) -> dict[str, list[dict[str, float]]]:
    """hot_consume and raw_hot_update over client counts (median of 3 each), for the chart.

    pgbench holds a database connection per client: beyond RAW_CLIENTS_MAX, PostgreSQL's
    default max_connections (100, with the servers' pools open) refuses it. HTTP clients of
    Ringfence share each process's pool, so its line goes on.
    """
    points: dict[str, list[dict[str, float]]] = {"ringfence": [], "raw_hot_update": []}
    prepare_raw_hot_update(database)
    for clients in (1, 4, 16, 32, 64, 128, 256):
        console.print(f"  sweep: {clients} clients")
        product = f"sweep-{bench.tag()}"
        workloads.setup(bench, {product: (10**9, workloads.HOT_PATH, 10**9)})
        ours, raw = [], []
        for _ in range(bench.rounds):
            bench.vacuum()
            ours.append(
                workloads.hot_wrk(
                    bench.ringfence.url,
                    bench.environment,
                    bench.token,
                    product,
                    clients,
                    bench.seconds,
                )
            )
            if clients <= RAW_CLIENTS_MAX:
                bench.vacuum()
                raw.append(
                    pgbench(database, RAW_HOT_UPDATE, clients=clients, seconds=bench.seconds)
                )
        for name, runs in (("ringfence", ours), ("raw_hot_update", raw)):
            if not runs:
                continue
            run = median_run(runs)
            points[name].append(
                {"clients": clients, "ops_per_s": run.ops_per_s, "p99_ms": run.p99_ms}
            )
    return points


def _table(results: list[Result]) -> None:
    table = Table(
        "workload",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "baseline",
        "baseline ops/s",
        "ratio",
        "oversold",
        "undersold",
        "violations",
        "goal met",
    )
    for result in results:
        data = result.as_json()
        table.add_row(
            result.name,
            f"{data['ops_per_s']:,.0f}",
            f"{data['p50_ms']:.1f}",
            f"{data['p99_ms']:.1f}",
            result.baseline or "",
            f"{data['baseline_ops_per_s']:,.0f}" if data["baseline_ops_per_s"] else "",
            f"{data['ratio']:.2f}" if data["ratio"] is not None else "",
            "" if result.oversold is None else str(result.oversold),
            "" if result.undersold is None else str(result.undersold),
            str(result.violations),
            {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[result.met],
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
