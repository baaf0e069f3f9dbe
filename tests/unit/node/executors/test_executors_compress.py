"""COMPRESS: magnitude pruning (global / per layer) and int8 weight-only quantization."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")  # 2 shared cores: avoid oversubscription

from node.executors import ExecutorResult, run_job  # noqa: E402
from node.executors.compress import prunable_weights, prune, sparsity  # noqa: E402
from registry.dev import demo  # noqa: E402
from registry.errors import ModelError  # noqa: E402
from registry.jobs import JobKind, parse_params  # noqa: E402
from registry.model import safety  # noqa: E402


def _run(
    kind: JobKind, model: Path, data: Path, params: str | Mapping[str, object], out: Path
) -> ExecutorResult:
    """Parse ``params`` as the worker does, then run the executor."""
    return run_job(kind, model, data, parse_params(kind, params), out)


@pytest.fixture(scope="module")
def gpt2() -> Path:
    return demo.cached_model("tiny-gpt2")


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pydoc_data.topics import topics

    path = tmp_path_factory.mktemp("data") / "eval.txt"
    path.write_text(topics[sorted(topics)[5]][:2000], encoding="utf-8")
    return path


@pytest.fixture()
def empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.txt"
    path.write_text("")
    return path


@pytest.mark.parametrize("scope", ["global", "per_layer"])
def test_prune_reaches_requested_sparsity(
    gpt2: Path, text: Path, tmp_path: Path, scope: str
) -> None:
    params = {"method": "prune", "sparsity": 0.6, "scope": scope}
    result = _run(JobKind.COMPRESS, gpt2, text, params, tmp_path / "o")
    assert result.produces_model
    assert result.metrics["sparsity"] == pytest.approx(0.6, abs=1e-4)
    assert result.metrics["perplexity_after"] > 0 and "perplexity_delta" in result.metrics
    pruned = safety.load_causal_lm(tmp_path / "o" / "model")
    weights = prunable_weights(pruned)
    assert set(weights) == {
        f"transformer.h.{i}.{m}"
        for i in range(2)
        for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    }
    assert sparsity(weights) == pytest.approx(0.6, abs=1e-4)  # permanent: survives save/load
    if scope == "per_layer":
        for name, weight in weights.items():
            assert float((weight == 0).float().mean()) == pytest.approx(0.6, abs=1e-3), name
    embeddings = pruned.get_input_embeddings().weight
    assert float((embeddings == 0).float().mean()) < 0.01  # embeddings are never pruned


def test_prune_is_exact_with_ties() -> None:
    import torch

    weights = {"a": torch.ones(10), "b": torch.tensor([0.5, 1.0, 1.0, 2.0])}
    prune(weights, 0.5, "global")
    assert sparsity(weights) == 0.5  # 7 of 14, although 12 entries tie at 1.0
    assert weights["b"][0] == 0 and weights["b"][3] == 2.0


def test_prune_is_deterministic(gpt2: Path, empty: Path, tmp_path: Path) -> None:
    params = {"method": "prune", "sparsity": 0.3}
    _run(JobKind.COMPRESS, gpt2, empty, params, tmp_path / "a")
    _run(JobKind.COMPRESS, gpt2, empty, params, tmp_path / "b")
    for name in ("model/model.safetensors", "result.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_int8_is_smaller_and_loads(gpt2: Path, text: Path, tmp_path: Path) -> None:
    result = _run(JobKind.COMPRESS, gpt2, text, {"method": "int8"}, tmp_path / "o")
    model_dir = tmp_path / "o" / "model"
    assert "model/model.int8.safetensors" in result.files
    assert not (model_dir / "model.safetensors").exists()
    metrics = result.metrics
    assert metrics["size_after"] < metrics["size_before"] * 0.6
    assert abs(metrics["perplexity_delta"]) < 0.01 * metrics["perplexity_before"]
    safety.check_model_dir(model_dir)
    model = safety.load_causal_lm(model_dir)
    reference = safety.load_causal_lm(gpt2)
    for name, weight in prunable_weights(model).items():
        original = reference.get_submodule(name).weight
        step = original.abs().amax(dim=0, keepdim=True) / 127  # Conv1D: channels on dim 1
        assert ((weight - original).abs() <= step / 2 + 1e-7).all(), name
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_plain_from_pretrained_cannot_misread_int8(gpt2: Path, empty: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    _run(JobKind.COMPRESS, gpt2, empty, {"method": "int8"}, tmp_path / "o")
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForCausalLM.from_pretrained(
            str(tmp_path / "o" / "model"), use_safetensors=True, local_files_only=True
        )


def test_prune_then_int8_keeps_zeros(gpt2: Path, empty: Path, tmp_path: Path) -> None:
    params = {"method": "prune+int8", "sparsity": 0.5}
    result = _run(JobKind.COMPRESS, gpt2, empty, params, tmp_path / "o")
    assert "perplexity_before" not in result.metrics  # empty input: no evaluation
    model = safety.load_causal_lm(tmp_path / "o" / "model")
    assert sparsity(prunable_weights(model)) == pytest.approx(0.5, abs=1e-4)


def test_int8_with_both_weight_files_is_refused(gpt2: Path, empty: Path, tmp_path: Path) -> None:
    import shutil

    _run(JobKind.COMPRESS, gpt2, empty, {"method": "int8"}, tmp_path / "o")
    shutil.copyfile(gpt2 / "model.safetensors", tmp_path / "o" / "model" / "model.safetensors")
    with pytest.raises(ModelError, match="holds both"):
        safety.load_causal_lm(tmp_path / "o" / "model")


def test_classifier_compress_reports_accuracy(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [{"text": "great, lovely", "label": "positive"}, {"text": "awful", "label": "negative"}]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    model = demo.cached_model("tiny-classifier")
    metrics = _run(JobKind.COMPRESS, model, data, {"method": "int8"}, tmp_path / "o").metrics
    assert {"accuracy_before", "accuracy_after", "accuracy_delta"} <= set(metrics)
    assert metrics["size_after"] < metrics["size_before"] * 0.7  # half of MiniLM is embeddings
    classifier = safety.load_sequence_classifier(tmp_path / "o" / "model")
    assert classifier.config.id2label == {0: "negative", 1: "positive"}


def test_smollm2_int8_round_trip_chats(tmp_path: Path) -> None:
    smollm2 = demo.cached_model("smollm2")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = _run(JobKind.COMPRESS, smollm2, empty, {"method": "int8"}, tmp_path / "q")
    assert result.metrics["size_ratio"] < 0.65  # bf16 linears → int8 (+ scales); embeddings kept
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps({"messages": [{"role": "user", "content": "What is the capital of France?"}]})
    )
    params = {"task": "chat", "max_new_tokens": 12}
    _run(JobKind.INFER, tmp_path / "q" / "model", chat, params, tmp_path / "answer")
    assert "Paris" in json.loads((tmp_path / "answer" / "result.json").read_text())["text"]
