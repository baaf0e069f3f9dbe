"""EVAL executor: perplexity of a causal LM, accuracy of a sequence classifier.

Inputs, by model family:

- causal LM: a UTF-8 text file. Tokens (plus EOS) are cut into consecutive windows of
  ``max_length`` tokens (no overlap, at most ``max_tokens`` tokens in all); every token after a
  window's first is predicted. ``perplexity = exp(total NLL / predicted tokens)``.
- classifier: JSONL ``{"text": str, "label": str | int}`` (label name from the model's
  ``id2label``, or its index); texts truncated to ``max_length`` tokens.

Output ``result.json``: ``{"kind": "EVAL", "metrics": {...}}`` with ``perplexity``, ``loss``,
``tokens`` (causal LM) or ``accuracy``, ``loss``, ``examples``, ``correct`` (classifier).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.executors.common import (
    ExecutorResult,
    Metric,
    deterministic,
    finish,
    model_family,
    text_field,
)
from node.executors.training import IGNORE_INDEX, pad_batch
from registry.jobs import EvalParams, InvalidJobInputError, JobKind, read_jsonl, read_text
from registry.model.safety import load_causal_lm, load_sequence_classifier, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def run(model_dir: Path, input_path: Path, params: EvalParams, out_dir: Path) -> ExecutorResult:
    """Run one EVAL job (see module docstring)."""
    family = model_family(model_dir)
    with deterministic(0):
        if family == "causal_lm":
            text = read_text(input_path)
            metrics = perplexity(load_causal_lm(model_dir), load_tokenizer(model_dir), text, params)
        elif family == "sequence_classification":
            rows = read_jsonl(input_path)
            metrics = accuracy(
                load_sequence_classifier(model_dir), load_tokenizer(model_dir), rows, params
            )
        else:
            raise InvalidJobInputError(
                f"EVAL supports causal LMs and sequence classifiers, not a model of kind {family}"
            )
    return finish(out_dir, {"kind": JobKind.EVAL.name}, metrics, produces_model=False)


def perplexity(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str, params: EvalParams
) -> dict[str, Metric]:
    """Perplexity of ``text`` under ``model`` over non-overlapping windows (see module doc)."""
    import torch

    ids: list[int] = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    ids = ids[: params.max_tokens]
    windows = [ids[i : i + params.max_length] for i in range(0, len(ids), params.max_length)]
    windows = [w for w in windows if len(w) >= 2]
    if not windows:
        raise InvalidJobInputError("evaluation text has fewer than 2 tokens")
    pad_id = 0 if tokenizer.pad_token_id is None else int(tokenizer.pad_token_id)
    total_nll = 0.0
    predicted = 0
    with torch.inference_mode():
        for start in range(0, len(windows), params.batch_size):
            rows = [
                {"input_ids": w, "labels": w} for w in windows[start : start + params.batch_size]
            ]
            batch = pad_batch(rows, pad_id)
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits.float()
            targets = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            total_nll += float(nll)
            predicted += int((targets != IGNORE_INDEX).sum())
    loss = total_nll / predicted
    return {"perplexity": math.exp(min(loss, 50.0)), "loss": loss, "tokens": predicted}


def label_index(label: Any, label2id: Mapping[str, int], n_labels: int, where: str) -> int:
    """A row's label as a class index (name via ``label2id``, or an in-range int)."""
    if isinstance(label, str) and label in label2id:
        return int(label2id[label])
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < n_labels:
        return label
    raise InvalidJobInputError(f"{where}: label {label!r} is not one of {sorted(label2id)}")


def encode_labelled(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    max_length: int,
) -> list[dict[str, list[int]]]:
    """Tokenize ``{"text","label"}`` rows to ``{"input_ids", "label"}`` (label as 1-item list)."""
    label2id = {str(k): int(v) for k, v in (model.config.label2id or {}).items()}
    n_labels = len(label2id)
    encoded: list[dict[str, list[int]]] = []
    for i, row in enumerate(rows):
        where = f"input row {i + 1}"
        text = text_field(row, "text", where)
        ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        label = label_index(row.get("label"), label2id, n_labels, where)
        encoded.append({"input_ids": list(ids), "label": [label]})
    return encoded


def classifier_batch(rows: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Pad classification rows; ``labels`` is the class index per row."""
    import torch

    padded = pad_batch(
        [{"input_ids": r["input_ids"], "labels": r["input_ids"]} for r in rows], pad_id
    )
    return {
        "input_ids": padded["input_ids"],
        "attention_mask": padded["attention_mask"],
        "labels": torch.tensor([r["label"][0] for r in rows]),
    }


def accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    params: EvalParams,
) -> dict[str, Metric]:
    """Accuracy and mean cross-entropy of ``model`` on labelled rows."""
    import torch

    encoded = encode_labelled(model, tokenizer, rows, params.max_length)
    pad_id = 0 if tokenizer.pad_token_id is None else int(tokenizer.pad_token_id)
    correct = 0
    total_loss = 0.0
    with torch.inference_mode():
        for start in range(0, len(encoded), params.batch_size):
            batch = classifier_batch(encoded[start : start + params.batch_size], pad_id)
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits.float()
            labels = batch["labels"]
            total_loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == labels).sum())
    n = len(encoded)
    return {"accuracy": correct / n, "loss": total_loss / n, "examples": n, "correct": correct}
