"""G3 — load on the devnet: 64 concurrent clients for ``ANCHORML_LOAD_S`` seconds (default 15;
the reliability case asks for 60) mixing embeddings, chat and sponsored job creation through a
real gateway socket. No request fails, every job the gateway acknowledged exists on chain
exactly once with the gateway as requester, and the p99 latency is reported."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from registry.chain.events import EventScanner
from registry.clients import JobStatus
from support.devnet import USER
from support.gateway import CHAT, GATEWAY, MINILM, GatewayNet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CLIENTS = 64
SECONDS = float(os.environ.get("ANCHORML_LOAD_S", "15"))


@pytest.fixture(scope="module")
def url(gateway_net: GatewayNet) -> Iterator[str]:
    """A gateway process of its own (the chain and the clients live in this one)."""
    yield gateway_net.serve_gateway(
        "gw-load", rate_limit_per_s="0", max_tokens_cap="8", default_max_tokens="8"
    )
    gateway_net.stop_gateways()


async def _client(
    n: int, url: str, token: str, until: float, out: dict[str, list[float]], jobs: list[int],
    failures: list[str],
) -> None:  # fmt: skip
    rng = random.Random(n)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() < until:
            roll = rng.random()
            started = time.perf_counter()
            if roll < 0.80:
                kind = "embeddings"
                response = await client.post(
                    "/v1/embeddings", json={"model": MINILM, "input": f"load {n} {started}"}
                )
            elif roll < 0.95:
                kind = "chat"
                response = await client.post(
                    "/v1/chat/completions",
                    json={"model": CHAT, "messages": [{"role": "user", "content": "Hi"}],
                          "max_tokens": 4},
                )  # fmt: skip
            else:
                kind = "job"
                response = await client.post(
                    "/v1/jobs", headers=auth,
                    json={"kind": "infer", "model": MINILM, "input": {"texts": [f"{n}"]},
                          "params": {"task": "embed"}, "reward_wei": 10**12},
                )  # fmt: skip
            out.setdefault(kind, []).append(time.perf_counter() - started)
            if response.status_code not in (200, 201):
                failures.append(f"{kind}: {response.status_code} {response.text[:200]}")
            elif kind == "job":
                jobs.append(int(response.json()["job_id"]))


def test_64_clients_no_errors_no_lost_or_duplicated_job(gateway_net: GatewayNet, url: str) -> None:
    chain = gateway_net.sdk(None)
    first_block = chain.chain.w3.eth.block_number + 1
    latencies: dict[str, list[float]] = {}
    jobs: list[int] = []
    failures: list[str] = []
    token = gateway_net.token(USER)
    for warm in ({"model": CHAT, "messages": [{"role": "user", "content": "x"}]},):
        httpx.post(f"{url}/v1/chat/completions", json=warm, timeout=120).raise_for_status()
    httpx.post(f"{url}/v1/embeddings", json={"model": MINILM, "input": "x"}, timeout=120)

    async def run() -> None:
        until = time.monotonic() + SECONDS
        await asyncio.gather(
            *(_client(n, url, token, until, latencies, jobs, failures) for n in range(CLIENTS))
        )

    asyncio.run(run())
    assert failures == []
    everything = sorted(x for v in latencies.values() for x in v)
    p99 = everything[int(0.99 * (len(everything) - 1))]
    report = ", ".join(
        f"{k} n={len(v)} p50={statistics.median(v) * 1000:.0f}ms "
        f"p99={sorted(v)[int(0.99 * (len(v) - 1))] * 1000:.0f}ms"
        for k, v in sorted(latencies.items())
    )
    print(f"\nG3 load: {CLIENTS} clients × {SECONDS:.0f} s, {len(everything)} requests, "
          f"overall p99 {p99 * 1000:.0f} ms — {report}")  # fmt: skip
    assert len(jobs) == len(set(jobs)) and jobs
    created = {
        int(ev.args["jobId"])
        for ev in EventScanner(chain.chain, [chain.jobs], ["JobCreated"]).scan(
            first_block, where={"requester": gateway_net.address(GATEWAY)}
        )
    }
    assert created == set(jobs)  # nothing lost, nothing created twice
    gateway = gateway_net.sdk(GATEWAY)
    for job_id in jobs:  # refund what no worker took
        if gateway.jobs.status(job_id) == JobStatus.OPEN:
            gateway.jobs.cancel(job_id)
