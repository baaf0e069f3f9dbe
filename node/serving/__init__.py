"""Direct inference serving, shared by the worker node and the gateway: the package's one face.

Everything outside ``node.serving`` imports from here (``from node.serving import ...``), never
from a submodule. Inside:

- :mod:`~node.serving.runtime` — :class:`InferenceRuntime`: hot models per version CID (LRU),
  dynamic batching for encoders, generation slots with cancellable token streaming;
- :mod:`~node.serving.batching` — dynamic batching of encoder calls (the decode loop itself is
  :mod:`node.models`'s, shared with INFER jobs);
- :mod:`~node.serving.handlers` — OpenAI semantics: :class:`OpenAIService` checks a request into
  a :class:`Call` and runs calls in process;
- :mod:`~node.serving.router` — the one OpenAI-compatible router,
  ``create_openai_router(service, authorize, dispatch)``, for the worker and the gateway;
- :mod:`~node.serving.http` — JSON, Server-Sent Events, error bodies, OpenAPI ``responses``;
- :mod:`~node.serving.errors` — serving errors and the one translation of errors to HTTP;
- :mod:`~node.serving.catalog` — cached model resolution and on-chain access checks;
- :mod:`~node.serving.worker` — the worker's hook (``Node.runtime``);
- :mod:`~node.serving.grants` — the worker's check of a gateway's per-request grant;
- :mod:`~node.serving.allocator`, :mod:`~node.serving.lanes`, :mod:`~node.serving.cache` —
  process memory, torch lanes, and the TTL caches of chain answers.
"""

from node.models import GenerationParams
from node.serving.allocator import retain_freed_memory
from node.serving.cache import AsyncCache
from node.serving.catalog import Catalog, Target
from node.serving.errors import (
    InvalidRequestError,
    MaxTokensError,
    NoAccessError,
    ServingError,
    UnsupportedParameterError,
    to_response,
)
from node.serving.grants import GrantChecker, receipt_domain, same_domain
from node.serving.handlers import (
    Call,
    Limits,
    OpenAIService,
    chat_body,
    completion_body,
    embedding_body,
)
from node.serving.http import (
    ERROR_RESPONSES,
    SSE_HEADERS,
    STREAMING,
    dumps,
    error_body,
    json_response,
)
from node.serving.lanes import default_lanes
from node.serving.metrics import LATENCY_BUCKETS, ServingMetrics
from node.serving.router import (
    Bodies,
    add_embeddings_fast_path,
    create_openai_router,
    run_here,
)
from node.serving.runtime import InferenceRuntime, RuntimeConfig, freeze_gc_after_loads
from node.serving.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModelCard,
)
from node.serving.worker import WorkerServing

__all__ = [
    "ERROR_RESPONSES",
    "LATENCY_BUCKETS",
    "SSE_HEADERS",
    "STREAMING",
    "AsyncCache",
    "Bodies",
    "Call",
    "Catalog",
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "GenerationParams",
    "GrantChecker",
    "InferenceRuntime",
    "InvalidRequestError",
    "Limits",
    "MaxTokensError",
    "ModelCard",
    "NoAccessError",
    "OpenAIService",
    "RuntimeConfig",
    "ServingError",
    "ServingMetrics",
    "Target",
    "UnsupportedParameterError",
    "WorkerServing",
    "add_embeddings_fast_path",
    "chat_body",
    "completion_body",
    "create_openai_router",
    "default_lanes",
    "dumps",
    "embedding_body",
    "error_body",
    "freeze_gc_after_loads",
    "json_response",
    "receipt_domain",
    "retain_freed_memory",
    "run_here",
    "same_domain",
    "to_response",
]
