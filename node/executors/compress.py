"""COMPRESS executor: magnitude pruning and int8 weight-only quantization.

Which weights: every ``nn.Linear`` / GPT-2 ``Conv1D`` weight except output heads (``lm_head``,
``classifier``, ``score``) and weights tied to the input embeddings. Embeddings, norms and biases
are kept as they are.

- ``prune``: unstructured magnitude pruning to exactly ``round(sparsity * n)`` zeros, over all
  selected weights at once (``global``) or per weight matrix (``per_layer``); ties at the
  threshold are broken in parameter order, so the result is deterministic. Zeros are written into
  the weights (permanent; no masks or hooks remain). The directory keeps ``model.safetensors``,
  so its size does not shrink — sparse weights compress well in transit.
- ``int8``: symmetric per-output-channel int8 codes + float32 scales in
  ``model.int8.safetensors``, the layout documented in :mod:`registry.model.safety`, whose
  loaders dequantize on load. About 4× smaller than float32 (2× vs bfloat16) for those weights.
- ``prune+int8``: prune, then quantize (zeros stay exactly zero).

Input: the evaluation data for the before/after metric — a text file for a causal LM
(perplexity) or JSONL ``{"text","label"}`` for a classifier (accuracy); an empty file skips it.
The "after" metric is measured on the saved directory re-opened through the safe loader.
Output: ``out_dir/model/`` and ``result.json`` with ``size_before``/``size_after`` (bytes of
safetensors), ``sparsity`` and the metric before/after with its delta.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.executors.common import (
    MODEL_SUBDIR,
    ExecutorResult,
    Metric,
    copy_tokenizer_files,
    deterministic,
    finish,
    model_family,
    save_model_dir,
    weights_size,
    write_card,
)
from node.executors.eval import accuracy, perplexity
from registry.jobs import CompressParams, InvalidJobInputError, JobKind, read_jsonl, read_text
from registry.model.safety import (
    INT8_FORMAT,
    INT8_SCALE_SUFFIX,
    INT8_WEIGHTS_FILE,
    load_causal_lm,
    load_sequence_classifier,
    load_tokenizer,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

HEAD_NAMES = frozenset({"lm_head", "classifier", "score"})


def run(model_dir: Path, input_path: Path, params: CompressParams, out_dir: Path) -> ExecutorResult:
    """Run one COMPRESS job (see module docstring)."""
    family = model_family(model_dir)
    if family not in ("causal_lm", "sequence_classification"):
        raise InvalidJobInputError(f"COMPRESS supports causal LMs and classifiers, not {family}")
    target = out_dir / MODEL_SUBDIR
    with deterministic(0):
        model = _load(model_dir, family)
        tokenizer = load_tokenizer(model_dir)
        evaluate = _evaluator(input_path, family, tokenizer, params)
        size_before = weights_size(model_dir)
        metrics: dict[str, Metric] = {"method": params.method, "size_before": size_before}
        if evaluate:
            metrics.update({f"{k}_before": v for k, v in evaluate(model).items()})
        weights = prunable_weights(model)
        if params.method in ("prune", "prune+int8"):
            metrics["sparsity_target"] = params.sparsity
            prune(weights, params.sparsity, params.scope)
        metrics["sparsity"] = sparsity(weights)
        if params.method == "prune":
            save_model_dir(model, model_dir, target)
        else:
            save_int8(model, model_dir, target)
        size_after = weights_size(target)
        metrics.update(size_after=size_after, size_ratio=size_after / max(1, size_before))
        if evaluate:
            after = evaluate(_load(target, family))
            metrics.update({f"{k}_after": v for k, v in after.items()})
            for key in ("perplexity", "accuracy"):
                if key in after:
                    metrics[f"{key}_delta"] = float(after[key]) - float(metrics[f"{key}_before"])
    write_card(
        target,
        f"Compressed model ({params.method})",
        JobKind.COMPRESS.name,
        params.model_dump(),
        metrics,
    )
    return finish(out_dir, {"kind": JobKind.COMPRESS.name}, metrics, produces_model=True)


def _load(model_dir: Path, family: str) -> PreTrainedModel:
    if family == "causal_lm":
        return load_causal_lm(model_dir)
    return load_sequence_classifier(model_dir)


def _evaluator(
    input_path: Path, family: str, tokenizer: PreTrainedTokenizerBase, params: CompressParams
) -> Any:
    """A ``model -> metrics`` function for the input, or None when the input is empty."""
    text = read_text(input_path)
    if not text.strip():
        return None
    if family == "causal_lm":
        return lambda model: perplexity(model, tokenizer, text, params.eval)
    rows = read_jsonl(input_path)
    return lambda model: accuracy(model, tokenizer, rows, params.eval)


def prunable_weights(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """Selected weights by module name (see module docstring), in module order."""
    import torch
    from transformers.pytorch_utils import Conv1D

    embeddings = model.get_input_embeddings()
    skip = {id(embeddings.weight)} if embeddings is not None else set()
    selected: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear | Conv1D):
            continue
        if name.rsplit(".", 1)[-1] in HEAD_NAMES or id(module.weight) in skip:
            continue
        selected[name] = module.weight
    return selected


def prune(weights: dict[str, torch.Tensor], fraction: float, scope: str) -> None:
    """Zero exactly ``round(fraction * n)`` smallest-magnitude entries, globally or per weight."""
    import torch

    groups = [list(weights.values())] if scope == "global" else [[w] for w in weights.values()]
    with torch.no_grad():
        for group in groups:
            k = round(fraction * sum(w.numel() for w in group))
            if k == 0:
                continue
            magnitudes = [w.detach().abs().float().view(-1) for w in group]
            joined = torch.cat(magnitudes) if len(magnitudes) > 1 else magnitudes[0]
            threshold = torch.kthvalue(joined, k).values
            del joined
            below = [m < threshold for m in magnitudes]
            remaining = k - sum(int(b.sum()) for b in below)
            for w, mag, mask in zip(group, magnitudes, below, strict=True):
                ties = (mag == threshold).nonzero().view(-1)[: max(0, remaining)]
                remaining -= len(ties)
                # masked_fill_/index_fill_, not index_put_: under deterministic mode the latter
                # takes a sort-based path that is far slower on CPU
                flat = w.view(-1)
                flat.masked_fill_(mask, 0)
                flat.index_fill_(0, ties, 0)


def sparsity(weights: dict[str, torch.Tensor]) -> float:
    """Fraction of exact zeros over the selected weights."""
    import torch

    total = sum(w.numel() for w in weights.values())
    zeros = total - sum(int(torch.count_nonzero(w)) for w in weights.values())
    return zeros / total if total else 0.0


def quantize_int8(weight: torch.Tensor, channel_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes and float32 scales (one per slice along ``channel_dim``)."""
    import torch

    w = weight.detach().float()
    reduce_dim = 1 - channel_dim
    scale = w.abs().amax(dim=reduce_dim, keepdim=True) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    return codes, scale.contiguous()


