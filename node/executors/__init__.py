"""Executors: plain functions ``run(model_dir, input_path, params, out_dir) -> ExecutorResult``.

One module per job kind (``infer``, ``train``, ``finetune``, ``eval``, ``compress``), validated
params in :mod:`~node.executors.params`, shared conventions (canonical ``result.json``,
``out_dir/model/`` for produced models, determinism) in :mod:`~node.executors.common`.
Every model directory is opened through :mod:`registry.model.safety`; the caller (the job
processor) has already verified the files against the version's manifest.

:func:`run_job` is the entry point the worker uses: it validates the params JSON for the kind and
dispatches to :data:`EXECUTORS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from node.executors import compress, eval, finetune, infer, train
from node.executors.common import ExecutorResult
from node.executors.errors import InvalidJobInputError, InvalidJobParamsError
from node.executors.params import PARAMS

__all__ = [
    "EXECUTORS",
    "ExecutorResult",
    "InvalidJobInputError",
    "InvalidJobParamsError",
    "parse_params",
    "run_job",
]

Executor = Callable[[Path, Path, Any, Path], ExecutorResult]

EXECUTORS: dict[str, Executor] = {
    "INFER": infer.run,
    "TRAIN": train.run,
    "FINETUNE": finetune.run,
    "EVAL": eval.run,
    "COMPRESS": compress.run,
}


def parse_params(kind: str, params_json: str | bytes | Mapping[str, Any]) -> Any:
    """Validate ``params_json`` for ``kind``; return the params model.

    Raises:
        InvalidJobParamsError: unknown kind, malformed JSON, or a schema violation (the pydantic
            error list is in ``errors``).
    """
    adapter = PARAMS.get(kind.upper())
    if adapter is None:
        raise InvalidJobParamsError(f"unknown job kind {kind!r}; expected one of {sorted(PARAMS)}")
    try:
        if isinstance(params_json, str | bytes):
            return adapter.validate_json(params_json)
        return adapter.validate_python(dict(params_json))
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False, include_input=False))
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ())) or "params"
        raise InvalidJobParamsError(
            f"invalid {kind.upper()} params: {where}: {first.get('msg', 'invalid')}", errors
        ) from None


def run_job(
    kind: str,
    model_dir: Path,
    input_path: Path,
    params_json: str | bytes | Mapping[str, Any],
    out_dir: Path,
) -> ExecutorResult:
    """Validate the params and run the executor of ``kind`` (``INFER``, ``TRAIN``, ...).

    Args:
        kind: the job kind as on chain (case-insensitive).
        model_dir: a verified local model directory.
        input_path: the verified job input file.
        params_json: the job params (JSON text, or an already-decoded mapping).
        out_dir: an empty or absent directory for the outputs (``FileExistsError`` otherwise).

    Raises:
        InvalidJobParamsError: see :func:`parse_params`.
        InvalidJobInputError: the input does not fit the executor or the model.
        registry.errors.ModelError: the model directory is invalid (``UnsafeModelError`` if it
            could run code).
    """
    params = parse_params(kind, params_json)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"output directory {out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    return EXECUTORS[kind.upper()](Path(model_dir), Path(input_path), params, out_dir)
