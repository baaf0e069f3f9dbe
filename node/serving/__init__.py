"""Direct inference serving, shared by the worker node and the gateway.

- :mod:`~node.serving.runtime` — :class:`InferenceRuntime`: hot models per version CID (LRU),
  dynamic batching for encoders, generation slots with cancellable token streaming;
- :mod:`~node.serving.generation` / :mod:`~node.serving.decoding` — the decode loop;
- :mod:`~node.serving.handlers` — OpenAI semantics (validation, response shapes, SSE);
- :mod:`~node.serving.router` — the OpenAI-compatible FastAPI router factory;
- :mod:`~node.serving.catalog` — cached model resolution and on-chain access checks;
- :mod:`~node.serving.errors` — serving errors and their one HTTP translation;
- :mod:`~node.serving.worker` — the worker's hook (``Node.runtime``);
- :mod:`~node.serving.allocator` — serving processes keep freed heap memory (no page faults
  per batch).
"""

from node.serving.catalog import Catalog, Target
from node.serving.handlers import Limits, OpenAIService
from node.serving.metrics import ServingMetrics
from node.serving.router import create_openai_router
from node.serving.runtime import InferenceRuntime, RuntimeConfig

__all__ = [
    "Catalog",
    "InferenceRuntime",
    "Limits",
    "OpenAIService",
    "RuntimeConfig",
    "ServingMetrics",
    "Target",
    "create_openai_router",
]
