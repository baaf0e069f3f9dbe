"""TorchLanes: narrow calls side by side with one intra-op thread, wide calls alone, in order."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
import torch

from node.serving.lanes import TorchLanes


def _blocker(gate: threading.Event, log: list[str], name: str) -> Callable[[], tuple[str, int]]:
    def call() -> tuple[str, int]:
        log.append(f"start {name}")
        assert gate.wait(10), "gate never opened"
        log.append(f"end {name}")
        return name, torch.get_num_threads()

    return call


def test_narrow_calls_run_side_by_side_with_one_thread_each() -> None:
    async def scenario() -> None:
        lanes = TorchLanes(2)
        both = threading.Barrier(2, timeout=10)  # passes only if both calls run at once

        def call() -> tuple[int, int]:
            both.wait()
            return threading.get_ident(), torch.get_num_threads()

        results = await asyncio.gather(lanes.run(call), lanes.run(call))
        assert len({ident for ident, _ in results}) == 2
        assert [threads for _, threads in results] == [1, 1]
        lanes.shutdown()

    asyncio.run(scenario())


def test_a_wide_call_waits_for_the_lanes_and_nothing_queued_behind_it_overtakes() -> None:
    async def scenario() -> None:
        lanes = TorchLanes(2)
        gate, log = threading.Event(), []
        first = asyncio.create_task(lanes.run(_blocker(gate, log, "narrow1")))
        await asyncio.sleep(0.05)
        wide = asyncio.create_task(lanes.run(_blocker(gate, log, "wide"), wide=True))
        await asyncio.sleep(0.05)
        late = asyncio.create_task(lanes.run(_blocker(gate, log, "narrow2")))
        await asyncio.sleep(0.1)
        assert log == ["start narrow1"]  # a lane is free, but narrow2 queues behind the wide call
        assert lanes.busy == 1
        gate.set()
        results = await asyncio.gather(first, wide, late)
        assert log.index("end narrow1") < log.index("start wide")
        assert log.index("end wide") < log.index("start narrow2")
        assert results[1] == ("wide", 2)  # the wide call's team spans both cores
        assert lanes.busy == 0
        lanes.shutdown()

    asyncio.run(scenario())


def test_a_cancelled_caller_keeps_its_lane_until_the_call_returns() -> None:
    async def scenario() -> None:
        lanes = TorchLanes(1)
        gate, log = threading.Event(), []
        running = asyncio.create_task(lanes.run(_blocker(gate, log, "a")))
        await asyncio.sleep(0.05)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        nxt = asyncio.create_task(lanes.run(_blocker(gate, log, "b")))
        await asyncio.sleep(0.1)
        assert log == ["start a"] and lanes.busy == 1  # "a" still computes: "b" must wait
        gate.set()
        assert (await nxt)[0] == "b"
        assert log == ["start a", "end a", "start b", "end b"]
        lanes.shutdown()

    asyncio.run(scenario())


def test_a_waiter_cancelled_in_the_queue_lets_the_ones_behind_it_through() -> None:
    async def scenario() -> None:
        lanes = TorchLanes(2)
        gate, log = threading.Event(), []
        narrow = asyncio.create_task(lanes.run(_blocker(gate, log, "n1")))
        await asyncio.sleep(0.05)
        wide = asyncio.create_task(lanes.run(_blocker(gate, log, "w"), wide=True))
        await asyncio.sleep(0.05)
        behind = asyncio.create_task(lanes.run(lambda: time.sleep(0) or "n2"))
        await asyncio.sleep(0.05)
        assert not behind.done()
        wide.cancel()  # leaves the queue: n2 may now take the free lane
        assert await asyncio.wait_for(behind, 5) == "n2"
        assert "start w" not in log
        gate.set()
        await narrow
        lanes.shutdown()

    asyncio.run(scenario())


def test_shutdown_fails_the_waiting_calls_and_refuses_new_ones() -> None:
    async def scenario() -> None:
        lanes = TorchLanes(1)
        gate, log = threading.Event(), []
        running = asyncio.create_task(lanes.run(_blocker(gate, log, "a")))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(lanes.run(lambda: "never"))
        await asyncio.sleep(0.05)
        lanes.shutdown()
        with pytest.raises(RuntimeError, match="shut down"):
            await waiting
        with pytest.raises(RuntimeError, match="shut down"):
            await lanes.run(lambda: "late")
        gate.set()
        assert (await running)[0] == "a"  # a running call finishes on its own

    asyncio.run(scenario())
