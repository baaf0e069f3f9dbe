"""Embedding throughput under concurrency, shared by ``bench/gateway.py`` and ``bench/node.py``.

Three ways to turn texts into MiniLM vectors, measured in the same run on the same texts:

- **ceiling**: in process, no HTTP — ``EmbeddingModel.encode`` back to back, with as many texts
  in flight as the servers have clients, four ways: one batch of them all on every core (torch's
  default), or one share per core side by side with one intra-op thread each (what dynamic
  batching can at best achieve), each with the eager model and with its TorchScript trace (which
  the serving runtime uses: :mod:`node.models.tracing`). The ceiling is the way a server
  compares worst against (:func:`versus_ceiling`);
- **server**: an OpenAI-compatible ``/v1/embeddings`` endpoint (the gateway or a worker) under
  ``concurrency`` clients, one text per request, ``encoding_format: base64`` (what the official
  ``openai`` client sends);
- **naive**: :func:`naive_app`, a FastAPI server that runs one forward pass per request (a sync
  endpoint, so FastAPI's thread pool runs them concurrently) under the same load.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio streams over uvloop (two
reads per response: head, body): it costs far less CPU per request than httpx, so on a 2-core
machine the server, not the client, is what is measured. Every response is checked (status
200, one vector of 384 floats).

Every measurement (each in-process way, each load run) runs in a fresh child process
(:func:`in_child`), so none inherits what an earlier one left in the bench process (loaded and
traced models, their threads and heap) and none shares a GIL with the embedded chain the bench
process hosts. Before this, the server measured right after the four in-process ways ran ~10 %
slower than the same server measured first in the round.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]  # children run here, to import bench.*
DIM = 384
SENTENCES = (
    "The registry anchors the model's content identifier and manifest hash on chain.",
    "A worker claims the job, runs the model and pins the verified result to IPFS.",
    "Dynamic batching gathers concurrent requests into one forward pass of the encoder.",
    "Sentence embeddings map text to vectors whose dot product measures similarity.",
    "Escrowed rewards are paid to the nodes whose outputs agree with the majority.",
    "Gated models need a bearer token whose address holds access on the registry.",
    "The gateway streams tokens to the client as soon as the decoder produces them.",
    "Content addressing means identical bytes always resolve to the same identifier.",
)


def texts(count: int) -> list[str]:
    """``count`` distinct sentences of 15-25 tokens."""
    return [f"{SENTENCES[i % len(SENTENCES)]} (item {i})" for i in range(count)]


@dataclass
class Result:
    """One measured configuration."""

    name: str
    texts_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    setup: str = ""

    @property
    def best(self) -> float:
        """Median of the repeats (robust to one noisy run on a shared machine)."""
        return statistics.median(self.texts_per_s) if self.texts_per_s else 0.0


# --- ceiling -------------------------------------------------------------------------------------


def ceiling(
    model_dir: Path | str, batch: int, seconds: float, lanes: int = 1, trace: bool = False
) -> float:
    """Texts/s of back-to-back batched forward passes of ``batch`` texts, in this process.

    ``lanes=1``: one batch at a time with an intra-op thread per core (torch's default);
    ``lanes=n``: ``n`` threads each running batches with one intra-op thread (how the serving
    runtime runs encoders, :mod:`node.serving.lanes`); ``trace``: the TorchScript forward.
    """
    import threading

    import torch

    from node.models import EmbeddingModel
    from node.serving import default_lanes, retain_freed_memory

    retain_freed_memory()  # as the servers do: the ceiling must not depend on this process's past
    model = EmbeddingModel(Path(model_dir), trace=trace)
    pool = texts(1024)
    cores = default_lanes()
    done = [0] * lanes
    began: list[float] = []  # set when every lane is warm: warm-up is not measured
    start = threading.Barrier(lanes, action=lambda: began.append(time.perf_counter()))

    def run(lane: int) -> None:
        torch.set_num_threads(cores if lanes == 1 else 1)
        model.encode(pool[:batch])  # warm up (oneDNN builds its kernels per thread and shape)
        start.wait()
        i = lane * 97
        while time.perf_counter() - began[0] < seconds:
            chunk = pool[i : i + batch]
            model.encode(chunk)
            done[lane] += len(chunk)
            i = (i + batch) % (len(pool) - batch)

    threads = [threading.Thread(target=run, args=(lane,)) for lane in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began[0]
    torch.set_num_threads(cores)
    return sum(done) / elapsed


# --- load client ---------------------------------------------------------------------------------


async def _client(
    host: str, port: int, path: str, bodies: list[bytes], latencies: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    try:
        for body in bodies:
            started = time.perf_counter()
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status, length = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status:
                raise RuntimeError(f"{path}: {status!r} {payload[:300]!r}")
            vector = json.loads(payload)["data"][0]["embedding"]
            if len(base64.b64decode(vector)) != 4 * DIM:
                raise RuntimeError("wrong embedding size")
    finally:
        writer.close()


def _parse_head(head: bytes) -> tuple[bytes, int]:
    """The status line and the Content-Length of a response head (one read per response)."""
    status, _, fields = head.partition(b"\r\n")
    for line in fields.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value)
    raise RuntimeError(f"no Content-Length in {head!r}")


async def _load(url: str, model: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    host, port = url.removeprefix("http://").split(":")
    pool = texts(requests)
    bodies = [
        json.dumps({"model": model, "input": t, "encoding_format": "base64"}).encode() for t in pool
    ]
    shares = [bodies[i::concurrency] for i in range(concurrency)]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(host, int(port), "/v1/embeddings", s, latencies) for s in shares)
    )
    return requests / (time.perf_counter() - started), latencies


def load(url: str, model: str, requests: int, concurrency: int) -> tuple[float, float, float]:
    """Texts/s, p50 and p99 latency (ms) of ``requests`` one-text requests over ``concurrency``
    keep-alive connections."""
    from node.main import _event_loop  # uvloop where installed, as the servers measured use

    with asyncio.Runner(loop_factory=_event_loop) as runner:
        rate, latencies = runner.run(_load(url, model, requests, concurrency))
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return rate, p50, p99


def warm(url: str, model: str, concurrency: int) -> None:
    """Load the model and fill the connection pools before measuring."""
    load(url, model, concurrency * 4, concurrency)


# --- naive server --------------------------------------------------------------------------------


class NaiveBody(BaseModel):
    """The naive server's request body."""

    model: str
    input: str
    encoding_format: str = "float"


def naive_app(model_dir: Path) -> Any:
    """A FastAPI server embedding each request on its own (one forward per request)."""
    from fastapi import FastAPI

    from node.models.encoders import EmbeddingModel

    encoder = EmbeddingModel(model_dir)
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: NaiveBody) -> dict[str, Any]:
        vector = encoder.encode([body.input])[0].numpy()
        encoded = base64.b64encode(vector.astype("<f4").tobytes()).decode()
        data = [{"object": "embedding", "index": 0, "embedding": encoded}]
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        return {"object": "list", "data": data, "model": body.model, "usage": usage}

    return app


