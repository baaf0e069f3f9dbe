"""Turn job events into work: check, claim, execute, pin, deliver, settle.

For each candidate job (one at a time — jobs are CPU-bound):
    1. read the job from the chain (the listener's event may be stale or reorged away) and skip it
       unless it is open, before its deadline, for a served version and an accepted kind, and not
       already delivered by this node;
    2. fetch and verify everything *before* claiming: the params (by hash), the input (by CID) and
       the model (cache: CID + manifest + safety checks); a job we cannot do is never claimed;
    3. claim (simulated first; losing a race is logged at INFO and costs no gas);
    4. run the executor in a worker thread, with a time limit;
    5. pin the output to the store and read it back verified (retried; a store outage releases
       the claim instead of delivering a result that is not there);
    6. deliver: ``submitResult`` for redundancy 1 (settles at once), or commit now and reveal once
       every claimant has committed.
Failures after the claim release it, so another node can take the job. Alongside, a housekeeping
pass expires overdue jobs (refunding requesters) and finalizes reveal rounds whose window closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.executors import ExecutorResult, InvalidJobInputError, InvalidJobParamsError, run_job
from node.listener import ChainEvent
from node.metrics import NodeMetrics
from node.rpc import with_retries
from node.service import Service
from node.state import NodeState
from registry.chain import revert_errors as rv
from registry.clients import ContentRef, JobKind, JobStatus, VersionRecord
from registry.clients.jobs import JobRecord, Output
from registry.errors import AnchormlError, ContractRevertError, StoreError
from registry.jobio import fetch_params
from registry.model.manifest import build_manifest, write_manifest
from registry.model.package import ModelCache
from registry.sdk import Anchorml

log = logging.getLogger(__name__)

#: Reverts that mean "someone else got there first" — expected between competing nodes.
BENIGN = (
    rv.InvalidJobStatus,
    rv.LeaseActive,
    rv.AlreadyClaimed,
    rv.NotClaimant,
    rv.DeadlinePassed,
    rv.DeadlineNotReached,
    rv.RevealWindow,
)
PIN_ATTEMPTS = 4


class JobSkipped(Exception):
    """The node decided not to (or can no longer) work on a job; the message says why."""


@dataclass
class Served:
    """What this node serves: fixed versions, every version of some models, or everything.

    Attributes:
        versions: versions resolved so far, by version id.
        models: model ids whose every version (present and future) is served.
        everything: serve every model (a devnet convenience: ``serves = ["*"]``).
    """

    versions: dict[bytes, VersionRecord] = field(default_factory=dict)
    models: set[bytes] = field(default_factory=set)
    everything: bool = False

    def get(self, version_id: bytes) -> VersionRecord | None:
        """The served version, or None."""
        return self.versions.get(version_id)

    @property
    def open_ended(self) -> bool:
        """Whether versions not yet seen may be served (model-wide or global serving)."""
        return self.everything or bool(self.models)

    def admit(self, version: VersionRecord) -> bool:
        """Serve ``version`` if a model-wide rule covers it and it is not revoked."""
        if version.revoked or not (self.everything or version.model_id in self.models):
            return False
        self.versions[version.version_id] = version
        return True

    def revoke(self, version_id: bytes) -> VersionRecord | None:
        """Stop serving a version; returns it if it was served."""
        return self.versions.pop(version_id, None)


class Processor(Service):
    """Consumes listener events and works through the jobs this node can do."""

    name = "processor"

    def __init__(
        self,
        sdk: Anchorml,
        state: NodeState,
        events: asyncio.Queue[ChainEvent],
        cache: ModelCache,
        served: Served,
        metrics: NodeMetrics,
        *,
        kinds: list[str],
        work_dir: Path,
        job_timeout_s: float = 1800.0,
        housekeeping_s: float = 1.0,
        outage_s: float = 30.0,
    ) -> None:
        super().__init__()
        self.sdk = sdk
        self.state = state
        self.events = events
        self.cache = cache
        self.served = served
        self.metrics = metrics
        self.kinds = {k.upper() for k in kinds}
        self.work_dir = work_dir
        self.job_timeout_s = job_timeout_s
        self.housekeeping_s = housekeeping_s
        self.outage_s = outage_s
        self.candidates: dict[int, None] = {}  # ordered set of job ids to look at
        self.watch: dict[int, int] = {}  # unsettled job id → deadline, for housekeeping
        self.leases: dict[int, int] = {}  # job id → latest lease expiry held by another node
        self.current: int | None = None
        self.address = sdk.wallet.address if sdk.wallet else ""

    async def setup(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for entry in self.state.unfinished():
            self.candidates[entry.job_id] = None  # resume: the chain decides what is left to do

    async def run(self) -> None:
        last_housekeeping = 0.0
        while not self.stopping.is_set():
            await self._drain_events()
            if time.monotonic() - last_housekeeping >= self.housekeeping_s:
                await self._housekeeping()
                last_housekeeping = time.monotonic()
            if self.candidates:
                job_id = next(iter(self.candidates))
                del self.candidates[job_id]
                await self._handle(job_id)
                continue
            try:
                event = await asyncio.wait_for(self.events.get(), timeout=self.housekeeping_s)
            except TimeoutError:
                continue
            self._on_event(event)

    # --- events --------------------------------------------------------------------------------

    async def _drain_events(self) -> None:
        while not self.events.empty():
            self._on_event(self.events.get_nowait())

    def _on_event(self, event: ChainEvent) -> None:
        args = event.args
        if event.name == "JobCreated":
            job_id = int(args["jobId"])
            self.watch[job_id] = int(args["deadline"])
            kind = JobKind(int(args["kind"])).name
            known = self.served.get(bytes(args["versionId"])) is not None
            if kind in self.kinds and (known or self.served.open_ended):
                self.candidates[job_id] = None
        elif event.name == "JobClaimed":
            job_id = int(args["jobId"])
            if args["node"] != self.address:
                self.leases[job_id] = int(args["leaseExpiry"])
        elif event.name == "ClaimReleased":
            job_id = int(args["jobId"])
            if job_id in self.watch and args["node"] != self.address:
                self.candidates[job_id] = None
        elif event.name == "ResultCommitted":
            job_id = int(args["jobId"])
            if any(e.state == "committed" for e in self.state.attempts(job_id)):
                self.candidates[job_id] = None  # maybe every claimant has committed: reveal
        elif event.name in ("JobFinalized", "JobExpired", "JobCancelled"):
            job_id = int(args["jobId"])
            self.watch.pop(job_id, None)
            self.leases.pop(job_id, None)
            self.candidates.pop(job_id, None)
            for entry in self.state.attempts(job_id):
                if entry.state not in ("done", "released", "skipped"):
                    self.state.record(job_id, entry.attempt, "done" if event.name == "JobFinalized" else "lost")
        elif event.name == "VersionRevoked":
            version = self.served.revoke(bytes(args["versionId"]))
            if version is not None:
                log.warning("version %s was revoked: no longer served", version.cid)

    # --- one job -------------------------------------------------------------------------------

    async def _handle(self, job_id: int) -> None:
        self.current = job_id
        try:
            await self._process(job_id)
        except JobSkipped as skip:
            log.info("job %s skipped: %s", job_id, skip)
        except BENIGN as race:
            log.info("job %s taken or settled by someone else (%s)", job_id, race.error_name)
        except AnchormlError as exc:
            log.warning("job %s failed: %s", job_id, exc.message)
        finally:
            self.current = None

    async def _process(self, job_id: int) -> None:
        job = await self._rpc(lambda: self.sdk.jobs.get_job(job_id), f"job {job_id}")
        mine = self.state.attempts(job_id)
        latest = mine[-1] if mine else None
        if latest is not None and latest.state == "committed":
            await self._maybe_reveal(job, latest.attempt)
            return
        if job.status not in (JobStatus.OPEN, JobStatus.CLAIMED):
            raise JobSkipped(f"it is {job.status.name.lower()}")
        if self.state.delivered(job_id):
            raise JobSkipped("this node already delivered a result for it")
        version = self.served.get(job.spec.version_id)
        if version is None and self.served.open_ended:
            record = await self._rpc(lambda: self.sdk.models.get_version(job.spec.version_id), "version")
            version = record if self.served.admit(record) else None
        if version is None:
            raise JobSkipped("its model version is not served by this node")
        if job.spec.kind.name not in self.kinds:
            raise JobSkipped(f"{job.spec.kind.name} jobs are not taken by this node")
        now = await self._rpc(self.sdk.chain.timestamp, "timestamp")
        if now >= job.spec.deadline:
            raise JobSkipped("its deadline passed")
        attempt = (latest.attempt + 1) if latest else 1
        workspace = Path(tempfile.mkdtemp(prefix=f"job-{job_id}-", dir=self.work_dir))
        try:
            params, input_path, model_dir = await self._prepare(job, version, workspace)
            claim = await self._send("claim", lambda: self.sdk.jobs.claim(job_id))
            self.state.record(job_id, attempt, "claimed")
            log.info("job %s claimed until %s", job_id, claim.value)
            started = time.monotonic()
            try:
                output = await self._execute_and_pin(job, version, params, input_path, model_dir, workspace)
                await self._deliver(job, attempt, output)
            except asyncio.CancelledError:
                await self._release(job_id, attempt, "node stopping")
                raise
            except (AnchormlError, TimeoutError, OSError) as exc:
                if isinstance(exc, BENIGN):
                    raise
                await self._release(job_id, attempt, f"{type(exc).__name__}: {exc}")
                self.metrics.jobs.labels(job.spec.kind.name, "failed").inc()
                return
            self.metrics.job_seconds.labels(job.spec.kind.name).observe(time.monotonic() - started)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)

    async def _prepare(self, job: JobRecord, version: VersionRecord, workspace: Path) -> tuple[bytes, Path, Path]:
        """Fetch params, input and model, all verified, before any claim."""
        from node.executors import parse_params

        store = self.sdk.store
        try:
            params = await asyncio.to_thread(fetch_params, store, job.spec.params_hash)
            parse_params(job.spec.kind.name, params)
            input_path = workspace / "input"
            await asyncio.to_thread(store.get, job.spec.input.to_cid(), input_path)
            model_dir = await asyncio.to_thread(self.cache.ensure, version)
        except InvalidJobParamsError as exc:
            raise JobSkipped(f"invalid params: {exc.message}") from None
        except AnchormlError as exc:
            raise JobSkipped(f"cannot prepare it: {exc.message}") from None
        return params, input_path, model_dir

    async def _execute_and_pin(
        self,
        job: JobRecord,
        version: VersionRecord,
        params: bytes,
        input_path: Path,
        model_dir: Path,
        workspace: Path,
    ) -> Output:
        out_dir = workspace / "out"
        kind = job.spec.kind.name
        try:
            result: ExecutorResult = await asyncio.wait_for(
                asyncio.to_thread(run_job, kind, model_dir, input_path, params, out_dir),
                timeout=self.job_timeout_s,
            )
        except InvalidJobInputError as exc:
            raise StoreError(f"input does not fit the job: {exc}") from None
        if self.served.get(version.version_id) is None:
            raise JobSkipped("its model version was revoked while it ran")
        if result.produces_model:
            target = out_dir / "model"
            metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
            manifest = build_manifest(target, parent=version.cid, job=job.job_id, metrics=metrics)
            write_manifest(target, manifest)
            check_path, sha, size = target / "anchorml.json", manifest.sha256(), manifest.total_size
        else:
            target = out_dir / "result.json"
            check_path = target
            sha = hashlib.sha256(target.read_bytes()).digest()
            size = target.stat().st_size
        cid = await self._pin(target, check_path)
        self.metrics.store_bytes.labels("out").inc(size)
        return Output(ContentRef.from_cid(cid), sha, size)

    async def _pin(self, target: Path, check_path: Path) -> str:
        """Add the output and read it back verified; retry through store hiccups."""
        store = self.sdk.store
        delay = 0.5
        for attempt in range(1, PIN_ATTEMPTS + 1):
            try:
                root = await asyncio.to_thread(store.add_path, target)
                await asyncio.to_thread(store.pin, root)
                # read back the hashed file through the store (every block re-verified)
                rel = check_path.relative_to(target).as_posix() if check_path != target else ""
                probe = f"{root}/{rel}" if rel else str(root)
                data = await asyncio.to_thread(store.read, _resolve(store, probe))
                if data != check_path.read_bytes():
                    raise StoreError("output read back from the store differs")
                return str(root)
            except StoreError as exc:
                if attempt == PIN_ATTEMPTS:
                    raise
                log.info("pinning failed (%s); retry %s in %.1f s", exc.message, attempt, delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise StoreError("unreachable")

    async def _deliver(self, job: JobRecord, attempt: int, output: Output) -> None:
        job_id = job.job_id
        cid = output.content.to_cid()
        if job.spec.redundancy == 1:
            sent = await self._send("submit", lambda: self.sdk.jobs.submit(job_id, output))
            self.state.record(job_id, attempt, "done", output_cid=cid, output_sha256=output.sha256,
                              output_size=output.size)
            self.metrics.jobs.labels(job.spec.kind.name, "delivered").inc()
            log.info("job %s delivered %s (tx %s)", job_id, cid, sent.tx_hash)
            return
        salt = os.urandom(32)
        # the salt is saved before the commit is sent, so a restart can still reveal
        self.state.record(job_id, attempt, "committing", output_cid=cid, output_sha256=output.sha256,
                          output_size=output.size, salt=salt)
        await self._send("commit", lambda: self.sdk.jobs.commit(job_id, output, salt))
        self.state.record(job_id, attempt, "committed")
        log.info("job %s committed %s", job_id, cid)
        self.candidates[job_id] = None

    async def _maybe_reveal(self, job: JobRecord, attempt: int) -> None:
        if job.status != JobStatus.REVEALING:
            if job.status.settled:
                self.state.record(job.job_id, attempt, "done" if job.status == JobStatus.FINALIZED else "lost")
            return
        entry = next(e for e in self.state.attempts(job.job_id) if e.attempt == attempt)
        assert entry.output_cid and entry.output_sha256 is not None and entry.salt is not None
        output = Output(ContentRef.from_cid(entry.output_cid), entry.output_sha256, int(entry.output_size or 0))
        await self._send("reveal", lambda: self.sdk.jobs.reveal(job.job_id, output, entry.salt or b""))
        self.state.record(job.job_id, attempt, "revealed")
        self.metrics.jobs.labels(job.spec.kind.name, "revealed").inc()
        log.info("job %s revealed %s", job.job_id, entry.output_cid)

    async def _release(self, job_id: int, attempt: int, why: str) -> None:
        log.warning("releasing job %s: %s", job_id, why)
        try:
            await self._send("release", lambda: self.sdk.jobs.release(job_id))
        except ContractRevertError as exc:
            log.info("job %s could not be released (%s)", job_id, exc.error_name)
        self.state.record(job_id, attempt, "released", note=why[:500])

    # --- housekeeping --------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Expire overdue jobs, finalize closed reveal rounds, and retry jobs whose holder's lease
        lapsed (anyone may; races are benign)."""
        if not self.watch:
            return
        now = await self._rpc(self.sdk.chain.timestamp, "timestamp")
        for job_id, lease_expiry in list(self.leases.items()):
            if now >= lease_expiry:
                del self.leases[job_id]
                if job_id in self.watch and not self.state.delivered(job_id):
                    self.candidates[job_id] = None  # claiming takes over the lapsed slot
        for job_id, deadline in list(self.watch.items()):
            if self.stopping.is_set():
                return
            try:
                status = await self._rpc(lambda j=job_id: self.sdk.jobs.status(j), f"job {job_id}")
                if status.settled:
                    self.watch.pop(job_id, None)
                elif status == JobStatus.REVEALING:
                    job = await self._rpc(lambda j=job_id: self.sdk.jobs.get_job(j), f"job {job_id}")
                    if now >= job.reveal_deadline:
                        await self._send("finalize", lambda j=job_id: self.sdk.jobs.finalize(j))
                elif now >= deadline:
                    await self._send("expire", lambda j=job_id: self.sdk.jobs.expire(j))
                    log.info("job %s expired: requester refunded", job_id)
            except BENIGN:
                continue
            except ContractRevertError as exc:
                log.info("housekeeping on job %s: %s", job_id, exc.error_name)

    # --- plumbing ------------------------------------------------------------------------------

    async def _send(self, action: str, fn: Any) -> Any:
        """Send one transaction (the wallet simulates first) and account for it."""
        wallet = self.sdk.wallet
        retries_before = wallet.retries if wallet else 0
        result = await with_retries(fn, what=action, outage_s=self.outage_s)
        self.metrics.txs.labels(action).inc()
        self.metrics.gas.inc(result.gas_used)
        if wallet is not None and wallet.retries > retries_before:
            self.metrics.tx_retries.inc(wallet.retries - retries_before)
        return result

    async def _rpc(self, fn: Any, what: str) -> Any:
        return await with_retries(fn, what=what, outage_s=self.outage_s)


def _resolve(store: Any, path: str) -> Any:
    """The CID at ``<root>/<relative path>`` inside a directory."""
    root, _, rel = path.partition("/")
    cid: Any = root
    for part in filter(None, rel.split("/")):
        entries = {e.name: e.cid for e in store.ls(cid)}
        cid = entries[part]
    return cid
