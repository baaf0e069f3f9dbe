"""The worker pool's relay, over real HTTP to a stand-in worker, on the real contracts.

The stand-in answers as a signing worker would (receipts signed with the node's registered key)
or as a misbehaving one: a stream whose text differs from what its receipt covers, a stream
that never ends, an answer that is not JSON. The pool relays only JSON or SSE with ``nosniff``,
checks a stream's receipt before relaying its last event, closes a stream over its time limit,
skips a worker at its limit, and counts each dropped answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import Response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from api.gateway.answers import Expected
from api.gateway.index import LogMeta, RegistryIndex
from api.gateway.metrics import GatewayMetrics
from api.gateway.upstream import Failure, PoolSettings, WorkerPool
from node.serving import receipt_domain
from registry.clients.models import version_id
from registry.receipts import (
    GRANT_HEADER,
    Signer,
    canonical_request,
    is_deterministic,
    request_hash,
    response_hash,
)
from support.chain import PUBLIC, V1, World
from support.gateway import ThreadServer

VID = version_id(PUBLIC, V1)
CHAT = {"model": f"{PUBLIC}@{V1}", "messages": [{"role": "user", "content": "hi"}]}


class StandIn:
    """A worker's HTTP face: signs as ``key`` and misbehaves as ``mode`` says."""

    def __init__(self, key: bytes, domain: Any) -> None:
        self.signer = Signer(key)
        self.domain = domain
        self.mode = "good"
        self.grants: list[str | None] = []
        self.server = ThreadServer(
            Starlette(
                routes=[
                    Route("/v1/chat/completions", self.chat, methods=["POST"]),
                    Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                ]
            )
        )

    async def embeddings(self, request: Request) -> Response:
        self.grants.append(request.headers.get(GRANT_HEADER))
        return Response(b"<script>alert(1)</script>", media_type="text/html")

    async def chat(self, request: Request) -> Response:
        self.grants.append(request.headers.get(GRANT_HEADER))
        sent = json.loads(await request.body())
        canonical = canonical_request("chat", sent, VID)
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7,
                "model": sent["model"]}  # fmt: skip
        pieces = ["Hel", "lo"]
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        whole = {
            "id": "chatcmpl-1", "created": 7, "model": sent["model"], "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                         "finish_reason": "stop"}],
        }  # fmt: skip
        receipt = self.signer.sign_receipt(
            self.domain, VID, request_hash(canonical), response_hash("chat", whole),
            is_deterministic("chat", canonical),
        )  # fmt: skip
        if self.mode == "forged-stream":
            pieces = ["Good", "bye"]  # the receipt covers "Hello"
        mode = self.mode

        async def events() -> AsyncIterator[bytes]:
            def data(obj: dict[str, Any]) -> bytes:
                return b"data: " + json.dumps(obj).encode() + b"\n\n"

            yield data({**base, "choices": [{"index": 0, "delta": {"role": "assistant"},
                                             "finish_reason": None}]})  # fmt: skip
            while mode == "endless":
                await asyncio.sleep(0.05)
                yield data({**base, "choices": [{"index": 0, "delta": {"content": "."},
                                                 "finish_reason": None}]})  # fmt: skip
            for piece in pieces:
                yield data({**base, "choices": [{"index": 0, "delta": {"content": piece},
                                                 "finish_reason": None}]})  # fmt: skip
            yield data({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            extra = {"receipt": receipt.to_json(), "request": canonical}
            yield data({**base, "choices": [], "usage": usage, "anchorml": extra})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def stand_in(env: World) -> Iterator[StandIn]:
    worker = StandIn(bytes(env.node1.wallet.account.key), receipt_domain(env.deployment))
    with worker.server:
        env.node1.nodes.register(worker.server.url, bytes([2]) * 33, 0)
        env.node1.nodes.set_serving([VID])
        yield worker


def _pool(env: World, **settings: Any) -> WorkerPool:
    index = RegistryIndex()
    index.apply("ServingChanged", {"node": env.node1.address, "versionId": VID, "serving": True},
                LogMeta(1, "0x", ""))  # fmt: skip
    return WorkerPool(
        env.user.nodes, GatewayMetrics(), index.serving, receipt_domain(env.deployment),
        PoolSettings(allow_private=True, backoff_s=0, **settings),
        signer=Signer(bytes([7]) * 32),
    )  # fmt: skip


async def _open(pool: WorkerPool) -> Response | Failure:
    payload = {**CHAT, "stream": True}
    expected = Expected.of("chat", payload, VID)
    return await pool.proxy(expected, "/v1/chat/completions", payload, True)


async def _stream(pool: WorkerPool) -> list[bytes]:
    response = await _open(pool)
    assert isinstance(response, StreamingResponse)
    assert response.headers["x-content-type-options"] == "nosniff"
    return [bytes(chunk) async for chunk in response.body_iterator]  # type: ignore[arg-type]


def _rejected(pool: WorkerPool, reason: str) -> float:
    value = pool.metrics.registry.get_sample_value(
        "anchorml_gateway_rejected_answers_total", {"reason": reason}
    )
    return value or 0.0


def test_a_signed_stream_is_relayed_whole_with_a_grant_to_the_worker(
    env: World, stand_in: StandIn
) -> None:
    async def run() -> list[bytes]:
        pool = _pool(env)
        try:
            return await _stream(pool)
        finally:
            await pool.aclose()

    events = asyncio.run(run())
    assert events[-1] == b"data: [DONE]\n\n"
    assert b'"anchorml"' in events[-2]
    assert stand_in.grants and all(stand_in.grants)


def test_a_stream_its_receipt_does_not_cover_ends_in_an_error_and_is_counted(
    env: World, stand_in: StandIn
) -> None:
    stand_in.mode = "forged-stream"

    async def run() -> tuple[list[bytes], float, int]:
        pool = _pool(env)
        try:
            events = await _stream(pool)
            return events, _rejected(pool, "response_hash"), pool.rejected()[env.node1.address]
        finally:
            await pool.aclose()

    events, counted, marked = asyncio.run(run())
    assert not any(b'"anchorml"' in e for e in events)  # the receipt event never goes out
    assert b'"bad_worker_answer"' in events[-1]
    assert (counted, marked) == (1, 1)


def test_a_stream_over_its_time_is_closed(env: World, stand_in: StandIn) -> None:
    stand_in.mode = "endless"

    async def run() -> list[bytes]:
        pool = _pool(env, max_stream_s=0.5)
        try:
            return await asyncio.wait_for(_stream(pool), 30)
        finally:
            await pool.aclose()

    assert b'"stream_timeout"' in asyncio.run(run())[-1]


def test_a_worker_at_its_stream_limit_is_skipped(env: World, stand_in: StandIn) -> None:
    stand_in.mode = "endless"

    async def run() -> Response | Failure:
        pool = _pool(env, max_streams=1, max_stream_s=2)
        try:
            first = await _open(pool)
            assert isinstance(first, StreamingResponse)
            second = await _open(pool)  # the only worker is at its limit
            await first.body_iterator.aclose()  # type: ignore[attr-defined]
            return second
        finally:
            await pool.aclose()

    assert asyncio.run(run()) is Failure.BUSY


def test_an_answer_that_is_not_json_is_dropped_and_counted(env: World, stand_in: StandIn) -> None:
    payload = {"model": f"{PUBLIC}@{V1}", "input": "x"}

    async def run() -> tuple[Response | Failure, float]:
        pool = _pool(env)
        try:
            result = await pool.proxy(
                Expected.of("embeddings", payload, VID), "/v1/embeddings", payload, False
            )
            return result, _rejected(pool, "content_type")
        finally:
            await pool.aclose()

    result, counted = asyncio.run(run())
    assert result is Failure.BAD and counted == 1
