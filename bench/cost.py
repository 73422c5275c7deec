"""CPU per consume: where hot_consume's bound is, measured from the processes' own counters.

``python -m bench.cost`` serves a new PostgreSQL database with ``ringfence serve --workers 2``,
consumes one product over HTTP with wrk (64 clients, 6 s) and prints, per acknowledged consume,
the CPU time of the server processes and of every PostgreSQL process (from ``/proc``), and the
transactions committed, with one server process's batch figures from ``/metrics`` (mean batch
size, mean time of each step of a batch). Throughput on a shared 2-core machine moves with
everything else it runs; CPU per operation moves much less, so two versions are compared by
alternating runs of this command (``PYTHONPATH=<other checkout>/src`` serves the other
version).

``BENCH_WORKLOAD=bulk`` posts on-hand bulk calls of 512 events at random products of 10,000
instead (4 clients; figures per event), as ``bulk_ingest`` does; ``BENCH_WORKLOAD=spread``
consumes at random products of 10,000, each allocated at a 4-level path, as ``spread_consume``
does; ``BENCH_WORKLOAD=trivial`` posts the same consumes to ``trivial_post``'s app, which
parses the body and answers (its CPU per request is what any endpoint pays before its own
work: the HTTP server, the framework, the load generator's share aside).

``BENCH_CLIENTS``, ``BENCH_SECONDS``, ``BENCH_RUNS`` and ``BENCH_WORKERS`` (server processes)
change the defaults; ``BENCH_PYSPY=1`` also records each server process with py-spy (200 Hz,
raw stacks in ``bench/results/pyspy-<pid>.txt``; py-spy is not installed by the project:
``pip install py-spy``); ``BENCH_PYSPY=native`` records C frames too (libpq, system calls).
py-spy samples without pausing the processes (``--nonblocking``); it still takes CPU from
the same cores, so a recorded run's shares are its figures, not its rate.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

from bench.harness import (
    RESULTS,
    Run,
    Server,
    cli,
    postgresql_database,
    ringfence_server,
    sqlalchemy_url,
    trivial_server,
)
from bench.workloads import (
    BULK_EVENTS,
    HOT_PATH,
    SPREAD_PATH,
    SPREAD_PRODUCTS,
    Bench,
    consume_rest,
    hot_wrk,
    onhand_wrk,
    operations_wrk,
    setup,
    setup_spread,
)

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int], *, kernel_only: bool = False) -> float:
    """CPU seconds the processes used so far: user and system time, or system time only."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # ended between listing and reading
        total += int(fields[12]) + (0 if kernel_only else int(fields[11]))  # stime, utime
    return total / TICKS


