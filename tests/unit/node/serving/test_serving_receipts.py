"""Receipts on every answer the serving package runs (the worker's path, and the gateway's
in-process one): real models on a real socket, read by ``httpx`` and by the official ``openai``
client. Each answer kind — embeddings (float, base64, and the fast path), classifications, chat
and completions, streamed and not — carries a receipt that recovers to the notary's address,
names the canonical request and hashes the body as received; the header holds the same receipt;
a stream's last event holds it for the assembled answer; the ``openai`` client's objects, dumped
again, hash to the signed response hash."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from eth_utils import to_checksum_address
from fastapi import FastAPI, Request

from node.serving import (
    InferenceRuntime,
    Notary,
    OpenAIService,
    Target,
    add_embeddings_fast_path,
    create_openai_router,
    run_here,
)
from node.serving.schemas import ModelCard
from registry.clients import Access, ContentRef, ModelRecord, VersionRecord
from registry.dev import demo
from registry.receipts import RECEIPT_HEADER, Domain, Signer, receipt_domain, response_hash
from support.gateway import ThreadServer
from support.receipts import assembled, check_receipt, sse_events

pytestmark = pytest.mark.timeout(600)

KEY = hashlib.sha256(b"anchorml test node key").digest()
DOMAIN = Domain(31337, to_checksum_address("0x" + "ab" * 20))


def _version(name: str) -> VersionRecord:
    digest = hashlib.sha256(name.encode()).digest()
    return VersionRecord(digest, digest, "v1", ContentRef(0x70, digest), digest, None, 0, "", False)


VERSIONS = {
    "minilm": _version("minilm"),
    "smollm2": _version("smollm2"),
    "tiny-classifier": _version("tiny-classifier"),
}


class DemoCache:
    """Stands in for ModelCache: version → demo model directory."""

    def ensure(self, version: VersionRecord) -> Path:
        name = next(n for n, v in VERSIONS.items() if v.cid == version.cid)
        return demo.cached_model(name)  # type: ignore[arg-type]


async def _authorize(ref: str, request: Request) -> Target:
    del request
    version = VERSIONS[ref]
    model = ModelRecord(version.model_id, ref, "0x" + "00" * 20, Access.PUBLIC, 0, 0)
    return Target(ref, model, version)


async def _models(request: Request) -> list[ModelCard]:
    return []


async def _describe(ref: str, request: Request) -> ModelCard:
    return ModelCard(id=ref, owned_by="0x" + "00" * 20)


def serving_app(notary: Notary | None, *, fast_path: bool = True) -> FastAPI:
    """The worker's composition on a bare app: the one router and (``fast_path``) the
    embeddings fast path, over one service signing with ``notary``."""
    runtime = InferenceRuntime(DemoCache())  # type: ignore[arg-type]
    service = OpenAIService(runtime, notary=notary)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await runtime.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(
        create_openai_router(
            service, _authorize, run_here, list_models=_models, describe_model=_describe
        )
    )
    if fast_path:
        add_embeddings_fast_path(app, service, _authorize, run_here)
    return app


@pytest.fixture(scope="module")
def notary() -> Notary:
    return Notary(Signer(KEY), DOMAIN)


@pytest.fixture(scope="module")
def server(notary: Notary) -> Iterator[ThreadServer]:
    with ThreadServer(serving_app(notary)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=300) as client:
        yield client


@pytest.fixture(scope="module")
def openai_client(server: ThreadServer) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    response = http.post(path, json=body)
    assert response.status_code == 200, response.text
    return response


def _check(
    endpoint: str, response: httpx.Response, sent: dict[str, Any], notary: Notary, **kw: Any
) -> None:
    check_receipt(
        endpoint, response.json(), sent, VERSIONS[sent["model"]].version_id, notary.address,
        DOMAIN, header=response.headers[RECEIPT_HEADER], **kw,
    )  # fmt: skip


# --- every answer kind -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_carry_a_receipt_in_body_and_header(
    http: httpx.Client, notary: Notary, encoding: str
) -> None:
    sent = {"model": "minilm", "input": ["a cat sat", "on the mat"], "encoding_format": encoding}
    _check("embeddings", _post(http, "/v1/embeddings", sent), sent, notary)


def test_embeddings_through_the_router_alone_are_signed_alike(notary: Notary) -> None:
    """Without the fast path the router's own route answers: signed the same way."""
    sent = {"model": "minilm", "input": "one text"}
    with (
        ThreadServer(serving_app(notary, fast_path=False)) as running,
        httpx.Client(base_url=running.url, timeout=300) as http,
    ):
        _check("embeddings", _post(http, "/v1/embeddings", sent), sent, notary)


