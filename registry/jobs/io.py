"""Job inputs, params and results as content — the conventions requesters and workers share.

* **params**: canonical JSON (sorted keys, compact) of at most 256 KiB, stored as one raw block.
  Its CIDv1 digest *is* ``sha256(params)``, so the ``paramsHash`` on chain both commits to the
  params and names the block a worker fetches (verified by hash on read).
* **input**: any UnixFS file or directory; the job names its CID.
* **result**: for INFER/EVAL a ``result.json`` file (output sha256 = sha256 of its bytes); for
  TRAIN/FINETUNE/COMPRESS a model directory whose ``anchorml.json`` sha256 is the output hash
  (the same value the registry stores for the version).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.clients import ContentRef, JobKind, JobSpec
from registry.errors import ConfigError, CorruptContentError, StoreError

if TYPE_CHECKING:
    from registry.sdk import Anchorml
    from registry.store.base import ContentStore

MAX_PARAMS_BYTES = 262_144
RAW_CODEC = 0x55


def canonical_params(params: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of ``params``."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def publish_params(store: ContentStore, params: dict[str, Any]) -> bytes:
    """Store ``params`` as one raw block; return its sha256 (the on-chain ``paramsHash``).

    Raises:
        ConfigError: the params exceed 256 KiB.
    """
    raw = canonical_params(params)
    if len(raw) > MAX_PARAMS_BYTES:
        raise ConfigError(f"job params are {len(raw)} bytes; the limit is {MAX_PARAMS_BYTES}")
    cid = store.put_block(raw, RAW_CODEC)
    digest = hashlib.sha256(raw).digest()
    if cid.digest != digest:
        raise StoreError("store returned a CID that does not match the params")
    return digest


def fetch_params(store: ContentStore, params_hash: bytes) -> bytes:
    """The params bytes named by ``params_hash`` (verified against it)."""
    from registry.store.cid import CID

    raw = store.get_block(CID.from_digest(RAW_CODEC, params_hash))
    if hashlib.sha256(raw).digest() != params_hash:
        raise CorruptContentError("job params do not match their hash")
    return raw


@dataclass(frozen=True)
class Submitted:
    """A job posted on chain."""

    job_id: int
    tx_hash: str
    input_cid: str
    params_hash: bytes


def submit(
    sdk: Anchorml,
    kind: JobKind,
    model_ref: str,
    input_path: Path | None = None,
    *,
    input_bytes: bytes | None = None,
    params: dict[str, Any] | None = None,
    reward_wei: int,
    redundancy: int = 1,
    deadline_s: int = 3600,
    lease_s: int = 600,
    output_model: str | None = None,
) -> Submitted:
    """Upload input and params, then create the job (escrowing ``reward_wei``).

    Raises:
        ConfigError: neither or both of ``input_path`` / ``input_bytes``; a model-producing kind
            without ``output_model``.
        ContractRevertError: the chain refused (e.g. ``NoAccess`` for a gated model).
    """
    from registry.clients.models import model_id

    if (input_path is None) == (input_bytes is None):
        raise ConfigError("give exactly one of an input file/directory or input bytes")
    if kind.produces_model and not output_model:
        raise ConfigError(
            f"{kind.name} jobs produce a model: name the output model (--output-model)"
        )
    version = sdk.models.resolve(model_ref)
    if input_path is not None:
        root = sdk.store.add_path(Path(input_path))
    else:
        assert input_bytes is not None
        root = sdk.store.add_bytes(input_bytes)
    params_hash = publish_params(sdk.store, params or {})
    now = sdk.chain.timestamp()
    spec = JobSpec(
        kind=kind,
        version_id=version.version_id,
        input=ContentRef.from_cid(str(root)),
        params_hash=params_hash,
        deadline=now + deadline_s,
        lease_seconds=min(lease_s, deadline_s),
        redundancy=redundancy,
        output_model_id=model_id(output_model) if output_model else b"\x00" * 32,
    )
    result = sdk.jobs.create_job(spec, reward_wei)
    return Submitted(int(result.value), result.tx_hash, str(root), params_hash)


def wait_settled(sdk: Anchorml, job_id: int, timeout: float = 600.0, poll: float = 0.5) -> Any:
    """Poll until the job is finalized, expired or cancelled; return its record.

    Raises:
        TimeoutError: not settled within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        status = sdk.jobs.status(job_id)
        if status.settled:
            return sdk.jobs.get_job(job_id)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} still {status.name.lower()} after {timeout:.0f} s")
        time.sleep(poll)


def fetch_result(store: ContentStore, output: Any, out: Path) -> Path:
    """Download a job's output to ``out`` (verified block by block) and check its sha256.

    For a single-file result the file's sha256 must equal the on-chain output hash; for a model
    the manifest's sha256 must.
    """
    from registry.model.manifest import MANIFEST_NAME

    path = store.get(output.content.to_cid(), out)
    target = path / MANIFEST_NAME if path.is_dir() else path
    if hashlib.sha256(target.read_bytes()).digest() != output.sha256:
        raise CorruptContentError(
            f"result {output.content.to_cid()} does not match its on-chain sha256"
        )
    return path
