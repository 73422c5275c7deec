"""The per-partition coalescer: batches while busy, one at a time per key, answers in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ringfence.domain.errors import Unavailable
from ringfence.domain.operations import Bucket, ItemResult
from ringfence.services.coalescer import Coalescer


class Recorder:
    """A batch runner that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, requests: Sequence[str]) -> list[ItemResult]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.batches.append(list(requests))
        await self.release.wait()
        self.running -= 1
        return [
            ItemResult(index, request, Bucket.SUCCESS, {"answer": request.upper()})
            for index, request in enumerate(requests)
        ]


async def test_an_idle_key_runs_a_batch_of_one_at_once() -> None:
    coalescer, run = Coalescer(), Recorder()

    result = await coalescer.submit("p1", "a", run)

    assert run.batches == [["a"]]
    assert result.body == {"answer": "A"}
    assert result.index == 0


async def test_operations_arriving_while_a_batch_runs_form_the_next_batch_in_order() -> None:
    coalescer, run = Coalescer(), Recorder()
    run.release.clear()
    first = asyncio.create_task(coalescer.submit("p1", "a", run))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(coalescer.submit("p1", name, run)) for name in "bcd"]
    await asyncio.sleep(0)
    run.release.set()

    results = await asyncio.gather(first, *waiting)

    assert run.batches == [["a"], ["b", "c", "d"]]
    assert [r.body["answer"] for r in results] == ["A", "B", "C", "D"]
    assert [r.index for r in results] == [0, 0, 1, 2]  # each its own batch's result
    assert run.most_running == 1


async def test_different_keys_run_side_by_side() -> None:
    coalescer, run = Coalescer(), Recorder()
    run.release.clear()
    tasks = [asyncio.create_task(coalescer.submit(key, key, run)) for key in ("p1", "p2")]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    running = run.running
    run.release.set()
    await asyncio.gather(*tasks)

    assert running == 2


async def test_a_batch_is_never_larger_than_the_limit() -> None:
    coalescer, run = Coalescer(max_batch=2), Recorder()
    run.release.clear()
    tasks = [asyncio.create_task(coalescer.submit("p1", name, run)) for name in "abcde"]
    await asyncio.sleep(0)
    run.release.set()
    await asyncio.gather(*tasks)

    assert run.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_failing_batch_fails_each_of_its_operations_and_the_next_batch_still_runs() -> None:
    coalescer = Coalescer()
    calls: list[list[str]] = []
    gate = asyncio.Event()

    async def run(requests: Sequence[str]) -> list[ItemResult]:
        calls.append(list(requests))
        await gate.wait()
        if "boom" in requests:
            raise Unavailable("database-unavailable", "down")
        return [ItemResult(0, r, Bucket.SUCCESS, {}) for r in requests]

    first = asyncio.create_task(coalescer.submit("p1", "boom", run))
    await asyncio.sleep(0)
    second = asyncio.create_task(coalescer.submit("p1", "ok", run))
    await asyncio.sleep(0)
    gate.set()

    with pytest.raises(Unavailable):
        await first
    assert (await second).bucket is Bucket.SUCCESS
    assert calls == [["boom"], ["ok"]]


async def test_a_key_is_forgotten_once_its_queue_is_empty() -> None:
    coalescer, run = Coalescer(), Recorder()

    await coalescer.submit("p1", "a", run)
    await coalescer.submit("p1", "b", run)

    assert run.batches == [["a"], ["b"]]
    assert coalescer.idle
