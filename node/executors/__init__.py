"""Executors: plain functions ``run(model_dir, input_path, params, out_dir) -> ExecutorResult``.

One module per job kind (``infer``, ``train``, ``finetune``, ``eval``, ``compress``); the params
they take are :mod:`registry.jobs`'s models, parsed once by the caller (the job processor), and
their inputs are decoded with :mod:`registry.jobs`'s readers. Shared conventions (canonical
``result.json``, ``out_dir/model/`` for produced models, determinism) are in
:mod:`~node.executors.common`. Every model directory is opened through
:mod:`registry.model.safety`; the caller has already verified the files against the version's
manifest.

:func:`run_job` is the entry point the worker uses: it dispatches to :data:`EXECUTORS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.executors import compress, eval, finetune, infer, train
from node.executors.common import ExecutorResult
from registry.jobs import JobKind, JobParams, check_kind

__all__ = ["EXECUTORS", "ExecutorResult", "run_job"]

Executor = Callable[[Path, Path, Any, Path], ExecutorResult]

EXECUTORS: dict[JobKind, Executor] = {
    JobKind.INFER: infer.run,
    JobKind.TRAIN: train.run,
    JobKind.FINETUNE: finetune.run,
    JobKind.EVAL: eval.run,
    JobKind.COMPRESS: compress.run,
}


def run_job(
    kind: JobKind,
    model_dir: Path,
    input_path: Path,
    params: JobParams,
    out_dir: Path,
) -> ExecutorResult:
    """Run the executor of ``kind`` on parsed params.

    Args:
        kind: the job kind.
        model_dir: a verified local model directory.
        input_path: the verified job input file.
        params: the job's params as :func:`registry.jobs.parse_params` returned them.
        out_dir: an empty or absent directory for the outputs (``FileExistsError`` otherwise).

    Raises:
        registry.jobs.InvalidJobParamsError: ``params`` are another kind's.
        registry.jobs.InvalidJobInputError: the input does not fit the executor or the model.
        registry.errors.ModelError: the model directory is invalid (``UnsafeModelError`` if it
            could run code).
    """
    check_kind(kind, params)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"output directory {out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    return EXECUTORS[kind](Path(model_dir), Path(input_path), params, out_dir)
