"""Push a model directory as a version (store + chain) and pull one back, verified.

Push steps:
    1. refuse unsafe directories (pickle weights, remote code, no config) before any upload;
    2. write the ``anchorml.json`` manifest (every file's sha256 and size, task, parent);
    3. add the directory to the store (its root CID);
    4. create the model on chain if new, then register the version (CID, manifest sha256, parent).

Pull steps (:class:`ModelCache`):
    1. resolve ``name[@version|@alias]`` on chain; refuse revoked versions;
    2. read the manifest block by block (each verified against its CID) and check its sha256
       against the chain before trusting it; refuse trees over the size limit;
    3. download the tree to a staging directory, verify every file against the manifest, run the
       safety checks, then rename atomically into ``<cache>/<cid>``. Nothing unverified is ever
       visible under the cache; a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.clients import Access, ContentRef, VersionRecord
from registry.errors import (
    CorruptContentError,
    ModelError,
    ModelRevokedError,
    StoreError,
)
from registry.model.manifest import (
    MANIFEST_NAME,
    Manifest,
    build_manifest,
    verify_tree,
    write_manifest,
)
from registry.model.safety import check_model_dir

if TYPE_CHECKING:
    from registry.sdk import Anchorml
    from registry.store.base import ContentStore

ProgressFn = Callable[[int], None]
MAX_MANIFEST_BYTES = 4 << 20
DEFAULT_MAX_MODEL_BYTES = 8 << 30


@dataclass(frozen=True)
class PushResult:
    """What :func:`push` registered."""

    name: str
    version: str
    cid: str
    version_id: bytes
    manifest_sha256: bytes
    tx_hash: str
    created_model_tx: str | None


def push(
    sdk: Anchorml,
    directory: Path,
    name: str,
    version: str,
    *,
    access: Access = Access.PUBLIC,
    price_wei: int = 0,
    period_s: int = 0,
    parent: str | None = None,
    license: str = "",
    task: str | None = None,
    job: int | None = None,
    metrics: dict[str, float] | None = None,
    progress: ProgressFn | None = None,
) -> PushResult:
    """Validate, manifest, upload and register ``directory`` as ``name@version``.

    Raises:
        UnsafeModelError: pickle weights or remote code (nothing uploaded or registered).
        ModelError: no config.json, bad parent reference, licence too long.
        ContractRevertError: the chain refused (e.g. the version exists, not the owner).
    """
    directory = Path(directory)
    check_model_dir(directory)
    if sdk.models.exists(name, version):
        raise ModelError(f"{name}@{version} is already registered: versions are write-once")
    parent_record = sdk.models.resolve(parent) if parent else None
    if parent_record is not None and parent_record.revoked:
        raise ModelRevokedError(f"parent {parent} is revoked")
    manifest = build_manifest(
        directory,
        task=task,
        parent=parent_record.cid if parent_record else None,
        job=job,
        metrics=metrics,
    )
    write_manifest(directory, manifest)
    root = sdk.store.add_dir(directory, progress=progress)
    created = None
    try:
        sdk.models.get_model(name)
    except ModelError:
        created = sdk.models.create_model(name, access, price_wei, period_s).tx_hash
    result = sdk.models.register_version(
        name,
        version,
        ContentRef.from_cid(str(root)),
        manifest.sha256(),
        parent_record.version_id if parent_record else None,
        license,
    )
    return PushResult(
        name=name,
        version=version,
        cid=str(root),
        version_id=result.value,
        manifest_sha256=manifest.sha256(),
        tx_hash=result.tx_hash,
        created_model_tx=created,
    )


def read_manifest(store: ContentStore, version: VersionRecord) -> Manifest:
    """Fetch and check a version's manifest against the sha256 recorded on chain.

    Raises:
        CorruptContentError: the manifest's hash differs from the chain's.
        ModelError: the version has no manifest, or it is malformed.
    """
    import hashlib

    entries = {e.name: e for e in store.ls(version.cid)}
    entry = entries.get(MANIFEST_NAME)
    if entry is None:
        raise ModelError(f"version {version.cid} has no {MANIFEST_NAME}")
    raw = store.read(entry.cid, max_size=MAX_MANIFEST_BYTES)
    if hashlib.sha256(raw).digest() != version.manifest_sha256:
        raise CorruptContentError(
            f"manifest of {version.cid} does not match the sha256 registered on chain"
        )
    return Manifest.from_bytes(raw)


class ModelCache:
    """Verified model directories under ``root/<cid>``, evicted least-recently-used by bytes.

    Shared by the node and the gateway: entries only ever appear by atomic rename after full
    verification, so a reader never sees a partial or unverified model.
    """

    def __init__(
        self, root: Path, store: ContentStore, *, max_bytes: int = DEFAULT_MAX_MODEL_BYTES
    ) -> None:
        self.root = Path(root)
        self.store = store
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    def path_of(self, version: VersionRecord) -> Path:
        """Where ``version`` lives in the cache (may not exist yet)."""
        return self.root / version.cid

    def ensure(
        self,
        version: VersionRecord,
        *,
        protect: Iterable[str] = (),
        progress: ProgressFn | None = None,
    ) -> Path:
        """The verified local directory of ``version``, fetching it if needed.

        Args:
            version: the on-chain version record.
            protect: CIDs that must not be evicted to make room (models in use).
            progress: called with bytes downloaded.

        Raises:
            ModelRevokedError: the version is revoked.
            CorruptContentError, UnsafeModelError, StoreError: verification failed (nothing cached).
        """
        if version.revoked:
            raise ModelRevokedError(f"version {version.tag or version.cid} is revoked")
        target = self.path_of(version)
        with self._lock:
            fetch_lock = self._fetching.setdefault(version.cid, threading.Lock())
        with fetch_lock:
            if target.is_dir():
                os.utime(target)
                return target
            manifest = read_manifest(self.store, version)
            if manifest.total_size > self.max_bytes:
                raise StoreError(
                    f"model {version.cid} is {manifest.total_size} bytes, over the cache limit "
                    f"{self.max_bytes}"
                )
            self._fetch(version, manifest, target, progress)
        self.evict(protect=set(protect) | {version.cid})
        return target

    def _fetch(
        self, version: VersionRecord, manifest: Manifest, target: Path, progress: ProgressFn | None
    ) -> None:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            tree = self.store.get(
                version.cid,
                staging / "m",
                max_size=manifest.total_size + MAX_MANIFEST_BYTES,
                progress=progress,
            )
            verify_tree(tree, manifest)
            check_model_dir(tree)
            try:
                os.rename(tree, target)
            except OSError:
                if not target.is_dir():
                    raise
                # another process sharing the cache verified and placed the same CID first
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def evict(self, protect: set[str] | None = None) -> list[str]:
        """Remove least-recently-used entries until the cache fits ``max_bytes``."""
        protect = protect or set()
        entries = []
        total = 0
        for entry in self.root.iterdir():
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            entries.append((entry.stat().st_mtime, entry, size))
            total += size
        removed = []
        for _mtime, entry, size in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if entry.name in protect:
                continue
            doomed = self.root / f".evict-{entry.name}-{time.monotonic_ns()}"
            os.rename(entry, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            total -= size
            removed.append(entry.name)
        return removed


def export_tree(source: Path, out: Path) -> Path:
    """Copy a verified cache entry to ``out`` atomically (refuses an existing ``out``)."""
    out = Path(out)
    if out.exists():
        raise ModelError(f"{out} already exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.copytree(source, tmp / "m")
        os.rename(tmp / "m", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
