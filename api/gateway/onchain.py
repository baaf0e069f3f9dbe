"""The on-chain inference path: a request becomes an INFER job, its verified result the answer.

Steps of :meth:`OnchainRunner.run`:
1. upload the input document and params (the INFER executor's formats) and create the job with
   the gateway's key, escrowing the reward (the chain checks the gateway's own access; the
   caller's was checked before);
2. track the job, so the gateway expires it after its deadline if nobody settled it;
3. wait until the job settles; if the caller goes away or the wait times out while the job is
   still open, cancel it (refund) — a claimed job is left to finish or expire, never orphaned;
4. read the result through the store (every block verified) and check its sha256 against the
   chain; answer with the result and a receipt (job id, transactions, CIDs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio

from api.gateway.budget import SponsorBudget
from api.gateway.config import GatewayConfig
from api.gateway.errors import JobFailedError, JobTimeoutError, SignerUnavailableError
from api.gateway.metrics import GatewayMetrics
from node.serving import Target
from registry.clients import JobStatus
from registry.errors import AnchormlError, CorruptContentError
from registry.jobs import JobKind, Submitted, canonical_params, submit
from registry.sdk import Anchorml
from registry.store.base import ContentStore

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 64 << 20
POLL_S = 0.25


@dataclass(frozen=True)
class OnchainOptions:
    """What the request's ``anchorml`` field asked for."""

    redundancy: int = 1
    reward_wei: int | None = None
    timeout_s: float | None = None


class JobTracker:
    """Jobs this gateway created and that have not settled; expires them after their deadline."""

    def __init__(self, sdk: Anchorml, interval_s: float = 5.0) -> None:
        self.sdk = sdk
        self.interval_s = interval_s
        self.pending: dict[int, int] = {}  # job id → deadline

    def track(self, job_id: int, deadline: int) -> None:
        """Watch ``job_id`` until it settles."""
        self.pending[job_id] = deadline

    def sweep(self) -> None:
        """Drop settled jobs; expire the ones past their deadline (blocking; run in a thread)."""
        if not self.pending:
            return
        now = self.sdk.chain.timestamp()
        for job_id, deadline in list(self.pending.items()):
            try:
                if self.sdk.jobs.status(job_id).settled:
                    self.pending.pop(job_id, None)
                elif now > deadline and self.sdk.wallet is not None:
                    self.sdk.jobs.expire(job_id)
                    self.pending.pop(job_id, None)
                    log.info("job %s expired by the gateway (refund credited)", job_id)
            except AnchormlError as exc:
                log.info("job %s: sweep skipped (%s)", job_id, exc.code)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.sweep)
            except Exception as exc:  # noqa: BLE001 - keep sweeping through RPC hiccups
                log.warning("job tracker: sweep failed (%s)", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)


