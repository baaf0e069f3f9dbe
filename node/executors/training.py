"""The optimisation loop and data plumbing shared by TRAIN and FINETUNE.

Deterministic by construction: batch order comes from a ``torch.Generator`` seeded with the job
seed (epoch-wise permutations), dropout draws from the global RNG seeded by
:func:`node.executors.common.deterministic`, and the loop has no wall-clock dependence.

Loop (:func:`optimize`), per step:
1. take the step's batch (pre-computed order), forward in train mode, read ``loss``;
2. backward, clip the gradient norm, AdamW step, warmup-then-linear-decay LR schedule;
3. record the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from registry.jobs import InvalidJobInputError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Batch = dict[str, "torch.Tensor"]
IGNORE_INDEX = -100


def batch_order(n_items: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Item indices for each step: concatenated seeded permutations, cut into batches."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    size = min(batch_size, n_items)
    order: list[int] = []
    while len(order) < size * steps:
        order.extend(torch.randperm(n_items, generator=generator).tolist())
    return [order[i * size : (i + 1) * size] for i in range(steps)]


def lm_blocks(tokenizer: PreTrainedTokenizerBase, text: str, seq_len: int) -> torch.Tensor:
    """Tokenize ``text`` (+ EOS) and cut it into ``[n, seq_len]`` blocks (one shorter if tiny)."""
    import torch

    ids: list[int] = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    if len(ids) < 2:
        raise InvalidJobInputError("training text is empty")
    n_blocks = len(ids) // seq_len
    if n_blocks == 0:
        return torch.tensor([ids])
    return torch.tensor(ids[: n_blocks * seq_len]).view(n_blocks, seq_len)


def pad_batch(
    rows: Sequence[dict[str, list[int]]], pad_id: int, label_key: str = "labels"
) -> Batch:
    """Right-pad token rows to the longest; padded labels are ignored by the loss."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(row[label_key])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def optimize(
    model: PreTrainedModel,
    batch_for_step: Callable[[int], Batch],
    *,
    steps: int,
    lr: float,
    warmup_steps: int,
    weight_decay: float,
    grad_clip: float,
) -> list[float]:
    """Train the model's trainable parameters for ``steps`` steps; return the loss per step."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InvalidJobInputError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (steps - step) / max(1, steps - warmup_steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    losses: list[float] = []
    for step in range(steps):
        loss = model(**batch_for_step(step)).loss
        if not torch.isfinite(loss):
            raise InvalidJobInputError(f"loss became non-finite at step {step}; lower the lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.train(False)
    return losses


def mean_loss(model: PreTrainedModel, batches: Sequence[Batch]) -> float:
    """Mean of the per-batch losses in eval mode (no dropout, no gradients)."""
    import torch

    was_training = model.training
    model.train(False)
    with torch.inference_mode():
        values = [float(model(**batch).loss) for batch in batches]
    model.train(was_training)
    return sum(values) / len(values)
