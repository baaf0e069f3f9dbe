"""FINETUNE executor: full or LoRA fine-tuning of a causal LM or a sequence classifier.

Input: JSONL, one example per line.

- classification: ``{"text": str, "label": str | int}``. The model's ``id2label`` names the
  classes; ``params.labels`` instead builds a new head (so a bare encoder such as MiniLM becomes a
  classifier).
- causal LM: ``{"text": str}`` (loss on every token) or ``{"prompt": str, "completion": str}``
  (loss on the completion only; ``params.chat_template`` wraps the prompt as a user turn).
  EOS is appended; examples are truncated to ``max_length`` tokens.

Steps:
1. load (checked) model in float32 and tokenizer; for LoRA wrap with ``peft`` (default target
   modules per architecture; a classifier's head is trained and saved with the adapter);
2. mean loss on up to 32 examples (``eval_loss_before``), train ``steps`` steps, measure again;
3. write ``out_dir/model/``: full and merged LoRA → full model in the parent's dtype
   (``config.json`` + ``model.safetensors``); kept LoRA → ``adapter_config.json`` +
   ``adapter_model.safetensors`` (base recorded as ``anchorml:parent``, never a local path; load
   it with :func:`registry.model.safety.load_adapter` onto the parent); plus tokenizer and card.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from node.executors.common import (
    MODEL_SUBDIR,
    ExecutorResult,
    Metric,
    copy_tokenizer_files,
    deterministic,
    finish,
    model_family,
    save_model_dir,
    text_field,
    write_card,
)
from node.executors.eval import classifier_batch, encode_labelled
from node.executors.training import IGNORE_INDEX, batch_order, mean_loss, optimize, pad_batch
from registry.jobs import FinetuneParams, InvalidJobInputError, JobKind, read_jsonl
from registry.model.safety import (
    CONFIG_FILE,
    load_causal_lm,
    load_sequence_classifier,
    load_tokenizer,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Task = Literal["causal_lm", "classification"]
EVAL_EXAMPLES = 32
ADAPTER_BASE = "anchorml:parent"  # the base is the parent version in the registry lineage


def run(model_dir: Path, input_path: Path, params: FinetuneParams, out_dir: Path) -> ExecutorResult:
    """Run one FINETUNE job (see module docstring)."""
    import torch

    task = _task(model_dir, params)
    rows = read_jsonl(input_path)
    tokenizer = load_tokenizer(model_dir)
    stored_dtype = _stored_dtype(model_dir)
    with deterministic(params.seed):
        model: Any
        if task == "classification":
            model = load_sequence_classifier(
                model_dir, dtype=torch.float32, labels=params.labels, seed=params.seed
            )
            examples = encode_labelled(model, tokenizer, rows, params.max_length)
        else:
            model = load_causal_lm(model_dir, dtype=torch.float32)
            examples = _encode_causal(tokenizer, rows, params)
        pad_id = _pad_id(tokenizer)
        if params.method == "lora":
            model = _with_lora(model, task, params)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

        def collate(items: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
            if task == "classification":
                return classifier_batch(items, pad_id)
            return pad_batch(items, pad_id)

        order = batch_order(len(examples), params.batch_size, params.steps, params.seed)
        held = [
            collate(examples[i : i + 8]) for i in range(0, min(EVAL_EXAMPLES, len(examples)), 8)
        ]
        before = mean_loss(model, held)
        losses = optimize(
            model,
            lambda step: collate([examples[i] for i in order[step]]),
            steps=params.steps,
            lr=params.lr,
            warmup_steps=params.warmup_steps,
            weight_decay=params.weight_decay,
            grad_clip=params.grad_clip,
        )
        after = mean_loss(model, held)
        metrics: dict[str, Metric] = {
            "method": params.method,
            "task": task,
            "steps": params.steps,
            "examples": len(examples),
            "trainable_parameters": trainable,
            "parameters": sum(p.numel() for p in model.parameters()),
            "loss_first": losses[0],
            "loss_last": losses[-1],
            "eval_loss_before": before,
            "eval_loss_after": after,
        }
        if task == "classification":
            metrics["train_accuracy_after"] = _accuracy(model, held)
    target = out_dir / MODEL_SUBDIR
    if params.method == "lora" and not params.lora_settings.merge:
        _save_adapter(model, model_dir, target)
    else:
        if params.method == "lora":
            model = model.merge_and_unload()
        model.to(stored_dtype)
        save_model_dir(model, model_dir, target)
    title = f"{task} fine-tuned ({params.method}{', merged' if _merged(params) else ''})"
    write_card(target, title, JobKind.FINETUNE.name, params.model_dump(), metrics)
    return finish(
        out_dir, {"kind": JobKind.FINETUNE.name, "losses": losses}, metrics, produces_model=True
    )


def _merged(params: FinetuneParams) -> bool:
    return params.method == "lora" and params.lora_settings.merge


def _task(model_dir: Path, params: FinetuneParams) -> Task:
    family = model_family(model_dir)
    if family == "adapter":
        raise InvalidJobInputError("FINETUNE needs a full model, not a LoRA adapter (merge first)")
    if params.task != "auto":
        return params.task
    if family == "causal_lm":
        return "causal_lm"
    if family == "sequence_classification" or params.labels is not None:
        return "classification"
    raise InvalidJobInputError("an encoder can only be fine-tuned as a classifier: give labels")


def _stored_dtype(model_dir: Path) -> torch.dtype:
    import torch

    config = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    dtype = getattr(torch, str(name), None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _encode_causal(
    tokenizer: PreTrainedTokenizerBase, rows: Sequence[Mapping[str, Any]], params: FinetuneParams
) -> list[dict[str, list[int]]]:
    eos = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    examples: list[dict[str, list[int]]] = []
    for i, row in enumerate(rows):
        where = f"input row {i + 1}"
        if "prompt" in row:
            prompt = text_field(row, "prompt", where)
            if params.chat_template:
                if not tokenizer.chat_template:
                    raise InvalidJobInputError("chat_template set but the model has none")
                prompt = str(
                    tokenizer.apply_chat_template(
                        [{"role": "user", "content": prompt}],
                        add_generation_prompt=True,
                        tokenize=False,
                    )
                )
            head = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            tail = list(
                tokenizer(text_field(row, "completion", where), add_special_tokens=False)[
                    "input_ids"
                ]
            )
            ids = (head + tail + eos)[: params.max_length]
            labels = ([IGNORE_INDEX] * len(head) + tail + eos)[: params.max_length]
        else:
            ids = (list(tokenizer(text_field(row, "text", where))["input_ids"]) + eos)[
                : params.max_length
            ]
            labels = list(ids)
        if len(ids) < 2 or all(label == IGNORE_INDEX for label in labels[1:]):
            raise InvalidJobInputError(f"{where}: nothing to learn after truncation")
        examples.append({"input_ids": ids, "labels": labels})
    return examples


def _with_lora(model: PreTrainedModel, task: Task, params: FinetuneParams) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers.pytorch_utils import Conv1D

    settings = params.lora_settings
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS if task == "classification" else TaskType.CAUSAL_LM,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        # GPT-2's Conv1D stores weights transposed
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise InvalidJobInputError(f"LoRA does not fit this model: {exc}") from exc


def _accuracy(model: Any, batches: Sequence[dict[str, torch.Tensor]]) -> float:
    import torch

    correct = total = 0
    with torch.inference_mode():
        for batch in batches:
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
            correct += int((logits.argmax(dim=-1) == batch["labels"]).sum())
            total += len(batch["labels"])
    return correct / total


def _save_adapter(model: Any, parent_dir: Path, target: Path) -> None:
    """Save a LoRA adapter; the base is named :data:`ADAPTER_BASE`, not a worker-local path."""
    for config in model.peft_config.values():
        config.base_model_name_or_path = ADAPTER_BASE
        config.revision = None
    # embeddings are never adapted here; skipping the check avoids peft looking up the base
    model.save_pretrained(str(target), safe_serialization=True, save_embedding_layers=False)
    copy_tokenizer_files(parent_dir, target)
