"""run_job dispatch and the canonical result encoding (no model compute); the params schemas are
tested with the job protocol (test_jobs.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")  # 2 shared cores: avoid oversubscription

from node.executors import EXECUTORS, run_job  # noqa: E402
from node.executors.common import canonical_json, deterministic  # noqa: E402
from registry.jobs import (  # noqa: E402
    InvalidJobInputError,
    InvalidJobParamsError,
    JobKind,
    parse_params,
)


def test_every_kind_has_an_executor() -> None:
    assert set(EXECUTORS) == set(JobKind)


def test_run_job_refuses_another_kinds_params_before_touching_the_model(tmp_path: Path) -> None:
    params = parse_params(JobKind.EVAL, {})
    with pytest.raises(InvalidJobParamsError, match="EvalParams are not TRAIN params"):
        run_job(JobKind.TRAIN, tmp_path / "absent", tmp_path / "in", params, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_job_refuses_nonempty_out_dir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("x")
    params = parse_params(JobKind.EVAL, {})
    with pytest.raises(FileExistsError):
        run_job(JobKind.EVAL, tmp_path, tmp_path / "in", params, tmp_path / "out")


def test_missing_input_is_typed(tmp_path: Path) -> None:
    from registry.dev import demo

    model = demo.cached_model("tiny-gpt2")
    params = parse_params(JobKind.EVAL, {})
    with pytest.raises(InvalidJobInputError, match="cannot read input"):
        run_job(JobKind.EVAL, model, tmp_path / "absent.txt", params, tmp_path / "out")


def test_canonical_json_is_stable() -> None:
    value = {"b": [1.23456789, -0.0, 2], "a": "é", "c": (True, None)}
    assert canonical_json(value) == '{"a":"é","b":[1.234568,0.0,2],"c":[true,null]}'.encode()
    assert canonical_json({"x": -1e-9}) == b'{"x":0.0}'
    with pytest.raises(ValueError, match="non-finite"):
        canonical_json({"x": float("nan")})


def test_deterministic_context_restores_torch_state() -> None:
    import torch

    before = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    with deterministic(7):
        assert torch.are_deterministic_algorithms_enabled()
        first = torch.rand(3)
    with deterministic(7):
        assert torch.equal(first, torch.rand(3))
    assert (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()) == before


def test_result_json_schema_in_docs_is_json() -> None:
    # the INFER docstring promises canonical bytes; a decoded result re-encodes identically
    raw = canonical_json({"task": "embed", "embeddings": [[0.1, 0.2]], "metrics": {"dim": 2}})
    assert canonical_json(json.loads(raw)) == raw
