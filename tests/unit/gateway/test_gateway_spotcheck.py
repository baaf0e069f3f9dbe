"""Spot checks with the gateway's own runtime as the referee: two stand-in workers on the real
contracts sign embeddings with their registered keys, one honestly and one with a float moved;
the gateway (in process, every deterministic answer checked) finds them disagreeing, computes
the answer itself, challenges the liar's receipt on chain and stops routing to it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from registry.dev import demo
from registry.receipts import Signer
from support.devnet import KEYS
from support.gateway import MINILM, GatewayNet, ThreadServer
from support.liar import liar_app

pytestmark = pytest.mark.timeout(600)

HONEST, LIAR = 5, 6


def _metric(text: str, outcome: str) -> float:
    match = re.search(
        rf'^anchorml_gateway_spot_checks_total{{outcome="{outcome}"}} (\S+)$', text, re.M
    )
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def workers(gateway_net: GatewayNet) -> Iterator[dict[int, str]]:
    """The two stand-ins, registered and serving ``minilm@v1``; undeclared afterwards."""
    model = demo.cached_model("minilm")
    deployment = gateway_net.sdk(HONEST).deployment
    apps = {
        key: liar_app(model, bytes.fromhex(KEYS[key].removeprefix("0x")), deployment, delta)
        for key, delta in ((HONEST, 0.0), (LIAR, 0.01))
    }
    servers = {key: ThreadServer(app) for key, app in apps.items()}
    vid = gateway_net.sdk(HONEST).models.resolve(f"{MINILM}@v1").version_id
    try:
        for key, server in servers.items():
            server.__enter__()
            nodes = gateway_net.sdk(key).nodes
            public_key = Signer(bytes.fromhex(KEYS[key].removeprefix("0x"))).public_key
            nodes.register(server.url, public_key, nodes.min_stake() * 5)
            nodes.set_serving([vid])
        yield {key: gateway_net.address(key) for key in servers}
    finally:
        for key, server in servers.items():
            gateway_net.sdk(key).nodes.set_serving([vid], False)
            server.__exit__(None, None, None)


def test_the_in_process_runtime_referees_and_the_liar_is_challenged_and_excluded(
    gateway_net: GatewayNet, workers: dict[int, str]
) -> None:
    sdk = gateway_net.sdk()
    first = sdk.challenges.last_challenge_id()
    app = gateway_net.app(
        inprocess=True, spot_check_fraction=1.0, allow_private_workers=True, rate_limit_per_s=0
    )
    with ThreadServer(app) as gateway:
        for i in range(4):
            answer = httpx.post(
                f"{gateway.url}/v1/embeddings",
                json={"model": MINILM, "input": [f"check {i}"]},
                timeout=120,
            )
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 180
        while _metric(text := httpx.get(f"{gateway.url}/metrics").text, "challenged") < 1:
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
        assert _metric(text, "disagreed") >= 1
        nodes = {
            n["address"]: n for n in httpx.get(f"{gateway.url}/v1/nodes", timeout=60).json()["data"]
        }
        assert nodes[workers[LIAR]]["excluded"] == "a spot check found a wrong answer"
        assert nodes[workers[HONEST]]["excluded"] is None
        for i in range(3):
            body = httpx.post(
                f"{gateway.url}/v1/embeddings", json={"model": MINILM, "input": [f"later {i}"]},
                timeout=120,
            ).json()  # fmt: skip
            assert body["anchorml"]["receipt"]["signer"] != workers[LIAR]
    filed = [
        sdk.challenges.get(i) for i in range(first + 1, sdk.challenges.last_challenge_id() + 1)
    ]
    assert [c.signer for c in filed] == [workers[LIAR]]
