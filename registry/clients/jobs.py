"""Client of the JobBoard contract: create, claim, deliver (submit or commit/reveal), settle."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak

from registry.chain.events import ChainEvent
from registry.clients.base import ContentRef, ContractClient, TxResult
from registry.errors import ChainError, CorruptContentError
from registry.jobs.kinds import JobKind

ZERO32 = b"\x00" * 32


class JobStatus(enum.IntEnum):
    """States of a job (the contract's ``Status`` enum)."""

    NONE = 0
    OPEN = 1
    CLAIMED = 2
    REVEALING = 3
    FINALIZED = 4
    EXPIRED = 5
    CANCELLED = 6

    @property
    def settled(self) -> bool:
        """Whether the job reached a final state."""
        return self in (JobStatus.FINALIZED, JobStatus.EXPIRED, JobStatus.CANCELLED)


class ClaimState(enum.IntEnum):
    """State of a claim slot."""

    FREE = 0
    ACTIVE = 1
    COMMITTED = 2
    REVEALED = 3


@dataclass(frozen=True)
class JobSpec:
    """What a requester asks for."""

    kind: JobKind
    version_id: bytes
    input: ContentRef
    params_hash: bytes
    deadline: int
    lease_seconds: int
    redundancy: int = 1
    output_model_id: bytes = ZERO32

    def input_hash(self) -> bytes:
        """The commitment the contract stores for the input and params."""
        return _input_hash(self.input, self.params_hash)

    def request(self) -> tuple[Any, ...]:
        """The contract's ``JobRequest`` struct, as ``createJob`` takes it."""
        return (
            int(self.kind),
            self.version_id,
            self.input.codec,
            self.input.digest,
            self.params_hash,
            self.deadline,
            self.lease_seconds,
            self.redundancy,
            self.output_model_id,
        )


@dataclass(frozen=True)
class Output:
    """A job's output as delivered on chain."""

    content: ContentRef
    sha256: bytes
    size: int

    def commitment(self) -> bytes:
        """The result commitment the contract stores for this output."""
        return keccak(
            encode(
                ["uint8", "bytes32", "bytes32", "uint40"],
                [self.content.codec, self.content.digest, self.sha256, self.size],
            )
        )


@dataclass(frozen=True)
class Claim:
    """One claim slot."""

    node: str
    lease_expiry: int
    state: ClaimState


@dataclass(frozen=True)
class JobCreated:
    """The part of a job's spec that only its ``JobCreated`` event carries (the contract stores a
    commitment to the input and params, not the values), and the block of that event."""

    job_id: int
    input: ContentRef
    params_hash: bytes
    output_model_id: bytes
    block: int

    @classmethod
    def from_event(cls, args: Mapping[str, Any], block: int) -> JobCreated:
        """From a decoded ``JobCreated`` log's arguments."""
        return cls(
            job_id=int(args["jobId"]),
            input=ContentRef(int(args["inputCodec"]), bytes(args["inputDigest"])),
            params_hash=bytes(args["paramsHash"]),
            output_model_id=bytes(args["outputModelId"]),
            block=block,
        )


@dataclass(frozen=True)
class JobRecord:
    """A job's current state, with the spec it was created with."""

    job_id: int
    requester: str
    reward_wei: int
    spec: JobSpec
    status: JobStatus
    claims: int
    commits: int
    reveals: int
    reveal_deadline: int
    created_block: int
    result: Output | None


class JobBoardClient(ContractClient):
    """Typed access to JobBoard."""

    contract_name = "JobBoard"

    # --- requester -----------------------------------------------------------------------------

    def create_job(self, spec: JobSpec, reward_wei: int) -> TxResult:
        """Post a job escrowing ``reward_wei``; ``value`` of the result is the job id."""
        sent = self._send(self.contract.functions.createJob(spec.request()), value=reward_wei)
        job_id = int(self._event_args(sent, "JobCreated")["jobId"])
        return self._result(sent, job_id)

    def cancel(self, job_id: int) -> TxResult:
        """Cancel an open, unclaimed job (refund credited)."""
        return self._result(self._send(self.contract.functions.cancelJob(job_id)))

    def expire(self, job_id: int) -> TxResult:
        """Settle a job past its deadline: refund the requester, slash silent claimants."""
        return self._result(self._send(self.contract.functions.expire(job_id)))

    # --- node ----------------------------------------------------------------------------------

    def claim(self, job_id: int) -> TxResult:
        """Claim a slot; ``value`` is the lease expiry."""
        sent = self._send(self.contract.functions.claim(job_id))
        return self._result(sent, int(self._event_args(sent, "JobClaimed")["leaseExpiry"]))

    def release(self, job_id: int) -> TxResult:
        """Give the wallet's claim back before delivering."""
        return self._result(self._send(self.contract.functions.releaseClaim(job_id)))

    def reclaim_lapsed(self, job_id: int) -> TxResult:
        """Reopen lapsed slots (slashing their holders); ``value`` is how many."""
        return self._result(self._send(self.contract.functions.reclaimLapsed(job_id)))

    def submit(self, job_id: int, output: Output) -> TxResult:
        """Deliver the result of a redundancy-1 job (finalizes it)."""
        fn = self.contract.functions.submitResult(
            job_id, output.content.codec, output.content.digest, output.sha256, output.size
        )
        return self._result(self._send(fn))

    def commitment(self, job_id: int, node: str, output: Output, salt: bytes) -> bytes:
        """The salted commitment to ``output`` that ``node`` commits for ``job_id``."""
        return keccak(
            encode(
                ["uint64", "address", "uint8", "bytes32", "bytes32", "uint40", "bytes32"],
                [
                    job_id,
                    node,
                    output.content.codec,
                    output.content.digest,
                    output.sha256,
                    output.size,
                    salt,
                ],
            )
        )

    def commit(self, job_id: int, output: Output, salt: bytes | None = None) -> TxResult:
        """Commit to ``output``; ``value`` of the result is the salt to reveal with."""
        if self.wallet is None:
            raise ChainError("committing needs a signing key")
        salt = salt or os.urandom(32)
        commitment = self.commitment(job_id, self.wallet.address, output, salt)
        return self._result(
            self._send(self.contract.functions.commitResult(job_id, commitment)), salt
        )

    def reveal(self, job_id: int, output: Output, salt: bytes) -> TxResult:
        """Reveal a committed output."""
        fn = self.contract.functions.revealResult(
            job_id, output.content.codec, output.content.digest, output.sha256, output.size, salt
        )
        return self._result(self._send(fn))

    def finalize(self, job_id: int) -> TxResult:
        """Settle a redundancy-k job after its reveal window."""
        return self._result(self._send(self.contract.functions.finalize(job_id)))

    # --- views ---------------------------------------------------------------------------------

    def get_job(
        self,
        job_id: int,
        from_block: int | None = None,
        *,
        created: JobCreated | None = None,
        with_result: bool = True,
    ) -> JobRecord:
        """The job with its spec (from ``JobCreated``, checked against the stored commitment).

        Args:
            job_id: the job.
            from_block: where to start looking for ``JobCreated`` (default: the deploy block).
            created: the job's ``JobCreated`` as already seen (a worker's listener has it):
                used when it matches the stored commitment, which saves scanning the logs;
                otherwise (say the job was reorged away and its id reused) the logs are scanned.
            with_result: read a finalized job's accepted output too (a scan of its
                ``JobFinalized`` log); when False, ``result`` is None whatever the status.

        Raises:
            ChainError: no such job.
            CorruptContentError: the event does not match the stored input commitment.
        """
        raw = self._read(self.contract.functions.getJob(job_id))
        (requester, reward, vid, input_hash, deadline, lease, kind, status, k, claims, commits,
         reveals, reveal_deadline) = raw  # fmt: skip
        if int(status) == 0:
            raise ChainError(f"job {job_id} does not exist")
        if (
            created is None
            or created.job_id != job_id
            or _input_hash(created.input, created.params_hash) != bytes(input_hash)
        ):
            created = self._find_created(job_id, from_block)
        spec = JobSpec(
            kind=JobKind(int(kind)),
            version_id=bytes(vid),
            input=created.input,
            params_hash=created.params_hash,
            deadline=int(deadline),
            lease_seconds=int(lease),
            redundancy=int(k),
            output_model_id=created.output_model_id,
        )
        if spec.input_hash() != bytes(input_hash):
            raise CorruptContentError(f"job {job_id}: event input does not match its commitment")
        result = None
        if with_result and JobStatus(int(status)) == JobStatus.FINALIZED:
            result = self.get_result(job_id, from_block=created.block)
        return JobRecord(
            job_id=job_id,
            requester=str(requester),
            reward_wei=int(reward),
            spec=spec,
            status=JobStatus(int(status)),
            claims=int(claims),
            commits=int(commits),
            reveals=int(reveals),
            reveal_deadline=int(reveal_deadline),
            created_block=created.block,
            result=result,
        )

    def _find_created(self, job_id: int, from_block: int | None) -> JobCreated:
        """The job's newest ``JobCreated`` at or after ``from_block`` (scanning the logs)."""
        found = None
        for ev in self._events("JobCreated").scan(self._from(from_block), where={"jobId": job_id}):
            found = ev
        if found is None:
            raise ChainError(f"job {job_id}: JobCreated event not found after block {from_block}")
        return JobCreated.from_event(found.args, found.block)

    def get_result(self, job_id: int, from_block: int | None = None) -> Output:
        """The accepted output of a finalized job (from ``JobFinalized``, checked against the
        stored result commitment).

        Raises:
            ChainError: the job is not finalized.
            CorruptContentError: the event does not match the stored commitment.
        """
        stored = bytes(self._read(self.contract.functions.resultHashOf(job_id)))
        if stored == ZERO32:
            raise ChainError(f"job {job_id} has no accepted result")
        ev = self.finalized_event(job_id, from_block)
        if ev is None:
            raise ChainError(f"job {job_id}: JobFinalized event not found after block {from_block}")
        a = ev.args
        output = Output(
            ContentRef(int(a["codec"]), bytes(a["digest"])), bytes(a["sha256"]), int(a["size"])
        )
        if output.commitment() != stored:
            raise CorruptContentError(f"job {job_id}: JobFinalized does not match its commitment")
        return output

    def finalized_event(self, job_id: int, from_block: int | None = None) -> ChainEvent | None:
        """The job's first ``JobFinalized`` at or after ``from_block`` (a log scan), or None."""
        events = self._events("JobFinalized").scan(self._from(from_block), where={"jobId": job_id})
        return next(events, None)

    def status(self, job_id: int) -> JobStatus:
        """Only the job's status (one call)."""
        return JobStatus(int(self._read(self.contract.functions.getJob(job_id))[7]))

    def get_claims(self, job_id: int, redundancy: int) -> list[Claim]:
        """The job's claim slots."""
        out = []
        for slot in range(redundancy):
            node, lease, state, *_ = self._read(self.contract.functions.getClaim(job_id, slot))
            out.append(Claim(str(node), int(lease), ClaimState(int(state))))
        return out

    def last_job_id(self) -> int:
        """Id of the newest job (0 when none)."""
        return int(self._read(self.contract.functions.lastJobId()))


def _input_hash(content: ContentRef, params_hash: bytes) -> bytes:
    """The commitment the contract stores for a job's input and params."""
    return keccak(
        encode(["uint8", "bytes32", "bytes32"], [content.codec, content.digest, params_hash])
    )
