"""The inference runtime: hot models per version CID, dynamic batching, generation slots.

- Models are fetched through the :class:`~registry.model.package.ModelCache` (verified against
  the chain) and loaded once per CID; at most ``max_loaded`` stay in memory, the least recently
  used idle one is dropped first.
- Every forward pass runs on the runtime's :class:`~node.serving.lanes.TorchLanes`, one lane
  per core: an encoder batch takes one lane with one intra-op thread, a decode step takes every
  core on lane 0 (why, with the measurements: :mod:`node.serving.lanes`).
- Encoders (embeddings, classification) get a :class:`~node.serving.batching.DynamicBatcher`:
  concurrent requests are gathered into one forward pass (up to ``batch_size`` texts or
  ``batch_wait_ms``), one batch per lane at once. Their forward pass runs as a checked
  TorchScript trace, which does not hold the GIL (:mod:`node.models.tracing`).
- Generation is scheduled per decode step (:meth:`TextGenerator.steps`, the decode loop INFER
  jobs run too), so streams and embedding batches interleave instead of one blocking the
  other. At most ``generation_slots`` streams decode at once; a slot is released when the
  stream's last step ran, so a cancelled stream frees its slot exactly when its compute stops.
  Requests beyond ``max_waiting`` get ``overloaded`` (503).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.models import (
    ContextOverflowError,
    EmbeddingModel,
    EmptyPromptError,
    Event,
    GenerationDone,
    GenerationParams,
    NoChatTemplateError,
    Prompt,
    TextClassifier,
    TextDelta,
    TextGenerator,
)
from node.serving.batching import DynamicBatcher
from node.serving.errors import ContextLengthError, OverloadedError, UnsupportedTaskError
from node.serving.lanes import TorchLanes
from node.serving.metrics import ServingMetrics
from registry.model.manifest import MANIFEST_NAME, infer_task

if TYPE_CHECKING:
    import numpy as np

    from registry.clients import VersionRecord
    from registry.model.package import ModelCache

log = logging.getLogger(__name__)

Task = str  # "feature-extraction" | "text-classification" | "text-generation"
EMBED, CLASSIFY, GENERATE = "feature-extraction", "text-classification", "text-generation"


_freeze_gc = False


def freeze_gc_after_loads() -> None:
    """Freeze what is alive now, and again after every model load (serving processes only).

    A full garbage collection walks every tracked object: with torch, transformers and one model
    loaded that is ~480k objects and 220–300 ms on these machines, while the collecting thread
    holds the GIL and every lane waits. Under load one came every few seconds (the gateway's p99
    latency and ~10 % of its throughput). What is alive after start-up or a load is nearly all
    permanent (modules, weights, tokenizers), so it moves to gc's permanent generation
    (``gc.freeze``) and later full collections walk only what came since (~1 ms). A load that
    unloads another model first unfreezes and collects once, so the unloaded one can be freed.
    Not for test processes: an object frozen inside a reference cycle is never freed.
    """
    global _freeze_gc  # noqa: PLW0603 - process-wide, like gc itself
    _freeze_gc = True
    gc.freeze()


@dataclass(frozen=True)
class RuntimeConfig:
    """Limits and batching of the runtime."""

    max_loaded: int = 2
    batch_size: int = 16
    batch_wait_ms: float = 10.0
    max_queue: int = 4096
    generation_slots: int = 1
    max_waiting: int = 64


@dataclass
class Loaded:
    """A model in memory."""

    cid: str
    task: Task
    impl: Any
    batcher: DynamicBatcher[str, Any] | None = None
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def busy(self) -> bool:
        """Whether requests are using it (it must not be unloaded)."""
        return self.active > 0 or (self.batcher is not None and self.batcher.pending > 0)


def model_task(model_dir: Path) -> Task:
    """The task of a verified model directory (its manifest's, else inferred from the config)."""
    manifest = model_dir / MANIFEST_NAME
    if manifest.is_file():
        task = json.loads(manifest.read_text(encoding="utf-8")).get("task")
        if task in (EMBED, CLASSIFY, GENERATE):
            return str(task)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return infer_task(config, model_dir)


class GenerationStream:
    """The events of one running generation; :meth:`cancel` stops it (idempotent)."""

    def __init__(
        self, queue: asyncio.Queue[Event | BaseException], cancel: threading.Event
    ) -> None:
        self._queue = queue
        self._cancel = cancel
        self.done: GenerationDone | None = None

    async def next(self) -> Event:
        """The next event; raises what the decode loop raised."""
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._cancel.set()
            raise item
        if isinstance(item, GenerationDone):
            self.done = item
        return item

    async def collect(self) -> tuple[str, GenerationDone]:
        """Wait for the whole text."""
        parts: list[str] = []
        try:
            while True:
                event = await self.next()
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                else:
                    return "".join(parts), event
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Ask the decode loop to stop (no-op once it ended)."""
        self._cancel.set()


class InferenceRuntime:
    """Loads models on demand and runs embeddings, classification and generation.

    Args:
        cache: the verified model cache.
        config: limits and batching.
        metrics: where to count (a private registry when omitted).
    """

    def __init__(
        self,
        cache: ModelCache,
        config: RuntimeConfig | None = None,
        metrics: ServingMetrics | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry

        self.cache = cache
        self.config = config or RuntimeConfig()
        self.metrics = metrics or ServingMetrics(CollectorRegistry())
        self._models: OrderedDict[str, Loaded] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Loaded]] = {}
        self._slots = asyncio.Semaphore(self.config.generation_slots)
        self.lanes = TorchLanes()
        self._streams: set[asyncio.Task[None]] = set()
        self._waiting = 0
        self.active_generations = 0

    # --- models --------------------------------------------------------------------------------

    def loaded(self) -> list[str]:
        """CIDs of the models in memory, least recently used first."""
        return list(self._models)

    async def load(self, version: VersionRecord) -> Loaded:
        """The in-memory model of ``version``, fetching and loading it once."""
        cid = version.cid
        found = self._models.get(cid)
        if found is not None:
            self._models.move_to_end(cid)
            found.last_used = time.monotonic()
            return found
        pending = self._loading.get(cid)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Loaded] = asyncio.get_running_loop().create_future()
        self._loading[cid] = future
        try:
            loaded = await self._load(version)
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            else:
                future.cancel()
            raise
        finally:
            self._loading.pop(cid, None)
        self._models[cid] = loaded
        future.set_result(loaded)
        self.metrics.model_loads.inc()
        evicted = await self._evict()
        if _freeze_gc:
            if evicted:  # an evicted model frozen inside a reference cycle would never be freed
                gc.unfreeze()
                gc.collect()
            gc.freeze()
        self.metrics.loaded_models.set(len(self._models))
        return loaded

    async def _load(self, version: VersionRecord) -> Loaded:
        path = await asyncio.to_thread(self.cache.ensure, version)
        task = model_task(path)
        started = time.monotonic()
        if task == GENERATE:
            impl: Any = await asyncio.to_thread(TextGenerator, path)
            loaded = Loaded(version.cid, task, impl)
        elif task in (EMBED, CLASSIFY):
            cls = EmbeddingModel if task == EMBED else TextClassifier
            # on a lane: tracing runs forward passes, and a forward on any other thread would
            # give that thread an OpenMP team of its own (more threads than cores: see lanes)
            impl = await self.lanes.run(lambda: cls(path, trace=True))
            batch_fn = self._embed_batch(impl) if task == EMBED else self._classify_batch(impl)
            batcher: DynamicBatcher[str, Any] = DynamicBatcher(
                batch_fn,
                max_batch_size=self.config.batch_size,
                max_wait_ms=self.config.batch_wait_ms,
                max_queue=self.config.max_queue,
                run_in=self.lanes.run,
                concurrency=self.lanes.count,
            )
            await batcher.start()
            loaded = Loaded(version.cid, task, impl, batcher)
        else:
            raise UnsupportedTaskError(f"models of task {task!r} cannot be served", param="model")
        log.info("loaded %s (%s) in %.1f s", version.cid, task, time.monotonic() - started)
        return loaded

    async def _evict(self) -> int:
        """Unload least recently used idle models beyond ``max_loaded``; how many went."""
        evicted = 0
        while len(self._models) > self.config.max_loaded:
            idle = [m for m in self._models.values() if not m.busy]
            if not idle:
                break  # everything is in use: stay over the limit until something frees
            victim = idle[0]
            del self._models[victim.cid]
            if victim.batcher is not None:
                await victim.batcher.stop(drain=True)
            log.info("unloaded %s", victim.cid)
            evicted += 1
        return evicted

    async def stop(self) -> None:
        """Unload everything; stop the batchers, the decoding streams and the torch lanes."""
        models, self._models = list(self._models.values()), OrderedDict()
        for loaded in models:
            if loaded.batcher is not None:
                await loaded.batcher.stop(drain=False)
        for task in list(self._streams):
            task.cancel()
        self.lanes.shutdown()
        self.metrics.loaded_models.set(0)

    # --- encoders ------------------------------------------------------------------------------

    def _embed_batch(self, model: EmbeddingModel) -> Any:
        def run(texts: list[str]) -> list[tuple[np.ndarray, int]]:
            self.metrics.batch_size.observe(len(texts))
            vectors, counts = model.encode_counted(texts)
            return list(zip(vectors.numpy(), counts, strict=True))

        return run

    def _classify_batch(self, model: TextClassifier) -> Any:
        def run(texts: list[str]) -> list[tuple[dict[str, Any], int]]:
            self.metrics.batch_size.observe(len(texts))
            return model.classify_counted(texts)

        return run

    async def embed(self, version: VersionRecord, texts: list[str]) -> list[tuple[np.ndarray, int]]:
        """One float32 vector and the token count per text (batched with other requests)."""
        return await self._batched(version, EMBED, texts)

    async def classify(
        self, version: VersionRecord, texts: list[str]
    ) -> list[tuple[dict[str, Any], int]]:
        """``{"label", "score", "scores"}`` and the token count per text."""
        return await self._batched(version, CLASSIFY, texts)

    async def _batched(self, version: VersionRecord, task: Task, texts: list[str]) -> list[Any]:
        loaded = await self.load(version)
        if loaded.task != task:
            raise UnsupportedTaskError(f"this model does {loaded.task}, not {task}", param="model")
        assert loaded.batcher is not None
        self.metrics.inferences.labels(task=task).inc()
        loaded.active += 1
        try:
            if len(texts) == 1:  # the common case: no task and gathering future per request
                return [await loaded.batcher.submit(texts[0])]
            return list(await asyncio.gather(*(loaded.batcher.submit(t) for t in texts)))
        finally:
            loaded.active -= 1
            loaded.last_used = time.monotonic()

    # --- generation ----------------------------------------------------------------------------

    async def prompt(
        self,
        version: VersionRecord,
        params: GenerationParams,
        *,
        messages: list[dict[str, str]] | None = None,
        text: str | None = None,
    ) -> tuple[Loaded, Prompt]:
        """Load the model and build the prompt (chat ``messages`` or a plain ``text``).

        Raises:
            UnsupportedTaskError: not a generative model, or no chat template for chat.
            ContextLengthError: the prompt and ``max_tokens`` do not fit.
        """
        loaded = await self.load(version)
        if loaded.task != GENERATE:
            raise UnsupportedTaskError(f"this model does {loaded.task}, not text generation")
        generator: TextGenerator = loaded.impl
        try:
            if messages is not None:
                return loaded, generator.chat_prompt(messages, params)
            return loaded, generator.text_prompt(text or "", params)
        except NoChatTemplateError:
            raise UnsupportedTaskError(
                "this model has no chat template: use /v1/completions", param="model"
            ) from None
        except EmptyPromptError:
            raise ContextLengthError(
                "the prompt is empty and the model has no BOS token", "prompt"
            ) from None
        except ContextOverflowError as exc:
            raise ContextLengthError(
                f"the prompt ({exc.prompt_tokens} tokens) plus max_tokens ({exc.max_tokens}) "
                f"exceeds the model's context of {exc.context} tokens",
                param="max_tokens",
            ) from None

    async def generate(self, loaded: Loaded, prompt: Prompt) -> GenerationStream:
        """Start decoding ``prompt`` once a slot is free; returns its event stream.

        Raises:
            OverloadedError: ``max_waiting`` requests already wait for a slot.
        """
        if self._waiting >= self.config.max_waiting:
            raise OverloadedError("too many generations are waiting: retry later")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        # From here to create_task() nothing awaits: the slot is handed to the task, which frees it.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        cancel = threading.Event()
        generator: TextGenerator = loaded.impl
        steps = generator.steps(prompt, cancel)
        metrics = self.metrics

        def step() -> list[Event] | None:
            return next(steps, None)

        async def drive() -> None:
            try:
                while (events := await self.lanes.run(step, wide=True)) is not None:
                    for event in events:
                        if isinstance(event, GenerationDone):
                            metrics.tokens.inc(event.completion_tokens)
                        queue.put_nowait(event)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                queue.put_nowait(exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                self._release(loaded)

        loaded.active += 1
        self.active_generations += 1
        metrics.active_generations.inc()
        metrics.inferences.labels(task=GENERATE).inc()
        task = loop.create_task(drive(), name="generation")
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        return GenerationStream(queue, cancel)

    def _release(self, loaded: Loaded) -> None:
        loaded.active -= 1
        loaded.last_used = time.monotonic()
        self.active_generations -= 1
        self.metrics.active_generations.dec()
        self._slots.release()
