"""The output of a challenge's re-execution job: a 65-byte verdict file.

``keccak256("anchorml.verdict.v1") ‖ receipt digest ‖ uint8 verdict``. The Challenges contract
computes ``sha256`` of the MISMATCH form for the challenged receipt and compares it with the
finalized job's output hash: only a majority of re-executors writing exactly these bytes for
exactly this receipt slashes the signer. Every re-executor writes the same bytes for the same
finding, so the job board's k-way agreement applies unchanged.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

from registry.receipts.keccak import keccak

VERDICT_TAG = keccak(text="anchorml.verdict.v1")
VERDICT_SIZE = 65


class Verdict(IntEnum):
    """What re-execution found."""

    MATCH = 1  #: the signed answer is what the version computes
    MISMATCH = 2  #: the signed answer is not: the signer is slashed
    INVALID = 3  #: the challenge's input does not match its receipt, or the request is sampled


def verdict_bytes(receipt_digest: bytes, verdict: Verdict) -> bytes:
    """The verdict file's bytes."""
    if len(receipt_digest) != 32:
        raise ValueError("a receipt digest is 32 bytes")
    return VERDICT_TAG + receipt_digest + bytes([int(verdict)])


def verdict_sha256(receipt_digest: bytes, verdict: Verdict) -> bytes:
    """sha256 of the verdict file (what the job board records and the contract compares)."""
    return hashlib.sha256(verdict_bytes(receipt_digest, verdict)).digest()
