"""A loaded causal LM and its token-by-token decode loop: the one way text is generated.

Direct serving (streamed chat and completion) and INFER jobs both decode with
:meth:`TextGenerator.steps`, so the same prompt, params and seed give the same tokens on both
paths, stop strings included. Serving calls one step at a time on its torch lane and hands each
piece of text to the event loop as soon as it is decoded; a job runs the steps to the end
(:meth:`TextGenerator.complete`). Per step:

1. stop if the consumer cancelled (client gone) — the thread ends, its slot frees;
2. one forward pass over the new token with the KV cache (the whole prompt on the first step,
   computing logits for the last position only);
3. pick the next token (greedy, or sampled with temperature/top_p from a seeded generator);
4. end on an end-of-sequence id; otherwise detokenize incrementally, check stop strings, and
   emit the text that is safe to show.

The prompt is built with the model's chat template (chat) or tokenized as is (completion),
and checked against the context window before any work.
"""

from __future__ import annotations

import inspect
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from node.models.decoding import Detokenizer, StopMatcher, pick_token
from node.models.errors import ContextOverflowError, EmptyPromptError, NoChatTemplateError
from registry.model.safety import load_causal_lm, load_tokenizer

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationParams:
    """How to decode: ``temperature == 0`` is greedy; ``seed`` makes sampling repeatable."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """A tokenized prompt ready to decode from."""

    input_ids: list[int]
    params: GenerationParams


@dataclass(frozen=True)
class TextDelta:
    """Newly decoded text."""

    text: str


@dataclass(frozen=True)
class GenerationDone:
    """The end of a generation, with token counts."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cancelled: bool = False


Event = TextDelta | GenerationDone


def stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """EOS ids of the generation config, model config and tokenizer, plus ChatML's end marker."""
    ids: set[int] = set()
    for source in (model.generation_config, model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        ids.update([value] if isinstance(value, int) else value or [])
    end_marker = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_marker, int) and end_marker != tokenizer.unk_token_id:
        ids.add(end_marker)
    return sorted(ids)


class TextGenerator:
    """A causal LM and its tokenizer, opened through :mod:`registry.model.safety`.

    Args:
        model_dir: a verified model directory.
    """

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.model = load_causal_lm(self.model_dir)
        self.stop_ids = frozenset(stop_ids(self.model, self.tokenizer))
        config = self.model.config
        self.context: int | None = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        accepts = inspect.signature(self.model.forward).parameters
        self._keep_last: dict[str, Any] = (
            {"logits_to_keep": 1} if "logits_to_keep" in accepts else {}
        )

    # --- prompts -------------------------------------------------------------------------------

    def chat_prompt(self, messages: list[dict[str, str]], params: GenerationParams) -> Prompt:
        """The chat-templated prompt for ``messages``.

        Raises:
            NoChatTemplateError: the model has no chat template.
            ContextOverflowError: prompt + ``max_tokens`` exceed the context window.
        """
        if not self.tokenizer.chat_template:
            raise NoChatTemplateError("this model has no chat template")
        encoded: Any = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True
        )
        return self._checked([int(i) for i in encoded["input_ids"]], params)

    def text_prompt(self, prompt: str, params: GenerationParams) -> Prompt:
        """The tokenized ``prompt`` (a BOS token when empty and the model has one).

        Raises:
            EmptyPromptError: ``prompt`` is empty and the tokenizer has no BOS token.
            ContextOverflowError: prompt + ``max_tokens`` exceed the context window.
        """
        encoded: Any = self.tokenizer(prompt)
        ids = [int(i) for i in encoded["input_ids"]]
        if not ids and self.tokenizer.bos_token_id is not None:
            ids = [int(self.tokenizer.bos_token_id)]
        if not ids:
            raise EmptyPromptError("the prompt is empty and the tokenizer has no BOS token")
        return self._checked(ids, params)

    def _checked(self, ids: list[int], params: GenerationParams) -> Prompt:
        if self.context and len(ids) + params.max_tokens > self.context:
            raise ContextOverflowError(len(ids), params.max_tokens, self.context)
        return Prompt(ids, params)

    # --- decoding ------------------------------------------------------------------------------

    def complete(self, prompt: Prompt) -> tuple[str, GenerationDone]:
        """Decode ``prompt`` to its end in the calling thread: the whole text and how it ended."""
        parts: list[str] = []
        for events in self.steps(prompt, threading.Event()):
            for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                else:
                    return "".join(parts), event
        raise AssertionError("the decode loop ended without GenerationDone")

    def steps(self, prompt: Prompt, cancel: threading.Event) -> Iterator[list[Event]]:
        """Decode ``prompt`` one forward pass per ``next()``, yielding that step's events.

        The serving runtime calls ``next()`` on its single torch thread, so decode steps of
        several streams and embedding batches interleave there. No context spans a ``yield``:
        each step enters ``inference_mode`` itself. The last list ends with
        :class:`GenerationDone`.
        """
        import torch

        p = prompt.params
        generator: torch.Generator | None = None
        if p.temperature > 0:
            generator = torch.Generator()
            generator.manual_seed(p.seed if p.seed is not None else secrets.randbits(63))
        detok = Detokenizer(self.tokenizer)
        stops = StopMatcher(p.stop)
        ids = torch.tensor([prompt.input_ids])
        past: Any = None
        count = 0
        reason: FinishReason = "length"
        cancelled = False
        while count < p.max_tokens:
            if cancel.is_set():
                cancelled = True
                break
            with torch.inference_mode():
                out = self.model(
                    input_ids=ids, past_key_values=past, use_cache=True, **self._keep_last
                )
                token = pick_token(out.logits[0, -1], p.temperature, p.top_p, generator)
            past = out.past_key_values
            count += 1  # the end-of-sequence token counts as a completion token
            if token in self.stop_ids:
                reason = "stop"
                break
            piece = stops.feed(detok.push(token))
            if stops.stopped:
                reason = "stop"
                yield [TextDelta(piece)] if piece else []
                break
            yield [TextDelta(piece)] if piece else []
            ids = torch.tensor([[token]])
        final: list[Event] = []
        if not cancelled:
            tail = stops.feed(detok.flush()) + stops.flush()
            if tail:
                final.append(TextDelta(tail))
        final.append(GenerationDone(reason, len(prompt.input_ids), count, cancelled))
        yield final
