"""What every workload needs: databases, servers, load generators, percentiles.

Load always comes from a separate process: ``wrk`` (with a Lua script that gives every request a
unique operation id) for closed-loop throughput, ``pgbench`` for the raw row-lock baseline, and
an asyncio client (:mod:`bench.client`, run as its own process) for open-loop and counted work.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RINGFENCE = str(BIN / "ringfence")
ADMIN_URL = os.environ.get("BENCH_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/postgres")
LUA = Path(__file__).resolve().parent / "lua"
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
"""Where runs write ``latest.json`` (and ``bench.cost`` its profiles): ``BENCH_RESULTS``."""


class BenchError(RuntimeError):
    """Something the benchmark needs is missing or broke; the message says what to do."""


# -- measurements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One timed run of one load generator."""

    ops_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def median_run(runs: Sequence[Run]) -> Run:
    """The run with the median throughput (its own latencies, so figures stay consistent)."""
    ordered = sorted(runs, key=lambda run: run.ops_per_s)
    return ordered[len(ordered) // 2]


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


# -- the machine -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with_cpuinfo = Path("/proc/cpuinfo")
    if with_cpuinfo.exists():
        for line in with_cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0]
        memory = int(first.split()[1]) * 1024
    with psycopg.connect(ADMIN_URL) as connection:
        server = connection.execute("SHOW server_version").fetchone()
        settings = {
            name: connection.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections")
        }
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "postgresql": server[0] if server else "",
        "postgresql_settings": settings,
        "sqlite": __import__("sqlite3").sqlite_version,
        "wrk": _version(["wrk", "--version"]),
        "pgbench": _version(["pgbench", "--version"]),
        "commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else ""


def require_tools() -> None:
    missing = [tool for tool in ("wrk", "pgbench") if shutil.which(tool) is None]
    if missing:
        raise BenchError(
            f"missing {', '.join(missing)}: install them (Debian: apt-get install wrk "
            "postgresql-client)"
        )
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as error:
        raise BenchError(
            f"PostgreSQL is not reachable at {ADMIN_URL} ({error}); start it or set "
            "BENCH_POSTGRESQL"
        ) from None


# -- databases -------------------------------------------------------------------------------


