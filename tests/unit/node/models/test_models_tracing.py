"""The traced encoder forward: the same bits as eager on real models, eager when it cannot be."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from node.models.encoders import EmbeddingModel, TextClassifier  # noqa: E402
from node.models.tracing import traced_forward  # noqa: E402
from registry.dev import demo  # noqa: E402

TEXTS = [
    "",
    "hi",
    "A worker claims the job, runs the model and pins the verified result to IPFS.",
    "Gated models need a bearer token whose address holds access on the registry. " * 6,
    "Ünïcödé, emoji 🚀 and\ttabs\nand newlines",
]


@pytest.fixture(scope="module")
def minilm_pair() -> tuple[EmbeddingModel, EmbeddingModel]:
    path = demo.cached_model("minilm")
    return EmbeddingModel(path), EmbeddingModel(path, trace=True)


def test_trace_is_taken_for_minilm(minilm_pair: tuple[EmbeddingModel, EmbeddingModel]) -> None:
    eager, traced = minilm_pair
    assert traced._forward.__name__ == "traced"
    assert eager._forward.__name__ == "eager"


@pytest.mark.parametrize("size", [1, 2, 5])
def test_traced_embeddings_equal_eager_bit_for_bit(
    minilm_pair: tuple[EmbeddingModel, EmbeddingModel], size: int
) -> None:
    eager, traced = minilm_pair
    for start in range(len(TEXTS) - size + 1):
        batch = TEXTS[start : start + size]
        a, b = eager.encode_counted(batch), traced.encode_counted(batch)
        assert torch.equal(a[0], b[0]), batch
        assert a[1] == b[1]


def test_traced_embeddings_from_two_threads_at_once(
    minilm_pair: tuple[EmbeddingModel, EmbeddingModel],
) -> None:
    """Serving runs one batch per core on the same module."""
    eager, traced = minilm_pair
    want = eager.encode(TEXTS)
    results: list[torch.Tensor] = []
    errors: list[BaseException] = []

    def run() -> None:
        torch.set_num_threads(1)
        try:
            for _ in range(5):
                results.append(traced.encode(TEXTS))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 10 and all(torch.equal(want, r) for r in results)


def test_traced_classifier_equals_eager() -> None:
    path = demo.cached_model("tiny-classifier")
    eager, traced = TextClassifier(path), TextClassifier(path, trace=True)
    assert traced._forward.__name__ == "traced"
    assert eager.classify(TEXTS) == traced.classify(TEXTS)


# --- fallbacks: real modules the tracer cannot follow ------------------------------------------


class PaddingShortcut(torch.nn.Module):
    """Takes a data-dependent branch: a trace bakes in the branch of its example."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Any]:
        if bool(attention_mask.all()):
            return {"last_hidden_state": input_ids.float() * 2}
        return {"last_hidden_state": input_ids.float() * attention_mask}


class NotTraceable(torch.nn.Module):
    """Returns a string: the tracer refuses it."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Any]:
        del attention_mask
        return {"last_hidden_state": input_ids, "note": "text"}


def _tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
    width = max(len(t) for t in texts)
    ids = [[ord(c) for c in t] + [0] * (width - len(t)) for t in texts]
    mask = [[1] * len(t) + [0] * (width - len(t)) for t in texts]
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}


@pytest.mark.parametrize("module", [PaddingShortcut(), NotTraceable()])
def test_untraceable_models_serve_eager(
    module: torch.nn.Module, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node.models.tracing")
    forward = traced_forward(module, _tokenize)
    assert forward.__name__ == "eager"
    assert "serving" in caplog.text and "eager" in caplog.text
    batch = _tokenize(["abc", "a"])
    assert torch.equal(forward(batch)["last_hidden_state"], module(**batch)["last_hidden_state"])


def test_tracing_leaves_the_model_dir_alone() -> None:
    """Tracing happens in memory: nothing is written next to the verified weights."""
    path = demo.cached_model("tiny-classifier")
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    TextClassifier(path, trace=True)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
