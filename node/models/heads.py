"""An encoder task's whole computation as one module: model, pooling, normalisation, softmax.

The encoders (:mod:`node.models.encoders`) run these eagerly or as one TorchScript trace
(:mod:`node.models.tracing`); keeping pooling inside the module means a traced batch takes
the GIL twice (call and return) instead of once per pooling op.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

Pooling = Literal["mean", "cls", "max"]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [n, t, d] over positions where ``mask`` [n, t] is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class _Head(torch.nn.Module):
    """The model called on the tokenizer's tensors; subclasses shape its output (:meth:`finish`)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.finish(self.model(**inputs), attention_mask)

    def finish(self, output: Any, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class EmbeddingHead(_Head):
    """``{"embeddings": float32 [n, d]}``: pooled last hidden state, optionally L2-normalised."""

    def __init__(self, model: Any, pooling: Pooling, normalize: bool) -> None:
        super().__init__(model)
        self.pooling = pooling
        self.normalize = normalize

    def finish(self, output: Any, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden: torch.Tensor = output.last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pad = attention_mask.unsqueeze(-1) == 0
            pooled = hidden.masked_fill(pad, float("-inf")).amax(dim=1)
        else:
            pooled = mean_pool(hidden, attention_mask)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        return {"embeddings": pooled.float()}


class ClassifierHead(_Head):
    """``{"probabilities": float32 [n, labels]}``: softmax over the model's logits."""

    def finish(self, output: Any, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        del attention_mask
        return {"probabilities": torch.softmax(output.logits.float(), dim=-1)}
