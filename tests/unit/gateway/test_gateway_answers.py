"""The gateway's check of a worker's receipt: an honest answer passes, and each way an answer
can disagree with its receipt (or the receipt with the request sent) is refused with its reason."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from api.gateway.answers import BadAnswerError, Expected, ReceiptCheck, StreamAssembler
from node.serving import chat_body
from registry.receipts import Domain, Signer, response_hash

DOMAIN = Domain(31337, "0x" + "11" * 20)
WORKER = Signer(bytes([9]) * 32)
OTHER = Signer(bytes([8]) * 32)
VERSION = bytes([1]) * 32
PAYLOAD = {"model": "minilm@v1", "input": "hi"}
EXPECTED = Expected.of("embeddings", PAYLOAD, VERSION)


def _answer(vector: list[float]) -> dict[str, Any]:
    return {
        "object": "list", "model": "minilm@v1",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }  # fmt: skip


def _signed(body: dict[str, Any], signer: Signer = WORKER, **kw: Any) -> bytes:
    fields: dict[str, Any] = {
        "domain": DOMAIN, "version_id": VERSION, "request_hash": EXPECTED.request_hash,
        "response_hash": response_hash("embeddings", body), "deterministic": True,
    }  # fmt: skip
    fields.update(kw)
    receipt = signer.sign_receipt(**fields)
    extra = {"receipt": receipt.to_json(), "request": EXPECTED.canonical}
    return json.dumps({**body, "anchorml": extra}).encode()


def _check(content: bytes, content_type: str = "application/json") -> None:
    ReceiptCheck(DOMAIN).check_json(EXPECTED, WORKER.address, content, content_type, None)


def test_an_honest_answer_passes() -> None:
    _check(_signed(_answer([0.5, -0.25])))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (lambda: json.dumps(_answer([0.5])).encode(), "no_receipt"),
        (lambda: _signed(_answer([0.5])).replace(b"0.5", b"0.7"), "response_hash"),
        (lambda: _signed(_answer([0.5]), OTHER), "signature"),
        (lambda: _signed(_answer([0.5]), version_id=bytes(32)), "version"),
        (lambda: _signed(_answer([0.5]), request_hash=bytes(32)), "request_hash"),
        (lambda: _signed(_answer([0.5]), deterministic=False), "deterministic"),
        (lambda: _signed(_answer([0.5]), now=time.time() - 3600), "issued_at"),
        (lambda: _signed(_answer([0.5]), domain=Domain(1, DOMAIN.verifying_contract)), "domain"),
        (lambda: b"<html>", "malformed"),
        (lambda: b"[1]", "malformed"),
    ],
)
def test_a_bad_answer_is_refused_with_its_reason(content: Any, reason: str) -> None:
    with pytest.raises(BadAnswerError) as caught:
        _check(content())
    assert caught.value.reason == reason


def test_an_answer_that_is_not_json_is_refused_whatever_it_holds() -> None:
    with pytest.raises(BadAnswerError) as caught:
        _check(_signed(_answer([0.5])), "text/html")
    assert caught.value.reason == "content_type"


def test_a_receipt_header_must_be_the_body_receipt() -> None:
    content = _signed(_answer([0.5]))
    other = json.loads(_signed(_answer([0.25])))["anchorml"]["receipt"]
    header = type(ReceiptCheck(DOMAIN).check_body(EXPECTED, WORKER.address, json.loads(content)))
    with pytest.raises(BadAnswerError) as caught:
        ReceiptCheck(DOMAIN).check_json(
            EXPECTED, WORKER.address, content, "application/json",
            header.from_json(other).to_header(),
        )  # fmt: skip
    assert caught.value.reason == "receipt_header"


def test_a_stream_assembles_to_its_non_streamed_answer() -> None:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m@v1"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2,
                                           "total_tokens": 6}},
    ]  # fmt: skip
    assembler = StreamAssembler("chat")
    for chunk in chunks:
        assembler.add(chunk)
    whole = chat_body("m@v1", "Hello", "stop", 4, 2)
    whole.update(id="chatcmpl-1", created=7)
    assert response_hash("chat", assembler.body()) == response_hash("chat", whole)
