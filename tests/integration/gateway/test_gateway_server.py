"""The gateway as a real process (``anchorml gateway``) on a devnet, driven by real clients:
the official ``openai`` package, unchanged, for embeddings, chat and streaming chat (with a
token minted by ``anchorml auth token`` for the gated model); LangChain's ``ChatOpenAI``
(invoke and stream), as the README shows it; a client that cuts a stream leaves no generation
slot taken."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from support.devnet import REQUESTER, USER
from support.gateway import CHAT, GATED, MINILM, GatewayNet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def url(gateway_net: GatewayNet) -> Iterator[str]:
    yield gateway_net.serve_gateway("gw-server", rate_limit_per_s="0")
    gateway_net.stop_gateways()


def _cli_token(gateway_net: GatewayNet, key_index: int) -> str:
    anchorml = Path(sys.executable).with_name("anchorml")
    proc = subprocess.run(
        [str(anchorml), "auth", "token", "--ttl", "1h"],
        env=gateway_net.devnet.env(key_index), capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    return proc.stdout.strip()


def test_auth_token_cli_prints_only_a_token(gateway_net: GatewayNet) -> None:
    token = _cli_token(gateway_net, USER)
    assert re.fullmatch(r"amlt1\.[A-Za-z0-9_-]+\.[0-9a-f]{130}", token), token


def test_openai_client_embeddings_chat_and_streaming(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed-for-public-models")
    listed = {m.id for m in client.models.list()}
    assert {MINILM, CHAT, f"{MINILM}@prod"} <= listed

    embedded = client.embeddings.create(
        model=MINILM, input=["hello", "world"]
    )  # base64 on the wire
    assert len(embedded.data) == 2 and len(embedded.data[0].embedding) == 384
    assert embedded.model == f"{MINILM}@v1" and embedded.usage.prompt_tokens > 0

    messages = [{"role": "user", "content": "Say hello in French."}]
    chat = client.chat.completions.create(model=CHAT, messages=messages, max_tokens=16)  # type: ignore[arg-type]
    text = chat.choices[0].message.content or ""
    assert text and chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage is not None and chat.usage.completion_tokens <= 16

    stream = client.chat.completions.create(
        model=CHAT, messages=messages, max_tokens=16, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == text and finish == chat.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == chat.usage.completion_tokens

    completion = client.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=8)
    assert completion.choices[0].text


def test_langchain_chat_openai_invoke_and_stream(url: str) -> None:
    """The README's LangChain snippet: ``ChatOpenAI`` pointed at the gateway, unchanged."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=CHAT, base_url=f"{url}/v1", api_key="unused", max_tokens=12)  # type: ignore[arg-type]
    answer = llm.invoke("Name one planet.")
    assert isinstance(answer.content, str) and answer.content
    assert answer.response_metadata["model_name"] == f"{CHAT}@v1"
    streamed = "".join(str(chunk.content) for chunk in llm.stream("Name one planet."))
    assert streamed == answer.content  # greedy: the same text either way


def test_openai_client_on_a_gated_model_needs_a_token_with_access(
    gateway_net: GatewayNet, url: str
) -> None:
    anonymous = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-anything")
    with pytest.raises(openai.AuthenticationError) as missing:
        anonymous.embeddings.create(model=GATED, input="x")
    assert missing.value.code == "missing_token"
    outsider = openai.OpenAI(base_url=f"{url}/v1", api_key=_cli_token(gateway_net, REQUESTER))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        outsider.embeddings.create(model=GATED, input="x")
    assert denied.value.code == "no_access"
    allowed = openai.OpenAI(base_url=f"{url}/v1", api_key=_cli_token(gateway_net, USER))
    assert len(allowed.embeddings.create(model=GATED, input="x").data[0].embedding) == 384
    with pytest.raises(openai.NotFoundError) as unknown:
        allowed.embeddings.create(model="no-such-model", input="x")
    assert unknown.value.code == "model_not_found"


def _generated(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(r"^anchorml_generated_tokens_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_cut_stream_frees_its_slot(url: str) -> None:
    body = {
        "model": CHAT, "max_tokens": 1000, "stream": True,
        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}],
    }  # fmt: skip
    httpx.post(
        f"{url}/v1/chat/completions", json={**body, "stream": False, "max_tokens": 1}
    )  # warm
    before = _generated(url)
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{url}/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: ") and "content" in line:
                seen += 1
                if seen == 5:
                    break  # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/healthz").json()["active_generations"] != 0:
        assert time.monotonic() < deadline, "generation slot still taken after the client left"
        time.sleep(0.1)
    generated = _generated(url) - before
    assert 1 <= generated < 200, generated  # it ran, and stopped long before max_tokens
    quick = httpx.post(  # the freed slot serves the next request
        f"{url}/v1/chat/completions", json={**body, "stream": False, "max_tokens": 4}, timeout=60
    )
    assert quick.status_code == 200
    assert json.loads(quick.text)["usage"]["completion_tokens"] <= 4
