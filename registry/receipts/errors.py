"""Errors of receipts and grants: each names what is wrong, so a verifier can act on the code."""

from __future__ import annotations

from registry.errors import AnchormlError


class ReceiptError(AnchormlError):
    """A receipt is malformed, its signature does not recover to its signer, or the answer it
    came with does not match it."""

    code = "invalid_receipt"


class GrantError(AnchormlError):
    """A gateway's per-request grant is malformed, expired, replayed, or not for this request."""

    code = "invalid_grant"
