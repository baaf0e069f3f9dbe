"""File an on-chain challenge of a signed answer: pin the re-execution job's input, then escrow
the fee.

The Challenges contract creates a re-execution job (INFER, params ``{"task": "verify"}``) whose
input is the file named at challenge time: ``{"receipt", "request", "response"}`` as canonical
JSON (:func:`challenge_input`). :func:`file_challenge` stores and pins that file and the params
block (so every worker can fetch both), then calls ``challenge`` with the fee. Used by
``anchorml receipt challenge`` and the gateway's spot checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.clients.base import ContentRef
from registry.errors import ContractRevertError
from registry.jobs.io import publish_params
from registry.receipts import ReceiptError, SignedReceipt, canonical_json

if TYPE_CHECKING:
    from registry.sdk import Anchorml

#: The params of every challenge's re-execution job.
VERIFY_PARAMS = {"task": "verify"}
#: Longest wait for the chain's clock to reach a fresh receipt's ``issued_at``.
CLOCK_WAIT_S = 60.0


@dataclass(frozen=True)
class FiledChallenge:
    """A challenge opened on chain."""

    challenge_id: int
    job_id: int
    input_cid: str


def challenge_input(
    signed: SignedReceipt, request: dict[str, Any], response: dict[str, Any]
) -> bytes:
    """The re-execution job's input file (canonical JSON; ``response`` without ``anchorml``)."""
    body = {k: v for k, v in response.items() if k != "anchorml"}
    return canonical_json({"receipt": signed.to_json(), "request": request, "response": body})


def file_challenge(
    sdk: Anchorml,
    signed: SignedReceipt,
    request: dict[str, Any] | None,
    response: dict[str, Any],
    fee_wei: int | None = None,
) -> FiledChallenge:
    """Pin the job input and the verify params, then challenge ``signed`` on chain.

    Args:
        sdk: an SDK handle with a signing key (it pays the fee).
        signed: the receipt.
        request: the canonical request the receipt's request hash covers.
        response: the answer body.
        fee_wei: wei to escrow (default: the contract's current fee).

    Raises:
        ReceiptError: no canonical request (a challenge cannot be re-executed without it).
        ContractRevertError: typed refusals of the contract (expired, sampled, already
            challenged, fee too low, not a node, signature mismatch); a receipt newer than the
            latest block is retried until the chain's clock passes it (at most
            :data:`CLOCK_WAIT_S`).
    """
    if request is None:
        raise ReceiptError("the answer carries no canonical request: it cannot be re-executed")
    store = sdk.store
    cid = store.add_bytes(challenge_input(signed, request, response))
    store.pin(cid)
    publish_params(store, VERIFY_PARAMS)
    ref = ContentRef.from_cid(str(cid))
    deadline = time.monotonic() + CLOCK_WAIT_S
    while True:
        try:
            challenge_id = sdk.challenges.challenge(signed, ref.codec, ref.digest, fee_wei)
            break
        except ContractRevertError as exc:
            # A receipt signed a moment ago is "from the future" for the latest block (whose
            # time the transaction is simulated at) until the next block is mined.
            if exc.error_name != "ReceiptFromFuture" or time.monotonic() > deadline:
                raise
            time.sleep(1.0)
    return FiledChallenge(challenge_id, sdk.challenges.get(challenge_id).job_id, str(cid))
