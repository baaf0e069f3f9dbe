"""Receipts on the gateway's in-process answers, on a devnet with real models and a real socket:
signed with the gateway's own key (its wallet's unless ``ANCHORML_GATEWAY_KEY`` /
``key_file`` name another), in the deployment's receipt domain, and that key registered in
NodeRegistry like a node's (``anchorml up``: :func:`api.up.register_gateway_key`). What the
official ``openai`` client returns verifies: embeddings (base64 on the wire, floats in hand),
chat, and a chat stream whose last chunk carries the receipt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.gateway.config import GatewayConfig
from api.gateway.deps import gateway_signer
from api.up import register_gateway_key
from registry.receipts import RECEIPT_HEADER, Domain, Signer, receipt_domain
from support.devnet import KEYS
from support.gateway import CHAT, GATEWAY, MINILM, GatewayNet, ThreadServer
from support.receipts import assembled, check_receipt

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(gateway_net: GatewayNet) -> Iterator[ThreadServer]:
    with ThreadServer(gateway_net.app(rate_limit_per_s=0)) as running:
        yield running


@pytest.fixture(scope="module")
def openai_client(server: ThreadServer) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def domain(gateway_net: GatewayNet) -> Domain:
    return receipt_domain(gateway_net.sdk(None).deployment)


def _version(gateway_net: GatewayNet, ref: str) -> bytes:
    return bytes(gateway_net.sdk(None).models.resolve(ref).version_id)


def test_the_gateways_signing_key_is_registered_like_a_nodes(
    gateway_net: GatewayNet, server: ThreadServer
) -> None:
    sdk = gateway_net.sdk(None)
    address = gateway_net.address(GATEWAY)
    assert register_gateway_key(gateway_net.devnet, GATEWAY, server.url) is not None
    node = sdk.nodes.get_node(address)
    assert node.registered and node.endpoint == server.url
    assert bytes(node.public_key) == Signer(bytes(Account.from_key(KEYS[GATEWAY]).key)).public_key
    assert sdk.nodes.is_eligible(address) and node.stake_wei >= sdk.nodes.min_stake()
    assert register_gateway_key(gateway_net.devnet, GATEWAY, server.url) is None  # done once


def test_openai_client_embeddings_verify(
    gateway_net: GatewayNet, server: ThreadServer, openai_client: Any, domain: Domain
) -> None:
    raw = openai_client.embeddings.with_raw_response.create(model=MINILM, input=["one", "two"])
    result = raw.parse()
    assert isinstance(result.data[0].embedding[0], float) and result.model == f"{MINILM}@v1"
    sent = {"model": MINILM, "input": ["one", "two"], "encoding_format": "base64"}
    check_receipt(
        "embeddings", result.model_dump(), sent, _version(gateway_net, f"{MINILM}@v1"),
        gateway_net.address(GATEWAY), domain, header=raw.headers[RECEIPT_HEADER],
    )  # fmt: skip


def test_float_embeddings_and_chat_verify_on_the_bytes_received(
    gateway_net: GatewayNet, server: ThreadServer, domain: Domain
) -> None:
    """Through an alias (``minilm@prod``): the receipt names the version that answered."""
    signer = gateway_net.address(GATEWAY)
    with httpx.Client(base_url=server.url, timeout=300) as http:
        sent: dict[str, Any] = {"model": f"{MINILM}@prod", "input": "hello"}
        answer = http.post("/v1/embeddings", json=sent)
        assert answer.status_code == 200, answer.text
        check_receipt(
            "embeddings", answer.json(), sent, _version(gateway_net, f"{MINILM}@v1"), signer,
            domain, header=answer.headers[RECEIPT_HEADER],
        )  # fmt: skip
        sent = {"model": CHAT, "prompt": "The sky is", "max_tokens": 3}
        answer = http.post("/v1/completions", json=sent)
        assert answer.status_code == 200, answer.text
        check_receipt(
            "completions", answer.json(), sent, _version(gateway_net, f"{CHAT}@v1"), signer,
            domain, header=answer.headers[RECEIPT_HEADER],
        )  # fmt: skip


def test_openai_client_chat_and_stream_verify(
    gateway_net: GatewayNet, openai_client: Any, domain: Domain
) -> None:
    signer, version = gateway_net.address(GATEWAY), _version(gateway_net, f"{CHAT}@v1")
    messages = [{"role": "user", "content": "Name a colour."}]
    sent: dict[str, Any] = {"model": CHAT, "messages": messages, "max_tokens": 5}
    result = openai_client.chat.completions.create(**sent)
    check_receipt("chat", result.model_dump(), sent, version, signer, domain)
    stream = openai_client.chat.completions.create(**sent, stream=True)
    chunks = [c.model_dump() for c in stream]
    stamp = chunks[-1].pop("anchorml")
    body = {**assembled("chat", chunks), "anchorml": stamp}
    check_receipt("chat", body, {**sent, "stream": True}, version, signer, domain)
    assert body["choices"][0]["message"]["content"] == result.choices[0].message.content


def test_receipts_off_answers_unsigned(gateway_net: GatewayNet) -> None:
    with TestClient(gateway_net.app(rate_limit_per_s=0, receipts=False)) as client:
        answer = client.post("/v1/embeddings", json={"model": MINILM, "input": "x"})
    assert answer.status_code == 200
    assert "anchorml" not in answer.json() and RECEIPT_HEADER not in answer.headers


def test_the_signing_key_is_the_configured_one_else_the_wallets(
    gateway_net: GatewayNet, tmp_path: Path
) -> None:
    sdk, other = gateway_net.sdk(GATEWAY), Account.create()
    wallet = gateway_signer(GatewayConfig(), sdk)
    assert wallet is not None and wallet.address == gateway_net.address(GATEWAY)
    from_env = gateway_signer(GatewayConfig(key=other.key.hex()), sdk)
    assert from_env is not None and from_env.address == other.address
    key_file = tmp_path / "gateway.key"
    key_file.write_text(other.key.hex())
    from_file = gateway_signer(GatewayConfig(key_file=key_file), sdk)
    assert from_file is not None and from_file.address == other.address
    assert gateway_signer(GatewayConfig(), gateway_net.sdk(None)) is None  # no key at all
    with pytest.raises(ValidationError, match="key and key_file"):
        GatewayConfig(key=other.key.hex(), key_file=key_file)
