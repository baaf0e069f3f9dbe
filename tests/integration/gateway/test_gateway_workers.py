"""The gateway in front of real worker processes (``anchorml node run``), in-process inference off:
direct requests are load-balanced over the workers that serve the version (SSE relayed), a
version nobody serves is 503 ``no_worker``, and the on-chain path turns a request into an
INFER job (k = 1 and k = 2) whose verified result comes back with its receipt. A stream cut at
the gateway stops the worker's generation."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from registry.clients import JobStatus
from support.devnet import USER
from support.gateway import CHAT, GATED, GATEWAY, MINILM, GatewayNet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

WORKERS = {"w-a": 7, "w-b": 8}


@pytest.fixture(scope="module")
def url(gateway_net: GatewayNet) -> Iterator[str]:
    serves = {"w-a": [f"{MINILM}@v1", f"{CHAT}@v1"], "w-b": [f"{MINILM}@v1"]}
    for name, key in WORKERS.items():
        gateway_net.devnet.start_node(
            name,
            key,
            serves[name],
            kinds='["INFER"]',
            trusted_gateways=gateway_net.address(GATEWAY),
            data_dir=str(gateway_net.root / f"{name}-data"),
        )  # own model cache each: see the report on ModelCache races across processes
    for name in WORKERS:
        gateway_net.devnet.wait_log(name, " up: ", timeout=300)
    yield gateway_net.serve_gateway(
        "gw-workers", inprocess="false", rate_limit_per_s="0", allow_private_workers="true"
    )
    gateway_net.stop_gateways()
    gateway_net.devnet.stop_nodes()  # later modules must not see these workers take their jobs


def _worker_urls(url: str) -> dict[str, str]:
    # two chain reads per node: httpx's 5 s default timed out once in a clean-clone CI run
    nodes = httpx.get(f"{url}/v1/nodes", timeout=60).json()["data"]
    return {n["address"]: n["endpoint"] for n in nodes if n["eligible"] and n["serving"]}


def _metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_direct_requests_are_balanced_over_the_serving_workers(
    gateway_net: GatewayNet, url: str
) -> None:
    workers = _worker_urls(url)
    assert {gateway_net.address(k) for k in WORKERS.values()} <= set(workers)
    for _ in range(8):
        response = httpx.post(
            f"{url}/v1/embeddings", json={"model": MINILM, "input": "hi"}, timeout=120
        )
        assert response.status_code == 200, response.text
    counts = []
    for key in WORKERS.values():
        text = httpx.get(f"{workers[gateway_net.address(key)]}/metrics").text
        counts.append(_metric(text, "anchorml_inference_seconds_count", '{endpoint="embeddings"}'))
    assert all(c >= 2 for c in counts), counts
    gateway = httpx.get(f"{url}/metrics").text
    assert _metric(gateway, "anchorml_gateway_inference_total", '{path="worker"}') >= 8
    assert _metric(gateway, "anchorml_gateway_inference_total", '{path="inprocess"}') == 0


def test_streamed_chat_is_relayed_from_the_worker(url: str) -> None:
    body = {"model": CHAT, "messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 8}
    whole = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()
    lines = []
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=120
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert "receipt" in chunks[-1]["anchorml"]  # the last event carries the checked receipt
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]


def test_a_version_no_worker_serves_is_503_no_worker(gateway_net: GatewayNet, url: str) -> None:
    # the access check reads the chain: httpx's 5 s default timed out once under load
    response = httpx.post(
        f"{url}/v1/embeddings", json={"model": GATED, "input": "x"},
        headers={"Authorization": f"Bearer {gateway_net.token(USER)}"}, timeout=60,
    )  # fmt: skip
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_worker"


def test_a_worker_refuses_versions_it_does_not_serve(gateway_net: GatewayNet, url: str) -> None:
    workers = _worker_urls(url)
    only_minilm = workers[gateway_net.address(WORKERS["w-b"])]
    body = {"model": f"{CHAT}@v1", "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(f"{only_minilm}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_served"
    listed = {m["id"] for m in httpx.get(f"{only_minilm}/v1/models", timeout=60).json()["data"]}
    assert listed == {f"{MINILM}@v1"}


@pytest.mark.parametrize("redundancy", [1, 2])
def test_onchain_embeddings_come_back_verified_with_a_receipt(
    gateway_net: GatewayNet, url: str, redundancy: int
) -> None:
    texts = ["anchored on chain", f"redundancy {redundancy}"]
    direct = httpx.post(
        f"{url}/v1/embeddings", json={"model": MINILM, "input": texts}, timeout=120
    ).json()
    body = {
        "model": MINILM,
        "input": texts,
        "anchorml": {"mode": "onchain", "redundancy": redundancy},
    }
    response = httpx.post(f"{url}/v1/embeddings", json=body, timeout=600)
    assert response.status_code == 200, response.text
    answer = response.json()
    receipt = answer["anchorml"]
    chain = gateway_net.sdk(None)
    job = chain.jobs.get_job(receipt["job_id"])
    assert job.status == JobStatus.FINALIZED and job.spec.redundancy == redundancy
    assert job.requester == gateway_net.address(GATEWAY)
    assert job.result is not None and job.result.content.to_cid() == receipt["result_cid"]
    assert receipt["create_tx"].startswith("0x") and receipt["finalize_tx"].startswith("0x")
    for got, want in zip(answer["data"], direct["data"], strict=True):
        assert got["embedding"] == pytest.approx(want["embedding"], abs=1e-5)


def test_onchain_chat_matches_direct_greedy_decoding(url: str) -> None:
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": "Name a fruit."}],
        "max_tokens": 10,
    }
    direct = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()
    onchain = httpx.post(
        f"{url}/v1/chat/completions", json={**body, "anchorml": {"mode": "onchain"}}, timeout=600
    ).json()
    assert onchain["anchorml"]["job_id"] > 0
    assert onchain["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    assert onchain["usage"] == direct["usage"]


def test_a_stream_cut_at_the_gateway_stops_the_worker(gateway_net: GatewayNet, url: str) -> None:
    worker = _worker_urls(url)[gateway_net.address(WORKERS["w-a"])]
    body = {
        "model": CHAT, "max_tokens": 1000, "stream": True,
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
    }  # fmt: skip
    before = _metric(httpx.get(f"{worker}/metrics").text, "anchorml_generated_tokens_total")
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", f"{url}/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for n, _line in enumerate(response.iter_lines()):
            if n >= 10:
                break
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"{worker}/metrics").text
        if (
            _metric(text, "anchorml_active_generations") == 0
            and _metric(text, "anchorml_generated_tokens_total") > before
        ):
            break
        assert time.monotonic() < deadline, "the worker kept generating after the client left"
        time.sleep(0.2)
    assert _metric(text, "anchorml_generated_tokens_total") - before < 200


def test_onchain_sampled_completion_with_stop_matches_direct(url: str) -> None:
    """One decode loop: a seeded, sampled request with a stop string gives the same text, finish
    reason and token counts as a direct request and as an on-chain job (the job stops where the
    request stops, so its completion tokens are the request's, not max_tokens)."""
    body = {
        "model": CHAT,
        "prompt": "1, 2, 3, 4,",
        "max_tokens": 12,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 11,
        "stop": ["6"],
    }
    direct = httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()
    onchain = httpx.post(
        f"{url}/v1/completions", json={**body, "anchorml": {"mode": "onchain"}}, timeout=600
    ).json()
    assert onchain["anchorml"]["job_id"] > 0
    assert onchain["choices"][0]["text"] == direct["choices"][0]["text"]
    assert onchain["choices"][0]["finish_reason"] == direct["choices"][0]["finish_reason"]
    assert onchain["usage"] == direct["usage"]
