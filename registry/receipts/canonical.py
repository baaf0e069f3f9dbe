"""What a receipt's hashes cover: one canonical form of a request and of an answer.

A receipt must verify on the answer as a client holds it — the bytes the gateway relayed, or the
object the ``openai`` client returned and dumped again — so hashes are taken over a canonical
*projection*, never over raw bytes:

- **request**: the request body as parsed (``model_dump(exclude_unset=True)``) without what only
  shapes the transport (``stream``, ``stream_options``, ``user``, ``encoding_format``, the
  ``anchorml`` extension), ``model`` replaced by the version id, ``input``/``stop`` as lists;
- **answer**: what the model produced and the answer's identity (``id``, ``created``, ``model``,
  choices' text and finish reason, usage counts) — not its encoding. Embeddings are hashed as the
  little-endian float32 matrix (keccak of the bytes, with its shape), so a base64 answer, a float
  list and the openai client's decoded floats hash alike, and hashing costs one keccak over the
  array instead of printing thousands of floats.

Canonical JSON is sorted keys, no whitespace, UTF-8. Hashes are keccak-256, as on chain.

:func:`outputs_match` is the rule re-executors and spot checks use to compare two answers to one
deterministic request: generated text must be equal; embeddings and scores may differ by float
noise (batching changes the last bits: measured ≤ 1.4e-7 on MiniLM) but not beyond
:data:`FLOAT_TOLERANCE`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from registry.receipts.errors import ReceiptError
from registry.receipts.keccak import keccak

Endpoint = Literal["embeddings", "classifications", "chat", "completions"]
ENDPOINTS: tuple[Endpoint, ...] = ("embeddings", "classifications", "chat", "completions")

#: Request fields that shape the transport, not the answer.
_TRANSPORT = frozenset({"model", "stream", "stream_options", "user", "encoding_format", "anchorml"})
#: Largest difference between two honest answers' floats (embeddings, scores).
FLOAT_TOLERANCE = 1e-4


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; NaN and infinities refused."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINTS:
        raise ReceiptError(f"unknown endpoint {endpoint!r}: one of {', '.join(ENDPOINTS)}")


def canonical_request(endpoint: str, body: dict[str, Any], version_id: bytes) -> dict[str, Any]:
    """The projection of a request that its hash covers (see the module doc)."""
    _check_endpoint(endpoint)
    canon: dict[str, Any] = {k: v for k, v in body.items() if k not in _TRANSPORT and v is not None}
    for key in ("input", "stop"):
        if isinstance(canon.get(key), str):
            canon[key] = [canon[key]]
    if "stop" in canon:
        canon["stop"] = [s for s in canon["stop"] if s]
    canon["endpoint"] = endpoint
    canon["model"] = "0x" + version_id.hex()
    return canon


def request_hash(canonical: dict[str, Any]) -> bytes:
    """keccak-256 of a canonical request's canonical JSON."""
    return keccak(canonical_json(canonical))


def is_deterministic(endpoint: str, canonical: dict[str, Any]) -> bool:
    """Whether every honest server gives the same answer: embeddings and classifications
    always; generation when greedy (``temperature`` absent or 0 — the serving default) with one
    choice."""
    _check_endpoint(endpoint)
    if endpoint in ("embeddings", "classifications"):
        return True
    return not canonical.get("temperature") and canonical.get("n", 1) == 1


# --- answers ---------------------------------------------------------------------------------


