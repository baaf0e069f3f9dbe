"""A TorchScript trace of an encoder's computation, used only where it gives the same bits.

Why: an eager forward of a transformers encoder is a few hundred Python-level calls, and each
torch op hands the GIL back and takes it again. In a serving process the event loop (HTTP
parsing, JSON, pydantic) holds the GIL between its awaits, so a torch lane that finishes an op
waits for it — up to the interpreter's switch interval each time. A traced module runs the
whole graph in TorchScript's C++ interpreter with the GIL released, so a batch takes the GIL a
handful of times (tokenizing, the call, its return) instead of once per op.

How it stays safe:

- tracing records the ops run on one example; an encoder's graph does not depend on the
  data, but a padding-dependent shortcut could be baked in, so the example has padding
  (texts of different lengths), and the trace is *checked* on that example and on a batch of
  another size and length without padding: unless every output tensor equals the eager one
  bit for bit, the trace is dropped and the eager module serves;
- the executor runs the graph as traced (``optimized_execution(False)``): no fusion or shape
  specialisation that could change a result's bits or recompile under load;
- any failure to trace (an architecture the tracer cannot follow) falls back to eager with a
  log line — a slower forward, never a different answer.

``torch.jit.trace`` is deprecated upstream in favour of ``torch.compile`` / ``torch.export``;
torch is pinned here (2.13) and the eager fallback keeps working when a release drops it.
``torch.compile`` was not tried: it compiles at every model load and needs a C++ toolchain on
every worker.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Forward = Callable[[Mapping[str, "torch.Tensor"]], Mapping[str, "torch.Tensor"]]

# Two texts of different lengths: the trace sees padding and a real attention mask.
_TRACE_TEXTS = ("a traced example", "a longer traced example, so that the first one is padded")
# Checked on another batch size and length, with no padding at all.
_CHECK_TEXTS = ("check one two three four five",) * 3


def _outputs(value: Any) -> dict[str, torch.Tensor]:
    """The tensors of a module's output (a dict, or a transformers ``ModelOutput``)."""
    return {k: v for k, v in dict(value).items() if v is not None}


def eager_forward(module: Any) -> Forward:
    """``module`` called on a tokenized batch, as it is."""

    def eager(batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        return _outputs(module(**batch))

    return eager


def traced_forward(
    module: Any, tokenize: Callable[[list[str]], dict[str, torch.Tensor]]
) -> Forward:
    """``module`` as a checked TorchScript trace, or :func:`eager_forward` when that fails.

    Args:
        module: an encoder's computation in eval mode, taking the tokenizer's tensors as
            keyword arguments and returning a dict of tensors (:mod:`node.models.heads`).
        tokenize: the encoder's own tokenization of a list of texts (same keys as in serving).
    """
    import torch

    eager = eager_forward(module)
    name = type(module).__name__

    example, check = tokenize(list(_TRACE_TEXTS)), tokenize(list(_CHECK_TEXTS))
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings and the deprecation notice
            script = torch.jit.trace(  # type: ignore[no-untyped-call]
                module, example_kwarg_inputs=example, strict=False, check_trace=False
            )
    except Exception as exc:  # noqa: BLE001 - any tracer failure means: serve eager
        log.info("serving %s eager: tracing failed (%s)", name, exc)
        return eager

    def traced(batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        with torch.jit.optimized_execution(False):  # type: ignore[attr-defined]
            return _outputs(script(**batch))

    with torch.inference_mode():
        for batch in (example, check):
            want, got = eager(batch), traced(batch)
            same = want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
            if not same:
                log.info("serving %s eager: its trace differs from eager", name)
                return eager
    return traced
