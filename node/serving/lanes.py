"""The threads that run a serving process's torch calls, one per core ("lanes").

torch's CPU kernels split each op over an OpenMP team that belongs to the calling thread. Two
ways to use two cores, measured on this project's 2-core machines with MiniLM (batches of 16):

- one thread, a team of two: 230 texts/s, and whenever the event loop (HTTP parsing, JSON)
  preempts one team member the other waits at the op's barrier — 154 texts/s with a thread
  busy 30 % beside it;
- two threads, a team of one each, a batch each: 291 texts/s, 214 with the same busy thread.

Decoding one token is the opposite case: a single small sequence gains from a team of two
(27 vs 18.5 tokens/s for SmolLM2-135M).

So :class:`TorchLanes` runs *narrow* calls (an encoder batch) on any free lane with one intra-op
thread, and *wide* calls (a decode step) on lane 0 with every lane's core in its team, while the
other lanes stay idle. Only lane 0 ever has a team larger than one, so the process never owns
more OpenMP threads than cores and libgomp keeps spin-waiting between ops (with more threads than
cores it stops spinning, which cost decode 20 % when two threads each had a team of two). Calls
are granted in arrival order — a wide call waits for the running narrow ones to finish and
nothing queued behind it overtakes it — so neither kind starves the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

R = TypeVar("R")


def default_lanes() -> int:
    """One lane per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def _with_threads(threads: int, fn: Callable[[], R]) -> R:
    """Run ``fn`` with ``threads`` intra-op threads on the calling thread."""
    import torch

    if torch.get_num_threads() != threads:  # the calling thread's own OpenMP setting
        torch.set_num_threads(threads)
    return fn()


@dataclass
class _Waiter:
    width: int
    granted: asyncio.Future[int] = field(repr=False)


class TorchLanes:
    """``count`` single-thread executors scheduled by width (see the module docstring).

    Args:
        count: lanes (default: one per core).
    """

    def __init__(self, count: int | None = None) -> None:
        self.count = count or default_lanes()
        self._threads = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"torch-{i}")
            for i in range(self.count)
        ]
        self._free = set(range(self.count))
        self._waiting: deque[_Waiter] = deque()
        self._closed = False

    async def run(self, fn: Callable[[], R], *, wide: bool = False) -> R:
        """Run ``fn`` on a lane: one intra-op thread, or (``wide``) every core on lane 0.

        The lane stays taken until ``fn`` has returned, even when the caller is cancelled
        first: a cancelled call never lets another one onto a core that is still busy.
        """
        if self._closed:
            raise RuntimeError("torch lanes are shut down")
        width = self.count if wide else 1
        lane = await self._acquire(width)
        loop = asyncio.get_running_loop()
        try:
            job: Future[R] = self._threads[lane].submit(_with_threads, width, fn)
        except BaseException:
            self._release(lane, width)
            raise

        def done(_: Future[R]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to hand back
                loop.call_soon_threadsafe(self._release, lane, width)

        job.add_done_callback(done)
        return await asyncio.wrap_future(job)

    @property
    def busy(self) -> int:
        """Lanes running a call now."""
        return self.count - len(self._free)

    def shutdown(self) -> None:
        """Refuse new calls, fail the waiting ones, let the running ones finish on their own."""
        self._closed = True
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.granted.done():
                waiter.granted.set_exception(RuntimeError("torch lanes are shut down"))
        for thread in self._threads:
            thread.shutdown(wait=False, cancel_futures=True)

    # --- scheduling ----------------------------------------------------------------------------

    async def _acquire(self, width: int) -> int:
        if not self._waiting and (lane := self._take(width)) is not None:
            return lane
        waiter = _Waiter(width, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            return await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._release(waiter.granted.result(), width)  # granted as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
                self._grant()  # a wide waiter leaving may unblock narrow ones behind it
            raise

    def _take(self, width: int) -> int | None:
        if width > 1:
            if len(self._free) < self.count:
                return None
            self._free.clear()
            return 0
        if not self._free:
            return None
        lane = max(self._free)  # keep lane 0 for wide calls when another is free
        self._free.discard(lane)
        return lane

    def _release(self, lane: int, width: int) -> None:
        if width > 1:
            self._free.update(range(self.count))
        else:
            self._free.add(lane)
        self._grant()

    def _grant(self) -> None:
        while self._waiting:
            head = self._waiting[0]
            if head.granted.done():  # cancelled while queued
                self._waiting.popleft()
                continue
            lane = self._take(head.width)
            if lane is None:
                return  # strict arrival order: nothing overtakes the head
            self._waiting.popleft()
            head.granted.set_result(lane)
