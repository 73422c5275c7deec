"""An open loop's latency over time: where a run's tail comes from.

``python -m bench.trace`` serves a new PostgreSQL database with ``ringfence serve --workers 2``,
consumes one product with :mod:`bench.client`'s open loop (as ``latency_loaded`` does, after the
same 0.5 s warm-up) and prints the run's p50 and p99, then each window of the run: how many
requests were due in it, and their median and largest latency. A tail that comes from a few
windows is a stall (of the server, the database, or the client); one spread over every window
is queueing.

``BENCH_RATE`` (requests/s, default 3,000), ``BENCH_SECONDS`` (default 10), ``BENCH_WINDOW_MS``
(default 250) and ``BENCH_WORKERS`` change the defaults. Windows whose median is over three
times the run's are marked.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections import defaultdict

from bench.cost import hot_product
from bench.harness import (
    cli,
    percentile,
    postgresql_database,
    ringfence_server,
    sqlalchemy_url,
)
from bench.workloads import open_loop_consumes


def windows(
    latencies_ms: list[float], due_s: list[float], window_s: float
) -> list[tuple[float, int, float, float]]:
    """Each window's start (s), how many requests were due in it, their median and largest
    latency (ms), in order."""
    by_window: dict[int, list[float]] = defaultdict(list)
    for latency, due in zip(latencies_ms, due_s, strict=True):
        by_window[int(due / window_s)].append(latency)
    return [
        (number * window_s, len(found), statistics.median(found), max(found))
        for number, found in sorted(by_window.items())
    ]


def main() -> None:
    rate = float(os.environ.get("BENCH_RATE", "3000"))
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    window_s = float(os.environ.get("BENCH_WINDOW_MS", "250")) / 1000
    processes = int(os.environ.get("BENCH_WORKERS", "2"))
    with postgresql_database("trace") as database:
        url = sqlalchemy_url(database)
        cli(url, "db", "upgrade")
        with ringfence_server(url, workers=processes) as server:
            bench, product = hot_product(database, server, seconds, "trace")
            report = open_loop_consumes(bench, product, rate)
    latencies, dues = report["latencies_ms"], report["due_s"]
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    out = sys.stdout
    out.write(
        f"{len(latencies)} requests at {rate:g}/s over {seconds:g} s: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms ({p99 / p50:.1f} x), statuses {report['statuses']}\n"
    )
    for start, count, median, largest in windows(latencies, dues, window_s):
        mark = "  <-" if median > 3 * p50 else ""
        out.write(
            f"{start:7.2f} s  {count:5d} due  p50 {median:7.1f} ms  max {largest:7.1f} ms{mark}\n"
        )


if __name__ == "__main__":
    main()
