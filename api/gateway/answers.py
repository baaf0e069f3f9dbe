"""The gateway's check of a worker's answer before relaying it: its receipt must hold.

A worker signs every direct answer (``anchorml.receipt`` in the body, and the
``anchorml-receipt`` header; in a stream, the last event before ``[DONE]``). Before a byte of
a non-streamed answer reaches the caller, :meth:`ReceiptCheck.check_json` requires:

1. a JSON object (``application/json``) carrying a well-formed receipt (the header, when sent,
   the same receipt);
2. signed under this deployment's domain, by the worker the gateway called (the signature
   recovers to the node address; that node is staked, eligible and declares the version — the
   candidate set already says so);
3. for the version, the request hash and the determinism of the request the gateway sent;
4. issued within ``skew_s`` of the gateway's clock;
5. over the body being relayed (the response hash of the answer without its ``anchorml`` field).

A streamed answer is relayed as it comes; :class:`StreamAssembler` rebuilds the equivalent
non-streamed answer from its events, so the receipt in the last event can be checked the same way.
Any failure raises :class:`BadAnswerError` whose ``reason`` labels the rejection metric.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from node.serving import same_domain
from registry.errors import AnchormlError
from registry.receipts import (
    RECEIPT_HEADER,
    Domain,
    Endpoint,
    ReceiptError,
    SignedReceipt,
    canonical_request,
    is_deterministic,
    request_hash,
    response_hash,
)


class BadAnswerError(AnchormlError):
    """A worker's answer the gateway will not relay; ``reason`` says why (a metric label)."""

    code = "bad_worker_answer"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Expected:
    """What the gateway asked a worker: the receipt must state it."""

    endpoint: Endpoint
    version_id: bytes
    canonical: dict[str, Any]
    request_hash: bytes
    deterministic: bool

    @classmethod
    def of(cls, endpoint: Endpoint, payload: dict[str, Any], version_id: bytes) -> Expected:
        """The expectation for ``payload`` (the body sent) on ``version_id``."""
        canonical = canonical_request(endpoint, payload, version_id)
        return cls(
            endpoint,
            version_id,
            canonical,
            request_hash(canonical),
            is_deterministic(endpoint, canonical),
        )


class ReceiptCheck:
    """Checks workers' receipts under ``domain`` (see the module doc).

    Args:
        domain: the deployment's receipt domain.
        skew_s: largest difference between a receipt's ``issued_at`` and this clock.
    """

    def __init__(self, domain: Domain, skew_s: float = 30.0) -> None:
        self.domain = domain
        self.skew_s = skew_s

    def check_json(
        self,
        expected: Expected,
        worker: str,
        content: bytes,
        content_type: str,
        header: str | None,
        now: float | None = None,
    ) -> SignedReceipt:
        """The receipt of a non-streamed answer, checked (raises :class:`BadAnswerError`)."""
        if _media_type(content_type) != "application/json":
            raise BadAnswerError("content_type", f"answer of type {content_type!r}")
        try:
            body = json.loads(content)
        except ValueError:
            raise BadAnswerError("malformed", "the answer is not JSON") from None
        if not isinstance(body, dict):
            raise BadAnswerError("malformed", "the answer is not a JSON object")
        signed = self.check_body(expected, worker, body, now)
        if header is not None:
            try:
                same = SignedReceipt.from_header(header) == signed
            except ReceiptError:
                same = False
            if not same:
                raise BadAnswerError("receipt_header", f"the {RECEIPT_HEADER} header differs")
        return signed

    def check_body(
        self, expected: Expected, worker: str, body: dict[str, Any], now: float | None = None
    ) -> SignedReceipt:
        """The receipt in ``body["anchorml"]``, checked against ``body`` without it."""
        extra = body.get("anchorml")
        if not isinstance(extra, dict) or "receipt" not in extra:
            raise BadAnswerError("no_receipt", "the answer carries no receipt")
        try:
            signed = SignedReceipt.from_json(extra["receipt"])
        except ReceiptError as exc:
            raise BadAnswerError("malformed_receipt", exc.message) from None
        request = extra.get("request")
        if request is not None and request != expected.canonical:
            raise BadAnswerError("request_hash", "the receipt's request is not the one sent")
        self.check_receipt(expected, worker, signed, now)
        answer = {k: v for k, v in body.items() if k != "anchorml"}
        try:
            digest = response_hash(expected.endpoint, answer)
        except ReceiptError as exc:
            raise BadAnswerError("malformed", exc.message) from None
        if digest != signed.receipt.response_hash:
            raise BadAnswerError("response_hash", "the answer does not match its receipt")
        return signed

    def check_receipt(
        self, expected: Expected, worker: str, signed: SignedReceipt, now: float | None = None
    ) -> None:
        """Steps 2-4 of the module doc (the answer itself is the caller's to hash)."""
        receipt = signed.receipt
        if not same_domain(signed.domain, self.domain):
            raise BadAnswerError("domain", "the receipt is for another chain or contract")
        try:
            signer = signed.recover()
        except ReceiptError:
            raise BadAnswerError("signature", "the receipt's signature is invalid") from None
        if signer != receipt.signer or signer.lower() != worker.lower():
            raise BadAnswerError("signature", f"the receipt is signed by {signer}, not {worker}")
        if receipt.version_id != expected.version_id:
            raise BadAnswerError("version", "the receipt names another version")
        if receipt.request_hash != expected.request_hash:
            raise BadAnswerError("request_hash", "the receipt is for another request")
        if receipt.deterministic != expected.deterministic:
            raise BadAnswerError("deterministic", "the receipt's deterministic flag is wrong")
        clock = time.time() if now is None else now
        if abs(receipt.issued_at - clock) > self.skew_s:
            raise BadAnswerError("issued_at", "the receipt's time is off the gateway's clock")


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


@dataclass
class _Choice:
    role: str = "assistant"
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class StreamAssembler:
    """Rebuilds the non-streamed answer a stream stands for, from its events' data objects."""

    endpoint: Endpoint
    id: str | None = None
    created: int | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    choices: dict[int, _Choice] = field(default_factory=dict)
    done: bool = False  # the receipt (or the worker's error) came

    def add(self, event: dict[str, Any]) -> None:
        """Fold one chunk in (raises :class:`BadAnswerError` for a chunk of the wrong shape)."""
        try:
            for key in ("id", "created", "model"):
                if key in event and getattr(self, key) is None:
                    setattr(self, key, event[key])
            if event.get("usage"):
                self.usage = dict(event["usage"])
            for raw in event.get("choices") or ():
                choice = self.choices.setdefault(int(raw["index"]), _Choice())
                if self.endpoint == "chat":
                    delta = raw.get("delta") or {}
                    choice.role = str(delta.get("role") or choice.role)
                    piece = delta.get("content")
                else:
                    piece = raw.get("text")
                if piece:
                    choice.text.append(str(piece))
                if raw.get("finish_reason") is not None:
                    choice.finish_reason = str(raw["finish_reason"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadAnswerError("malformed", "a stream event has the wrong shape") from None

    def body(self) -> dict[str, Any]:
        """The equivalent non-streamed answer."""
        choices: list[dict[str, Any]] = []
        for index in sorted(self.choices):
            c = self.choices[index]
            text = "".join(c.text)
            if self.endpoint == "chat":
                choice = {"index": index, "message": {"role": c.role, "content": text}}
            else:
                choice = {"index": index, "text": text}
            choices.append({**choice, "finish_reason": c.finish_reason})
        return {
            "id": self.id,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage or {},
        }