def start_naive(model_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Run :func:`naive_app` on uvicorn in a child process."""
    code = (
        "import sys, uvicorn; "
        "from bench.embedload import naive_app; from pathlib import Path; "
        "uvicorn.run(naive_app(Path(sys.argv[1])), host='127.0.0.1', port=int(sys.argv[2]), "
        "log_level='warning')"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(model_dir), str(port)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
    )  # fmt: skip


def cpu_ticks() -> list[int]:
    """The machine's CPU time counters (user, nice, system, idle, iowait, irq, softirq, steal)."""
    with open("/proc/stat") as fh:
        return [int(x) for x in fh.readline().split()[1:9]]


def steal_share(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor gave to other guests between two :func:`cpu_ticks`.

    On a shared VM this is what makes rounds disagree: a round with steal > a few % measured
    the neighbours as much as the code.
    """
    delta = [b - a for a, b in zip(before, after, strict=True)]
    return delta[7] / max(1, sum(delta))


def _idle_fraction(seconds: float = 2.0) -> float:
    """Share of CPU time the whole machine spent idle (idle + iowait) over ``seconds``."""
    before = cpu_ticks()
    time.sleep(seconds)
    delta = [b - a for a, b in zip(before, cpu_ticks(), strict=True)]
    return (delta[3] + delta[4]) / max(1, sum(delta))


def wait_quiet(min_idle: float = 0.85, max_wait_s: float = 180.0) -> float:
    """Wait (bounded) until the machine is at least ``min_idle`` idle; return the idle share.

    The machine may be shared: a round measured while other work runs says little.
    """
    deadline = time.monotonic() + max_wait_s
    idle = _idle_fraction()
    while idle < min_idle and time.monotonic() < deadline:
        idle = _idle_fraction()
    return idle


ONE_BATCH = "in process, one batch at a time"
PER_CORE = "in process, one batch per core"
TRACED = ", traced"


def in_child(function: str, *args: Any) -> Any:
    """``function(*args)`` of this module, run in a fresh Python process; its JSON result.

    ``args`` must be JSON-serialisable (paths as strings). The child's stderr passes through.
    """
    code = (
        "import json, sys; from bench import embedload; "
        "print(json.dumps(getattr(embedload, sys.argv[1])(*json.loads(sys.argv[2]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, function, json.dumps(args)],
        stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def ceiling_ways(concurrency: int, cores: int) -> dict[str, tuple[int, int, bool]]:
    """The in-process ways, ``name → (lanes, batch per lane, traced)``.

    Every way holds as many texts in flight as the servers' clients do (``concurrency``): one
    batch of all of them on every core, or (with several cores) one share per core.
    """
    ways = {ONE_BATCH: (1, concurrency)}
    if cores > 1:
        ways[PER_CORE] = (cores, max(1, concurrency // cores))
    return {
        name + (TRACED if trace else ""): (lanes, batch, trace)
        for trace in (False, True)
        for name, (lanes, batch) in ways.items()
    }


@dataclass
class Comparison:
    """Every configuration's rounds, and the machine's state in each round."""

    results: dict[str, Result]
    idle_before: list[float] = field(default_factory=list)
    steal_during: list[float] = field(default_factory=list)


def compare(
    servers: dict[str, tuple[str, str]],
    model_dir: Path,
    *,
    requests: int,
    concurrency: int,
    repeat: int,
    ceiling_s: float,
) -> Comparison:
    """Measure every in-process way and every ``name → (url, model)`` server, ``repeat`` rounds.

    The first server is the subject, the others its peers. Each round starts once the machine
    is quiet (see :func:`wait_quiet`) and measures every configuration back to back: peers, the
    in-process ways, the subject in even rounds, and the reverse in odd ones. The subject thus
    always runs right next to the in-process ways (whose last is the traced one-batch-per-core
    way that sets the ceiling in practice), not behind a slow peer, and a drift within a round
    favours neither side. :func:`table` reports medians of those per-round ratios.
    """
    from node.serving import default_lanes

    inprocess = ceiling_ways(concurrency, default_lanes())
    results = {n: Result(n) for n in (*inprocess, *servers)}
    for name, (lanes, batch, _) in inprocess.items():
        results[name].setup = f"{lanes} × {batch} texts"
    run = Comparison(results)
    for name, (url, model) in servers.items():
        warm(url, model, concurrency)
        print(f"  warmed {name}", file=sys.stderr)

    def measure(name: str) -> None:
        if name in inprocess:
            lanes, batch, trace = inprocess[name]
            rate = in_child("ceiling", str(model_dir), batch, ceiling_s, lanes, trace)
            results[name].texts_per_s.append(rate)
            return
        url, model = servers[name]
        rate, p50, p99 = in_child("load", url, model, requests, concurrency)
        results[name].texts_per_s.append(rate)
        results[name].p50_ms.append(p50)
        results[name].p99_ms.append(p99)

    subject, *peers = servers
    order = [*peers, *inprocess, subject]
    for round_no in range(repeat):
        run.idle_before.append(wait_quiet())
        ticks = cpu_ticks()
        for name in order if round_no % 2 == 0 else order[::-1]:
            measure(name)
        run.steal_during.append(steal_share(ticks, cpu_ticks()))
        line = ", ".join(f"{n} {r.texts_per_s[-1]:.0f}/s" for n, r in results.items())
        print(f"  round {round_no + 1}/{repeat}: {line} (idle before: {run.idle_before[-1]:.0%}, "
              f"steal during: {run.steal_during[-1]:.1%})", file=sys.stderr)  # fmt: skip
    return run


def _ratio(a: Result, b: Result) -> float:
    """Median over rounds of ``a / b`` measured in the same round."""
    return statistics.median(x / y for x, y in zip(a.texts_per_s, b.texts_per_s, strict=True))


def versus_ceiling(results: dict[str, Result], subject: str) -> tuple[float, str]:
    """``subject``'s ratio to the ceiling, and which in-process way set it.

    The ceiling is the in-process way ``subject`` compares worst against: for each way the
    median of the per-round ratios, then the smallest of those. (Taking the fastest way *within*
    each round instead would compare one server sample against the luckiest of four in-process
    samples: on a machine whose speed drifts by ±20 % between seconds that biases every ratio
    down by the drift, not by the server.)
    """
    ways = [r for r in results.values() if r.setup]
    ratio, way = min((_ratio(results[subject], w), w.name) for w in ways)
    return ratio, way


def table(run: Comparison, subject: str) -> str:
    """A markdown table with the ratios the goals are stated in (medians of per-round ratios)."""
    results = run.results
    naive = results.get("naive")
    rows = [
        f"| configuration | texts/s (median) | runs | p50 ms | p99 ms | {subject} ÷ it | × naive |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results.values():
        runs = " ".join(f"{x:.0f}" for x in r.texts_per_s)
        p50 = f"{statistics.median(r.p50_ms):.1f}" if r.p50_ms else "—"
        p99 = f"{statistics.median(r.p99_ms):.1f}" if r.p99_ms else "—"
        vs_naive = f"{_ratio(r, naive):.2f}" if naive else "—"
        name = f"{r.name} ({r.setup})" if r.setup else r.name
        versus = f"{_ratio(results[subject], r):.2f}"
        rows.append(
            "| " + " | ".join([name, f"{r.best:.0f}", runs, p50, p99, versus, vs_naive]) + " |"
        )
    ratio_top, way = versus_ceiling(results, subject)
    ratio_naive = _ratio(results[subject], naive) if naive else float("nan")
    idle = " ".join(f"{x:.0%}" for x in run.idle_before)
    steal = " ".join(f"{x:.1%}" for x in run.steal_during)
    rows += [
        "",
        f"{subject}: {ratio_top:.2f}× the ceiling ({way}; goal ≥ 0.85), {ratio_naive:.2f}× naive "
        f"(goal ≥ 3); ratios are medians of per-round ratios, the ceiling is the in-process way "
        f"{subject} compares worst against",
        f"(machine idle before each round: {idle}; CPU time stolen by the hypervisor during each "
        f"round: {steal}; the machine has {os.cpu_count()} cores)",
    ]
    return "\n".join(rows)


def worker_comparison(
    *, requests: int = 1024, concurrency: int = 32, repeat: int = 5, ceiling_s: float = 4.0
) -> str:
    """bench/node.py part (b): a worker's ``/v1/embeddings`` vs the ceiling and the naive server.

    A devnet (embedded chain) with MiniLM pushed, one ``anchorml node run`` serving it (dynamic
    batching at its defaults, B=16 / W=10 ms) and the naive server, measured as :func:`compare`.
    """
    import shutil
    import tempfile

    from api.up import Supervisor
    from registry.dev import demo
    from registry.dev.devnet import OWNER, WORKER_KEYS, Devnet
    from registry.dev.procs import free_port, wait_http
    from registry.model.package import push

    root = Path(tempfile.mkdtemp(prefix="anchorml-bench-node-b-"))
    try:
        with Devnet(root) as net:
            source = Path(shutil.copytree(demo.cached_model("minilm"), root / "minilm"))
            push(net.sdk(OWNER), source, "minilm", "v1", license="Apache-2.0")
            workers = Supervisor(net)
            workers.start_worker("bench-b", WORKER_KEYS[0], ["minilm@v1"], kinds='["INFER"]')
            workers.wait_log("bench-b", "node bench-b up", timeout=300)
            endpoint = net.sdk(None).nodes.get_node(net.address(WORKER_KEYS[0])).endpoint
            port = free_port()
            naive = start_naive(demo.cached_model("minilm"), port, root / "naive.log")
            try:
                wait_http(f"http://127.0.0.1:{port}/docs", naive, root / "naive.log")
                servers = {
                    "worker": (endpoint, "minilm@v1"),
                    "naive": (f"http://127.0.0.1:{port}", "minilm"),
                }
                comparison = compare(
                    servers,
                    demo.cached_model("minilm"),
                    requests=requests, concurrency=concurrency, repeat=repeat,
                    ceiling_s=ceiling_s,
                )  # fmt: skip
            finally:
                naive.terminate()
                naive.wait(timeout=30)
                workers.stop()
        return (
            f"### Part (b): dynamic batching through the worker endpoint (MiniLM-L6, "
            f"{concurrency} concurrent clients, one text per request)\n\n"
            + table(comparison, "worker")
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
