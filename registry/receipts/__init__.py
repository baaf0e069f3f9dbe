"""Receipts: signed, checkable statements of who answered what with which weights.

A node signs every direct answer with the key it registered on chain (:class:`Signer`,
:class:`SignedReceipt`); the gateway calls workers with per-request grants of its own instead of
the caller's credentials (:class:`SignedGrant`). The hashes cover canonical projections of the
request and the answer (:mod:`registry.receipts.canonical`), so a receipt verifies on the answer a
client holds. A wrong signed answer to a deterministic request is challenged on chain; the
re-executors' finding is a verdict file (:mod:`registry.receipts.verdict`). Anyone checks a saved
answer from the chain alone with :func:`verify_answer`.
"""

from registry.receipts.canonical import (
    ENDPOINTS,
    FLOAT_TOLERANCE,
    Endpoint,
    canonical_json,
    canonical_request,
    canonical_response,
    embedding_matrix,
    is_deterministic,
    outputs_match,
    request_hash,
    response_hash,
)
from registry.receipts.eip712 import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    GRANT_HEADER,
    GRANT_TYPE,
    RECEIPT_HEADER,
    RECEIPT_TYPE,
    Domain,
    Grant,
    Receipt,
    SignedGrant,
    SignedReceipt,
    receipt_domain,
)
from registry.receipts.errors import GrantError, ReceiptError
from registry.receipts.keys import Signer, address_of, recover
from registry.receipts.verdict import (
    VERDICT_SIZE,
    VERDICT_TAG,
    Verdict,
    verdict_bytes,
    verdict_sha256,
)
from registry.receipts.verify import ReceiptReport, verify_answer

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "ENDPOINTS",
    "FLOAT_TOLERANCE",
    "GRANT_HEADER",
    "GRANT_TYPE",
    "RECEIPT_HEADER",
    "RECEIPT_TYPE",
    "VERDICT_SIZE",
    "VERDICT_TAG",
    "Domain",
    "Endpoint",
    "Grant",
    "GrantError",
    "Receipt",
    "ReceiptError",
    "ReceiptReport",
    "SignedGrant",
    "SignedReceipt",
    "Signer",
    "Verdict",
    "address_of",
    "canonical_json",
    "canonical_request",
    "canonical_response",
    "embedding_matrix",
    "is_deterministic",
    "outputs_match",
    "receipt_domain",
    "recover",
    "request_hash",
    "response_hash",
    "verdict_bytes",
    "verdict_sha256",
    "verify_answer",
]