def _descendants(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    children = [int(child) for child in found.stdout.split()]
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _postgresql_processes() -> list[int]:
    found = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def _pyspy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else (shutil.which("py-spy") or "py-spy")


def _batches(url: str) -> dict[str, float]:
    """Mean batch size and mean time of each step of a batch, from ``/metrics`` (the figures
    of whichever server process answers: each process counts its own)."""
    sums: dict[tuple[str, str], float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        for metric in ("ringfence_batch_operations", "ringfence_batch_duration_seconds"):
            for part in ("_sum", "_count"):
                if name.startswith(metric + part + "{"):
                    step = name.partition('step="')[2].partition('"')[0]
                    key = (metric + ("." + step if step else ""), part)
                    sums[key] = sums.get(key, 0.0) + float(value)
    figures = {}
    for (metric, part), total in sums.items():
        if part == "_sum" and sums.get((metric, "_count")):
            mean = total / sums[(metric, "_count")]
            label = metric.replace("ringfence_batch_operations", "batch_size_mean").replace(
                "ringfence_batch_duration_seconds.", "batch_ms_"
            )
            figures[label] = round(mean if label == "batch_size_mean" else mean * 1000, 2)
    return dict(sorted(figures.items()))


def _commits(database: str) -> int:
    with psycopg.connect(database, autocommit=True) as connection:
        row = connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def hot_product(
    database: str, server: Server, seconds: float, environment: str
) -> tuple[Bench, str]:
    """``server``'s bench in a new ``environment``, with one product of 10^9 units in stock on
    :data:`~bench.workloads.HOT_PATH`; the product's id."""
    bench = Bench(
        database=database,
        ringfence=server,
        trivial=server,
        token="",
        seconds=seconds,
        rounds=1,
        progress=lambda message: print(message, file=sys.stderr),  # noqa: T201
    )
    bench.use(environment)
    product = f"hot-{secrets.token_hex(3)}"
    setup(bench, {product: (10**9, HOT_PATH, 10**9)})
    bench.vacuum()
    return bench, product


def spread_products(database: str, server: Server, seconds: float, environment: str) -> Bench:
    """``server``'s bench in a new ``environment``, its products set up as ``spread_consume``
    sets them up (:func:`~bench.workloads.setup_spread`)."""
    bench = hot_product(database, server, seconds, environment)[0]
    setup_spread(bench)
    bench.vacuum()
    return bench


def main() -> None:
    workload = os.environ.get("BENCH_WORKLOAD", "hot")
    if workload not in ("hot", "bulk", "spread", "trivial"):
        raise SystemExit(f"BENCH_WORKLOAD is hot, bulk, spread or trivial, not {workload!r}")
    bulk = workload == "bulk"
    clients = int(os.environ.get("BENCH_CLIENTS", "4" if bulk else "64"))
    seconds = float(os.environ.get("BENCH_SECONDS", "6"))
    runs = int(os.environ.get("BENCH_RUNS", "1"))
    processes = int(os.environ.get("BENCH_WORKERS", "2"))
    pyspy = os.environ.get("BENCH_PYSPY", "") not in ("", "0")
    native = ("--native",) if os.environ.get("BENCH_PYSPY") == "native" else ()
    with postgresql_database("cost") as database:
        url = sqlalchemy_url(database)
        cli(url, "db", "upgrade")
        with ringfence_server(url, workers=processes) as ringfence, ExitStack() as stack:
            if workload == "spread":
                bench, product = spread_products(database, ringfence, seconds, "cost"), ""
            else:  # trivial_post reads no stock: its bench needs only a token
                bench, product = hot_product(database, ringfence, seconds, "cost")
            server = ringfence
            if workload == "trivial":
                server = stack.enter_context(trivial_server(workers=processes))
            events = BULK_EVENTS if bulk else 1

            def load(seconds: float) -> Run:
                if bulk:
                    return onhand_wrk(
                        server.url, bench.environment, bench.token, events, clients, seconds
                    )
                if workload in ("spread", "trivial"):
                    return operations_wrk(
                        server.url,
                        path=f"{bench.api}/allocation/consume",
                        token=bench.token,
                        clients=clients,
                        seconds=seconds,
                        products=SPREAD_PRODUCTS,
                        product_prefix="sp-",
                        rest=consume_rest(SPREAD_PATH),
                    )
                return hot_wrk(
                    server.url, bench.environment, bench.token, product, clients, seconds
                )

            load(2)  # warm-up
            # One worker serves in the process started; more are its children.
            workers = _descendants(server.process.pid) or [server.process.pid]
            if pyspy:
                RESULTS.mkdir(parents=True, exist_ok=True)
            for _ in range(runs):
                spies = [
                    subprocess.Popen(
                        [
                            *(_pyspy(), "record", "--nonblocking", *native),
                            *("-r", "200", "-f", "raw"),
                            *("-p", str(pid)),
                            *("-d", str(int(seconds)), "-o", str(RESULTS / f"pyspy-{pid}.txt")),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for pid in (workers if pyspy else [])
                ]
                commits = _commits(database)
                python, postgresql = _cpu_seconds(workers), _cpu_seconds(_postgresql_processes())
                kernel = _cpu_seconds(workers, kernel_only=True)
                run = load(seconds)
                python = _cpu_seconds(workers) - python
                kernel = _cpu_seconds(workers, kernel_only=True) - kernel
                postgresql = _cpu_seconds(_postgresql_processes()) - postgresql
                commits = _commits(database) - commits
                for spy in spies:
                    spy.wait()
                done = run.statuses.get("200", 0) * events
                sys.stdout.write(
                    json.dumps(
                        {
                            "clients": clients,
                            "workers": processes,
                            "workload": workload,
                            "ops_per_s": round(run.ops_per_s * events),
                            "p50_ms": run.p50_ms,
                            "p99_ms": run.p99_ms,
                            "statuses": run.statuses,
                            "server_cpu_us_per_op": round(python / done * 1e6),
                            "of_which_kernel_us": round(kernel / done * 1e6),
                            "postgresql_cpu_us_per_op": round(postgresql / done * 1e6),
                            "ops_per_commit": round(done / max(commits, 1), 1),
                            "one_process": _batches(server.url) if server is ringfence else {},
                        }
                    )
                    + "\n"
                )


if __name__ == "__main__":
    main()
