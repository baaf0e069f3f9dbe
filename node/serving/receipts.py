"""Receipts on direct answers: the one place where this process signs what it answers.

Every answer :class:`~node.serving.handlers.OpenAIService` runs — on a worker or in the
gateway's own runtime — goes through a :class:`Notary` when the service has one: the notary
hashes the canonical request (:func:`signed_request`) and the response body, signs an EIP-712
receipt (:mod:`registry.receipts`) with the key the signer registered on chain, and gives back
the body's ``anchorml`` field and the ``anchorml-receipt`` header. A streamed answer carries the
same field in its last data event; its response hash is that of the equivalent non-streamed
answer (:meth:`~node.serving.handlers.OpenAIService`'s event stream builds it).

Cost (the issue's budget: 5 % of embeddings throughput, 2 ms on a first token): the EIP-712
domain separator is computed once per :class:`Notary`, signing is coincurve's (libsecp256k1),
hashing the C keccak, and an embeddings response is hashed from the float32 arrays the model
produced (:func:`embeddings_hash`), never from its JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.receipts import (
    RECEIPT_HEADER,
    Domain,
    Signer,
    canonical_request,
    is_deterministic,
    request_hash,
    response_hash,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RECEIPT_HEADER", "Notary", "signed_request"]


def signed_request(endpoint: str, body: Any, version_id: bytes) -> dict[str, Any]:
    """The canonical request a receipt names, from a parsed request body: the fields the caller
    set (the gateway's ``anchorml`` options are not part of the request a worker runs, so the
    gateway forwards the same fields and both sides hash the same request)."""
    fields = body.model_dump(exclude_unset=True, exclude={"anchorml"})
    return canonical_request(endpoint, fields, version_id)


@dataclass(frozen=True)
class Notary:
    """Signs the receipts of one signer in one domain.

    Attributes:
        signer: the key the node registered on chain (the gateway: its own, registered likewise).
        domain: the chain and contract receipts are checked by
            (:func:`registry.receipts.receipt_domain`).
    """

    signer: Signer
    domain: Domain

    def __post_init__(self) -> None:
        self.domain.separator  # noqa: B018 - computed (and cached) once, not per answer

    @property
    def address(self) -> str:
        """The signer's checksum address (what a receipt's ``signer`` recovers to)."""
        return str(self.signer.address)

    def stamp(
        self, endpoint: str, request: dict[str, Any], version_id: bytes, digest: bytes
    ) -> tuple[dict[str, Any], str]:
        """Sign a receipt for the answer whose response hash is ``digest``.

        Args:
            endpoint: the OpenAI endpoint (``embeddings``, ``chat``, ...).
            request: the canonical request (:func:`signed_request`).
            version_id: the version that answered.
            digest: the response hash of the body as the client receives it.

        Returns:
            The body's ``anchorml`` field and the ``anchorml-receipt`` header value.
        """
        signed = self.signer.sign_receipt(
            self.domain, version_id, request_hash(request), digest,
            is_deterministic(endpoint, request),
        )  # fmt: skip
        return {"receipt": signed.to_json(), "request": request}, signed.to_header()

    def stamp_body(
        self, endpoint: str, request: dict[str, Any], version_id: bytes, body: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        """:meth:`stamp` for a JSON answer ``body`` (chat, completions, classifications)."""
        return self.stamp(endpoint, request, version_id, response_hash(endpoint, body))


def embeddings_hash(body: dict[str, Any], vectors: Sequence[np.ndarray]) -> bytes:
    """The response hash of an embeddings answer ``body`` whose vectors are ``vectors`` (float32),
    computed from the arrays: equal to ``response_hash("embeddings", body)`` on the JSON the
    client receives, in either encoding (one keccak over the matrix, no float printing or
    base64 decoding)."""
    import numpy as np

    matrix = np.stack(vectors) if vectors else np.zeros((0, 0), dtype="<f4")
    return response_hash("embeddings", body, vectors=matrix)
