"""Dynamic batching per graph: concurrent requests are gathered and run as one batch, results split back.

One :class:`GraphBatcher` per served graph owns one thread, so a graph's session (and its IOBinding
buffers) is never entered twice at once. A batch closes when it holds ``max_batch`` items or
``max_delay`` seconds after its first request arrived, whichever comes first (Triton's
``max_queue_delay``); a request larger than ``max_batch`` runs alone, never split.

A graph whose batches take less than :data:`INLINE_BELOW_S` (the MNIST autoencoder: tens of microseconds)
runs on the event loop itself: waking a thread for it costs more than the graph, and one batch at a time
is still all that ever enters the session. Larger graphs run on the batcher's thread, so the loop keeps
accepting requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

RunBatch = Callable[[list[np.ndarray]], list[np.ndarray]]
INLINE_BELOW_S = 0.002
SMOOTHING = 0.2  # weight of the newest batch in the running mean of batch times


@dataclass
class Pending:
    inputs: list[np.ndarray]
    future: asyncio.Future[list[np.ndarray]]

    @property
    def items(self) -> int:
        return int(self.inputs[0].shape[0])


@dataclass
class BatchStats:
    """Counters a test or benchmark reads: how many batches ran and how many items they held."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def record(self, items: int) -> None:
        self.batches += 1
        self.items += items
        self.largest = max(self.largest, items)
        self.sizes[items] = self.sizes.get(items, 0) + 1


class GraphBatcher:
    """Gathers requests for one graph (arrays with a leading batch axis) into batches run by ``run_batch``."""

    def __init__(self, name: str, run_batch: RunBatch, max_batch: int, max_delay_s: float) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.name = name
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_delay_s = max(0.0, max_delay_s)
        self.stats = BatchStats()
        self._queue: asyncio.Queue[Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._carry: Pending | None = None
        self._batch_seconds: float | None = None  # running mean; None until the first batch ran on the thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"zoo-serve-{name}")

    async def submit(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Queue one request (every input has the same leading batch size) and wait for its outputs."""
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._loop(), name=f"batcher {self.name}")
        pending = Pending(list(inputs), loop.create_future())
        await self._queue.put(pending)
        return await pending.future

    async def _next(self, timeout: float | None) -> Pending | None:
        assert self._queue is not None
        if self._carry is not None:
            pending, self._carry = self._carry, None
            return pending
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            with contextlib.suppress(asyncio.QueueEmpty):
                return self._queue.get_nowait()
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _gather(self) -> list[Pending]:
        first = await self._next(None)
        assert first is not None
        batch, items = [first], first.items
        deadline = time.monotonic() + self.max_delay_s
        while items < self.max_batch:
            pending = await self._next(deadline - time.monotonic())
            if pending is None:
                break
            if items + pending.items > self.max_batch:
                self._carry = pending  # starts the next batch
                break
            batch.append(pending)
            items += pending.items
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [p for p in batch if not p.future.done()]  # a client that went away is dropped
            if not live:
                continue
            inputs = [np.concatenate([p.inputs[i] for p in live]) if len(live) > 1 else live[0].inputs[i]
                      for i in range(len(live[0].inputs))]
            try:
                outputs = await self._run(loop, inputs)
            except Exception as error:  # every request of the batch gets the error; the loop goes on
                for pending in live:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            self.stats.record(sum(p.items for p in live))
            start = 0
            for pending in live:
                stop = start + pending.items
                if not pending.future.done():
                    pending.future.set_result([out[start:stop] for out in outputs])
                start = stop

    def _timed(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run one batch and fold its time (the graph's, not a thread hand-over's) into the running mean."""
        start = time.perf_counter()
        outputs = self.run_batch(inputs)
        seconds = time.perf_counter() - start
        self._batch_seconds = seconds if self._batch_seconds is None else (
            (1 - SMOOTHING) * self._batch_seconds + SMOOTHING * seconds)
        return outputs

    async def _run(self, loop: asyncio.AbstractEventLoop, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if self._batch_seconds is not None and self._batch_seconds < INLINE_BELOW_S:
            return self._timed(inputs)
        return await loop.run_in_executor(self._executor, self._timed, inputs)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)
