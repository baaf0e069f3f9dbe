"""Turn job events into work: check, claim, execute, pin, deliver, settle.

For each candidate job (one at a time — jobs are CPU-bound; among the oldest few candidates the
node takes the one its address hashes lowest with, so nodes watching one backlog spread over it
instead of racing for the same job, and the oldest is passed over only a bounded number of times):
    1. read the job from the chain (the listener's event may be stale or reorged away: its spec
       is used only if it matches the stored commitment) and skip it unless it is open, before
       its deadline, for a served version and an accepted kind, and not already delivered by
       this node;
    2. fetch and verify everything *before* claiming: the params (by hash; parsed here, once, and
       handed to the executor as the parsed object), the input (by CID) and the model (cache:
       CID + manifest + safety checks); a job we cannot do is never claimed;
    3. claim (simulated first; losing a race is logged at INFO and costs no gas);
    4. run the executor in a worker thread, with a time limit;
    5. pin the output to the store and read it back verified (retried; a store outage releases
       the claim instead of delivering a result that is not there);
    6. deliver: ``submitResult`` for redundancy 1 (settles at once), or commit now and reveal once
       every claimant has committed.
Failures after the claim release it, so another node can take the job. Alongside, a housekeeping
pass expires overdue jobs (refunding requesters) and finalizes reveal rounds whose window closed;
it reads the chain only for jobs where one of those can be due.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.executors import ExecutorResult, run_job
from node.metrics import NodeMetrics
from node.policy import JobPolicy, JobRefused
from node.rpc import with_retries
from node.service import Service
from node.state import NodeState
from registry.chain import revert_errors as rv
from registry.chain.events import ChainEvent
from registry.clients import ContentRef, JobStatus, VersionRecord
from registry.clients.jobs import JobCreated, JobRecord, Output
from registry.errors import AnchormlError, ContractRevertError, StoreError
from registry.jobs import (
    InvalidJobInputError,
    InvalidJobParamsError,
    JobKind,
    JobParams,
    fetch_params,
    parse_params,
)
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
#: How many of the oldest candidates a node chooses its next job among (and how many times the
#: oldest may be passed over before it is taken).
SPREAD = 16
#: Seconds a read of the chain's time is reused for. It only decides when to skip or settle a
#: job early; the contract enforces every deadline itself, and a stale time is never ahead.
CLOCK_TTL_S = 1.0


class JobSkipped(Exception):
    """The node decided not to (or can no longer) work on a job; the message says why."""


@dataclass
class Watched:
    """An unsettled job this node saw created.

    Attributes:
        deadline: the job's deadline (chain time).
        redundancy: how many nodes must deliver.
        created: its ``JobCreated`` (saves the log scan when the job is read).
        open_slots: claim slots not held by anyone, as far as events tell.
        committed: a result commitment was seen (a reveal round may open).
    """

    deadline: int
    redundancy: int
    created: JobCreated
    open_slots: int
    committed: bool = False


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
        kinds: Iterable[JobKind],
        work_dir: Path,
        policy: JobPolicy,
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
        self.kinds = set(kinds)
        self.work_dir = work_dir
        self.policy = policy
        self.job_timeout_s = job_timeout_s
        self.housekeeping_s = housekeeping_s
        self.outage_s = outage_s
        self.candidates: dict[int, None] = {}  # ordered set of job ids to look at
        self.watch: dict[int, Watched] = {}  # unsettled jobs, for housekeeping
        self.leases: dict[int, int] = {}  # job id → latest lease expiry held by another node
        self.current: int | None = None
        self.address = sdk.wallet.address if sdk.wallet else ""
        self._clock: tuple[float, int] | None = None  # (monotonic time read, chain time)
        self._oldest: tuple[int, int] | None = None  # (oldest candidate, times passed over)

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
                await self._handle(self._next_candidate())
                continue
            try:
                event = await asyncio.wait_for(self.events.get(), timeout=self.housekeeping_s)
            except TimeoutError:
                continue
            self._on_event(event)

    def _next_candidate(self) -> int:
        """Take the next job to look at: of the ``SPREAD`` oldest candidates, the one whose id
        hashes lowest with this node's address — a rendezvous choice, so nodes that see the same
        backlog mostly start on different jobs — unless the oldest was passed over ``SPREAD``
        times already (no job waits long at the head of the line)."""
        oldest = next(iter(self.candidates))
        passed = self._oldest[1] if self._oldest and self._oldest[0] == oldest else 0
        if passed >= SPREAD:
            job_id = oldest
        else:
            window = itertools.islice(self.candidates, SPREAD)
            job_id = min(window, key=self._rank)
        self._oldest = None if job_id == oldest else (oldest, passed + 1)
        del self.candidates[job_id]
        return job_id

    def _rank(self, job_id: int) -> bytes:
        return hashlib.sha256(f"{self.address}:{job_id}".encode()).digest()

    # --- events --------------------------------------------------------------------------------

    async def _drain_events(self) -> None:
        while not self.events.empty():
            self._on_event(self.events.get_nowait())

    def _on_event(self, event: ChainEvent) -> None:
        args = event.args
        if event.name == "JobCreated":
            job_id = int(args["jobId"])
            redundancy = int(args["redundancy"])
            self.watch[job_id] = Watched(
                deadline=int(args["deadline"]),
                redundancy=redundancy,
                created=JobCreated.from_event(args, event.block),
                open_slots=redundancy,
            )
            kind = JobKind(int(args["kind"]))
            known = self.served.get(bytes(args["versionId"])) is not None
            if kind in self.kinds and (known or self.served.open_ended):
                self.candidates[job_id] = None
        elif event.name == "JobClaimed":
            job_id = int(args["jobId"])
            watched = self.watch.get(job_id)
            if watched is not None:
                watched.open_slots -= 1
            if args["node"] != self.address:
                self.leases[job_id] = int(args["leaseExpiry"])
                if watched is not None and watched.open_slots <= 0:
                    # every slot is held: a claim could only fail (a lapsed lease or a release
                    # makes it a candidate again)
                    self.candidates.pop(job_id, None)
        elif event.name == "ClaimReleased":
            job_id = int(args["jobId"])
            watched = self.watch.get(job_id)
            if watched is not None:
                watched.open_slots += 1
                if args["node"] != self.address:
                    self.candidates[job_id] = None
        elif event.name == "ResultCommitted":
            job_id = int(args["jobId"])
            if job_id in self.watch:
                self.watch[job_id].committed = True
            if any(e.state == "committed" for e in self.state.attempts(job_id)):
                self.candidates[job_id] = None  # maybe every claimant has committed: reveal
        elif event.name in ("JobFinalized", "JobExpired", "JobCancelled"):
            job_id = int(args["jobId"])
            self.watch.pop(job_id, None)
            self.leases.pop(job_id, None)
            self.candidates.pop(job_id, None)
            for entry in self.state.attempts(job_id):
                if entry.state not in ("done", "released", "skipped"):
                    self.state.record(
                        job_id, entry.attempt, "done" if event.name == "JobFinalized" else "lost"
                    )
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
        job = await self._get_job(job_id)
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
            record = await self._rpc(
                lambda: self.sdk.models.get_version(job.spec.version_id), "version"
            )
            version = record if self.served.admit(record) else None
        if version is None:
            raise JobSkipped("its model version is not served by this node")
        if job.spec.kind not in self.kinds:
            raise JobSkipped(f"{job.spec.kind.name} jobs are not taken by this node")
        now = await self._chain_time()
        if now >= job.spec.deadline:
            raise JobSkipped("its deadline passed")
        try:
            self.policy.check(job, now)
        except JobRefused as refused:
            self.metrics.jobs.labels(job.spec.kind.name, "refused").inc()
            raise JobSkipped(str(refused)) from None
        attempt = (latest.attempt + 1) if latest else 1
        workspace = Path(tempfile.mkdtemp(prefix=f"job-{job_id}-", dir=self.work_dir))
        try:
            params, input_path, model_dir = await self._prepare(job, version, workspace)
            claim = await self._send("claim", lambda: self.sdk.jobs.claim(job_id))
            self.state.record(job_id, attempt, "claimed")
            log.info("job %s claimed until %s", job_id, claim.value)
            started = time.monotonic()
            # run until just before the lease ends, then release rather than lapse (slashed)
            budget = self.policy.run_budget(int(claim.value), await self._chain_time())
            try:
                output = await self._execute_and_pin(
                    job, version, params, input_path, model_dir, workspace, budget
                )
                self.policy.observe(job.spec.kind, job.spec.params_hash, time.monotonic() - started)
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

    async def _prepare(
        self, job: JobRecord, version: VersionRecord, workspace: Path
    ) -> tuple[JobParams, Path, Path]:
        """Fetch params, input and model, all verified, before any claim (in one worker thread);
        the params are parsed here, once, and the parsed object is what the executor gets."""
        store = self.sdk.store
        input_path = workspace / "input"

        def fetch() -> tuple[JobParams, Path]:
            params = parse_params(job.spec.kind, fetch_params(store, job.spec.params_hash))
            store.get(job.spec.input.to_cid(), input_path)
            return params, self.cache.ensure(version)

        try:
            params, model_dir = await asyncio.to_thread(fetch)
        except InvalidJobParamsError as exc:
            raise JobSkipped(f"invalid params: {exc.message}") from None
        except AnchormlError as exc:
            raise JobSkipped(f"cannot prepare it: {exc.message}") from None
        return params, input_path, model_dir

    async def _execute_and_pin(
        self,
        job: JobRecord,
        version: VersionRecord,
        params: JobParams,
        input_path: Path,
        model_dir: Path,
        workspace: Path,
        budget_s: float,
    ) -> Output:
        out_dir = workspace / "out"
        kind = job.spec.kind
        try:
            result: ExecutorResult = await asyncio.wait_for(
                asyncio.to_thread(run_job, kind, model_dir, input_path, params, out_dir),
                timeout=max(0.0, min(self.job_timeout_s, budget_s)),
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

        def pin_and_check() -> str:
            root = store.add_path(target)
            store.pin(root)
            # read back the hashed file through the store (every block re-verified)
            rel = check_path.relative_to(target).as_posix() if check_path != target else ""
            probe = f"{root}/{rel}" if rel else str(root)
            if store.read(_resolve(store, probe)) != check_path.read_bytes():
                raise StoreError("output read back from the store differs")
            return str(root)

        delay = 0.5
        for attempt in range(1, PIN_ATTEMPTS + 1):
            try:
                return await asyncio.to_thread(pin_and_check)
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
            self.state.record(
                job_id,
                attempt,
                "done",
                output_cid=cid,
                output_sha256=output.sha256,
                output_size=output.size,
            )
            self.metrics.jobs.labels(job.spec.kind.name, "delivered").inc()
            log.info("job %s delivered %s (tx %s)", job_id, cid, sent.tx_hash)
            return
        salt = os.urandom(32)
        # the salt is saved before the commit is sent, so a restart can still reveal
        self.state.record(
            job_id,
            attempt,
            "committing",
            output_cid=cid,
            output_sha256=output.sha256,
            output_size=output.size,
            salt=salt,
        )
        await self._send("commit", lambda: self.sdk.jobs.commit(job_id, output, salt))
        self.state.record(job_id, attempt, "committed")
        log.info("job %s committed %s", job_id, cid)
        self.candidates[job_id] = None

    async def _maybe_reveal(self, job: JobRecord, attempt: int) -> None:
        if job.status != JobStatus.REVEALING:
            if job.status.settled:
                self.state.record(
                    job.job_id, attempt, "done" if job.status == JobStatus.FINALIZED else "lost"
                )
            return
        entry = next(e for e in self.state.attempts(job.job_id) if e.attempt == attempt)
        assert entry.output_cid and entry.output_sha256 is not None and entry.salt is not None
        output = Output(
            ContentRef.from_cid(entry.output_cid), entry.output_sha256, int(entry.output_size or 0)
        )
        await self._send(
            "reveal", lambda: self.sdk.jobs.reveal(job.job_id, output, entry.salt or b"")
        )
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
        now = await self._chain_time()
        for job_id, lease_expiry in list(self.leases.items()):
            if now >= lease_expiry:
                del self.leases[job_id]
                if job_id in self.watch and not self.state.delivered(job_id):
                    self.candidates[job_id] = None  # claiming takes over the lapsed slot
        for job_id, watched in list(self.watch.items()):
            if self.stopping.is_set():
                return
            overdue = now >= watched.deadline
            if not overdue and not (watched.committed and watched.redundancy > 1):
                continue  # neither expiry nor a reveal round can be due: no need to ask the chain
            try:
                status = await self._rpc(lambda j=job_id: self.sdk.jobs.status(j), f"job {job_id}")
                if status.settled:
                    self.watch.pop(job_id, None)
                elif status == JobStatus.REVEALING:
                    job = await self._get_job(job_id)
                    if now >= job.reveal_deadline:
                        await self._send("finalize", lambda j=job_id: self.sdk.jobs.finalize(j))
                elif overdue:
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

    async def _get_job(self, job_id: int) -> JobRecord:
        """The job as the chain has it now (its spec from the listener's event when that still
        matches the stored commitment, else from a log scan)."""
        watched = self.watch.get(job_id)
        created = watched.created if watched is not None else None
        record: JobRecord = await self._rpc(
            lambda: self.sdk.jobs.get_job(job_id, created=created, with_result=False),
            f"job {job_id}",
        )
        return record

    async def _chain_time(self) -> int:
        """The latest block's timestamp, read at most every ``CLOCK_TTL_S`` seconds."""
        now = time.monotonic()
        if self._clock is None or now - self._clock[0] >= CLOCK_TTL_S:
            self._clock = (now, int(await self._rpc(self.sdk.chain.timestamp, "timestamp")))
        return self._clock[1]


def _resolve(store: Any, path: str) -> Any:
    """The CID at ``<root>/<relative path>`` inside a directory."""
    root, _, rel = path.partition("/")
    cid: Any = root
    for part in filter(None, rel.split("/")):
        entries = {e.name: e.cid for e in store.ls(cid)}
        cid = entries[part]
    return cid