def _usage(body: dict[str, Any]) -> dict[str, int]:
    used = body.get("usage") or {}
    return {
        k: int(used.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


def embedding_matrix(body: dict[str, Any]) -> np.ndarray:
    """The embeddings of an answer as a float32 ``[n, d]`` array, in index order (float lists
    and base64 alike)."""
    data = body.get("data")
    if not isinstance(data, list):
        raise ReceiptError("an embeddings answer has a data list")
    rows: list[np.ndarray] = []
    for item in sorted(data, key=lambda d: int(d.get("index", 0))):
        value = item.get("embedding")
        if isinstance(value, str):
            try:
                rows.append(np.frombuffer(base64.b64decode(value), dtype="<f4"))
            except (binascii.Error, ValueError):
                raise ReceiptError("an embedding is not base64 of float32") from None
        elif isinstance(value, list):
            rows.append(np.asarray(value, dtype="<f4"))
        else:
            raise ReceiptError("an embedding is a float list or base64")
    if not rows:
        return np.zeros((0, 0), dtype="<f4")
    if len({r.shape[0] for r in rows}) != 1:
        raise ReceiptError("embeddings of one answer have different lengths")
    return np.stack(rows)


def _matrix_fields(matrix: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(matrix, dtype="<f4")
    return {"dtype": "float32", "shape": list(array.shape), "keccak": keccak(array.tobytes()).hex()}


def canonical_response(
    endpoint: str, body: dict[str, Any], *, vectors: np.ndarray | None = None
) -> dict[str, Any]:
    """The projection of an answer that its hash covers (``vectors``: the embeddings matrix when
    the caller already holds it, instead of reading it from ``body``)."""
    _check_endpoint(endpoint)
    try:
        if endpoint == "embeddings":
            matrix = embedding_matrix(body) if vectors is None else vectors
            return {
                "object": "list",
                "model": body["model"],
                "embeddings": _matrix_fields(matrix),
                "usage": _usage(body),
            }
        if endpoint == "classifications":
            return {
                "object": "list",
                "model": body["model"],
                "data": [
                    {k: d[k] for k in ("index", "label", "score", "scores")} for d in body["data"]
                ],
                "usage": _usage(body),
            }
        choices = []
        for choice in body["choices"]:
            if endpoint == "chat":
                message = choice["message"]
                text = {"role": message["role"], "content": message.get("content") or ""}
            else:
                text = {"text": choice["text"]}
            choices.append(
                {"index": choice["index"], **text, "finish_reason": choice["finish_reason"]}
            )
        return {
            "object": "chat.completion" if endpoint == "chat" else "text_completion",
            "id": body["id"],
            "created": body["created"],
            "model": body["model"],
            "choices": choices,
            "usage": _usage(body),
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise ReceiptError(f"the answer is not a {endpoint} answer (missing {exc})") from None


def response_hash(
    endpoint: str, body: dict[str, Any], *, vectors: np.ndarray | None = None
) -> bytes:
    """keccak-256 of an answer's canonical projection (see :func:`canonical_response`)."""
    return keccak(canonical_json(canonical_response(endpoint, body, vectors=vectors)))


def _floats_close(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> bool:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return x.shape == y.shape and bool(np.all(np.abs(x - y) <= FLOAT_TOLERANCE))


def outputs_match(endpoint: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two answers to one deterministic request agree (see the module doc)."""
    _check_endpoint(endpoint)
    try:
        if endpoint == "embeddings":
            x, y = embedding_matrix(a), embedding_matrix(b)
            return x.shape == y.shape and _floats_close(x.ravel(), y.ravel())
        if endpoint == "classifications":
            da = sorted(a["data"], key=lambda d: d["index"])
            db = sorted(b["data"], key=lambda d: d["index"])
            return len(da) == len(db) and all(
                p["label"] == q["label"]
                and sorted(p["scores"]) == sorted(q["scores"])
                and _floats_close(
                    [p["scores"][k] for k in sorted(p["scores"])],
                    [q["scores"][k] for k in sorted(q["scores"])],
                )
                for p, q in zip(da, db, strict=True)
            )
        pa, pb = canonical_response(endpoint, a), canonical_response(endpoint, b)
        strip = ("index", "finish_reason", "text", "content", "role")
        return [{k: c.get(k) for k in strip} for c in pa["choices"]] == [
            {k: c.get(k) for k in strip} for c in pb["choices"]
        ]
    except (KeyError, TypeError, AttributeError):
        return False
