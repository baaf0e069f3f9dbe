"""Client of the Challenges contract: challenge a signed receipt on chain, then resolve it.

A challenge escrows a fee and posts a re-execution job (INFER, params ``{"task":"verify"}``) on
the receipt's model version; the accused signer may not claim it. Once the job settles,
:meth:`ChallengesClient.resolve` slashes the signer (a MISMATCH verdict), dismisses the challenge
(any other verdict: the fee paid the re-executors) or refunds the fee (the job expired).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak

from registry.clients.base import ContractClient, TxResult
from registry.errors import ChainError
from registry.jobs.io import canonical_params
from registry.receipts import Domain, SignedReceipt, Verdict, verdict_sha256

#: The params every challenge job carries, and their hash (the contract's VERIFY_PARAMS_HASH).
VERIFY_PARAMS = {"task": "verify"}
VERIFY_PARAMS_HASH = hashlib.sha256(canonical_params(VERIFY_PARAMS)).digest()
#: CIDv1 codec of a raw block: how a verdict file (65 bytes, one block) is stored.
CODEC_RAW = 0x55


class ChallengeStatus(enum.IntEnum):
    """Where a challenge stands (the contract's ``Status`` enum); the last three are outcomes."""

    NONE = 0
    OPEN = 1
    SLASHED = 2  #: the re-executors found a MISMATCH: the signer was slashed
    DISMISSED = 3  #: any other verdict: the fee paid the re-executors
    REFUNDED = 4  #: the job expired: the fee was credited back to the challenger


@dataclass(frozen=True)
class Challenge:
    """A challenge as the chain records it."""

    id: int
    challenger: str
    signer: str
    version_id: bytes
    receipt_digest: bytes
    job_id: int
    status: ChallengeStatus
    fee_wei: int


@dataclass(frozen=True)
class ChallengeParams:
    """The governed parameters of challenges."""

    fee_wei: int
    window_s: int
    job_ttl_s: int
    redundancy: int
    fault_slash_wei: int


def mismatch_result_hash(receipt_digest: bytes) -> bytes:
    """The job board's result hash of the MISMATCH verdict on ``receipt_digest`` (what
    ``resolve`` compares): the verdict file as one raw block of 65 bytes."""
    sha = verdict_sha256(receipt_digest, Verdict.MISMATCH)
    return keccak(encode(["uint8", "bytes32", "bytes32", "uint40"], [CODEC_RAW, sha, sha, 65]))


class ChallengesClient(ContractClient):
    """Typed access to Challenges."""

    contract_name = "Challenges"

    # --- parameters ----------------------------------------------------------------------------

    def fee_wei(self) -> int:
        """Least wei a challenge escrows."""
        return int(self._read(self.contract.functions.fee()))

    def window_s(self) -> int:
        """Seconds after a receipt's issue during which it can be challenged."""
        return int(self._read(self.contract.functions.window()))

    def params(self) -> ChallengeParams:
        """Every governed parameter."""
        f = self.contract.functions
        return ChallengeParams(
            fee_wei=int(self._read(f.fee())),
            window_s=int(self._read(f.window())),
            job_ttl_s=int(self._read(f.jobTtl())),
            redundancy=int(self._read(f.redundancy())),
            fault_slash_wei=int(self._read(f.faultSlash())),
        )

    def set_params(self, params: ChallengeParams) -> TxResult:
        """Change the parameters (admin only; the contract enforces their bounds)."""
        fn = self.contract.functions.setParams(
            params.fee_wei,
            params.window_s,
            params.job_ttl_s,
            params.redundancy,
            params.fault_slash_wei,
        )
        return self._result(self._send(fn))

    def domain(self) -> Domain:
        """The EIP-712 domain receipts on this chain are signed under."""
        return Domain(self.chain.chain_id, self.address)

    # --- challenger ----------------------------------------------------------------------------

    def challenge(
        self,
        signed: SignedReceipt,
        input_codec: int,
        input_digest: bytes,
        value_wei: int | None = None,
    ) -> int:
        """Challenge ``signed``, escrowing ``value_wei`` (default: the current fee).

        Args:
            signed: the receipt and its signature.
            input_codec: CIDv1 codec of the job input file (receipt, request and response JSON).
            input_digest: sha2-256 digest of that file's root block.
            value_wei: the fee to escrow (all of it becomes the re-executors' reward).

        Returns:
            The new challenge's id.

        Raises:
            ContractRevertError: typed (``MalformedSignature``, ``SignerMismatch``, ``NotANode``,
                ``SampledRequest``, ``ReceiptExpired``, ``ReceiptFromFuture``,
                ``AlreadyChallenged``, ``FeeTooLow``, or the version's ``VersionNotFound`` /
                ``VersionIsRevoked``).
        """
        return int(self.open_challenge(signed, input_codec, input_digest, value_wei).value)

    def open_challenge(
        self,
        signed: SignedReceipt,
        input_codec: int,
        input_digest: bytes,
        value_wei: int | None = None,
    ) -> TxResult:
        """:meth:`challenge`, returning the transaction (``value`` is the challenge id)."""
        fn = self.contract.functions.challenge(
            _receipt_tuple(signed), signed.signature, input_codec, input_digest
        )
        value = self.fee_wei() if value_wei is None else value_wei
        sent = self._send(fn, value=value)
        return self._result(sent, int(self._event_args(sent, "ChallengeOpened")["id"]))

    def resolve(self, challenge_id: int) -> TxResult:
        """Settle a challenge whose job settled; ``value`` of the result is the outcome
        (:class:`ChallengeStatus`).

        Raises:
            ContractRevertError: typed (``ChallengeNotFound``, ``AlreadyResolved``,
                ``NotResolvableYet``).
        """
        sent = self._send(self.contract.functions.resolve(challenge_id))
        outcome = ChallengeStatus(int(self._event_args(sent, "ChallengeResolved")["outcome"]))
        return self._result(sent, outcome)

    # --- views ---------------------------------------------------------------------------------

    def get(self, challenge_id: int) -> Challenge:
        """The challenge with id ``challenge_id``.

        Raises:
            ChainError: no such challenge.
        """
        raw = self._read(self.contract.functions.getChallenge(challenge_id))
        challenger, fee, signer, job_id, status, vid, digest = raw
        if int(status) == 0:
            raise ChainError(f"challenge {challenge_id} does not exist")
        return Challenge(
            id=challenge_id,
            challenger=str(challenger),
            signer=str(signer),
            version_id=bytes(vid),
            receipt_digest=bytes(digest),
            job_id=int(job_id),
            status=ChallengeStatus(int(status)),
            fee_wei=int(fee),
        )

    def challenge_of(self, receipt_digest: bytes) -> int | None:
        """The challenge opened on a receipt digest, or None."""
        found = int(self._read(self.contract.functions.challengeOf(receipt_digest)))
        return found or None

    def receipt_digest(self, signed: SignedReceipt) -> bytes:
        """The digest the contract computes for ``signed``'s receipt (equal to
        ``signed.digest`` when signed under this contract's :meth:`domain`)."""
        return bytes(self._read(self.contract.functions.receiptDigest(_receipt_tuple(signed))))

    def last_challenge_id(self) -> int:
        """Id of the newest challenge (0 when none)."""
        return int(self._read(self.contract.functions.lastChallengeId()))


def _receipt_tuple(signed: SignedReceipt) -> tuple[str, bytes, bytes, bytes, int, bool]:
    """The contract's ``Receipt`` struct of ``signed``."""
    r = signed.receipt
    return (r.signer, r.version_id, r.request_hash, r.response_hash, r.issued_at, r.deterministic)
