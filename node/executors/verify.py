"""INFER ``task: verify``: re-execute a challenged receipt's request and write the verdict.

A challenge on chain creates an INFER job with params ``{"task": "verify"}`` on the receipt's
version, redundancy k. Its input is ``{"receipt": SignedReceipt.to_json(), "request": the
canonical request, "response": the answer body without "anchorml"}``. Steps:

1. the receipt is parsed (a receipt that does not parse: INVALID, digest all zeros);
2. the request and the response must hash to the receipt's request and response hashes, the
   receipt must name deterministic work and the request must be deterministic (else INVALID:
   a challenger cannot have a node slashed over bytes it did not sign, or over sampled text);
3. the request runs again on the job's model directory through the serving code a worker
   answers with (:class:`node.serving.OpenAIService` on an :class:`InferenceRuntime`), so it
   computes what an honest worker computes; a request the serving code refuses is INVALID;
4. the recomputed answer and the signed one are compared with the receipt core's
   ``outputs_match``: MATCH or MISMATCH.

The output file (``result.json``, as for every INFER job) is the 65-byte verdict:
``keccak256("anchorml.verdict.v1") || receipt digest || uint8 verdict``. It depends on nothing
but the input and the model, so the k re-executors write identical files and agree on chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from node.executors.common import RESULT_FILE, ExecutorResult, deterministic, list_files
from node.serving import (
    Bodies,
    InferenceRuntime,
    InvalidRequestError,
    Limits,
    OpenAIService,
    RuntimeConfig,
    Target,
)
from registry.clients import Access, ContentRef, ModelRecord, VersionRecord
from registry.jobs import MAX_NEW_TOKENS_CAP, VerifyParams, decode_json, read_input
from registry.receipts import (
    ReceiptError,
    SignedReceipt,
    Verdict,
    is_deterministic,
    outputs_match,
    request_hash,
    response_hash,
    verdict_bytes,
)

#: The request model of each endpoint.
_BODIES: dict[str, type[BaseModel]] = {
    endpoint: getattr(Bodies(), endpoint)
    for endpoint in ("embeddings", "classifications", "chat", "completions")
}
#: Keys of a canonical request that are not part of the OpenAI body.
_NOT_BODY = frozenset({"endpoint", "model"})


def run(model_dir: Path, input_path: Path, params: VerifyParams, out_dir: Path) -> ExecutorResult:
    """Re-execute the receipt in ``input_path`` and write the verdict (see the module doc)."""
    del params  # ``{"task": "verify"}`` has nothing else
    doc = decode_json(read_input(input_path))
    digest, verdict = judge(model_dir, doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULT_FILE).write_bytes(verdict_bytes(digest, verdict))
    metrics: dict[str, float | int | str] = {"verdict": verdict.name.lower()}
    return ExecutorResult(files=list_files(out_dir), metrics=metrics, produces_model=False)


def judge(model_dir: Path, doc: Any) -> tuple[bytes, Verdict]:
    """The receipt's digest and the verdict on it."""
    zero = b"\x00" * 32
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), dict) for k in ("receipt", "request", "response")
    ):
        return zero, Verdict.INVALID
    try:
        signed = SignedReceipt.from_json(doc["receipt"])
    except ReceiptError:
        return zero, Verdict.INVALID
    # The digest under the domain the receipt names: the contract compares it with the digest
    # of the receipt it holds, so a receipt restated for another domain can only lose.
    digest = signed.digest
    receipt, request, response = signed.receipt, doc["request"], doc["response"]
    endpoint = request.get("endpoint")
    if endpoint not in _BODIES or request.get("model") != "0x" + receipt.version_id.hex():
        return digest, Verdict.INVALID
    try:
        if (
            request_hash(request) != receipt.request_hash
            or response_hash(endpoint, response) != receipt.response_hash
            or not receipt.deterministic
            or not is_deterministic(endpoint, request)
        ):
            return digest, Verdict.INVALID
    except (ReceiptError, KeyError, TypeError, ValueError):
        return digest, Verdict.INVALID
    try:
        recomputed = rerun(model_dir, endpoint, request)
    except (InvalidRequestError, ValidationError):
        return digest, Verdict.INVALID
    matched = outputs_match(endpoint, recomputed, response)
    return digest, Verdict.MATCH if matched else Verdict.MISMATCH


# --- re-execution through the serving code -----------------------------------------------------


class _ModelDir:
    """The runtime's model cache, for a job whose model directory is already verified."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def ensure(self, version: VersionRecord) -> Path:
        del version  # the one version of the job
        return self.model_dir


def request_body(endpoint: str, request: dict[str, Any]) -> BaseModel:
    """The OpenAI request body of a canonical request, parsed as a worker parses it (never
    streamed: a streamed answer's response hash is that of the non-streamed one).

    Raises:
        pydantic.ValidationError: the body does not parse.
    """
    body = {k: v for k, v in request.items() if k not in _NOT_BODY}
    body["model"] = "verify"
    body.pop("stream_options", None)
    body["stream"] = False
    if endpoint in ("embeddings", "classifications"):
        body.pop("stream", None)
    return _BODIES[endpoint].model_validate(body)


def rerun(model_dir: Path, endpoint: str, request: dict[str, Any]) -> dict[str, Any]:
    """The answer body a worker serving ``model_dir`` gives to ``request``.

    Raises:
        InvalidRequestError: the serving code refuses the request (as it would refuse it).
        pydantic.ValidationError: the body does not parse.
    """
    body = request_body(endpoint, request)
    with deterministic(0):
        return asyncio.run(_rerun(model_dir, endpoint, body))


async def _rerun(model_dir: Path, endpoint: str, body: BaseModel) -> dict[str, Any]:
    runtime = InferenceRuntime(_ModelDir(model_dir), RuntimeConfig(batch_wait_ms=0.0))  # type: ignore[arg-type]
    service = OpenAIService(runtime, Limits(max_tokens_cap=MAX_NEW_TOKENS_CAP))
    digest = hashlib.sha256(str(model_dir.resolve()).encode()).digest()
    version = VersionRecord(
        version_id=b"\x00" * 32, model_id=b"\x00" * 32, tag="", content=ContentRef(0x70, digest),
        manifest_sha256=b"\x00" * 32, parent=None, job_id=0, license="", revoked=False,
    )  # fmt: skip
    model = ModelRecord(b"\x00" * 32, "verify", "0x" + "00" * 20, Access.PUBLIC, 0, 0)
    target = Target(ref="verify", model=model, version=version)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    try:
        call = service.prepare(endpoint, target, body, Request(scope))  # type: ignore[arg-type]
        response = await service.run(call)
        answer: dict[str, Any] = json.loads(bytes(response.body))
        return answer
    finally:
        await runtime.stop()
