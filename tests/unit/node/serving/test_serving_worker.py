"""``WorkerServing``: the worker reloads chain answers in use before they expire, on its own
tick, so no request has to start the reload (the gateway does the same on its watcher's tick)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from node.metrics import NodeMetrics
from node.serving.catalog import Catalog
from node.serving.worker import WorkerServing


class Models:
    """The two registry reads a resolution makes, counted."""

    def __init__(self) -> None:
        self.reads = 0

    def get_model(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, owner="0x" + "11" * 20)

    def resolve(self, ref: str) -> SimpleNamespace:
        self.reads += 1
        return SimpleNamespace(revoked=False, tag="v1", cid="bafy", version_id=1)


def test_the_serving_tick_reloads_a_resolution_in_use_with_no_request() -> None:
    async def main() -> tuple[int, int]:
        models = Models()
        node = SimpleNamespace(
            sdk=SimpleNamespace(models=models),
            config=SimpleNamespace(batch_size=4, batch_wait_ms=1.0),
            cache=None,
            metrics=NodeMetrics(),
        )
        serving = WorkerServing(node)
        serving.catalog = Catalog(models, ttl_s=0.3)
        serving.refresh_every_s = 0.05
        task = asyncio.create_task(serving.run())
        await serving.catalog.resolve("minilm@v1")  # a request used the answer
        before = models.reads
        await asyncio.sleep(0.8)  # no request in this time
        after = models.reads
        await serving.stop()
        await asyncio.wait_for(task, 10)
        return before, after

    before, after = asyncio.run(main())
    assert before == 1 and after > before
