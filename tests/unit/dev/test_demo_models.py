"""Demo model directories: layout, determinism, idempotence, and that they really work.

SmolLM2 is dequantized once (≈25 s) into the persistent cache of
:func:`registry.dev.demo.cached_model` (``$ANCHORML_DATA_DIR/demo-models`` or
``~/.cache/anchorml/demo-models``), keyed by the GGUF's sha256; later runs reuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANCHORML_TORCH_THREADS", "1")  # 2 shared cores: avoid oversubscription

from registry.dev import demo  # noqa: E402
from registry.errors import ModelError  # noqa: E402
from registry.model import safety  # noqa: E402


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return demo.cached_model("smollm2")


def test_minilm_export_layout(tmp_path: Path) -> None:
    out = demo.export_minilm(tmp_path / "minilm")
    names = set(digests(out))
    assert set(demo.MINILM_FILES) | {"README.md"} == names
    assert not list(tmp_path.glob(".minilm.*"))  # temp dir renamed away
    source = demo.minilm_source_dir()
    assert (out / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n")
    assert "mean pooling" in card
    pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True


def test_export_is_idempotent(tmp_path: Path) -> None:
    out = demo.export_minilm(tmp_path / "m")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert demo.export_minilm(tmp_path / "m") == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_export_refuses_foreign_nonempty_dir(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "stray.txt").write_text("x")
    with pytest.raises(ModelError, match="not empty"):
        demo.export_minilm(tmp_path / "m")


def test_tiny_gpt2_is_deterministic(tmp_path: Path) -> None:
    a = digests(demo.make_tiny_gpt2(tmp_path / "a", seed=3))
    b = digests(demo.make_tiny_gpt2(tmp_path / "b", seed=3))
    c = digests(demo.make_tiny_gpt2(tmp_path / "c", seed=4))
    assert a == b
    assert a["model.safetensors"] != c["model.safetensors"]
    assert a["tokenizer.json"] == c["tokenizer.json"]


def test_tiny_gpt2_tokenizer_round_trips_bytes(tmp_path: Path) -> None:
    out = demo.make_tiny_gpt2(tmp_path / "g", weights=False)
    assert not (out / "model.safetensors").exists()
    tokenizer = safety.load_tokenizer(out)
    text = "héllo, wörld — ✓"
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text.encode("utf-8"))
    assert tokenizer.decode(ids) == text
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tiny_classifier_has_labels(tmp_path: Path) -> None:
    out = demo.make_tiny_classifier(tmp_path / "c", labels=("bad", "good", "neutral"))
    model = safety.load_sequence_classifier(out)
    assert model.config.id2label == {0: "bad", 1: "good", 2: "neutral"}
    assert type(model).__name__ == "BertForSequenceClassification"


def test_cached_model_key_names_source_hash(smollm2: Path) -> None:
    key = demo.sha256_file(demo.smollm2_gguf_path())[:16]
    assert smollm2.name == f"smollm2-135m-instruct-{demo.DEMO_FORMAT}-{key}"
    assert demo.cached_model("smollm2") == smollm2


def test_smollm2_export_is_clean_safetensors(smollm2: Path) -> None:
    from safetensors import safe_open

    safety.check_model_dir(smollm2)
    names = set(digests(smollm2))
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    assert "README.md" in names
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["dtype"] == "bfloat16"
    with safe_open(str(smollm2 / "model.safetensors"), framework="pt") as reader:
        tensor = reader.get_tensor("model.layers.0.self_attn.q_proj.weight")
        assert str(tensor.dtype) == "torch.bfloat16"
        assert "lm_head.weight" not in reader.keys()  # tied to the embeddings
    assert not any("/" in v for v in config.values() if isinstance(v, str))


def test_smollm2_chat_template_and_generation(smollm2: Path) -> None:
    import torch

    tokenizer = safety.load_tokenizer(smollm2)
    model = safety.load_causal_lm(smollm2)
    assert model.dtype == torch.bfloat16
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    encoded = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**encoded, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_minilm_export_loads_in_sentence_transformers(tmp_path: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    out = demo.export_minilm(tmp_path / "minilm")
    texts = ["anchored models", "a registry of weights"]
    ours = SentenceTransformer(str(out), device="cpu").encode(texts)
    reference = SentenceTransformer(str(demo.minilm_source_dir()), device="cpu").encode(texts)
    assert torch.allclose(torch.from_numpy(ours), torch.from_numpy(reference), atol=1e-6)