class OnchainRunner:
    """Runs INFER jobs for requests and returns verified results."""

    def __init__(
        self,
        sdk: Anchorml,
        store: ContentStore,
        tracker: JobTracker,
        config: GatewayConfig,
        metrics: GatewayMetrics,
    ) -> None:
        self.sdk = sdk
        self.store = store
        self.tracker = tracker
        self.config = config
        self.metrics = metrics
        self.budget = SponsorBudget(
            config.sponsor_daily_wei_per_caller, config.sponsor_daily_wei_total
        )

    async def sponsor(self, payer: str, kind: JobKind, model_ref: str, **job: Any) -> Submitted:
        """Post a job paid from the gateway's wallet for ``payer`` (an address, else a client
        IP): charged to the daily budgets first (reward plus gas at the wallet's current
        maximum fee), then checked, uploaded and created (:func:`registry.jobs.submit`).

        Raises:
            SignerUnavailableError: the gateway has no key.
            SponsorBudgetExceededError: the payer's or the gateway's daily budget is spent
                (nothing was uploaded or sent).
        """
        wallet = self.sdk.wallet
        if wallet is None:
            raise SignerUnavailableError("the gateway has no key (ANCHORML_PRIVATE_KEY): no jobs")
        fee = await asyncio.to_thread(wallet.max_fee_per_gas)
        cost = int(job["reward_wei"]) + self.config.sponsor_gas_per_job * fee
        with self.budget.sponsoring(payer, cost):
            submitted = await asyncio.to_thread(submit, self.sdk, kind, model_ref, **job)
        self.metrics.jobs_created.labels(kind=kind.name).inc()
        return submitted

    async def run(
        self,
        target: Target,
        input_doc: dict[str, Any],
        params: dict[str, Any],
        options: OnchainOptions,
        payer: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create the job (paid for ``payer``, see :meth:`sponsor`), wait for it, and return
        ``(result document, receipt)``.

        Raises:
            SignerUnavailableError: the gateway has no key.
            SponsorBudgetExceededError: the payer's or the gateway's daily budget is spent.
            ContractRevertError: the chain refused the job (e.g. ``NoAccess`` for the gateway).
            JobTimeoutError: not settled in time (an open job is cancelled first).
            JobFailedError: the job expired or was cancelled.
            CorruptContentError: the result does not match its on-chain hash.
        """
        reward = options.reward_wei or self.config.onchain_reward_wei
        submitted = await self.sponsor(
            payer,
            JobKind.INFER,
            target.pinned_ref,
            input_bytes=canonical_params(input_doc),
            params=params,
            reward_wei=reward,
            redundancy=options.redundancy,
            deadline_s=self.config.job_deadline_s,
            lease_s=self.config.job_lease_s,
        )
        job_id = submitted.job_id
        self.tracker.track(job_id, submitted.deadline)
        timeout = min(
            options.timeout_s or self.config.onchain_timeout_s, self.config.onchain_timeout_s
        )
        try:
            status = await self._wait(job_id, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._cancel_if_open(job_id)
            raise
        if status is None:
            cancelled = await self._cancel_if_open(job_id)
            what = "cancelled and refunded" if cancelled else "left to finish or expire"
            raise JobTimeoutError(f"job {job_id} did not settle within {timeout:.0f} s ({what})")
        record = await asyncio.to_thread(self.sdk.jobs.get_job, job_id)
        if record.status != JobStatus.FINALIZED or record.result is None:
            raise JobFailedError(
                f"job {job_id} ended {record.status.name.lower()} without a result"
            )
        output = record.result
        raw = await asyncio.to_thread(
            self.store.read, output.content.to_cid(), max_size=MAX_RESULT_BYTES
        )
        if hashlib.sha256(raw).digest() != output.sha256:
            raise CorruptContentError(f"job {job_id}: result does not match its on-chain sha256")
        finalize_tx = await asyncio.to_thread(self._finalize_tx, job_id, record.created_block)
        receipt = {
            "mode": "onchain",
            "job_id": job_id,
            "create_tx": submitted.tx_hash,
            "finalize_tx": finalize_tx,
            "requester": self.sdk.wallet.address if self.sdk.wallet else None,
            "version": target.pinned_ref,
            "input_cid": submitted.input_cid,
            "params_hash": "0x" + submitted.params_hash.hex(),
            "result_cid": output.content.to_cid(),
            "result_sha256": "0x" + output.sha256.hex(),
            "redundancy": options.redundancy,
            "reward_wei": reward,
        }
        return json.loads(raw), receipt

    async def _wait(self, job_id: int, timeout: float) -> JobStatus | None:
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            status = await asyncio.to_thread(self.sdk.jobs.status, job_id)
            if status.settled:
                return status
            await asyncio.sleep(POLL_S)
        return None

    async def _cancel_if_open(self, job_id: int) -> bool:
        try:
            if await asyncio.to_thread(self.sdk.jobs.status, job_id) != JobStatus.OPEN:
                return False
            await asyncio.to_thread(self.sdk.jobs.cancel, job_id)
        except AnchormlError as exc:  # claimed meanwhile: the tracker follows it
            log.info("job %s not cancelled (%s)", job_id, exc.code)
            return False
        self.tracker.pending.pop(job_id, None)
        return True

    def _finalize_tx(self, job_id: int, from_block: int) -> str | None:
        event = self.sdk.jobs.finalized_event(job_id, from_block)
        return event.tx_hash if event is not None else None
