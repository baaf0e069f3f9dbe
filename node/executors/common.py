"""What every executor shares: the result type, canonical output, determinism, model helpers.

Output conventions (all executors):

- ``out_dir/result.json`` — canonical JSON (:func:`canonical_json`): sorted keys, no spaces,
  UTF-8, floats rounded to :data:`FLOAT_DECIMALS` decimals, so equal results hash equally.
- ``out_dir/model/`` — only for executors that produce a model (TRAIN, FINETUNE, COMPRESS): a
  Hugging Face-layout directory (or a LoRA adapter directory) that the packaging layer turns into
  a new model version (it adds ``anchorml.json``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from registry.errors import ModelError
from registry.jobs import InvalidJobInputError
from registry.model.safety import CONFIG_FILE, check_model_dir, is_adapter_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel

FLOAT_DECIMALS = 6
RESULT_FILE = "result.json"
MODEL_SUBDIR = "model"
THREADS_ENV = "ANCHORML_TORCH_THREADS"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
)

ModelFamily = Literal["causal_lm", "sequence_classification", "encoder", "adapter"]
Metric = float | int | str


@dataclass(frozen=True)
class ExecutorResult:
    """What an executor hands back to the job processor.

    Attributes:
        files: every file written, relative to ``out_dir`` (POSIX separators, sorted).
        metrics: flat, JSON-safe numbers (and a few strings) for the chain and the model card.
        produces_model: True if ``out_dir/model/`` holds a new model version.
    """

    files: list[str]
    metrics: dict[str, Metric] = field(default_factory=dict)
    produces_model: bool = False

    @property
    def model_subdir(self) -> str | None:
        """``"model"`` when the job produced a model directory, else None."""
        return MODEL_SUBDIR if self.produces_model else None


# --- canonical output ------------------------------------------------------------------------


def canonicalize(value: Any, decimals: int = FLOAT_DECIMALS) -> Any:
    """Round floats (``-0.0`` → ``0.0``), turn tuples into lists; refuse NaN and infinities."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite float {value} in job output")
        return round(value, decimals) + 0.0
    if isinstance(value, Mapping):
        return {str(k): canonicalize(v, decimals) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonicalize(v, decimals) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__} in job output")


def canonical_json(value: Any) -> bytes:
    """The one byte encoding of a job result (see module docstring)."""
    text = json.dumps(
        canonicalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return text.encode("utf-8")


def write_result(out_dir: Path, payload: Mapping[str, Any]) -> str:
    """Write ``payload`` canonically to ``out_dir/result.json``; return its relative name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULT_FILE).write_bytes(canonical_json(payload))
    return RESULT_FILE


def list_files(out_dir: Path) -> list[str]:
    """All files under ``out_dir``, relative, POSIX-style, sorted."""
    return sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())


def finish(
    out_dir: Path, payload: Mapping[str, Any], metrics: Mapping[str, Metric], produces_model: bool
) -> ExecutorResult:
    """Write ``result.json`` (payload + metrics) and build the :class:`ExecutorResult`."""
    clean = canonicalize(dict(metrics))
    write_result(out_dir, {**payload, "metrics": clean})
    return ExecutorResult(files=list_files(out_dir), metrics=clean, produces_model=produces_model)


# --- determinism -----------------------------------------------------------------------------


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and switch on deterministic algorithms for the block, then restore.

    The block runs with ``$ANCHORML_TORCH_THREADS`` intra-op threads, else one per core: CPU
    results are byte-identical for the same torch build, CPU instruction set and thread count.
    (Set explicitly: a thread's first torch call inherits the count last set anywhere in the
    process, and the serving runtime sets one thread per encoder batch.)
    """
    import torch

    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
    )
    threads = os.environ.get(THREADS_ENV)
    try:
        torch.set_num_threads(max(1, int(threads)) if threads else len(os.sched_getaffinity(0)))
        # warn_only: an op without a deterministic kernel warns instead of failing the job;
        # on CPU every op the executors use is deterministic.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(seed)
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(previous[2])


# --- input rows (files are decoded by registry.jobs.io) ---------------------------------------


def text_field(row: Mapping[str, Any], key: str, where: str) -> str:
    """``row[key]`` as a string, or a typed input error naming ``where``."""
    value = row.get(key)
    if not isinstance(value, str):
        raise InvalidJobInputError(f"{where}: {key!r} must be a string")
    return value


# --- models ----------------------------------------------------------------------------------


def model_family(model_dir: Path) -> ModelFamily:
    """Classify a (checked) model directory by its config's ``architectures``."""
    check_model_dir(model_dir)
    if is_adapter_dir(model_dir):
        return "adapter"
    try:
        config = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{CONFIG_FILE} is not valid JSON") from exc
    for arch in config.get("architectures") or []:
        if isinstance(arch, str) and arch.endswith(("ForCausalLM", "LMHeadModel")):
            return "causal_lm"
        if isinstance(arch, str) and arch.endswith("ForSequenceClassification"):
            return "sequence_classification"
    return "encoder"


def weights_size(model_dir: Path) -> int:
    """Total bytes of the ``*.safetensors`` files of a model directory."""
    return sum(p.stat().st_size for p in model_dir.rglob("*.safetensors"))


def copy_tokenizer_files(source: Path, target: Path) -> None:
    """Copy the parent's tokenizer files byte for byte (jobs never change the tokenizer, and a
    re-saved tokenizer would record call-time state such as truncation lengths)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)


def write_card(
    directory: Path, title: str, kind: str, params: Any, metrics: Mapping[str, Any]
) -> None:
    """A model card naming the job kind, its canonical params and metrics (no paths, no times)."""
    lines = [
        "---",
        "tags:",
        f"- anchorml-{kind.lower()}",
        "---",
        "",
        f"# {title}",
        "",
        f"Produced by an anchorml {kind} job. Lineage (parent version, producing job) is recorded",
        "in `anchorml.json` and on chain.",
        "",
        "## Parameters",
        "",
        "```json",
        canonical_json(params).decode("utf-8"),
        "```",
        "",
        "## Metrics",
        "",
        *(f"- {key}: {value}" for key, value in sorted(canonicalize(dict(metrics)).items())),
        "",
    ]
    (directory / "README.md").write_text("\n".join(lines), encoding="utf-8")


def save_model_dir(model: PreTrainedModel, parent_dir: Path, directory: Path) -> None:
    """``save_pretrained`` the model (safetensors) and copy the parent's tokenizer files."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    copy_tokenizer_files(parent_dir, directory)
