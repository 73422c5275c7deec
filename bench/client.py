"""The asyncio load client, run as its own process: ``python -m bench.client MODE OPTIONS_JSON``.

Modes (each prints one JSON line):

- ``burst``: send ``total`` POSTs with ``concurrency`` in flight; every answer's status and the
  time it arrived (the flash sale).
- ``open``: open-loop POSTs at ``rate`` per second for ``seconds``; latency is measured from when
  each request was *due*, so a stalled server cannot hide its queue (no coordinated omission).
- ``serial``: one client, one request after another (idle latency, query latency).

``burst`` and ``open`` also report the client's own CPU time (``cpu_seconds``) over their
``seconds``: near 1 CPU second per second, the client, not the server, sets the pace.

Bodies come from ``body`` (a JSON object, ``{id}`` replaced by a unique id) or ``bodies``
(a list used round-robin).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from itertools import count
from typing import Any

import aiohttp


def _bodies(options: dict[str, Any]) -> Any:
    tag = options["tag"]
    if "bodies" in options:
        bodies = [json.dumps(body).encode() for body in options["bodies"]]
        for number in count():
            yield bodies[number % len(bodies)]
    template = json.dumps(options["body"])
    for number in count():
        yield template.replace("{id}", f"{tag}-{number}").encode()


async def _session(options: dict[str, Any], limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=options["url"],
        headers={
            "Authorization": f"Bearer {options['token']}",
            "Content-Type": "application/json",
        },
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def burst(options: dict[str, Any]) -> dict[str, Any]:
    total, concurrency = options["total"], options["concurrency"]
    bodies = _bodies(options)
    payloads = [next(bodies) for _ in range(total)]
    answers: list[tuple[float, int]] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    async with await _session(options, concurrency) as http:
        # Open every connection first, so the sale measures selling, not TCP handshakes.
        await asyncio.gather(*(http.get("/healthz") for _ in range(concurrency)))
        started, cpu = time.perf_counter(), time.process_time()

        async def worker() -> None:
            while not queue.empty():
                payload = queue.get_nowait()
                async with http.post(options["path"], data=payload) as response:
                    await response.read()
                    answers.append((time.perf_counter() - started, response.status))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"answers": answers, "seconds": elapsed, "cpu_seconds": cpu}


async def open_loop(options: dict[str, Any]) -> dict[str, Any]:
    rate, seconds = options["rate"], options["seconds"]
    bodies = _bodies(options)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    async with await _session(options, options.get("connections", 256)) as http:

        async def one(due: float, payload: bytes) -> None:
            async with http.post(options["path"], data=payload) as response:
                await response.read()
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            latencies.append((time.perf_counter() - due) * 1000)

        started, cpu = time.perf_counter(), time.process_time()
        tasks = []
        total = int(rate * seconds)
        for number in range(total):
            due = started + number / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due, next(bodies))))
        await asyncio.gather(*tasks)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"latencies_ms": latencies, "seconds": elapsed, "statuses": statuses, "cpu_seconds": cpu}


async def serial(options: dict[str, Any]) -> dict[str, Any]:
    bodies = _bodies(options)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    async with await _session(options, 1) as http:
        for number in range(options["warmup"] + options["requests"]):
            began = time.perf_counter()
            async with http.post(options["path"], data=next(bodies)) as response:
                await response.read()
                if number >= options["warmup"]:
                    statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            if number >= options["warmup"]:
                latencies.append((time.perf_counter() - began) * 1000)
    return {"latencies_ms": latencies, "seconds": sum(latencies) / 1000, "statuses": statuses}


MODES = {"burst": burst, "open": open_loop, "serial": serial}


def main() -> None:
    mode, raw = sys.argv[1], sys.argv[2]
    report = asyncio.run(MODES[mode](json.loads(raw)))
    print(json.dumps(report))  # noqa: T201 - the report is this program's output


if __name__ == "__main__":
    main()
