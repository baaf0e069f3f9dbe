"""Dynamic batching for the serving path: many concurrent requests, one forward pass.

:class:`DynamicBatcher` queues single requests and runs them together through a batch function
(e.g. :meth:`EmbeddingModel.encode_lists <node.models.encoders.EmbeddingModel.encode_lists>`
or :meth:`TextClassifier.classify <node.models.encoders.TextClassifier.classify>`) in one
worker thread, so the event loop never blocks on torch.

Collector loop, per batch:
1. wait for the first request;
2. gather more until ``max_batch_size`` requests or ``max_wait_ms`` after the first one arrived
   (a request that queued while every batch slot was busy has waited already: what is queued
   goes at once, as in Triton's ``max_queue_delay``);
3. drop requests whose caller has gone (cancelled futures);
4. run the batch function in the worker thread; hand each caller its result (or the batch's
   exception). Requests arriving meanwhile queue up and form the next batch, which starts as
   soon as one of ``concurrency`` batch slots is free (one by default: batches run one after
   another). Until a slot frees, requests stay in the queue (and count against its bound).

The queue is bounded (:class:`BatcherOverloadedError` when full — answer 503 and let clients back
off); :meth:`DynamicBatcher.stop` finishes (``drain=True``) or fails the queued requests, then
joins the loop and the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

from registry.errors import AnchormlError

T = TypeVar("T")
R = TypeVar("R")


class BatcherOverloadedError(AnchormlError):
    """The dynamic batcher's queue is full; the caller should back off (HTTP 503)."""

    code = "overloaded"


class BatcherClosedError(AnchormlError):
    """The dynamic batcher is not running (not started, or stopped)."""

    code = "batcher_closed"


@dataclass
class _Request(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    arrived: float  # loop time of submit()


@dataclass
class BatcherStats:
    """Counters for ``/metrics``."""

    batches: int = 0
    items: int = 0
    cancelled: int = 0
    failed_batches: int = 0
    largest_batch: int = 0

    @property
    def mean_batch_size(self) -> float:
        """Average number of items per executed batch."""
        return self.items / self.batches if self.batches else 0.0


_STOP = object()


class DynamicBatcher(Generic[T, R]):
    """Collect up to ``max_batch_size`` requests or ``max_wait_ms``, run them as one batch.

    Args:
        fn: the batch function: ``fn(items) -> results``, one result per item, in order. Runs in
            a dedicated worker thread.
        max_batch_size: largest batch handed to ``fn``.
        max_wait_ms: how long the first request of a batch waits for company.
        max_queue: pending requests beyond which :meth:`submit` raises
            :class:`BatcherOverloadedError`.
        run_in: ``run_in(call)`` runs the zero-argument batch call somewhere else and returns
            its result (e.g. on a lane of :class:`~node.serving.lanes.TorchLanes`), instead of
            the batcher's own thread.
        concurrency: batches in flight at once (``run_in`` must be able to run them side by
            side).
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        run_in: Callable[[Callable[[], Sequence[R]]], Awaitable[Sequence[R]]] | None = None,
        concurrency: int = 1,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0 or concurrency < 1:
            raise ValueError(
                "max_batch_size, max_queue and concurrency must be >= 1, max_wait_ms >= 0"
            )
        self._fn = fn
        self._max_batch = max_batch_size
        self._max_wait = max_wait_ms / 1000.0
        self._max_queue = max_queue
        self._queue: asyncio.Queue[_Request[T, R] | object] = asyncio.Queue()
        self._run_in = run_in
        self._executor: ThreadPoolExecutor | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = True
        self.stats = BatcherStats()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the collector loop and the worker thread."""
        if self._task is not None:
            raise RuntimeError("batcher already started")
        if self._run_in is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
        self._closed = False
        self._task = asyncio.create_task(self._collect(), name="dynamic-batcher")

    async def stop(self, *, drain: bool = True) -> None:
        """Stop accepting requests; finish (``drain``) or fail the queued ones; join."""
        if self._task is None:
            return
        self._closed = True
        if not drain:
            while not self._queue.empty():
                request = self._queue.get_nowait()
                if isinstance(request, _Request) and not request.future.done():
                    request.future.set_exception(BatcherClosedError("batcher stopped"))
        self._queue.put_nowait(_STOP)
        try:
            await self._task
        finally:
            self._task = None
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> DynamicBatcher[T, R]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(drain=exc is None)

    # -- requests -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Requests queued and not yet in a batch."""
        return self._queue.qsize()

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its result.

        Raises:
            BatcherClosedError: the batcher is not running.
            BatcherOverloadedError: ``max_queue`` requests are already waiting.
            Exception: whatever the batch function raised for this request's batch.
        """
        if self._closed:
            raise BatcherClosedError("batcher is not running")
        if self._queue.qsize() >= self._max_queue:
            raise BatcherOverloadedError(f"{self._max_queue} requests already queued")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(item, future, future.get_loop().time()))
        return await future  # cancelling the caller cancels the future; the batch skips it

    # -- collector ----------------------------------------------------------------------------

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        batch: list[_Request[T, R]] = []
        try:
            while not stopping:
                await self._slots.acquire()  # requests stay queued while every slot is busy
                try:
                    first = await self._queue.get()
                except BaseException:
                    self._slots.release()
                    raise
                if first is _STOP:
                    self._slots.release()
                    break
                assert isinstance(first, _Request)
                batch = [first]
                deadline = first.arrived + self._max_wait  # it may have queued behind busy slots
                while len(batch) < self._max_batch:
                    try:  # take what is already queued without a timer, wait only when empty
                        nxt = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        try:
                            nxt = await asyncio.wait_for(self._queue.get(), remaining)
                        except TimeoutError:
                            break
                    if nxt is _STOP:
                        stopping = True
                        break
                    assert isinstance(nxt, _Request)
                    batch.append(nxt)
                task = loop.create_task(self._run(batch), name="dynamic-batch")
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                batch = []
            if self._running:
                await asyncio.gather(*self._running)
        finally:
            # Anything left (loop crashed or was cancelled) must not hang its caller.
            leftovers = batch + [r for r in self._drain_queue() if isinstance(r, _Request)]
            for request in leftovers:
                if not request.future.done():
                    request.future.set_exception(BatcherClosedError("batcher stopped"))

    def _drain_queue(self) -> list[object]:
        items: list[object] = []
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                items.append(self._queue.get_nowait())
        return items

    async def _run(self, batch: list[_Request[T, R]]) -> None:
        try:
            await self._run_batch(batch)
        finally:
            self._slots.release()

    async def _run_batch(self, batch: list[_Request[T, R]]) -> None:
        live = [r for r in batch if not r.future.done()]
        self.stats.cancelled += len(batch) - len(live)
        if not live:
            return
        items = [r.item for r in live]
        try:
            if self._run_in is not None:
                results = await self._run_in(lambda: self._fn(items))
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._executor, self._fn, items)
            if len(results) != len(live):
                raise RuntimeError(
                    f"batch function returned {len(results)} results for {len(live)}"
                )
        except Exception as exc:  # noqa: BLE001 - delivered to every caller of the batch
            self.stats.failed_batches += 1
            for request in live:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        for request, result in zip(live, results, strict=True):
            if not request.future.done():
                request.future.set_result(result)
