"""Batched text encoders: sentence embeddings and sequence classification.

Both wrap a tokenizer and a model opened through :mod:`registry.model.safety`, pad each call's
texts to the longest one, and run the task's whole computation (model, pooling, softmax: a
module of :mod:`node.executors.heads`) under ``torch.inference_mode``. They are what the INFER
executor and the gateway's :class:`~node.executors.batching.DynamicBatcher` call.

With ``trace=True`` (the serving runtime's choice) that module runs as a checked TorchScript
trace (:mod:`node.executors.tracing`): the same bits, without holding the GIL.

They are safe to call from several threads at once (the serving runtime runs one batch per
core): a fast tokenizer is not — its Rust side refuses a second concurrent borrow — so
tokenizing takes a per-model lock (a fraction of a millisecond per batch); forward passes run
in parallel.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.executors.tracing import Forward, eager_forward, traced_forward
from registry.errors import ModelError
from registry.jobs import InvalidJobInputError
from registry.model.safety import (
    load_encoder,
    load_sequence_classifier,
    load_tokenizer,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from node.executors.heads import Pooling

_DEFAULT_MAX_LENGTH = 512


def _pooling_mode(model_dir: Path) -> Pooling:
    """The sentence-transformers pooling of the directory (``1_Pooling/config.json``), else mean."""
    path = model_dir / "1_Pooling" / "config.json"
    if not path.is_file():
        return "mean"
    config = json.loads(path.read_text(encoding="utf-8"))
    modes: dict[str, Pooling] = {
        "pooling_mode_mean_tokens": "mean",
        "pooling_mode_cls_token": "cls",
        "pooling_mode_max_tokens": "max",
    }
    chosen = [mode for key, mode in modes.items() if config.get(key)]
    if len(chosen) != 1 or any(
        v for k, v in config.items() if k.startswith("pooling_mode") and k not in modes
    ):
        raise ModelError(f"unsupported sentence-transformers pooling in {path.name}: {config}")
    return chosen[0]


def _max_length(model_dir: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        value = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    limits = [
        getattr(model.config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
        _DEFAULT_MAX_LENGTH,
    ]
    return min(v for v in limits if isinstance(v, int) and v > 0)


class _TextModel:
    """Tokenizer + model + the padding/truncation policy shared by the encoders.

    Subclasses call :meth:`_use_head` with the module computing their task's outputs.
    """

    def __init__(self, model_dir: Path, model: PreTrainedModel, max_length: int | None) -> None:
        self.model_dir = Path(model_dir)
        self.model = model
        self.tokenizer = load_tokenizer(self.model_dir)
        self.max_length = max_length or _max_length(self.model_dir, model, self.tokenizer)
        self._tokenizer_lock = threading.Lock()
        self._forward: Forward

    def _use_head(self, head: torch.nn.Module, trace: bool) -> None:
        self._forward = traced_forward(head, self._tokenize) if trace else eager_forward(head)

    def _run(self, texts: Sequence[str], output: str) -> tuple[torch.Tensor, list[int]]:
        """The head's ``output`` for ``texts`` and the number of tokens of each text."""
        import torch

        batch = self._tokenize(texts)
        with torch.inference_mode():
            return self._forward(batch)[output], _token_counts(batch)

    def _tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        if not texts:
            raise InvalidJobInputError("no texts to encode")
        with self._tokenizer_lock:
            batch = self.tokenizer(
                list(texts),
                padding="longest",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        return dict(batch)


def _token_counts(batch: dict[str, torch.Tensor]) -> list[int]:
    """Tokens per text of a padded batch (after truncation, special tokens included)."""
    counts: list[int] = batch["attention_mask"].sum(dim=1).tolist()
    return counts


class EmbeddingModel(_TextModel):
    """Sentence embeddings: pooled last hidden state (mean by default), optionally L2-normalised.

    Args:
        model_dir: a checked model directory (any encoder; MiniLM keeps its pooling config).
        max_length: truncation length; default: ``sentence_bert_config.json`` or the model's.
        normalize: L2-normalise each vector (cosine similarity = dot product).
        trace: run the forward pass as a checked TorchScript trace (same bits, no GIL held).
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        max_length: int | None = None,
        normalize: bool = True,
        trace: bool = False,
    ) -> None:
        import torch

        from node.executors.heads import EmbeddingHead

        super().__init__(model_dir, load_encoder(model_dir, dtype=torch.float32), max_length)
        self.pooling = _pooling_mode(self.model_dir)
        self.normalize = normalize
        self._use_head(EmbeddingHead(self.model, self.pooling, normalize), trace)

    @property
    def dim(self) -> int:
        """Embedding width."""
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed ``texts`` in one forward pass; returns float32 ``[len(texts), dim]``."""
        return self.encode_counted(texts)[0]

    def encode_counted(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        """:meth:`encode` and the number of tokens of each text."""
        return self._run(texts, "embeddings")

    def encode_lists(self, texts: Sequence[str]) -> list[list[float]]:
        """:meth:`encode` as plain lists (the shape :class:`DynamicBatcher` hands back)."""
        result: list[list[float]] = self.encode(texts).tolist()
        return result


class TextClassifier(_TextModel):
    """Single-label sequence classification with softmax scores (``trace`` as for embeddings)."""

    def __init__(
        self, model_dir: Path, *, max_length: int | None = None, trace: bool = False
    ) -> None:
        from node.executors.heads import ClassifierHead

        super().__init__(model_dir, load_sequence_classifier(model_dir), max_length)
        self._use_head(ClassifierHead(self.model), trace)
        id2label = {int(k): str(v) for k, v in (self.model.config.id2label or {}).items()}
        self.labels = [id2label[i] for i in range(len(id2label))]

    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """Softmax over labels, float32 ``[len(texts), len(labels)]``."""
        return self._probabilities(texts)[0]

    def _probabilities(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        return self._run(texts, "probabilities")

    def classify(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """``[{"label", "score", "scores": {label: p}}]`` per text."""
        return [row for row, _ in self.classify_counted(texts)]

    def classify_counted(self, texts: Sequence[str]) -> list[tuple[dict[str, Any], int]]:
        """:meth:`classify` with the number of tokens of each text."""
        probabilities, counts = self._probabilities(texts)
        rows: list[dict[str, Any]] = []
        for probs in probabilities.tolist():
            best = max(range(len(probs)), key=lambda i: (probs[i], -i))
            rows.append(
                {
                    "label": self.labels[best],
                    "score": probs[best],
                    "scores": dict(zip(self.labels, probs, strict=True)),
                }
            )
        return list(zip(rows, counts, strict=True))
