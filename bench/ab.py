"""Two versions of Ringfence compared on one machine whose speed drifts: ``python -m bench.ab``.

A shared 2-core machine's throughput moves by a fifth within the hour, more than most changes
are worth, and separate runs of two versions, minutes apart, compare the machine as much as the
code. This command serves both versions at once, each with its own PostgreSQL database and
``ringfence serve --workers 2``, and loads them in turns of a few seconds, A, B, B, A, ...
(``BENCH_PAIRS`` pairs), so that each pair ran within seconds of itself; for half the pairs A's
server is started first, for the other half B's (served twice, the same version was faster as
the server started second). It prints each turn and, per version, the median consumes/s and
server CPU per consume, and the median of the pairs' ratios B/A of both.

    python -m bench.ab /path/to/other/checkout/src   # A: that source tree; B: this one
    python -m bench.ab a/src b/src                   # two other trees

``BENCH_WORKLOAD=bulk`` posts on-hand bulk calls instead (as ``python -m bench.cost`` does);
``BENCH_CLIENTS`` (32), ``BENCH_SECONDS`` (3 per turn), ``BENCH_PAIRS`` (8) and
``BENCH_WORKERS`` (2) change the defaults.
"""

from __future__ import annotations

import os
import statistics
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.cost import _cpu_seconds, _descendants, hot_product
from bench.harness import ROOT, Server, cli, postgresql_database, ringfence_server, sqlalchemy_url
from bench.workloads import BULK_EVENTS, Bench, hot_wrk, onhand_wrk


@dataclass
class _Side:
    name: str
    source: Path
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Settings:
    bulk: bool
    clients: int
    seconds: float
    processes: int

    @property
    def events(self) -> int:
        return BULK_EVENTS if self.bulk else 1


def _turn(settings: _Settings, side: _Side, server: Server, bench: Bench, product: str) -> None:
    """Load one version for one turn; record its rate and server CPU per operation."""
    workers = _descendants(server.process.pid) or [server.process.pid]
    before = _cpu_seconds(workers)
    if settings.bulk:
        run = onhand_wrk(
            server.url,
            bench.environment,
            bench.token,
            settings.events,
            settings.clients,
            settings.seconds,
        )
    else:
        run = hot_wrk(
            server.url, bench.environment, bench.token, product, settings.clients, settings.seconds
        )
    done = run.statuses.get("200", 0) * settings.events
    side.rates.append(run.ops_per_s * settings.events)
    side.cpu_us.append((_cpu_seconds(workers) - before) / max(done, 1) * 1e6)
    print(  # noqa: T201
        f"{side.name}: {side.rates[-1]:8,.0f}/s  {side.cpu_us[-1]:5.0f} µs server CPU",
        flush=True,
    )


def _session(settings: _Settings, sides: list[_Side], pairs: int) -> None:
    """Serve ``sides`` (started in that order) and load them in ``pairs`` pairs of turns."""
    with ExitStack() as stack:
        served = []
        for side in sides:
            database = stack.enter_context(postgresql_database(f"ab{side.name.lower()}"))
            url = sqlalchemy_url(database)
            version = {"PYTHONPATH": f"{side.source}:{ROOT}"}
            cli(url, "db", "upgrade", extra_env=version)  # the side's own migrations
            server = stack.enter_context(
                ringfence_server(url, workers=settings.processes, extra_env=version)
            )
            bench, product = hot_product(database, server, settings.seconds, "ab")
            served.append((side, server, bench, product))
        for _, server, bench, product in served:  # a warm-up, not counted
            hot_wrk(server.url, bench.environment, bench.token, product, settings.clients, 0.5)
        for pair in range(pairs):
            for turn in served if pair % 2 == 0 else served[::-1]:
                _turn(settings, *turn)


def main() -> None:
    sources = [Path(argument).resolve() for argument in sys.argv[1:]]
    if len(sources) not in (1, 2) or not all(source.is_dir() for source in sources):
        sys.exit("usage: python -m bench.ab <source of A, e.g. ../a/src> [<source of B>]")
    if len(sources) == 1:
        sources.append(ROOT / "src")
    bulk = os.environ.get("BENCH_WORKLOAD", "hot") == "bulk"
    settings = _Settings(
        bulk=bulk,
        clients=int(os.environ.get("BENCH_CLIENTS", "4" if bulk else "32")),
        seconds=float(os.environ.get("BENCH_SECONDS", "3")),
        processes=int(os.environ.get("BENCH_WORKERS", "2")),
    )
    pairs = int(os.environ.get("BENCH_PAIRS", "8"))
    a, b = _Side("A", sources[0]), _Side("B", sources[1])
    # The server started second was the faster one when both served the same version (by
    # about 6%): each version is started first for half the pairs and second for the other.
    _session(settings, [a, b], (pairs + 1) // 2)
    _session(settings, [b, a], pairs // 2)
    ratios = [rate_b / rate_a for rate_a, rate_b in zip(a.rates, b.rates, strict=True)]
    cpu = [cpu_b / cpu_a for cpu_a, cpu_b in zip(a.cpu_us, b.cpu_us, strict=True)]
    for side in (a, b):
        print(  # noqa: T201
            f"{side.name}: median {statistics.median(side.rates):,.0f}/s, "
            f"{statistics.median(side.cpu_us):.0f} µs server CPU per operation"
        )
    print(  # noqa: T201
        f"B/A per pair: {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.3f}"
    )
    print(  # noqa: T201
        f"B/A server CPU per operation, per pair: {', '.join(f'{r:.3f}' for r in cpu)}; "
        f"median {statistics.median(cpu):.3f}"
    )


if __name__ == "__main__":
    main()
