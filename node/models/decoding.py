"""Pieces of the token-by-token decode loop that do not touch the model.

- :func:`pick_token`: greedy (``temperature == 0``) or temperature + nucleus (``top_p``)
  sampling from a seeded generator;
- :class:`Detokenizer`: turns one new token id at a time into the text it adds, holding back
  incomplete UTF-8 sequences (the prefix/read offset scheme of TGI and vLLM);
- :class:`StopMatcher`: finds stop strings across token boundaries and holds back any tail that
  could still become one, so a streamed client never sees a stop string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase


def pick_token(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """The next token id from ``logits`` ``[vocab]`` (float)."""
    import torch

    if temperature <= 0.0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        keep = cumulative - sorted_probs < top_p
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice].item())
    return int(torch.multinomial(probs, 1, generator=generator).item())


@dataclass
class Detokenizer:
    """Incremental decoding of generated ids (special tokens skipped)."""

    tokenizer: PreTrainedTokenizerBase
    ids: list[int] = field(default_factory=list)
    prefix_offset: int = 0
    read_offset: int = 0

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (possibly empty)."""
        self.ids.append(token_id)
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        text = self._decode(self.ids[self.prefix_offset :])
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return text[len(prefix) :]
        return ""

    def flush(self) -> str:
        """Text still held back at the end (an incomplete UTF-8 tail, decoded as is)."""
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        text = self._decode(self.ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.ids)
        return text[len(prefix) :] if len(text) > len(prefix) else ""


@dataclass
class StopMatcher:
    """Track generated text against stop strings.

    :meth:`feed` returns the text that is safe to emit; :attr:`stopped` turns true when a stop
    string appeared (the text before it has then been emitted, the stop string never is).
    """

    stops: tuple[str, ...]
    text: str = ""
    emitted: int = 0
    stopped: bool = False

    def feed(self, piece: str) -> str:
        """Add ``piece``; return what may be emitted now."""
        if self.stopped or not piece:
            return ""
        self.text += piece
        if not self.stops:
            self.emitted = len(self.text)
            return piece
        longest = max(len(s) for s in self.stops)
        window = max(0, self.emitted - longest + 1)
        hits = [i for i in (self.text.find(s, window) for s in self.stops) if i >= 0]
        if hits:
            end = min(hits)
            self.stopped = True
        else:
            end = len(self.text) - self._held_back()
        out = self.text[self.emitted : max(end, self.emitted)]
        self.emitted = max(end, self.emitted)
        return out

    def flush(self) -> str:
        """At the end of generation: everything not yet emitted (no stop string matched)."""
        if self.stopped:
            return ""
        out = self.text[self.emitted :]
        self.emitted = len(self.text)
        return out

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.text)), best, -1):
                if self.text.endswith(stop[:k]):
                    best = k
                    break
        return best
