"""run_job dispatch, params validation and the canonical result encoding (no model compute)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")  # 2 shared cores: avoid oversubscription

from node.executors import EXECUTORS, InvalidJobParamsError, parse_params, run_job  # noqa: E402
from node.executors.common import canonical_json, deterministic  # noqa: E402
from node.executors.errors import InvalidJobInputError  # noqa: E402
from node.executors.params import (  # noqa: E402
    MAX_NEW_TOKENS_CAP,
    ChatParams,
    CompressParams,
    EmbedParams,
    FinetuneParams,
)
from registry.errors import AnchormlError  # noqa: E402


def test_every_kind_has_an_executor() -> None:
    assert set(EXECUTORS) == {"INFER", "TRAIN", "FINETUNE", "EVAL", "COMPRESS"}


def test_infer_params_are_discriminated_by_task() -> None:
    assert isinstance(parse_params("INFER", '{"task": "chat"}'), ChatParams)
    assert isinstance(parse_params("infer", {"task": "embed"}), EmbedParams)
    chat = parse_params("INFER", b'{"task":"chat","max_new_tokens":5}')
    assert (chat.max_new_tokens, chat.temperature, chat.seed) == (5, 0.0, 0)


@pytest.mark.parametrize(
    ("kind", "params", "where"),
    [
        (
            "INFER",
            {"task": "chat", "max_new_tokens": MAX_NEW_TOKENS_CAP + 1},
            "chat.max_new_tokens",
        ),
        ("INFER", {"task": "chat", "max_new_tokens": 0}, "chat.max_new_tokens"),
        ("INFER", {"task": "chat", "temperature": -1}, "chat.temperature"),
        ("INFER", {"task": "chat", "evil": 1}, "chat.evil"),
        ("INFER", {"task": "translate"}, "params"),
        ("TRAIN", {"steps": 10**6}, "steps"),
        ("TRAIN", {"lr": 0}, "lr"),
        ("FINETUNE", {"method": "full", "lora": {"r": 4}}, "params"),
        ("FINETUNE", {"lora": {"target_modules": ["q_proj; rm -rf"]}}, "lora.target_modules"),
        ("FINETUNE", {"labels": ["a", "a"]}, "params"),
        ("COMPRESS", {"method": "int8", "sparsity": 0.5}, "params"),
        ("COMPRESS", {"method": "prune", "sparsity": 1.0}, "sparsity"),
        ("EVAL", {"max_length": 4}, "max_length"),
    ],
)
def test_invalid_params_raise_typed_error(kind: str, params: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidJobParamsError, match=f"invalid {kind} params: {where}") as info:
        parse_params(kind, params)
    assert info.value.code == "invalid_job_params"
    assert isinstance(info.value, AnchormlError) and isinstance(info.value, ValueError)
    assert info.value.errors and "loc" in info.value.errors[0]


def test_malformed_params_json() -> None:
    with pytest.raises(InvalidJobParamsError, match="invalid EVAL params"):
        parse_params("EVAL", "{not json")


def test_unknown_kind() -> None:
    with pytest.raises(InvalidJobParamsError, match="unknown job kind 'MINE'"):
        parse_params("MINE", "{}")


def test_defaults() -> None:
    finetune = parse_params("FINETUNE", "{}")
    assert isinstance(finetune, FinetuneParams)
    assert finetune.method == "lora" and finetune.lora_settings.r == 8
    compress = parse_params("COMPRESS", {"method": "prune"})
    assert isinstance(compress, CompressParams)
    assert (compress.sparsity, compress.scope, compress.eval.max_length) == (0.5, "global", 128)


def test_run_job_validates_before_touching_the_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidJobParamsError):
        run_job("TRAIN", tmp_path / "absent", tmp_path / "in", {"steps": -1}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_job_refuses_nonempty_out_dir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("x")
    with pytest.raises(FileExistsError):
        run_job("EVAL", tmp_path, tmp_path / "in", {}, tmp_path / "out")


def test_missing_input_is_typed(tmp_path: Path) -> None:
    from registry.dev import demo

    model = demo.cached_model("tiny-gpt2")
    with pytest.raises(InvalidJobInputError, match="cannot read input"):
        run_job("EVAL", model, tmp_path / "absent.txt", {}, tmp_path / "out")


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
