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

chat/generate decode with the serving runtime's loop (:class:`~node.models.TextGenerator`):
the same prompt, params and seed give the same tokens as a direct request, and ``params.stop``
strings end the text exactly as a request's ``stop`` does (``finish_reason`` ``"stop"``, the
stop string left out).

Determinism: decoding is greedy unless ``temperature > 0``; sampling draws from a generator
seeded with ``params.seed``. Same model, input and params → byte-identical ``result.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.executors import hot, verify
from node.executors.common import ExecutorResult, deterministic, finish
from node.models import (
    ContextOverflowError,
    EmbeddingModel,
    EmptyPromptError,
    GenerationParams,
    NoChatTemplateError,
    TextClassifier,
    TextGenerator,
)
from registry.jobs import (
    ChatParams,
    ClassifyParams,
    EmbedParams,
    GenerateParams,
    InferParams,
    InvalidJobInputError,
    VerifyParams,
    chat_messages,
    infer_document,
    input_texts,
    read_input,
)


def run(model_dir: Path, input_path: Path, params: InferParams, out_dir: Path) -> ExecutorResult:
    """Run one INFER job (see module docstring for formats; ``verify``: :mod:`.verify`)."""
    if isinstance(params, VerifyParams):
        return verify.run(model_dir, input_path, params, out_dir)
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


def _generate(
    model_dir: Path, doc: dict[str, Any], params: ChatParams | GenerateParams
) -> dict[str, Any]:
    messages = chat_messages(doc) if isinstance(params, ChatParams) else None
    prompt = doc.get("prompt")
    if messages is None and not isinstance(prompt, str):
        raise InvalidJobInputError("'prompt' must be a string")
    generator = hot.load(model_dir, "generator", lambda: TextGenerator(model_dir))
    decoding = GenerationParams(
        max_tokens=params.max_new_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        seed=params.seed,
        stop=params.stop,
    )
    try:
        if messages is not None:
            ready = generator.chat_prompt(messages, decoding)
        else:
            ready = generator.text_prompt(str(prompt), decoding)
    except NoChatTemplateError:
        raise InvalidJobInputError("this model has no chat template; use task 'generate'") from None
    except EmptyPromptError:
        raise InvalidJobInputError("empty prompt and the tokenizer has no BOS token") from None
    except ContextOverflowError as exc:
        raise InvalidJobInputError(
            f"prompt ({exc.prompt_tokens} tokens) + max_new_tokens ({exc.max_tokens}) "
            f"exceeds the model's context of {exc.context} tokens"
        ) from None
    text, done = generator.complete(ready)
    usage = {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens}
    return {
        "task": params.task,
        "text": text,
        "finish_reason": done.finish_reason,
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