def test_classifications_carry_a_receipt(http: httpx.Client, notary: Notary) -> None:
    sent = {"model": "tiny-classifier", "input": ["good", "bad"]}
    _check("classifications", _post(http, "/v1/classifications", sent), sent, notary)


def test_chat_and_completions_carry_a_receipt(http: httpx.Client, notary: Notary) -> None:
    chat = {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    _check("chat", _post(http, "/v1/chat/completions", chat), chat, notary)
    sampled = {**chat, "temperature": 0.8, "seed": 3}
    _check("chat", _post(http, "/v1/chat/completions", sampled), sampled, notary,
           deterministic=False)  # fmt: skip
    completion = {"model": "smollm2", "prompt": "Once upon", "max_tokens": 4, "echo": True}
    _check("completions", _post(http, "/v1/completions", completion), completion, notary)


@pytest.mark.parametrize(
    ("endpoint", "path", "extra"),
    [
        ("chat", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Count"}]}),
        ("completions", "/v1/completions", {"prompt": "One, two,", "echo": True}),
    ],
)
@pytest.mark.parametrize("include_usage", [False, True])
def test_a_stream_ends_with_the_receipt_of_its_assembled_answer(
    http: httpx.Client,
    notary: Notary,
    endpoint: str,
    path: str,
    extra: dict[str, Any],
    include_usage: bool,
) -> None:
    sent = {"model": "smollm2", "max_tokens": 6, "stream": True, **extra}
    if include_usage:
        sent["stream_options"] = {"include_usage": True}
    with http.stream("POST", path, json=sent) as response:
        assert response.status_code == 200
        assert RECEIPT_HEADER not in response.headers  # sent before the answer exists
        events = sse_events(response.iter_lines())
    last = events[-1]
    assert last["choices"] == [] and "anchorml" in last
    assert all("anchorml" not in e for e in events[:-1])
    body = {**assembled(endpoint, events), "anchorml": last["anchorml"]}
    check_receipt(endpoint, body, sent, VERSIONS["smollm2"].version_id, notary.address, DOMAIN)
    # The same request unstreamed: the same text and usage (greedy), a receipt of its own.
    unstreamed = _post(http, path, {**sent, "stream": False}).json()
    text = "message" if endpoint == "chat" else "text"
    assert unstreamed["choices"][0].get(text) == body["choices"][0].get(text)
    assert unstreamed["usage"] == body["usage"]


# --- the official openai client -----------------------------------------------------------------


def test_openai_client_embeddings_hash_to_the_signed_response_hash(
    openai_client: Any, notary: Notary
) -> None:
    """The client asks for base64 by default and hands back floats: its object, dumped, hashes
    to what the node signed; the raw response's header carries the same receipt."""
    raw = openai_client.embeddings.with_raw_response.create(
        model="minilm", input=["hello", "world"]
    )
    result = raw.parse()
    assert isinstance(result.data[0].embedding[0], float)
    dumped = result.model_dump()
    sent = {"model": "minilm", "input": ["hello", "world"], "encoding_format": "base64"}
    check_receipt(
        "embeddings", dumped, sent, VERSIONS["minilm"].version_id, notary.address, DOMAIN,
        header=raw.headers[RECEIPT_HEADER],
    )  # fmt: skip


def test_openai_client_chat_object_hashes_to_the_signed_response_hash(
    openai_client: Any, notary: Notary
) -> None:
    messages = [{"role": "user", "content": "Name a fruit."}]
    result = openai_client.chat.completions.create(model="smollm2", messages=messages, max_tokens=5)
    dumped = result.model_dump()
    assert "refusal" in dumped["choices"][0]["message"]  # the client's own fields are added
    sent = {"model": "smollm2", "messages": messages, "max_tokens": 5}
    check_receipt("chat", dumped, sent, VERSIONS["smollm2"].version_id, notary.address, DOMAIN)


def test_openai_client_stream_carries_the_receipt_in_its_last_chunk(
    openai_client: Any, notary: Notary
) -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    chunks = list(
        openai_client.chat.completions.create(
            model="smollm2", messages=messages, max_tokens=5, stream=True
        )
    )
    dumped = [c.model_dump() for c in chunks]
    stamp = dumped[-1].pop("anchorml")
    sent = {"model": "smollm2", "messages": messages, "max_tokens": 5, "stream": True}
    body = {**assembled("chat", dumped), "anchorml": stamp}
    check_receipt("chat", body, sent, VERSIONS["smollm2"].version_id, notary.address, DOMAIN)


def test_unsigned_service_answers_without_receipt() -> None:
    """No notary (the bench's receipts-off side, a gateway without a key): the answer as
    before, no field and no header."""
    with (
        ThreadServer(serving_app(None)) as running,
        httpx.Client(base_url=running.url, timeout=300) as http,
    ):
        response = _post(http, "/v1/embeddings", {"model": "minilm", "input": "x"})
    assert "anchorml" not in response.json() and RECEIPT_HEADER not in response.headers
    assert response_hash("embeddings", response.json())  # still a valid answer


# --- the worker's wiring -------------------------------------------------------------------------


def test_the_worker_signs_with_the_nodes_own_key_in_the_deployments_domain() -> None:
    """``node.main`` gives the serving runtime a notary with the key the node registers on
    chain, in the deployment's domain: its Challenges contract, or before that contract
    exists, its NodeRegistry."""
    from eth_account import Account

    from node.main import _serving
    from node.metrics import NodeMetrics

    account = Account.from_key(KEY)
    registry, challenges = "0x" + "12" * 20, "0x" + "34" * 20
    deployment = SimpleNamespace(
        chain_id=5, node_registry=to_checksum_address(registry), challenges=challenges
    )
    node = SimpleNamespace(
        sdk=SimpleNamespace(wallet=SimpleNamespace(account=account), deployment=deployment,
                            models=None),
        config=SimpleNamespace(batch_size=4, batch_wait_ms=1.0), cache=None, metrics=NodeMetrics(),
    )  # fmt: skip
    notary = _serving(node).service.notary  # type: ignore[arg-type]
    assert notary.address == account.address
    assert notary.signer.public_key == account._key_obj.public_key.to_compressed_bytes()
    assert notary.domain == Domain(5, to_checksum_address(challenges))
    assert receipt_domain(deployment).verifying_contract == to_checksum_address(challenges)  # type: ignore[arg-type]


def test_no_signing_work_comes_before_a_streams_first_token() -> None:
    """The first-token budget (≤ 2 ms) holds by construction: a stream's receipt is built after
    its last token. The signer records when it is called; the client, when the first text
    arrives (a 48-token answer leaves the decode loop busy long after that)."""
    import time

    calls: list[float] = []

    class Recording(Signer):
        def sign(self, digest: bytes) -> bytes:
            calls.append(time.perf_counter())
            return super().sign(digest)

    sent = {"model": "smollm2", "messages": [{"role": "user", "content": "Tell a long story."}],
            "max_tokens": 48, "stream": True}  # fmt: skip
    first_text = 0.0
    with (
        ThreadServer(serving_app(Notary(Recording(KEY), DOMAIN))) as running,
        httpx.Client(base_url=running.url, timeout=300) as http,
        http.stream("POST", "/v1/chat/completions", json=sent) as response,
    ):
        lines = []
        for line in response.iter_lines():
            if not first_text and '"content":"' in line and '"content":""' not in line:
                first_text = time.perf_counter()
                assert calls == []  # nothing signed yet
            lines.append(line)
    events = sse_events(lines)
    assert first_text and len(calls) == 1 and calls[0] > first_text
    assert "anchorml" in events[-1]
