"""Attributable inference end to end, as a new user meets it: real workers (``anchorml node run``),
a real gateway process, the official ``openai`` client, the ``anchorml receipt`` CLI, and the
Challenges contract on the devnet.

- An answer saved from the ``openai`` client verifies with ``anchorml receipt verify``; the same
  answer with one float or one character changed does not (exit 1, one line).
- A worker that signs wrong embeddings with its real key is caught by a spot check, challenged
  on chain by the gateway, the re-execution job is run by the honest workers, and resolving the
  challenge slashes the liar's stake.
- A challenge of an honest receipt is dismissed: the challenger's fee is gone (it paid the
  re-executors).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from registry.clients import JobStatus
from registry.dev import demo
from registry.jobs import wait_settled
from support.devnet import ANCHORML, KEYS, REQUESTER
from support.gateway import CHAT, GATEWAY, MINILM, GatewayNet, ThreadServer
from support.liar import liar_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

HONEST = {"w-honest-a": 7, "w-honest-b": 8}
LIAR = 9


@pytest.fixture(scope="module")
def net(gateway_net: GatewayNet) -> Iterator[dict[str, str]]:
    """Two honest workers (one also serving chat), a liar, and a gateway spot-checking every
    deterministic answer; yields their URLs."""
    devnet = gateway_net.devnet
    trusted = gateway_net.address(GATEWAY)
    serves = {"w-honest-a": [f"{MINILM}@v1", f"{CHAT}@v1"], "w-honest-b": [f"{MINILM}@v1"]}
    for name, key in HONEST.items():
        devnet.start_node(
            name, key, serves[name], kinds='["INFER"]', trusted_gateways=trusted,
            data_dir=str(gateway_net.root / f"{name}-data"),
        )  # fmt: skip
    liar_sdk = gateway_net.sdk(LIAR)
    key = bytes.fromhex(KEYS[LIAR].removeprefix("0x"))
    app = liar_app(demo.cached_model("minilm"), key, liar_sdk.deployment)
    with ThreadServer(app) as liar:
        from registry.receipts import Signer

        nodes = liar_sdk.nodes
        nodes.register(liar.url, Signer(key).public_key, nodes.min_stake() * 5)
        nodes.set_serving([liar_sdk.models.resolve(f"{MINILM}@v1").version_id])
        for name in HONEST:
            devnet.wait_log(name, " up: ", timeout=300)
        url = gateway_net.serve_gateway(
            "gw-receipts", inprocess="false", rate_limit_per_s="0",
            spot_check_fraction="1", allow_private_workers="true",
        )  # fmt: skip
        try:
            yield {"gateway": url, "liar": liar.url}
        finally:
            gateway_net.stop_gateways()
            devnet.stop_nodes()


def _metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _cli(
    gateway_net: GatewayNet, *args: str, key: int | None = REQUESTER
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANCHORML), *args], env=gateway_net.devnet.env(key), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def _client(url: str):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=120)


def _honest_embedding(url: str, liar: str) -> dict[str, object]:
    """An embeddings answer from an honest worker, saved as the openai client returns it."""
    client = _client(url)
    for _ in range(30):
        answer = client.embeddings.create(model=MINILM, input=["a saved answer"]).model_dump()
        signer = answer["anchorml"]["receipt"]["signer"]
        if signer != Account.from_key(KEYS[LIAR]).address:
            return answer
    raise AssertionError(f"only the liar at {liar} answered")


def test_an_answer_saved_from_the_openai_client_verifies_and_a_changed_byte_does_not(
    gateway_net: GatewayNet, net: dict[str, str], tmp_path: Path
) -> None:
    url = net["gateway"]
    saved = tmp_path / "answer.json"
    # chat first, alone: a generation while another model loads on the same worker can fail
    # (a dtype error in the worker's decode step, reported separately)
    chat = _client(url).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Say hi."}], max_tokens=6
    )
    answer = chat.model_dump()
    saved.write_text(json.dumps(answer))
    ok = _cli(gateway_net, "receipt", "verify", str(saved), key=None)
    assert ok.returncode == 0, ok.stderr
    assert "verified" in ok.stdout and f"{CHAT}@v1" in ok.stdout
    content = answer["choices"][0]["message"]["content"]
    answer["choices"][0]["message"]["content"] = ("X" if content[:1] != "X" else "Y") + content[1:]
    saved.write_text(json.dumps(answer))
    bad = _cli(gateway_net, "receipt", "verify", str(saved), key=None)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: the response does not match the receipt's response hash"
    ]

    answer = _honest_embedding(url, net["liar"])
    saved.write_text(json.dumps(answer))
    ok = _cli(gateway_net, "receipt", "verify", str(saved), key=None)
    assert ok.returncode == 0, ok.stderr
    assert answer["anchorml"]["receipt"]["signer"] in ok.stdout  # type: ignore[index]
    assert f"{MINILM}@v1" in ok.stdout
    vector = answer["data"][0]["embedding"]  # type: ignore[index]
    vector[3] = vector[3] + 0.001
    saved.write_text(json.dumps(answer))
    bad = _cli(gateway_net, "receipt", "verify", str(saved), key=None)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: the response does not match the receipt's response hash"
    ]


def test_a_worker_signing_wrong_answers_is_caught_challenged_and_slashed(
    gateway_net: GatewayNet, net: dict[str, str]
) -> None:
    url = net["gateway"]
    liar = Account.from_key(KEYS[LIAR]).address
    sdk = gateway_net.sdk(REQUESTER)
    stake_before = sdk.nodes.get_node(liar).stake_wei
    for i in range(12):  # round robin over three workers: the liar answers or is asked
        response = httpx.post(
            f"{url}/v1/embeddings", json={"model": MINILM, "input": [f"text {i}"]}, timeout=120
        )
        assert response.status_code == 200, response.text
        if _metric(url, "anchorml_gateway_spot_checks_total", '{outcome="challenged"}') >= 1:
            break
    deadline = time.monotonic() + 120
    while _metric(url, "anchorml_gateway_spot_checks_total", '{outcome="challenged"}') < 1:
        assert time.monotonic() < deadline, httpx.get(f"{url}/metrics").text
        time.sleep(1)
    nodes = {n["address"]: n for n in httpx.get(f"{url}/v1/nodes", timeout=60).json()["data"]}
    assert nodes[liar]["excluded"] == "a spot check found a wrong answer"
    honest = {gateway_net.address(k) for k in HONEST.values()}
    assert all(nodes[a]["excluded"] is None for a in honest)
    # after the exclusion no answer comes from the liar any more
    for i in range(4):
        body = httpx.post(
            f"{url}/v1/embeddings", json={"model": MINILM, "input": [f"after {i}"]}, timeout=120
        ).json()
        assert body["anchorml"]["receipt"]["signer"] in honest

    challenges = [sdk.challenges.get(i) for i in range(1, sdk.challenges.last_challenge_id() + 1)]
    against = [c for c in challenges if c.signer == liar]
    assert len(against) == 1, challenges  # one challenge per caught node
    challenge = against[0]
    challenge_id = challenge.id
    record = wait_settled(sdk, challenge.job_id, timeout=600)
    assert record.status is JobStatus.FINALIZED
    status = json.loads(_cli(gateway_net, "receipt", "status", str(challenge_id)).stdout)
    assert status["status"] == "open" and status["job_status"] == "finalized"
    resolved = _cli(gateway_net, "receipt", "resolve", str(challenge_id))
    assert resolved.returncode == 0, resolved.stderr
    assert "outcome slashed" in resolved.stdout
    assert sdk.nodes.get_node(liar).stake_wei < stake_before


def test_challenging_an_honest_receipt_loses_the_fee(
    gateway_net: GatewayNet, net: dict[str, str], tmp_path: Path
) -> None:
    answer = _honest_embedding(net["gateway"], net["liar"])
    signer = answer["anchorml"]["receipt"]["signer"]  # type: ignore[index]
    saved = tmp_path / "honest.json"
    saved.write_text(json.dumps(answer))
    sdk = gateway_net.sdk(REQUESTER)
    stake_before = sdk.nodes.get_node(signer).stake_wei
    filed = _cli(gateway_net, "receipt", "challenge", str(saved))
    assert filed.returncode == 0, filed.stderr
    challenge_id = int(re.search(r"^challenge (\d+)$", filed.stdout, re.M).group(1))  # type: ignore[union-attr]
    challenge = sdk.challenges.get(challenge_id)
    assert challenge.challenger == sdk.wallet.address  # type: ignore[union-attr]
    assert wait_settled(sdk, challenge.job_id, timeout=600).status is JobStatus.FINALIZED
    resolved = _cli(gateway_net, "receipt", "resolve", str(challenge_id))
    assert "outcome dismissed" in resolved.stdout, resolved.stderr
    assert sdk.nodes.get_node(signer).stake_wei == stake_before
    assert sdk.challenges.withdrawable(sdk.wallet.address) == 0  # type: ignore[union-attr]
    again = _cli(gateway_net, "receipt", "challenge", str(saved))
    assert again.returncode == 1 and again.stderr.startswith("error: ")
    assert len(again.stderr.strip().splitlines()) == 1
