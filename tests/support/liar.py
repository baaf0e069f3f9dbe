"""A dishonest worker for the spot-check tests: a staked node that answers embeddings requests
with a wrong vector and signs the wrong answer with its real, registered key.

Its answers pass every check the gateway makes before relaying (signer, request hash, response
hash, domain, time): only re-execution can show they are wrong. It computes the honest vectors
with the real model and moves one float by ``delta``, as a node cutting corners (or tampering
with results) would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response

from node.models import EmbeddingModel
from node.serving import dumps, embedding_body
from registry.chain.deployment import Deployment
from registry.clients.models import version_id
from registry.receipts import (
    RECEIPT_HEADER,
    Signer,
    canonical_request,
    is_deterministic,
    receipt_domain,
    request_hash,
    response_hash,
)


def liar_app(model_dir: Path, key: bytes, deployment: Deployment, delta: float = 0.01) -> FastAPI:
    """The liar's app: ``POST /v1/embeddings`` answered wrongly, signed with ``key``."""
    app = FastAPI()
    model = EmbeddingModel(model_dir)
    signer = Signer(key)
    domain = receipt_domain(deployment)
    app.state.answered = 0

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        payload: dict[str, Any] = await request.json()
        texts = payload["input"] if isinstance(payload["input"], list) else [payload["input"]]
        vectors = model.encode_lists(texts)
        vectors[0][0] += delta  # the lie
        name, _, tag = str(payload["model"]).partition("@")
        vid = version_id(name, tag)
        body = embedding_body(
            payload["model"], vectors, 2 * len(texts), payload.get("encoding_format", "float")
        )
        canonical = canonical_request("embeddings", payload, vid)
        signed = signer.sign_receipt(
            domain, vid, request_hash(canonical), response_hash("embeddings", body),
            is_deterministic("embeddings", canonical),
        )  # fmt: skip
        body["anchorml"] = {"receipt": signed.to_json(), "request": canonical}
        app.state.answered += 1
        return Response(
            dumps(body), media_type="application/json", headers={RECEIPT_HEADER: signed.to_header()}
        )

    return app
