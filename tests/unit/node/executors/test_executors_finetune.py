"""FINETUNE: full and LoRA (kept or merged) on a MiniLM classifier and the tiny GPT-2."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")

from node.executors import ExecutorResult, run_job  # noqa: E402
from node.executors.finetune import ADAPTER_BASE  # noqa: E402
from registry.dev import demo  # noqa: E402
from registry.jobs import InvalidJobInputError, JobKind, parse_params  # noqa: E402
from registry.model import safety  # noqa: E402


def _run(
    kind: JobKind, model: Path, data: Path, params: str | Mapping[str, object], out: Path
) -> ExecutorResult:
    """Parse ``params`` as the worker does, then run the executor."""
    return run_job(kind, model, data, parse_params(kind, params), out)


POSITIVE = [
    "I loved this film, it was wonderful.",
    "What a great and happy day.",
    "The food was delicious and the staff were kind.",
    "Brilliant acting and a beautiful story.",
    "I am very pleased with this purchase.",
    "A delightful, charming experience.",
]
NEGATIVE = [
    "I hated this film, it was awful.",
    "What a terrible and sad day.",
    "The food was disgusting and the staff were rude.",
    "Dreadful acting and a boring story.",
    "I am very disappointed with this purchase.",
    "A miserable, annoying experience.",
]


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"text": t, "label": "positive"} for t in POSITIVE]
    rows += [{"text": t, "label": 0} for t in NEGATIVE]  # label by index works too
    path = tmp_path_factory.mktemp("data") / "sentiment.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def classifier() -> Path:
    return demo.cached_model("tiny-classifier")


@pytest.fixture(scope="module")
def gpt2() -> Path:
    return demo.cached_model("tiny-gpt2")


@pytest.fixture(scope="module")
def arithmetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"prompt": f"{i}+{i}=", "completion": str(2 * i)} for i in range(12)]
    rows.append({"text": "one two three four"})
    path = tmp_path_factory.mktemp("data") / "arith.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def accuracy(model_dir: Path, data: Path, out: Path) -> float:
    return float(_run(JobKind.EVAL, model_dir, data, {}, out).metrics["accuracy"])


def test_full_finetune_classifier(classifier: Path, sentiment: Path, tmp_path: Path) -> None:
    params = {"method": "full", "steps": 6, "lr": 1e-4, "batch_size": 6}
    result = _run(JobKind.FINETUNE, classifier, sentiment, params, tmp_path / "ft")
    metrics = result.metrics
    assert metrics["task"] == "classification"
    assert metrics["trainable_parameters"] == metrics["parameters"]
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"]
    assert "model/model.safetensors" in result.files
    assert accuracy(tmp_path / "ft" / "model", sentiment, tmp_path / "ev") >= 0.9


def test_lora_adapter_kept(classifier: Path, sentiment: Path, tmp_path: Path) -> None:
    params = {"method": "lora", "steps": 8, "lr": 5e-3, "batch_size": 6, "lora": {"r": 4}}
    result = _run(JobKind.FINETUNE, classifier, sentiment, params, tmp_path / "ft")
    adapter = tmp_path / "ft" / "model"
    assert {"model/adapter_config.json", "model/adapter_model.safetensors"} <= set(result.files)
    assert "model/config.json" not in result.files
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == ADAPTER_BASE
    assert config["r"] == 4 and config["task_type"] == "SEQ_CLS"
    assert result.metrics["trainable_parameters"] < result.metrics["parameters"] / 50
    assert result.metrics["eval_loss_after"] < result.metrics["eval_loss_before"]

    import torch

    base = safety.load_sequence_classifier(classifier)
    tuned = safety.load_adapter(base, adapter)
    tokenizer = safety.load_tokenizer(adapter)
    batch = tokenizer(POSITIVE + NEGATIVE, padding=True, return_tensors="pt")
    with torch.inference_mode():
        predicted = tuned(**batch).logits.argmax(-1).tolist()
    assert sum(p == y for p, y in zip(predicted, [1] * 6 + [0] * 6, strict=True)) >= 10


def test_lora_merged_is_a_full_model(gpt2: Path, arithmetic: Path, tmp_path: Path) -> None:
    params = {"steps": 15, "lr": 1e-2, "lora": {"r": 4, "merge": True}}
    result = _run(JobKind.FINETUNE, gpt2, arithmetic, params, tmp_path / "ft")
    assert result.metrics["task"] == "causal_lm"
    assert "model/adapter_config.json" not in result.files
    merged = safety.load_causal_lm(tmp_path / "ft" / "model")
    assert type(merged).__name__ == "GPT2LMHeadModel"
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert result.metrics["eval_loss_after"] < result.metrics["eval_loss_before"]


def test_finetune_is_deterministic(gpt2: Path, arithmetic: Path, tmp_path: Path) -> None:
    params = {"method": "full", "steps": 3, "lr": 1e-3, "seed": 5}
    _run(JobKind.FINETUNE, gpt2, arithmetic, params, tmp_path / "a")
    _run(JobKind.FINETUNE, gpt2, arithmetic, params, tmp_path / "b")
    for name in ("model/model.safetensors", "result.json", "model/config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_encoder_becomes_classifier_with_labels(sentiment: Path, tmp_path: Path) -> None:
    minilm = demo.cached_model("minilm")
    params = {"labels": ["negative", "positive"], "steps": 2, "lr": 5e-3, "lora": {"merge": True}}
    result = _run(JobKind.FINETUNE, minilm, sentiment, params, tmp_path / "ft")
    assert result.metrics["task"] == "classification"
    config = json.loads((tmp_path / "ft" / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "positive"}


def test_encoder_without_labels_refused(sentiment: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidJobInputError, match="give labels"):
        _run(JobKind.FINETUNE, demo.cached_model("minilm"), sentiment, {}, tmp_path / "o")


def test_prompt_tokens_are_not_learned(gpt2: Path) -> None:
    from node.executors.finetune import _encode_causal
    from node.executors.training import IGNORE_INDEX
    from registry.jobs import FinetuneParams

    tokenizer = safety.load_tokenizer(gpt2)
    rows = [{"prompt": "ab", "completion": "cd"}, {"text": "xyz"}]
    examples = _encode_causal(tokenizer, rows, FinetuneParams())
    assert examples[0]["input_ids"] == [97, 98, 99, 100, 256]
    assert examples[0]["labels"] == [IGNORE_INDEX, IGNORE_INDEX, 99, 100, 256]
    assert examples[1]["labels"] == [120, 121, 122, 256]


def test_rows_without_target_refused(gpt2: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "x" * 40, "completion": "y"}))
    with pytest.raises(InvalidJobInputError, match="input row 1: nothing to learn"):
        _run(JobKind.FINETUNE, gpt2, data, {"max_length": 16}, tmp_path / "o")
