"""A projection of the three contracts' events: models, versions, aliases, jobs and nodes.

:class:`RegistryIndex` is pure bookkeeping — :meth:`~RegistryIndex.apply` folds one decoded
event into it and says which views changed (``models``, ``access``, ``nodes``, ``jobs``), so the
watcher can invalidate caches. It backs the registry browsing endpoints, the job list and the
node delivery record (finalized deliveries and slashes per node); the inference path keeps
asking the chain itself (through the cached :class:`~node.serving.Catalog`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registry.clients import Access, ContentRef, JobStatus
from registry.jobs import JobKind

ZERO32 = b"\x00" * 32
#: Every view :meth:`RegistryIndex.apply` reports as changed.
VIEWS = frozenset({"models", "access", "nodes", "jobs"})


@dataclass
class ModelEntry:
    """A model and what hangs off it."""

    model_id: bytes
    name: str
    owner: str
    access: Access
    price_wei: int = 0
    period_s: int = 0
    block: int = 0
    versions: list[bytes] = field(default_factory=list)
    aliases: dict[str, bytes] = field(default_factory=dict)


@dataclass
class VersionEntry:
    """A registered version."""

    version_id: bytes
    model_id: bytes
    tag: str
    cid: str
    manifest_sha256: bytes
    parent: bytes | None
    job_id: int
    license: str
    block: int
    revoked: bool = False


@dataclass
class JobEntry:
    """A job as its events describe it."""

    job_id: int
    requester: str
    version_id: bytes
    kind: JobKind
    reward_wei: int
    deadline: int
    redundancy: int
    input_cid: str
    params_hash: bytes
    block: int
    status: JobStatus = JobStatus.OPEN
    claims: int = 0
    result_cid: str | None = None
    tx_hash: str = ""

    @property
    def settled(self) -> bool:
        """Whether the job reached a final state."""
        return self.status.settled


@dataclass
class NodeEntry:
    """A worker node's public record and its delivery history."""

    address: str
    endpoint: str = ""
    stake_wei: int = 0
    serving: set[bytes] = field(default_factory=set)
    delivered: int = 0
    slashes: int = 0
    slashed_wei: int = 0
    block: int = 0


@dataclass(frozen=True)
class LogMeta:
    """Where an event came from (``sender``: the transaction's sender, for ``JobFinalized``)."""

    block: int
    tx_hash: str
    sender: str = ""


