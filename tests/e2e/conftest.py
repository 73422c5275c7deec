"""End-to-end fixtures: the real ``ringfence`` command and a real server over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import create_postgresql_database, drop_postgresql_database

RINGFENCE = [sys.executable, "-m", "ringfence.cli"]


@dataclass(frozen=True)
class Cli:
    """Runs ``ringfence`` against one database, in a working directory of its own."""

    database_url: str
    cwd: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "RINGFENCE_DATABASE_URL": self.database_url}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*RINGFENCE, *args],
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"ringfence {' '.join(args)} exited {result.returncode}\n{result.stderr}"
            )
        return result

    def token(self, environment_id: str, role: str, *options: str) -> str:
        output = self.run("token", "create", "--env", environment_id, "--role", role, *options)
        return output.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A ``ringfence serve`` process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, no flush, nothing."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    cli: Cli, *, workers: int = 1, extra: Sequence[str] = (), port: int | None = None
) -> Server:
    port = port or free_port()
    log = cli.cwd / f"server-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*RINGFENCE, "serve", "--port", str(port), "--workers", str(workers), *extra],
            cwd=cli.cwd,
            env=cli.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"the server did not become ready:\n{log.read_text()}")


@pytest.fixture(params=["sqlite", "postgresql"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """A fresh database of each kind (created by the command itself for SQLite)."""
    if request.param == "sqlite":
        yield Cli(f"sqlite:///{tmp_path / 'ringfence.db'}", tmp_path)
        return
    url = create_postgresql_database("ringfence_e2e")
    try:
        runner = Cli(url, tmp_path)
        runner.run("db", "upgrade")
        yield runner
    finally:
        drop_postgresql_database(url)


@pytest.fixture
def server(cli: Cli) -> Iterator[Server]:
    running = start_server(cli)
    yield running
    running.stop()
