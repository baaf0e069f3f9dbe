"""TRAIN (tiny GPT-2 from its config on stdlib text) and EVAL (perplexity, accuracy)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")  # 2 shared cores: avoid oversubscription

from node.executors import ExecutorResult, run_job  # noqa: E402
from registry.dev import demo  # noqa: E402
from registry.errors import ModelError  # noqa: E402
from registry.jobs import InvalidJobInputError, JobKind, parse_params  # noqa: E402
from registry.model import safety  # noqa: E402


def _run(
    kind: JobKind, model: Path, data: Path, params: str | Mapping[str, object], out: Path
) -> ExecutorResult:
    """Parse ``params`` as the worker does, then run the executor."""
    return run_job(kind, model, data, parse_params(kind, params), out)


TRAIN = {"steps": 40, "seq_len": 64, "batch_size": 8, "lr": 3e-3, "seed": 11}
SENTIMENT = [
    ("I loved this film, it was wonderful.", "positive"),
    ("What a great and happy day.", "positive"),
    ("The food was delicious and the staff were kind.", "positive"),
    ("Brilliant acting and a beautiful story.", "positive"),
    ("I hated this film, it was awful.", "negative"),
    ("What a terrible and sad day.", "negative"),
    ("The food was disgusting and the staff were rude.", "negative"),
    ("Dreadful acting and a boring story.", "negative"),
]


def pydoc_text(first: int, count: int, chars: int = 12_000) -> str:
    from pydoc_data.topics import topics

    keys = sorted(topics)[first : first + count]
    return "\n\n".join(topics[k] for k in keys)[:chars]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.txt"
    path.write_text(pydoc_text(0, 4), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def config_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.make_tiny_gpt2(tmp_path_factory.mktemp("cfg") / "gpt2", weights=False)


@pytest.fixture(scope="module")
def trained(config_only: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "out"
    _run(JobKind.TRAIN, config_only, corpus, TRAIN, out)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_loss_decreases(trained: Path) -> None:
    result = json.loads((trained / "result.json").read_text())
    metrics = result["metrics"]
    losses = result["losses"]
    assert len(losses) == TRAIN["steps"]
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"] - 1.0
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert math.isclose(metrics["eval_loss_before"], math.log(259), rel_tol=0.05)  # uniform init


def test_train_writes_loadable_model(trained: Path) -> None:
    model_dir = trained / "model"
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    safety.check_model_dir(model_dir)
    model = safety.load_causal_lm(model_dir)
    assert type(model).__name__ == "GPT2LMHeadModel"
    card = (model_dir / "README.md").read_text()
    assert '"seed":11' in card and "eval_loss_after" in card


def test_train_is_byte_deterministic(
    trained: Path, config_only: Path, corpus: Path, tmp_path: Path
) -> None:
    result = _run(JobKind.TRAIN, config_only, corpus, TRAIN, tmp_path / "again")
    assert result.produces_model and result.model_subdir == "model"
    for name in result.files:
        assert sha256(trained / name) == sha256(tmp_path / "again" / name), name


def test_train_seed_changes_weights(config_only: Path, corpus: Path, tmp_path: Path) -> None:
    _run(JobKind.TRAIN, config_only, corpus, {**TRAIN, "steps": 2, "seed": 1}, tmp_path / "a")
    _run(JobKind.TRAIN, config_only, corpus, {**TRAIN, "steps": 2, "seed": 2}, tmp_path / "b")
    a, b = (sha256(tmp_path / n / "model" / "model.safetensors") for n in "ab")
    assert a != b


def test_eval_perplexity_lower_on_trained_text(trained: Path, corpus: Path, tmp_path: Path) -> None:
    untrained = demo.cached_model("tiny-gpt2")
    after = _run(JobKind.EVAL, trained / "model", corpus, {}, tmp_path / "after").metrics
    before = _run(JobKind.EVAL, untrained, corpus, {}, tmp_path / "before").metrics
    assert math.isfinite(after["perplexity"]) and after["tokens"] > 1000
    assert after["perplexity"] < before["perplexity"] / 3
    assert math.isclose(math.exp(after["loss"]), after["perplexity"], rel_tol=1e-4)


def test_eval_is_deterministic(trained: Path, corpus: Path, tmp_path: Path) -> None:
    params = {"max_length": 64, "batch_size": 3, "max_tokens": 2000}
    first = _run(JobKind.EVAL, trained / "model", corpus, params, tmp_path / "a")
    _run(JobKind.EVAL, trained / "model", corpus, params, tmp_path / "b")
    assert first.metrics["tokens"] == 2000 - 2000 // 64 - (1 if 2000 % 64 else 0)
    assert sha256(tmp_path / "a" / "result.json") == sha256(tmp_path / "b" / "result.json")


def test_eval_classifier_accuracy(tmp_path: Path) -> None:
    data = tmp_path / "sent.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in SENTIMENT))
    model = demo.cached_model("tiny-classifier")
    metrics = _run(JobKind.EVAL, model, data, {}, tmp_path / "o").metrics
    assert metrics["examples"] == len(SENTIMENT)
    assert metrics["correct"] == round(metrics["accuracy"] * len(SENTIMENT))
    assert math.isfinite(metrics["loss"])


def test_eval_classifier_unknown_label(tmp_path: Path) -> None:
    data = tmp_path / "sent.jsonl"
    data.write_text(json.dumps({"text": "meh", "label": "neutral"}))
    with pytest.raises(InvalidJobInputError, match="input row 1: label 'neutral' is not one of"):
        _run(JobKind.EVAL, demo.cached_model("tiny-classifier"), data, {}, tmp_path / "o")


def test_eval_refuses_encoders(tmp_path: Path) -> None:
    data = tmp_path / "t.txt"
    data.write_text("text")
    with pytest.raises(InvalidJobInputError, match="not a model of kind encoder"):
        _run(JobKind.EVAL, demo.cached_model("minilm"), data, {}, tmp_path / "o")


def test_train_refuses_non_causal_config(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="TRAIN needs a causal LM config"):
        _run(JobKind.TRAIN, demo.cached_model("minilm"), corpus, {"steps": 1}, tmp_path / "o")
