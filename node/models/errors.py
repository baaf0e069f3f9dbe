"""Inputs a loaded model cannot take, as typed errors carrying what was wrong.

The model runtime is shared by INFER jobs and direct serving, which word the same problem for
different callers (``max_new_tokens`` in a job's params, ``max_tokens`` in an OpenAI request):
each translates these into its own error once, at its boundary (the INFER executor into
``InvalidJobInputError``, the serving runtime into a 400 serving error). All are
``ValueError``: the caller sent something the model cannot run.
"""

from __future__ import annotations

from registry.errors import AnchormlError


class ModelInputError(AnchormlError, ValueError):
    """An input the loaded model cannot take (e.g. no texts to encode)."""

    code = "invalid_model_input"


class NoChatTemplateError(ModelInputError):
    """A chat prompt for a model without a chat template."""

    code = "no_chat_template"


class EmptyPromptError(ModelInputError):
    """An empty text prompt for a model whose tokenizer has no BOS token to start from."""

    code = "empty_prompt"


class ContextOverflowError(ModelInputError):
    """The prompt plus the tokens to generate do not fit the model's context window.

    Attributes:
        prompt_tokens: tokens in the prompt.
        max_tokens: tokens asked for.
        context: the model's context window.
    """

    code = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, max_tokens: int, context: int) -> None:
        super().__init__(
            f"the prompt ({prompt_tokens} tokens) plus {max_tokens} new tokens exceeds the "
            f"model's context of {context} tokens"
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context = context
