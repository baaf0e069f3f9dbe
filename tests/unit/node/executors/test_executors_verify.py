"""INFER ``task: verify`` on real weights: a challenged receipt is re-executed through the serving
code and judged MATCH, MISMATCH or INVALID; the verdict file is the same on every run.

Honest answers are computed by the plain INFER executor (the unbatched, untraced model path), so
the re-execution (batched, traced) is compared with an independent computation, as between two
real nodes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")  # 2 shared cores: avoid oversubscription

from node.executors import run_job  # noqa: E402
from node.serving import chat_body, embedding_body  # noqa: E402
from registry.dev import demo  # noqa: E402
from registry.jobs import JobKind, parse_params  # noqa: E402
from registry.receipts import (  # noqa: E402
    VERDICT_SIZE,
    VERDICT_TAG,
    Domain,
    SignedReceipt,
    Signer,
    Verdict,
    canonical_request,
    is_deterministic,
    request_hash,
    response_hash,
)

KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "11" * 20)
VERSION = bytes.fromhex("ab" * 32)
TEXTS = ["A cat is sitting on the mat.", "The central bank raised interest rates today."]
VERIFY = {"task": "verify"}


@pytest.fixture(scope="module")
def minilm() -> Path:
    return demo.cached_model("minilm")


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return demo.cached_model("smollm2")


def _infer(model: Path, tmp: Path, doc: dict[str, Any], params: dict[str, Any]) -> Any:
    """The plain INFER executor's result for ``doc``."""
    data = tmp / f"in-{len(list(tmp.iterdir()))}.json"
    data.write_text(json.dumps(doc))
    out = tmp / f"out-{data.stem}"
    run_job(JobKind.INFER, model, data, parse_params(JobKind.INFER, params), out)
    return json.loads((out / "result.json").read_text())


def _challenge_input(endpoint: str, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The job input of a challenge: the receipt signed over ``answer``, request and answer."""
    request = canonical_request(endpoint, body, VERSION)
    signed = Signer(KEY).sign_receipt(
        DOMAIN, VERSION, request_hash(request), response_hash(endpoint, answer),
        is_deterministic(endpoint, request), now=1_800_000_000,
    )  # fmt: skip
    return {"receipt": signed.to_json(), "request": request, "response": answer}


def _verdict(model: Path, tmp: Path, doc: dict[str, Any], name: str) -> bytes:
    data = tmp / f"{name}.json"
    data.write_text(json.dumps(doc))
    result = run_job(JobKind.INFER, model, data, parse_params(JobKind.INFER, VERIFY), tmp / name)
    assert result.files == ["result.json"]
    return (tmp / name / "result.json").read_bytes()


def _judged(raw: bytes, doc: dict[str, Any]) -> Verdict:
    """The verdict byte, after checking the file's layout names this receipt."""
    assert len(raw) == VERDICT_SIZE
    assert raw[:32] == VERDICT_TAG
    assert raw[32:64] == SignedReceipt.from_json(doc["receipt"]).digest
    return Verdict(raw[64])


@pytest.fixture(scope="module")
def embeddings(minilm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An honest embeddings answer (float lists, as the openai client decodes them)."""
    tmp = tmp_path_factory.mktemp("honest")
    result = _infer(minilm, tmp, {"texts": TEXTS}, {"task": "embed"})
    return embedding_body("minilm@v1", result["embeddings"], 14, "float")


def test_an_honest_embeddings_receipt_is_a_match_and_identical_across_runs(
    minilm: Path, tmp_path: Path, embeddings: dict[str, Any]
) -> None:
    doc = _challenge_input("embeddings", {"model": "minilm", "input": TEXTS}, embeddings)
    first = _verdict(minilm, tmp_path, doc, "first")
    second = _verdict(minilm, tmp_path, doc, "second")
    assert _judged(first, doc) is Verdict.MATCH
    assert first == second
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()


def test_a_forged_embedding_signed_with_the_real_key_is_a_mismatch(
    minilm: Path, tmp_path: Path, embeddings: dict[str, Any]
) -> None:
    forged = json.loads(json.dumps(embeddings))
    forged["data"][1]["embedding"][7] += 0.01  # one float, well beyond the tolerance
    doc = _challenge_input("embeddings", {"model": "minilm", "input": TEXTS}, forged)
    first = _verdict(minilm, tmp_path, doc, "first")
    assert _judged(first, doc) is Verdict.MISMATCH
    assert _verdict(minilm, tmp_path, doc, "second") == first


def test_an_input_that_does_not_match_its_receipt_is_invalid(
    minilm: Path, tmp_path: Path, embeddings: dict[str, Any]
) -> None:
    doc = _challenge_input("embeddings", {"model": "minilm", "input": TEXTS}, embeddings)
    # the challenger swaps in another response than the one the node signed
    doc["response"] = json.loads(json.dumps(embeddings))
    doc["response"]["data"][0]["embedding"][0] += 0.5
    assert _judged(_verdict(minilm, tmp_path, doc, "swapped"), doc) is Verdict.INVALID
    garbled = {**doc, "receipt": {**doc["receipt"], "signature": "0x12"}}
    raw = _verdict(minilm, tmp_path, garbled, "garbled")
    assert raw == VERDICT_TAG + bytes(32) + bytes([Verdict.INVALID])


def test_sampled_chat_is_invalid_greedy_chat_matches_and_a_changed_word_mismatches(
    smollm2: Path, tmp_path: Path
) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    sampled = chat_body("smollm2-chat@v1", "Paris.", "stop", 10, 2)
    doc = _challenge_input(
        "chat", {"model": "x", "messages": messages, "temperature": 0.8}, sampled
    )
    assert _judged(_verdict(smollm2, tmp_path, doc, "sampled"), doc) is Verdict.INVALID

    result = _infer(
        smollm2, tmp_path, {"messages": messages}, {"task": "chat", "max_new_tokens": 8}
    )
    usage = result["usage"]
    honest = chat_body(
        "smollm2-chat@v1", result["text"], result["finish_reason"],
        usage["prompt_tokens"], usage["completion_tokens"],
    )  # fmt: skip
    body = {"model": "x", "messages": messages, "max_tokens": 8}
    doc = _challenge_input("chat", body, honest)
    assert _judged(_verdict(smollm2, tmp_path, doc, "honest"), doc) is Verdict.MATCH
    forged = json.loads(json.dumps(honest))
    forged["choices"][0]["message"]["content"] = honest["choices"][0]["message"]["content"] + "!"
    doc = _challenge_input("chat", body, forged)
    assert _judged(_verdict(smollm2, tmp_path, doc, "forged"), doc) is Verdict.MISMATCH
