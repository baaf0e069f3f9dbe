"""Checking a signed answer as a client would: the receipt's signature recovers to the expected
signer, its request hash is that of the request sent (canonical form, the version that
answered), its response hash that of the body received (``anchorml`` left out), and the header
carries the same receipt as the body. Shared by the worker's and the gateway's receipt tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from registry.receipts import (
    RECEIPT_HEADER,
    Domain,
    SignedReceipt,
    canonical_request,
    request_hash,
    response_hash,
)


def check_receipt(
    endpoint: str,
    body: dict[str, Any],
    sent: dict[str, Any],
    version_id: bytes,
    signer: str,
    domain: Domain,
    *,
    header: str | None = None,
    deterministic: bool = True,
) -> SignedReceipt:
    """Assert ``body`` (as received, with its ``anchorml`` field) is signed by ``signer`` for the
    request ``sent``; ``header`` is the ``anchorml-receipt`` header (non-streamed answers).
    Returns the parsed receipt."""
    stamp = body["anchorml"]
    signed = SignedReceipt.from_json(stamp["receipt"])
    answer = {k: v for k, v in body.items() if k != "anchorml"}
    assert signed.recover() == signer, "the signature does not recover to the signer"
    assert signed.receipt.signer == signer
    assert signed.domain == domain
    assert signed.receipt.version_id == version_id
    expected = canonical_request(endpoint, sent, version_id)
    assert stamp["request"] == expected
    assert signed.receipt.request_hash == request_hash(expected)
    assert signed.receipt.response_hash == response_hash(endpoint, answer)
    assert signed.receipt.deterministic is deterministic
    if header is not None:
        assert SignedReceipt.from_header(header) == signed
    return signed


def sse_events(lines: Iterable[str]) -> list[Any]:
    """The JSON payloads of an event stream's ``data:`` lines, up to ``[DONE]`` (which must
    come)."""
    events: list[Any] = []
    for line in lines:
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            return events
        events.append(json.loads(line[6:]))
    raise AssertionError("the stream ended without [DONE]")


def assembled(endpoint: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed answer a stream's events add up to (what its receipt covers)."""
    text = ""
    finish = None
    usage = None
    for event in events:
        usage = event.get("usage") or usage
        for choice in event["choices"]:
            piece = choice["delta"].get("content") if endpoint == "chat" else choice["text"]
            text += piece or ""
            finish = choice["finish_reason"] or finish
    first = events[0]
    if endpoint == "chat":
        shaped: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    else:
        shaped = {"index": 0, "text": text}
    return {
        "id": first["id"],
        "created": first["created"],
        "model": first["model"],
        "choices": [{**shaped, "finish_reason": finish}],
        "usage": usage or {},
    }


__all__ = ["RECEIPT_HEADER", "assembled", "check_receipt", "sse_events"]