@contextmanager
def postgresql_database(prefix: str) -> Iterator[str]:
    """A new empty database for the length of the block; yields its libpq URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(database_url: str) -> str:
    """A libpq URL for SQLAlchemy (with psycopg), its query (``?host=/run/postgresql`` for a
    Unix socket, say) kept; any other URL (SQLite's) as it is."""
    url = make_url(database_url)
    if url.drivername != "postgresql":
        return database_url
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def cli(database_url: str, *args: str, extra_env: dict[str, str] | None = None) -> str:
    """Run a ``ringfence`` command (``extra_env`` added to its environment); its standard
    output."""
    done = subprocess.run(
        [RINGFENCE, *args],
        env={
            **os.environ,
            "RINGFENCE_DATABASE_URL": database_url,
            "NO_COLOR": "1",
            **(extra_env or {}),
        },
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"ringfence {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def token(database_url: str, environment: str, role: str = "admin") -> str:
    name = f"bench-{role}-{secrets.token_hex(3)}"
    output = cli(
        database_url, "token", "create", "--env", environment, "--role", role, "--name", name
    )
    return output.strip().splitlines()[-1].strip()


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(command: list[str], env: dict[str, str], port: int, ready_path: str) -> Server:
    log = Path(tempfile.mkstemp(prefix="bench-server-", suffix=".log")[1])
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(server.url + ready_path, timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise BenchError(f"the server did not become ready:\n{log.read_text()}")


@contextmanager
def ringfence_server(
    database_url: str, *, workers: int, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "RINGFENCE_DATABASE_URL": database_url,
        **(extra_env or {}),
    }
    server = _start(
        [
            RINGFENCE,
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env,
        port,
        "/readyz",
    )
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def trivial_server(*, workers: int) -> Iterator[Server]:
    """The minimal FastAPI POST app (:mod:`bench.trivial`) under the same server settings."""
    port = free_port()
    server = _start(
        [
            str(BIN / "uvicorn"),
            "bench.trivial:app",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--proxy-headers",
            "--no-server-header",
        ],
        {**os.environ, "PYTHONPATH": str(ROOT)},
        port,
        "/healthz",
    )
    try:
        yield server
    finally:
        server.stop()


# -- wrk -------------------------------------------------------------------------------------


def wrk(
    url: str,
    *,
    script: str,
    connections: int,
    seconds: float,
    variables: dict[str, Any],
    threads: int = 2,
) -> Run:
    """Closed-loop load: ``connections`` clients, each sending its next request on an answer.

    ``script`` names a Lua file in ``bench/lua``; ``variables`` become its globals (the body, the
    token, a unique run tag for operation ids).
    """
    template = (LUA / script).read_text()
    prelude = "".join(f"{name} = {_lua(value)}\n" for name, value in variables.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(prelude + template)
        path = handle.name
    try:
        done = subprocess.run(
            [
                "wrk",
                f"-t{min(threads, connections)}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                path,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    finally:
        os.unlink(path)
    match = re.search(r"^BENCH (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise BenchError(f"wrk failed:\n{done.stdout}{done.stderr}")
    figures = json.loads(match.group(1))
    return Run(
        ops_per_s=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        requests=figures["requests"],
        statuses={str(code): count for code, count in figures["statuses"].items()},
    )


def _lua(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid Lua string literal here


# -- pgbench ---------------------------------------------------------------------------------


RAW_HOT_UPDATE = "UPDATE t SET qty = qty - 1 WHERE id = 1 AND qty >= 1;\n"


def prepare_raw_hot_update(libpq_url: str) -> None:
    with psycopg.connect(libpq_url, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS t")
        connection.execute("CREATE TABLE t (id integer PRIMARY KEY, qty bigint NOT NULL)")
        connection.execute("INSERT INTO t VALUES (1, 1000000000000)")


def pgbench(libpq_url: str, script: str, *, clients: int, seconds: float) -> Run:
    """pgbench with a custom script; tps and per-transaction latency percentiles from its log."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "script.sql"
        path.write_text(script)
        done = subprocess.run(
            [
                "pgbench",
                "-n",
                "-f",
                str(path),
                "-c",
                str(clients),
                "-j",
                str(min(2, clients)),
                "-T",
                str(max(1, round(seconds))),
                "-l",
                "--log-prefix",
                str(Path(directory) / "txn"),
                libpq_url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        match = re.search(r"tps = ([0-9.]+)", done.stdout)
        if done.returncode != 0 or match is None:
            raise BenchError(f"pgbench failed:\n{done.stdout}{done.stderr}")
        latencies = [
            int(line.split()[2]) / 1000
            for log in Path(directory).glob("txn*")
            for line in log.read_text().splitlines()
            if line
        ]
    return Run(
        ops_per_s=float(match.group(1)),
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        requests=len(latencies),
    )


# -- the asyncio client ----------------------------------------------------------------------


def client(mode: str, **options: Any) -> dict[str, Any]:
    """Run :mod:`bench.client` in its own process; its JSON report (written to a file: a
    report of every latency of a 10 s run is most of a megabyte)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.json"
        done = subprocess.run(
            [sys.executable, "-m", "bench.client", mode, json.dumps(options), str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not path.exists():
            raise BenchError(f"bench.client {mode} failed:\n{done.stdout}{done.stderr}")
        report: dict[str, Any] = json.loads(path.read_text())
    return report


def summary(latencies_ms: Sequence[float], seconds: float) -> Run:
    return Run(
        ops_per_s=len(latencies_ms) / seconds if seconds else 0.0,
        p50_ms=statistics.median(latencies_ms) if latencies_ms else 0.0,
        p99_ms=percentile(latencies_ms, 0.99),
        requests=len(latencies_ms),
    )
