"""TRAIN executor: pretrain a causal LM from its config on a text file.

Input: a UTF-8 text file. It is tokenized whole (plus EOS) and cut into ``seq_len`` blocks.
Model directory: ``config.json`` of a causal LM architecture plus tokenizer files; any weights in
it are ignored (initialisation comes from ``params.seed``; to continue from weights use FINETUNE).

Steps:
1. load config and tokenizer (checked), build the model from the config under the job seed;
2. measure the mean loss on up to 8 blocks (``eval_loss_before``);
3. optimise for ``steps`` steps (:func:`node.executors.training.optimize`);
4. measure again (``eval_loss_after``) and save ``out_dir/model/`` (float32 safetensors,
   tokenizer, README card) and ``result.json`` (``{"losses": [...], "metrics": {...}}``).

Same model directory, input and params → byte-identical ``model.safetensors``.
"""

from __future__ import annotations

import math
from pathlib import Path

from node.executors.common import (
    MODEL_SUBDIR,
    ExecutorResult,
    deterministic,
    finish,
    model_family,
    save_model_dir,
    write_card,
)
from node.executors.training import batch_order, lm_blocks, mean_loss, optimize
from registry.errors import ModelError
from registry.jobs import JobKind, TrainParams, read_text
from registry.model.safety import load_config, load_tokenizer

EVAL_BLOCKS = 8


def run(model_dir: Path, input_path: Path, params: TrainParams, out_dir: Path) -> ExecutorResult:
    """Run one TRAIN job (see module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM

    if model_family(model_dir) != "causal_lm":
        raise ModelError(
            "TRAIN needs a causal LM config (architectures: *ForCausalLM/*LMHeadModel)"
        )
    text = read_text(input_path)
    config = load_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    blocks = lm_blocks(tokenizer, text, params.seq_len)
    with deterministic(params.seed):
        try:
            model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
                config, dtype=torch.float32
            )
        except ValueError as exc:
            raise ModelError(f"cannot build a causal LM from the config: {exc}") from exc
        order = batch_order(len(blocks), params.batch_size, params.steps, params.seed)

        def batch(step: int) -> dict[str, torch.Tensor]:
            ids = blocks[order[step]]
            return {"input_ids": ids, "labels": ids}

        held = [
            {"input_ids": blocks[i : i + 1], "labels": blocks[i : i + 1]}
            for i in range(min(EVAL_BLOCKS, len(blocks)))
        ]
        before = mean_loss(model, held)
        losses = optimize(
            model,
            batch,
            steps=params.steps,
            lr=params.lr,
            warmup_steps=params.warmup_steps,
            weight_decay=params.weight_decay,
            grad_clip=params.grad_clip,
        )
        after = mean_loss(model, held)
    metrics: dict[str, float | int | str] = {
        "steps": params.steps,
        "blocks": len(blocks),
        "tokens_seen": params.steps * min(params.batch_size, len(blocks)) * blocks.shape[1],
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "eval_loss_before": before,
        "eval_loss_after": after,
        "perplexity_after": math.exp(min(after, 50.0)),
    }
    target = out_dir / MODEL_SUBDIR
    save_model_dir(model, model_dir, target)
    write_card(
        target, "Causal LM trained from scratch", JobKind.TRAIN.name, params.model_dump(), metrics
    )
    return finish(
        out_dir, {"kind": JobKind.TRAIN.name, "losses": losses}, metrics, produces_model=True
    )
