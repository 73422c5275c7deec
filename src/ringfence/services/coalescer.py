"""The coalescer: concurrent single operations, one transaction.

A flash sale sends many consumes at one product at once. Run one by one, each holds the
partition's lock for a whole transaction and the others wait, so throughput is one operation per
transaction. Spread over many products, each operation is its own transaction and its own
commit. The coalescer queues the operations that arrive under one key (the API uses
environment, kind and caller) while a batch of that key is running, and runs the queue as the
next batch: one transaction that locks each partition it touches (in sorted order, so batches
never deadlock), many operations, one commit.

Each operation still gets exactly the outcome it would have had alone, in arrival order: the
batch runner (:func:`~ringfence.services.mutations.run_mutations`) decides them one after the
other on the state the previous ones left. When a key is idle a batch holds one operation, so
nothing waits. The database stays the single source of truth: several server processes each
coalesce their own operations and serialize on the partitions' locks as before, and an
operation is answered only after its batch committed.

The API also checks the bearer tokens of concurrent requests through a coalescer: one query
per batch of requests, each read starting after its request arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["MAX_BATCH", "Coalescer"]

MAX_BATCH = 256
"""Most operations in one batch: bounds how long one transaction holds its partition."""

Request = TypeVar("Request")
Result = TypeVar("Result")
Batch = Callable[[Sequence[Request]], Awaitable[Sequence[Result]]]
"""Runs a batch: one result per request, in order."""


@dataclass
class _Queue:
    run: Batch[Any, Any]
    waiting: list[tuple[Any, asyncio.Future[Any]]] = field(default_factory=list)


class Coalescer:
    """Runs operations submitted under the same key in batches, one batch at a time per key."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._max_batch = max_batch
        self._queues: dict[Hashable, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """No batch is running or waiting."""
        return not self._queues

    async def submit(self, key: Hashable, request: Request, run: Batch[Request, Result]) -> Result:
        """Run ``request`` in the next batch of ``key``; ``run`` runs a batch of that key.

        Operations under one key must be runnable together by any of their ``run``s (the key
        holds what they share: environment, kind, caller and partition).
        """
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(run)
            task = asyncio.create_task(self._drain(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.waiting.append((request, future))
        return await future

    async def _drain(self, key: Hashable) -> None:
        queue = self._queues[key]
        try:
            while queue.waiting:
                batch = queue.waiting[: self._max_batch]
                del queue.waiting[: self._max_batch]
                try:
                    results = await queue.run([request for request, _ in batch])
                except BaseException as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            del self._queues[key]
            for _, future in queue.waiting:  # only if cancelled mid-way
                if not future.done():
                    future.cancel()
