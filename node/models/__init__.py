"""The model runtime: loaded models and how they compute, shared by INFER jobs and serving.

Both the job executors (:mod:`node.executors`) and direct serving (:mod:`node.serving`) run
models through this package and nothing else, so a job and a request on the same model compute
the same way; neither of them imports the other.

- :mod:`~node.models.encoders` — :class:`EmbeddingModel`, :class:`TextClassifier`: batched text
  encoders, eager or as a checked TorchScript trace (:mod:`~node.models.tracing`) of their
  task's whole computation (:mod:`~node.models.heads`);
- :mod:`~node.models.generation` — :class:`TextGenerator`: a causal LM and the one token-by-token
  decode loop (greedy or seeded sampling, stop strings), with its model-free pieces in
  :mod:`~node.models.decoding`;
- :mod:`~node.models.errors` — inputs a model cannot take, translated by each caller.

Importing this package does not import torch (the CLI imports the executors for job params).
"""

from node.models.encoders import EmbeddingModel, TextClassifier
from node.models.errors import (
    ContextOverflowError,
    EmptyPromptError,
    ModelInputError,
    NoChatTemplateError,
)
from node.models.generation import (
    Event,
    FinishReason,
    GenerationDone,
    GenerationParams,
    Prompt,
    TextDelta,
    TextGenerator,
)

__all__ = [
    "ContextOverflowError",
    "EmbeddingModel",
    "EmptyPromptError",
    "Event",
    "FinishReason",
    "GenerationDone",
    "GenerationParams",
    "ModelInputError",
    "NoChatTemplateError",
    "Prompt",
    "TextClassifier",
    "TextDelta",
    "TextGenerator",
]
