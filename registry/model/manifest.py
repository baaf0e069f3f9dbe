"""The ``anchorml.json`` manifest of a model version.

A model version is a directory in Hugging Face layout plus this manifest, which lists every
other file with its sha256 and size, and records the task, framework, parent CID, producing job
and metrics. Its canonical bytes (sorted keys, compact separators, trailing newline) are hashed;
that sha256 is what the chain stores, so the manifest is checked before anything else is read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import ModelError

MANIFEST_NAME = "anchorml.json"
SCHEMA = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """One file of a model version."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What a model version contains and where it came from."""

    task: str
    framework: str
    files: dict[str, FileEntry]
    parent: str | None = None
    job: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    schema: int = SCHEMA

    def to_bytes(self) -> bytes:
        """Canonical encoding (what is hashed and stored)."""
        data = asdict(self)
        data["files"] = {k: asdict(v) for k, v in sorted(self.files.items())}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return (text + "\n").encode()

    def sha256(self) -> bytes:
        """sha256 of :meth:`to_bytes` (the value registered on chain)."""
        return hashlib.sha256(self.to_bytes()).digest()

    @property
    def total_size(self) -> int:
        """Bytes of all listed files."""
        return sum(f.size for f in self.files.values())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Parse a manifest.

        Raises:
            ModelError: not a valid manifest.
        """
        try:
            data = json.loads(raw)
            if data.get("schema") != SCHEMA:
                raise ModelError(f"unsupported manifest schema {data.get('schema')!r}")
            files = {
                str(k): FileEntry(str(v["sha256"]), int(v["size"]))
                for k, v in data["files"].items()
            }
            for name in files:
                _check_relpath(name)
            return cls(
                task=str(data["task"]),
                framework=str(data["framework"]),
                files=files,
                parent=data.get("parent"),
                job=data.get("job"),
                metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
            )
        except ModelError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"malformed {MANIFEST_NAME}: {exc}") from None


def _check_relpath(name: str) -> None:
    parts = Path(name).parts
    if not parts or name.startswith("/") or ".." in parts or "\\" in name:
        raise ModelError(f"manifest lists an unsafe path {name!r}")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def model_files(directory: Path) -> list[Path]:
    """The files of a model directory (hidden names and the manifest excluded), sorted."""
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.relative_to(directory).as_posix() != MANIFEST_NAME:
                out.append(path)
    return out


def infer_task(config: dict[str, Any], directory: Path) -> str:
    """Best guess of the task from ``config.json`` and the files present."""
    archs = " ".join(config.get("architectures") or [])
    if (directory / "adapter_config.json").exists():
        return "adapter"
    if (directory / "modules.json").exists() or (directory / "sentence_bert_config.json").exists():
        return "feature-extraction"
    if "ForSequenceClassification" in archs:
        return "text-classification"
    if "ForCausalLM" in archs or "LMHeadModel" in archs:
        return "text-generation"
    return "feature-extraction"


def build_manifest(
    directory: Path,
    *,
    task: str | None = None,
    parent: str | None = None,
    job: int | None = None,
    metrics: dict[str, float] | None = None,
) -> Manifest:
    """Hash every file of ``directory`` into a manifest (not written)."""
    config_path = directory / "config.json"
    if not config_path.exists():
        config_path = directory / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        config = {}
    files = {
        p.relative_to(directory).as_posix(): FileEntry(file_sha256(p), p.stat().st_size)
        for p in model_files(directory)
    }
    return Manifest(
        task=task or infer_task(config, directory),
        framework="transformers",
        files=files,
        parent=parent,
        job=job,
        metrics=dict(metrics or {}),
    )


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write ``anchorml.json`` into ``directory`` atomically."""
    target = directory / MANIFEST_NAME
    tmp = directory / f".{MANIFEST_NAME}.tmp"
    tmp.write_bytes(manifest.to_bytes())
    os.replace(tmp, target)
    return target


def verify_tree(directory: Path, manifest: Manifest) -> None:
    """Check that ``directory`` holds exactly the manifest's files with their sizes and hashes.

    Raises:
        CorruptContentError: a file is missing, extra, or differs.
    """
    from registry.errors import CorruptContentError

    present = {p.relative_to(directory).as_posix(): p for p in model_files(directory)}
    extra = sorted(set(present) - set(manifest.files))
    if extra:
        raise CorruptContentError(f"model has files its manifest does not list: {', '.join(extra)}")
    for name, entry in manifest.files.items():
        path = present.get(name)
        if path is None:
            raise CorruptContentError(f"model file {name} listed in the manifest is missing")
        if path.stat().st_size != entry.size:
            raise CorruptContentError(f"model file {name} has the wrong size")
        if file_sha256(path) != entry.sha256:
            raise CorruptContentError(f"model file {name} does not match its manifest sha256")