def save_int8(model: PreTrainedModel, parent_dir: Path, target: Path) -> None:
    """Write config, tokenizer and ``model.int8.safetensors`` (layout: registry.model.safety)."""
    from safetensors.torch import save_file
    from transformers.pytorch_utils import Conv1D

    target.mkdir(parents=True, exist_ok=True)
    tied = set(model.get_expanded_tied_weights_keys(all_submodels=True))
    channel_dims = {}
    for name, _weight in prunable_weights(model).items():
        module = model.get_submodule(name)
        channel_dims[f"{name}.weight"] = 1 if isinstance(module, Conv1D) else 0
    tensors: dict[str, torch.Tensor] = {}
    dtype = next(model.parameters()).dtype
    for key, value in model.state_dict().items():
        if key in tied:
            continue
        if key in channel_dims:
            codes, scale = quantize_int8(value, channel_dims[key])
            tensors[key] = codes
            tensors[key + INT8_SCALE_SUFFIX] = scale
        else:
            tensors[key] = value.detach().clone().contiguous()
    metadata = {"format": "pt", "anchorml_quant": INT8_FORMAT, "dtype": str(dtype).split(".")[-1]}
    save_file(tensors, str(target / INT8_WEIGHTS_FILE), metadata=metadata)
    model.config.save_pretrained(str(target))
    if model.can_generate():
        model.generation_config.save_pretrained(str(target))
    copy_tokenizer_files(parent_dir, target)