class RegistryIndex:
    """Models, versions, jobs and nodes, rebuilt from events in chain order."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything (to fold the events again, after a reorg)."""
        self.models: dict[bytes, ModelEntry] = {}
        self.by_name: dict[str, bytes] = {}
        self.versions: dict[bytes, VersionEntry] = {}
        self.jobs: dict[int, JobEntry] = {}
        self.nodes: dict[str, NodeEntry] = {}
        self._reveals: dict[int, dict[str, bytes]] = {}

    # --- lookups -------------------------------------------------------------------------------

    def model(self, name: str) -> ModelEntry | None:
        """The model called ``name``."""
        mid = self.by_name.get(name)
        return self.models.get(mid) if mid is not None else None

    def ref_of(self, version_id: bytes) -> str:
        """``name@tag`` of a version (hex id when unknown)."""
        version = self.versions.get(version_id)
        if version is None:
            return "0x" + version_id.hex()
        model = self.models.get(version.model_id)
        return f"{model.name if model else '?'}@{version.tag}"

    def serving(self, version_id: bytes) -> list[str]:
        """Addresses whose last ``ServingChanged`` for ``version_id`` declared it served."""
        return [n.address for n in self.nodes.values() if version_id in n.serving]

    def node(self, address: str) -> NodeEntry:
        """The entry of ``address`` (created empty when new)."""
        return self.nodes.setdefault(address, NodeEntry(address))

    # --- folding events ------------------------------------------------------------------------

    def apply(self, name: str, args: dict[str, Any], meta: LogMeta) -> set[str]:
        """Fold one event in; return the views it changed."""
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            return set()
        changed: set[str] = handler(args, meta)
        return changed

    # ModelRegistry

    def _on_ModelCreated(self, a: dict[str, Any], m: LogMeta) -> set[str]:
        mid = bytes(a["modelId"])
        self.models[mid] = ModelEntry(
            mid, str(a["name"]), str(a["owner"]), Access(int(a["access"])), block=m.block
        )
        self.by_name[str(a["name"])] = mid
        return {"models"}

    def _on_AccessPolicySet(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        model = self.models.get(bytes(a["modelId"]))
        if model is not None:
            model.access = Access(int(a["access"]))
            model.price_wei, model.period_s = int(a["price"]), int(a["period"])
        return {"models", "access"}

    def _on_ModelOwnerChanged(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        model = self.models.get(bytes(a["modelId"]))
        if model is not None:
            model.owner = str(a["newOwner"])
        return {"models", "access"}

    def _on_VersionRegistered(self, a: dict[str, Any], m: LogMeta) -> set[str]:
        vid, mid = bytes(a["versionId"]), bytes(a["modelId"])
        parent = bytes(a["parent"])
        self.versions[vid] = VersionEntry(
            version_id=vid,
            model_id=mid,
            tag=str(a["tag"]),
            cid=ContentRef(int(a["cidCodec"]), bytes(a["cidDigest"])).to_cid(),
            manifest_sha256=bytes(a["manifestSha256"]),
            parent=None if parent == ZERO32 else parent,
            job_id=int(a["jobId"]),
            license=bytes(a["license"]).rstrip(b"\x00").decode(errors="replace"),
            block=m.block,
        )
        model = self.models.get(mid)
        if model is not None:
            model.versions.append(vid)
        return {"models"}

    def _on_VersionRevoked(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        version = self.versions.get(bytes(a["versionId"]))
        if version is not None:
            version.revoked = True
        return {"models", "access", "nodes"}

    def _on_AliasSet(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        model = self.models.get(bytes(a["modelId"]))
        if model is not None:
            target = bytes(a["versionId"])
            if target == ZERO32:
                model.aliases.pop(str(a["name"]), None)
            else:
                model.aliases[str(a["name"])] = target
        return {"models"}

    def _on_AccessChanged(self, _a: dict[str, Any], _m: LogMeta) -> set[str]:
        return {"access"}

    # NodeRegistry

    def _on_NodeRegistered(self, a: dict[str, Any], m: LogMeta) -> set[str]:
        node = self.node(str(a["node"]))
        node.endpoint = str(a["endpoint"])
        node.block = node.block or m.block
        return {"nodes"}

    def _on_StakeChanged(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        self.node(str(a["node"])).stake_wei = int(a["stake"])
        return {"nodes"}

    def _on_UnstakeRequested(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        self.node(str(a["node"]))
        return {"nodes"}

    def _on_ServingChanged(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        node = self.node(str(a["node"]))
        vid = bytes(a["versionId"])
        if a["serving"]:
            node.serving.add(vid)
        else:
            node.serving.discard(vid)
        return {"nodes"}

    def _on_Slashed(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        node = self.node(str(a["node"]))
        node.slashes += 1
        node.slashed_wei += int(a["amount"])
        return {"nodes"}

    # JobBoard

    def _on_JobCreated(self, a: dict[str, Any], m: LogMeta) -> set[str]:
        job_id = int(a["jobId"])
        self.jobs[job_id] = JobEntry(
            job_id=job_id,
            requester=str(a["requester"]),
            version_id=bytes(a["versionId"]),
            kind=JobKind(int(a["kind"])),
            reward_wei=int(a["reward"]),
            deadline=int(a["deadline"]),
            redundancy=int(a["redundancy"]),
            input_cid=ContentRef(int(a["inputCodec"]), bytes(a["inputDigest"])).to_cid(),
            params_hash=bytes(a["paramsHash"]),
            block=m.block,
            tx_hash=m.tx_hash,
        )
        return {"jobs"}

    def _job(self, a: dict[str, Any]) -> JobEntry | None:
        return self.jobs.get(int(a["jobId"]))

    def _on_JobClaimed(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        job = self._job(a)
        if job is not None and not job.settled:
            job.claims += 1
            job.status = JobStatus.CLAIMED
        return {"jobs"}

    def _on_ClaimReleased(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        job = self._job(a)
        if job is not None and not job.settled:
            job.claims = max(0, job.claims - 1)
            if job.claims == 0:
                job.status = JobStatus.OPEN
        return {"jobs"}

    def _on_ResultRevealed(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        job = self._job(a)
        self._reveals.setdefault(int(a["jobId"]), {})[str(a["node"])] = bytes(a["sha256"])
        if job is not None and not job.settled:
            job.status = JobStatus.REVEALING
        return {"jobs"}

    def _on_JobFinalized(self, a: dict[str, Any], m: LogMeta) -> set[str]:
        job_id = int(a["jobId"])
        job = self.jobs.get(job_id)
        if job is not None:
            job.status = JobStatus.FINALIZED
            job.result_cid = ContentRef(int(a["codec"]), bytes(a["digest"])).to_cid()
        reveals = self._reveals.pop(job_id, {})
        agreeing = [node for node, sha in reveals.items() if sha == bytes(a["sha256"])]
        for node in agreeing or ([m.sender] if m.sender else []):  # k = 1: the submitter
            self.node(node).delivered += 1
        return {"jobs", "nodes"}

    def _on_JobExpired(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        return self._settle(a, JobStatus.EXPIRED)

    def _on_JobCancelled(self, a: dict[str, Any], _m: LogMeta) -> set[str]:
        return self._settle(a, JobStatus.CANCELLED)

    def _settle(self, a: dict[str, Any], status: JobStatus) -> set[str]:
        job = self._job(a)
        if job is not None:
            job.status = status
        self._reveals.pop(int(a["jobId"]), None)
        return {"jobs"}

    # --- views ---------------------------------------------------------------------------------

    def lineage(self, name: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Versions as a graph: nodes and parent → child edges (of ``name`` and its ancestry
        and descendants when given, else everything)."""
        chosen = set(self.versions)
        if name is not None:
            model = self.model(name)
            seeds = set(model.versions) if model else set()
            chosen = set(seeds)
            frontier = list(seeds)
            while frontier:  # ancestors
                parent = self.versions[frontier.pop()].parent
                if parent is not None and parent in self.versions and parent not in chosen:
                    chosen.add(parent)
                    frontier.append(parent)
            grown = True
            while grown:  # descendants
                grown = False
                for vid, version in self.versions.items():
                    if vid not in chosen and version.parent in chosen:
                        chosen.add(vid)
                        grown = True
        ordered = sorted(chosen, key=lambda vid: self.versions[vid].block)
        nodes = [
            {
                "id": "0x" + vid.hex(),
                "ref": self.ref_of(vid),
                "cid": self.versions[vid].cid,
                "job_id": self.versions[vid].job_id,
                "revoked": self.versions[vid].revoked,
            }
            for vid in ordered
        ]
        edges = [
            {
                "parent": "0x" + parent.hex(),
                "child": "0x" + vid.hex(),
                "job_id": self.versions[vid].job_id,
            }
            for vid in ordered
            if (parent := self.versions[vid].parent) is not None
        ]
        return {"nodes": nodes, "edges": edges}
