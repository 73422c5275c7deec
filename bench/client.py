"""The asyncio load client, run as its own process:
``python -m bench.client MODE OPTIONS_JSON REPORT_PATH``.

Modes (each writes its report, a JSON object, to ``REPORT_PATH``):

- ``burst``: send ``total`` POSTs with ``concurrency`` in flight; every answer's status and the
  time it arrived (the flash sale).
- ``open``: open-loop POSTs at ``rate`` per second for ``seconds``; latency is measured from when
  each request was *due*, so a stalled server cannot hide its queue (no coordinated omission).
  With ``warmup_seconds``, the schedule starts that much earlier and those requests are not
  counted. ``due_s`` holds when each counted request was due (seconds from the start, in the
  order of ``latencies_ms``).
- ``serial``: one client, one request after another (idle latency, query latency).

``burst`` and ``open`` also report the client's own CPU time (``cpu_seconds``) over their
``seconds``: near 1 CPU second per second, the client, not the server, sets the pace.

Bodies come from ``body`` (a JSON object, ``{id}`` replaced by a unique id) or ``bodies``
(a list used round-robin).

The client shares the machine's cores with the server it measures, so it is kept lean: uvloop's
event loop, keep-alive HTTP/1.1 connections on asyncio protocols, each request's head built
once, and answers parsed by httptools (both are uvicorn's own, installed with the project).

A measuring instrument must not pause. The open loop once kept a task for every request it
sent, and Python's cyclic garbage collector, walking that growing heap, paused the client for
about 100 ms every few seconds at 3,900 requests/s; every request due meanwhile was counted
late (p99 84 ms against 22 ms with the collector off, for the same server). Finished requests'
tasks are now freed at once, and the client runs with the collector off besides, as ``timeit``
times code: what a run allocates is freed by reference counting, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import uvloop


def _bodies(options: dict[str, Any]) -> Iterator[bytes]:
    tag = options["tag"]
    if "bodies" in options:
        bodies = [json.dumps(body).encode() for body in options["bodies"]]
        for number in count():
            yield bodies[number % len(bodies)]
    template = json.dumps(options["body"])
    for number in count():
        yield template.replace("{id}", f"{tag}-{number}").encode()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, answered with its status code."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:  # httptools: the whole answer, body included, is in
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(self._parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc or ConnectionError("the server closed the connection"))

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def send(self, request: bytes) -> int:
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._answer


class _Client:
    """Connections to one server, up to ``limit``, each reused for the next request."""

    def __init__(self, options: dict[str, Any], limit: int) -> None:
        url = urlsplit(options["url"])
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._head = (
            f"POST {options['path']} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {options['token']}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._all: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self._host, self._port)
        self._all.append(connection)
        return connection

    async def connect(self, number: int) -> None:
        """Open ``number`` connections now, so what follows measures requests, not handshakes."""
        self._idle.extend(await asyncio.gather(*(self._connect() for _ in range(number))))

    async def post(self, body: bytes) -> int:
        request = b"%s%d\r\n\r\n%s" % (self._head, len(body), body)
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            if connection is None or not connection.open:
                connection = await self._connect()
            try:
                status = await connection.send(request)
            except ConnectionError:
                # The server closed an idle connection as this request left (its keep-alive
                # timeout): sent again on a new one. Every request carries its own operation
                # id, so a request the server did take is answered as a replay, not done twice.
                connection = await self._connect()
                status = await connection.send(request)
            self._idle.append(connection)
            return status

    def close(self) -> None:
        for connection in self._all:
            connection.close()


async def burst(options: dict[str, Any]) -> dict[str, Any]:
    total, concurrency = options["total"], options["concurrency"]
    bodies = _bodies(options)
    payloads = [next(bodies) for _ in range(total)]
    payloads.reverse()
    answers: list[tuple[float, int]] = []
    http = _Client(options, concurrency)
    await http.connect(concurrency)
    started, cpu = time.perf_counter(), time.process_time()

    async def worker() -> None:
        while payloads:
            status = await http.post(payloads.pop())
            answers.append((time.perf_counter() - started, status))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    http.close()
    return {"answers": answers, "seconds": elapsed, "cpu_seconds": cpu}


async def open_loop(options: dict[str, Any]) -> dict[str, Any]:
    rate, seconds = options["rate"], options["seconds"]
    warmup = int(rate * options.get("warmup_seconds", 0.0))
    bodies = _bodies(options)
    latencies: list[float] = []
    dues: list[float] = []
    statuses: dict[str, int] = {}
    http = _Client(options, options.get("connections", 256))
    await http.connect(options.get("connections", 256))

    async def one(due: float, payload: bytes, counted: bool) -> None:
        status = str(await http.post(payload))
        if counted:
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append((time.perf_counter() - due) * 1000)
            dues.append(due - started)

    begun = time.perf_counter()
    started, cpu = begun + warmup / rate, 0.0
    pending: set[asyncio.Task[None]] = set()  # only those in flight: finished ones are freed
    for number in range(warmup + int(rate * seconds)):
        due = begun + number / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if number == warmup:
            cpu = time.process_time()
        task = asyncio.create_task(one(due, next(bodies), number >= warmup))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    http.close()
    return {
        "latencies_ms": latencies,
        "due_s": dues,
        "seconds": elapsed,
        "statuses": statuses,
        "cpu_seconds": cpu,
    }


async def serial(options: dict[str, Any]) -> dict[str, Any]:
    bodies = _bodies(options)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    http = _Client(options, 1)
    for number in range(options["warmup"] + options["requests"]):
        began = time.perf_counter()
        status = await http.post(next(bodies))
        if number >= options["warmup"]:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            latencies.append((time.perf_counter() - began) * 1000)
    http.close()
    return {"latencies_ms": latencies, "seconds": sum(latencies) / 1000, "statuses": statuses}


MODES = {"burst": burst, "open": open_loop, "serial": serial}


def main() -> None:
    mode, raw, into = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    gc.disable()  # no pauses of the instrument's own (see the module's docstring)
    report = uvloop.run(MODES[mode](json.loads(raw)))
    into.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
