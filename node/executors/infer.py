"""INFER executor: chat, text completion, sentence embeddings, sequence classification.

Inputs (one JSON document, chosen by ``params.task``):

- ``chat``: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``
- ``generate``: ``{"prompt": "..."}``
- ``embed`` / ``classify``: ``{"texts": ["...", ...]}`` (1 to 1024 texts)

Output ``result.json`` (canonical, floats rounded to 6 decimals):

- chat/generate: ``{"task", "text", "finish_reason": "stop"|"length",
  "usage": {"prompt_tokens", "completion_tokens"}, "metrics": {...}}``
- embed: ``{"task", "dim", "embeddings": [[...], ...], "metrics": {...}}``
- classify: ``{"task", "labels", "predictions": [{"label", "score", "scores"}], "metrics"}``

Determinism: decoding is greedy unless ``temperature > 0``; sampling draws from a generator
seeded with ``params.seed``. Same model, input and params → byte-identical ``result.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.executors import hot
from node.executors.common import ExecutorResult, deterministic, finish
from node.executors.encoders import EmbeddingModel, TextClassifier
from registry.jobs import (
    ChatParams,
    ClassifyParams,
    EmbedParams,
    GenerateParams,
    InferParams,
    InvalidJobInputError,
    chat_messages,
    infer_document,
    input_texts,
    read_input,
)
from registry.model.safety import load_causal_lm, load_config, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def run(model_dir: Path, input_path: Path, params: InferParams, out_dir: Path) -> ExecutorResult:
    """Run one INFER job (see module docstring for formats)."""
    doc = infer_document(read_input(input_path))
    seed = params.seed if isinstance(params, ChatParams | GenerateParams) else 0
    with deterministic(seed), hot.session():
        if isinstance(params, ChatParams | GenerateParams):
            payload = _generate(model_dir, doc, params)
        elif isinstance(params, EmbedParams):
            payload = _embed(model_dir, doc, params)
        else:
            payload = _classify(model_dir, doc, params)
    metrics = payload.pop("metrics")
    return finish(out_dir, payload, metrics, produces_model=False)


# --- text generation -------------------------------------------------------------------------


def _stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """EOS ids of the generation config, model config and tokenizer, plus ChatML's end marker."""
    ids: set[int] = set()
    for source in (model.generation_config, model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        ids.update([value] if isinstance(value, int) else value or [])
    end_marker = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_marker, int) and end_marker != tokenizer.unk_token_id:
        ids.add(end_marker)
    return sorted(ids)


def _generate(
    model_dir: Path, doc: dict[str, Any], params: ChatParams | GenerateParams
) -> dict[str, Any]:
    import torch
    from transformers import GenerationConfig

    messages = chat_messages(doc) if isinstance(params, ChatParams) else None
    prompt = doc.get("prompt")
    if messages is None and not isinstance(prompt, str):
        raise InvalidJobInputError("'prompt' must be a string")
    tokenizer = hot.load(model_dir, "tokenizer", lambda: load_tokenizer(model_dir))
    encoded: Any
    if messages is not None:
        if not tokenizer.chat_template:
            raise InvalidJobInputError("this model has no chat template; use task 'generate'")
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
    else:
        encoded = tokenizer(prompt, return_tensors="pt")
    input_ids: torch.Tensor = encoded["input_ids"]
    if input_ids.shape[1] == 0:
        if tokenizer.bos_token_id is None:
            raise InvalidJobInputError("empty prompt and the tokenizer has no BOS token")
        input_ids = torch.tensor([[tokenizer.bos_token_id]])
    attention_mask = torch.ones_like(input_ids)
    prompt_tokens = int(input_ids.shape[1])
    config = load_config(model_dir)
    context = getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None
    )
    if context and prompt_tokens + params.max_new_tokens > context:
        raise InvalidJobInputError(
            f"prompt ({prompt_tokens} tokens) + max_new_tokens ({params.max_new_tokens}) "
            f"exceeds the model's context of {context} tokens"
        )
    model = hot.load(model_dir, "causal_lm", lambda: load_causal_lm(model_dir))
    stop_ids = _stop_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    sampling = params.temperature > 0
    settings: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "do_sample": sampling,
        "eos_token_id": stop_ids,
        "pad_token_id": pad_id,
    }
    if sampling:
        settings.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
    generation = GenerationConfig.from_dict(settings)
    torch.manual_seed(params.seed)
    with torch.inference_mode():
        output = model.generate(  # type: ignore[operator]
            input_ids=input_ids, attention_mask=attention_mask, generation_config=generation
        )
    new_tokens: list[int] = output[0, prompt_tokens:].tolist()
    finish_reason = "stop" if new_tokens and new_tokens[-1] in stop_ids else "length"
    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(new_tokens)}
    return {
        "task": params.task,
        "text": text,
        "finish_reason": finish_reason,
        "usage": usage,
        "metrics": usage,
    }


# --- encoders --------------------------------------------------------------------------------


def _embed(model_dir: Path, doc: dict[str, Any], params: EmbedParams) -> dict[str, Any]:
    texts = input_texts(doc)
    encoder = hot.load(
        model_dir,
        ("embed", params.max_length, params.normalize),
        lambda: EmbeddingModel(model_dir, max_length=params.max_length, normalize=params.normalize),
    )
    vectors: list[list[float]] = []
    for start in range(0, len(texts), params.batch_size):
        vectors.extend(encoder.encode_lists(texts[start : start + params.batch_size]))
    return {
        "task": "embed",
        "dim": encoder.dim,
        "embeddings": vectors,
        "metrics": {"texts": len(texts), "dim": encoder.dim},
    }


def _classify(model_dir: Path, doc: dict[str, Any], params: ClassifyParams) -> dict[str, Any]:
    texts = input_texts(doc)
    classifier = hot.load(
        model_dir,
        ("classify", params.max_length),
        lambda: TextClassifier(model_dir, max_length=params.max_length),
    )
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(texts), params.batch_size):
        predictions.extend(classifier.classify(texts[start : start + params.batch_size]))
    return {
        "task": "classify",
        "labels": classifier.labels,
        "predictions": predictions,
        "metrics": {"texts": len(texts)},
    }
