"""DynamicBatcher behaviour (fake batch function) and MiniLM throughput through it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from node.serving.batching import (  # noqa: E402
    BatcherClosedError,
    BatcherOverloadedError,
    DynamicBatcher,
)


class Recorder:
    """A batch function that squares numbers and remembers every batch it saw."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate

    def __call__(self, items: list[int]) -> list[int]:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        self.batches.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return [i * i for i in items]


def test_concurrent_requests_share_batches() -> None:
    async def main() -> tuple[list[int], Recorder, DynamicBatcher[int, int]]:
        fn = Recorder()
        async with DynamicBatcher(fn, max_batch_size=4, max_wait_ms=50) as batcher:
            results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        return results, fn, batcher

    results, fn, batcher = asyncio.run(main())
    assert results == [i * i for i in range(10)]
    assert sorted(i for batch in fn.batches for i in batch) == list(range(10))
    assert max(len(b) for b in fn.batches) == 4 and len(fn.batches) == 3
    assert batcher.stats.items == 10 and batcher.stats.largest_batch == 4


def test_lone_request_waits_at_most_max_wait() -> None:
    async def main() -> float:
        async with DynamicBatcher(Recorder(), max_batch_size=32, max_wait_ms=30) as batcher:
            start = time.monotonic()
            assert await batcher.submit(3) == 9
            return time.monotonic() - start

    assert asyncio.run(main()) < 2.0


def test_concurrency_runs_batches_side_by_side_through_run_in() -> None:
    """With ``concurrency=2`` a second batch starts while the first still runs (here: the two
    batch calls meet at a barrier, which only passes if both run at once), on ``run_in``."""
    both = threading.Barrier(2, timeout=10)
    seen: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        seen.append(list(items))
        both.wait()
        return [-i for i in items]

    async def main() -> list[int]:
        used: list[str] = []

        async def run_in(call: Callable[[], list[int]]) -> list[int]:
            used.append("run_in")
            return await asyncio.to_thread(call)

        batcher = DynamicBatcher(fn, max_batch_size=2, max_wait_ms=20, run_in=run_in, concurrency=2)
        async with batcher:
            results = await asyncio.gather(*(batcher.submit(i) for i in range(4)))
        assert used == ["run_in", "run_in"]
        return list(results)

    assert asyncio.run(main()) == [0, -1, -2, -3]
    assert sorted(len(b) for b in seen) == [2, 2]


def test_max_wait_counts_from_arrival_so_a_request_queued_behind_a_batch_goes_at_once() -> None:
    """Request 3 arrives while batch [1, 2] runs and waits there longer than ``max_wait``; when
    the slot frees it leaves alone at once instead of waiting ``max_wait`` again (as long as the
    request 4 sent 100 ms later would need to join it)."""

    async def main() -> list[list[int]]:
        gate = threading.Event()
        fn = Recorder(gate)
        async with DynamicBatcher(fn, max_batch_size=2, max_wait_ms=300) as batcher:
            running = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
            await asyncio.sleep(0.05)  # [1, 2] runs, blocked on the gate
            queued = asyncio.create_task(batcher.submit(3))
            await asyncio.sleep(0.4)  # longer than max_wait
            gate.set()
            await asyncio.sleep(0.1)
            late = asyncio.create_task(batcher.submit(4))
            assert [await t for t in (*running, queued, late)] == [1, 4, 9, 16]
        return fn.batches

    assert asyncio.run(main()) == [[1, 2], [3], [4]]


def test_full_queue_is_refused() -> None:
    async def main() -> None:
        gate = threading.Event()
        batcher = DynamicBatcher(Recorder(gate), max_batch_size=1, max_wait_ms=0, max_queue=2)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.05)  # first is now running (blocked on the gate)
        queued = [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(BatcherOverloadedError):
            await batcher.submit(4)
        gate.set()
        assert await first == 1 and [await q for q in queued] == [4, 9]
        await batcher.stop()

    asyncio.run(main())


def test_cancelled_request_leaves_the_batch_intact() -> None:
    async def main() -> Recorder:
        fn = Recorder()
        async with DynamicBatcher(fn, max_batch_size=8, max_wait_ms=100) as batcher:
            tasks = [asyncio.create_task(batcher.submit(i)) for i in range(4)]
            await asyncio.sleep(0.01)
            tasks[1].cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
        assert done[0] == 0 and done[2] == 4 and done[3] == 9
        assert isinstance(done[1], asyncio.CancelledError)
        assert batcher.stats.cancelled == 1
        return fn

    fn = asyncio.run(main())
    assert fn.batches == [[0, 2, 3]]


def test_batch_error_reaches_every_caller_and_batcher_survives() -> None:
    async def main() -> None:
        async with DynamicBatcher(Recorder(), max_batch_size=8, max_wait_ms=30) as batcher:
            results = await asyncio.gather(
                batcher.submit(2), batcher.submit(-1), return_exceptions=True
            )
            assert all(isinstance(r, ValueError) for r in results)
            assert batcher.stats.failed_batches == 1
            assert await batcher.submit(5) == 25

    asyncio.run(main())


def test_wrong_result_count_is_an_error() -> None:
    async def main() -> None:
        async with DynamicBatcher(lambda items: [1], max_batch_size=4, max_wait_ms=30) as b:
            results = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)

    asyncio.run(main())


@pytest.mark.parametrize("drain", [True, False])
def test_stop_drains_or_fails_queued(drain: bool) -> None:
    async def main() -> list[object]:
        gate = threading.Event()
        batcher = DynamicBatcher(Recorder(gate), max_batch_size=1, max_wait_ms=0)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(batcher.stop(drain=drain))
        await asyncio.sleep(0.01)
        gate.set()
        await stopping
        with pytest.raises(BatcherClosedError):
            await batcher.submit(9)
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == 0  # the running batch always completes
    if drain:
        assert results[1:] == [1, 4]
    else:
        assert all(isinstance(r, BatcherClosedError) for r in results[1:])


def test_submit_before_start_is_refused() -> None:
    async def main() -> None:
        with pytest.raises(BatcherClosedError):
            await DynamicBatcher(Recorder()).submit(1)

    asyncio.run(main())


# --- MiniLM through the batcher ------------------------------------------------------------------


def test_minilm_through_batcher_matches_one_direct_batch() -> None:
    """Concurrent single texts come back as the vectors of one direct batched forward, and
    were batched (throughput is measured in ``bench/``, not asserted here)."""
    import torch

    from node.models.encoders import EmbeddingModel
    from registry.dev import demo

    model = EmbeddingModel(demo.cached_model("minilm"))
    texts = [f"Request number {i} asks about topic {i % 7} in a short sentence." for i in range(32)]
    direct = model.encode(texts)

    async def serve() -> tuple[list[list[float]], int]:
        async with DynamicBatcher(model.encode_lists, max_batch_size=32, max_wait_ms=50) as b:
            out = await asyncio.gather(*(b.submit(t) for t in texts))
            return list(out), b.stats.largest_batch

    vectors, largest = asyncio.run(serve())
    assert torch.allclose(torch.tensor(vectors), direct, atol=1e-5)
    assert largest > 1
