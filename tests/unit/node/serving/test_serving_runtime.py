"""The serving runtime without a chain: decoding pieces (stop strings across token boundaries,
incremental UTF-8 detokenization, seeded sampling), generation slots freed by cancellation, the
LRU of loaded models, and the OpenAI router on a bare app (413, 400, 404 ``model_not_served``)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from node.models.decoding import Detokenizer, StopMatcher, pick_token
from node.models.generation import GenerationDone, GenerationParams, TextDelta
from node.serving import (
    InferenceRuntime,
    OpenAIService,
    RuntimeConfig,
    Target,
    create_openai_router,
    run_here,
)
from node.serving.cache import AsyncCache
from node.serving.errors import MAX_BODY_BYTES, ModelNotServedError
from node.serving.schemas import ModelCard
from registry.clients import Access, ContentRef, ModelRecord, VersionRecord
from registry.dev import demo
from registry.model.safety import load_tokenizer

pytestmark = pytest.mark.timeout(300)


def _version(name: str) -> VersionRecord:
    digest = hashlib.sha256(name.encode()).digest()
    return VersionRecord(digest, digest, "v1", ContentRef(0x70, digest), digest, None, 0, "", False)


class FakeCache:
    """Stands in for ModelCache: version tag → demo model directory."""

    def __init__(self) -> None:
        self.dirs: dict[str, Path] = {}

    def ensure(self, version: VersionRecord) -> Path:
        return self.dirs[version.cid]


# --- decoding ------------------------------------------------------------------------------------


def test_stop_strings_are_found_across_pieces_and_never_emitted() -> None:
    matcher = StopMatcher(("END", "\n\n"))
    out = [matcher.feed(p) for p in ["Hello E", "N", "D! more"]]
    assert "".join(out) == "Hello " and matcher.stopped
    held = StopMatcher(("END",))
    assert held.feed("abcE") == "abc"  # "E" could start "END": held back
    assert held.feed("x") == "Ex" and held.flush() == ""
    tail = StopMatcher(("END",))
    assert tail.feed("xEN") == "x" and tail.flush() == "EN"  # never completed: released


def test_detokenizer_holds_back_split_utf8(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(demo.cached_model("tiny-gpt2"))  # one token per byte
    text = "naïve 🙂 ok"
    ids = tokenizer(text)["input_ids"]
    detok = Detokenizer(tokenizer)
    pieces = [detok.push(i) for i in ids]
    assert "".join(pieces) + detok.flush() == text
    assert all("\ufffd" not in p for p in pieces)
    assert "" in pieces  # the emoji's first bytes produced nothing yet


def test_greedy_and_seeded_sampling() -> None:
    logits = torch.tensor([0.1, 3.0, 0.2, 2.9])
    assert pick_token(logits, 0.0, 1.0, None) == 1
    draws = [pick_token(logits, 1.0, 0.9, torch.Generator().manual_seed(s)) for s in range(20)]
    again = [pick_token(logits, 1.0, 0.9, torch.Generator().manual_seed(s)) for s in range(20)]
    assert draws == again and set(draws) <= {1, 3}  # top_p 0.9 keeps the two big ones


# --- runtime -------------------------------------------------------------------------------------


def test_cancelled_generation_frees_its_slot() -> None:
    async def scenario() -> None:
        cache = FakeCache()
        version = _version("gpt2")
        cache.dirs[version.cid] = demo.cached_model("tiny-gpt2")
        runtime = InferenceRuntime(cache, RuntimeConfig(generation_slots=1))  # type: ignore[arg-type]
        params = GenerationParams(max_tokens=200)
        loaded, prompt = await runtime.prompt(version, params, text="hello")
        stream = await runtime.generate(loaded, prompt)
        assert isinstance(await stream.next(), TextDelta | GenerationDone)
        stream.cancel()
        for _ in range(100):
            if runtime.active_generations == 0:
                break
            await asyncio.sleep(0.02)
        assert runtime.active_generations == 0
        events = []
        while not events or not isinstance(events[-1], GenerationDone):
            events.append(await stream.next())
        done = events[-1]
        assert isinstance(done, GenerationDone) and done.cancelled
        assert done.completion_tokens < 200
        second = await runtime.generate(loaded, prompt)  # the one slot is free again
        text, finished = await asyncio.wait_for(second.collect(), timeout=60)
        assert finished.completion_tokens >= 1 and not finished.cancelled
        await runtime.stop()

    asyncio.run(scenario())


def test_decode_steps_take_every_core_and_encoder_batches_one_each_never_overlapping() -> None:
    """Two decoding streams and embedding batches share the runtime's torch lanes: every decode
    step runs on one thread with a team as wide as the lanes, every encoder forward with a team
    of one, no encoder forward overlaps a decode step, and they take turns per decode step
    instead of one blocking the others."""
    import threading
    import time

    async def scenario() -> None:
        cache = FakeCache()
        gpt, mini = _version("gpt2"), _version("minilm")
        cache.dirs[gpt.cid] = demo.cached_model("tiny-gpt2")
        cache.dirs[mini.cid] = demo.cached_model("minilm")
        runtime = InferenceRuntime(cache, RuntimeConfig(generation_slots=2))  # type: ignore[arg-type]
        calls: list[tuple[str, int, int, float, float]] = []

        def traced(kind: str, forward: Any) -> Any:
            def call(*args: object, **kwargs: object) -> object:
                started = time.perf_counter()
                try:
                    return forward(*args, **kwargs)
                finally:
                    calls.append((kind, threading.get_ident(), torch.get_num_threads(),
                                  started, time.perf_counter()))  # fmt: skip

            return call

        loaded, prompt = await runtime.prompt(gpt, GenerationParams(max_tokens=64), text="hi")
        loaded.impl.model.forward = traced("decode", loaded.impl.model.forward)
        await runtime.load(mini)
        encoder = runtime._models[mini.cid].impl  # the loaded encoder: its (traced) forward
        assert encoder._forward.__name__ == "traced"
        encoder._forward = traced("embed", encoder._forward)
        streams = [await runtime.generate(loaded, prompt) for _ in range(2)]
        embeds = [runtime.embed(mini, [f"text {i}"]) for i in range(6)]
        results = await asyncio.gather(*(s.collect() for s in streams), *embeds)
        assert all(done.completion_tokens >= 1 and not done.cancelled for _, done in results[:2])
        decode = [c for c in calls if c[0] == "decode"]
        embed = [c for c in calls if c[0] == "embed"]
        assert threading.get_ident() not in {c[1] for c in calls}  # never on the event loop
        assert len({c[1] for c in decode}) == 1
        assert {c[2] for c in decode} == {runtime.lanes.count}
        assert {c[2] for c in embed} == {1}
        for _, _, _, start, end in decode:
            assert all(e_end <= start or e_start >= end for _, _, _, e_start, e_end in embed)
        kinds = [c[0] for c in sorted(calls, key=lambda c: c[3])]
        assert "decode" in kinds[kinds.index("embed") :]  # embeddings did not wait for both streams
        await runtime.stop()

    asyncio.run(scenario())


def test_least_recently_used_idle_model_is_unloaded() -> None:
    async def scenario() -> None:
        cache = FakeCache()
        a, b = _version("a"), _version("b")
        cache.dirs[a.cid] = demo.cached_model("tiny-gpt2")
        cache.dirs[b.cid] = demo.cached_model("minilm")
        runtime = InferenceRuntime(cache, RuntimeConfig(max_loaded=1))  # type: ignore[arg-type]
        await runtime.load(a)
        assert runtime.loaded() == [a.cid]
        vectors = await runtime.embed(b, ["x"])
        assert len(vectors[0][0]) == 384 and runtime.loaded() == [b.cid]
        await runtime.stop()

    asyncio.run(scenario())


# --- router --------------------------------------------------------------------------------------


def test_router_on_a_bare_app_maps_errors_itself() -> None:
    cache = FakeCache()
    served = _version("minilm")
    cache.dirs[served.cid] = demo.cached_model("minilm")

    async def authorize(ref: str, request: Request) -> Target:
        if ref != "minilm":
            raise ModelNotServedError(f"this worker does not serve {ref!r}", param="model")
        owner = "0x" + "00" * 20
        return Target(ref, ModelRecord(served.model_id, ref, owner, Access.PUBLIC, 0, 0), served)

    async def models(request: Request) -> list[object]:
        return []

    async def describe(ref: str, request: Request) -> ModelCard:
        target = await authorize(ref, request)
        return ModelCard(id=f"{target.ref}@v1", owned_by=target.model.owner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = InferenceRuntime(cache)  # type: ignore[arg-type]
        service = OpenAIService(runtime)
        router = create_openai_router(
            service, authorize, run_here,
            list_models=models, describe_model=describe,  # type: ignore[arg-type]
        )  # fmt: skip
        app.include_router(router)
        yield
        await runtime.stop()

    app = FastAPI(lifespan=lifespan)

    with TestClient(app) as client:
        ok = client.post("/v1/embeddings", json={"model": "minilm", "input": ["a", "b"]})
        assert ok.status_code == 200 and len(ok.json()["data"]) == 2
        other = client.post("/v1/embeddings", json={"model": "other", "input": "a"})
        assert other.status_code == 404 and other.json()["error"]["code"] == "model_not_served"
        bad = client.post(
            "/v1/embeddings", content=b"{", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
        huge = client.post(
            "/v1/embeddings", content=b"x" * (MAX_BODY_BYTES + 1),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
        card = client.get("/v1/models/minilm")  # the one router: the gateway's routes, here too
        assert card.status_code == 200 and card.json()["id"] == "minilm@v1"
        unknown = client.get("/v1/models/other")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_served"


# --- caches --------------------------------------------------------------------------------------


def test_async_cache_single_flight_refresh_ahead_and_invalidation() -> None:
    async def scenario() -> None:
        now = [0.0]
        cache: AsyncCache[str, int] = AsyncCache(10.0, clock=lambda: now[0])
        calls = []
        gate = asyncio.Event()

        async def load() -> int:
            calls.append(now[0])
            await gate.wait()
            return len(calls)

        waiters = [asyncio.create_task(cache.get("k", load)) for _ in range(20)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*waiters) == [1] * 20 and len(calls) == 1  # one load
        now[0] = 15.0  # stale but < 2 × ttl: answered at once, refreshed in the background
        assert await cache.get("k", load) == 1
        await asyncio.sleep(0.01)
        assert len(calls) == 2 and await cache.get("k", load) == 2
        cache.clear()  # an invalidating event: the next caller waits for a fresh value
        assert await cache.get("k", load) == 3
        now[0] = 100.0  # expired beyond 2 × ttl: loaded synchronously
        assert await cache.get("k", load) == 4

    asyncio.run(scenario())


def test_async_cache_refreshes_entries_in_use_before_they_expire() -> None:
    """``refresh_expiring`` (called on every watcher or serving tick) reloads, in the background,
    entries a request used since they were stored — loaded for it or read — whose time is nearly
    up, and nothing else: the request after the expiry finds a fresh answer and starts no load,
    and an entry refreshed but not read since is left to lapse."""

    async def scenario() -> None:
        now = [0.0]
        cache: AsyncCache[str, int] = AsyncCache(10.0, clock=lambda: now[0])
        loads: list[str] = []

        def loader(key: str) -> Callable[[], Awaitable[int]]:
            async def load() -> int:
                loads.append(key)
                return len(loads)

            return load

        assert await cache.get("used", loader("used")) == 1  # loaded for a request: in use
        now[0] = 5.0
        assert cache.refresh_expiring(2.0) == 0  # 5 s left: nothing due
        now[0] = 8.5
        assert cache.refresh_expiring(2.0) == 1
        await asyncio.sleep(0.01)
        assert loads == ["used", "used"]
        now[0] = 12.0  # past the first load's expiry, within the refreshed one's
        assert await cache.get("used", loader("used")) == 2  # read since the refresh stored it
        await asyncio.sleep(0.01)
        assert loads == ["used", "used"]  # no load started by the request
        now[0] = 18.0
        assert cache.refresh_expiring(2.0) == 1
        await asyncio.sleep(0.01)
        assert loads == ["used", "used", "used"]
        now[0] = 27.0  # refreshed at 18 and not read since: left to lapse
        assert cache.refresh_expiring(2.0) == 0
        now[0] = 40.0  # gone past twice its time to live: the next request loads it again
        assert await cache.get("used", loader("used")) == 4

    asyncio.run(scenario())


@pytest.mark.integration  # a fresh Python process
def test_serving_processes_freeze_what_a_model_load_leaves_alive() -> None:
    """``freeze_gc_after_loads`` (called by the gateway and node entry points) moves start-up
    objects and then each loaded model into gc's permanent generation, so full collections stop
    walking them; a model unloaded to make room is still freed, even inside a reference cycle.
    Run in a child process: freezing inside pytest would pin test garbage."""
    import subprocess
    import sys

    code = """
import asyncio, gc, types, weakref
from node.serving.runtime import InferenceRuntime, RuntimeConfig, freeze_gc_after_loads
from registry.dev import demo

class Cache:
    def ensure(self, version):
        return demo.cached_model("minilm" if version.cid == "bafyminilm" else "tiny-gpt2")

async def scenario():
    runtime = InferenceRuntime(Cache(), RuntimeConfig(max_loaded=1))
    loaded = await runtime.load(types.SimpleNamespace(cid="bafyminilm"))
    assert gc.get_freeze_count() > started + 1000, (started, gc.get_freeze_count())
    loaded.impl.cycle = loaded.impl  # only a full collection can free it now
    gone = weakref.ref(loaded.impl)
    task = loaded.task
    del loaded
    await runtime.load(types.SimpleNamespace(cid="bafygpt2"))  # unloads MiniLM
    assert gone() is None, "the unloaded model was pinned by gc.freeze"
    await runtime.stop()
    return task

freeze_gc_after_loads()
started = gc.get_freeze_count()
assert started > 0
print("ok", asyncio.run(scenario()))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[4],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok feature-extraction"
