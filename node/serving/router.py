"""FastAPI router factory for the OpenAI-compatible endpoints of a serving process.

``create_openai_router(service, authorize, list_models)`` gives ``/v1/models``,
``/v1/embeddings``, ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/classifications``.
``authorize(model, request)`` decides which version a request may use (resolution, served
versions, bearer token, on-chain access) and raises an anchorml error otherwise; errors are
translated by the routes themselves (:class:`ErrorMappingRoute`), so the router works on any app.
:func:`add_embeddings_fast_path` serves ``POST /v1/embeddings`` on an app with the same handler,
around FastAPI's per-request machinery (:mod:`node.serving.fastpath`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from node.serving.catalog import Target
from node.serving.errors import MAX_BODY_BYTES, ErrorMappingRoute, to_response
from node.serving.fastpath import JsonFastPath
from node.serving.handlers import OpenAIService, json_response
from node.serving.schemas import (
    ERROR_RESPONSES,
    ChatCompletion,
    ChatCompletionRequest,
    ClassificationList,
    ClassificationRequest,
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ModelCard,
    ModelList,
)

Authorize = Callable[[str, Request], Awaitable[Target]]
ListModels = Callable[[], Awaitable[list[ModelCard]]]

#: One Server-Sent Event as OpenAPI 3.1 describes the items of ``text/event-stream``: ``data``
#: holds a JSON chunk (or ``[DONE]``), ``event`` its type (``message`` when unnamed).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data", "event"],
    "properties": {
        "data": {"type": "string", "description": "JSON payload, or [DONE] at the end"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
#: OpenAPI for endpoints that answer JSON or, with ``stream: true``, Server-Sent Events.
STREAMING: dict[str, Any] = {"content": {"text/event-stream": {"schema": SSE_EVENT}}}


def embeddings_handler(
    service: OpenAIService, authorize: Authorize
) -> Callable[[EmbeddingRequest, Request], Awaitable[Response]]:
    """``POST /v1/embeddings``: the route's handler and the fast path's."""

    async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
        return await service.embeddings(await authorize(body.model, request), body)

    return embeddings


def create_openai_router(
    service: OpenAIService, authorize: Authorize, list_models: ListModels
) -> APIRouter:
    """The OpenAI-compatible routes over ``service``."""
    router = APIRouter(route_class=ErrorMappingRoute, responses=ERROR_RESPONSES, tags=["openai"])

    @router.get("/v1/models", response_model=ModelList)
    async def models() -> Response:
        cards = await list_models()
        return json_response({"object": "list", "data": [c.model_dump() for c in cards]})

    router.post("/v1/embeddings", response_model=EmbeddingList)(
        embeddings_handler(service, authorize)
    )

    @router.post("/v1/classifications", response_model=ClassificationList)
    async def classifications(body: ClassificationRequest, request: Request) -> Response:
        return await service.classifications(await authorize(body.model, request), body)

    @router.post("/v1/chat/completions", response_model=ChatCompletion, responses={200: STREAMING})
    async def chat(body: ChatCompletionRequest, request: Request) -> Response:
        return await service.chat(await authorize(body.model, request), body)

    @router.post("/v1/completions", response_model=Completion, responses={200: STREAMING})
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return await service.completions(await authorize(body.model, request), body)

    return router


def add_embeddings_fast_path(app: FastAPI, service: OpenAIService, authorize: Authorize) -> None:
    """Serve valid ``POST /v1/embeddings`` requests on ``app`` through :class:`JsonFastPath`
    (the router must be included too: it answers everything the fast path hands over)."""
    app.add_middleware(
        JsonFastPath,
        path="/v1/embeddings",
        body_model=EmbeddingRequest,
        handler=embeddings_handler(service, authorize),
        on_error=to_response,
        max_body=MAX_BODY_BYTES,
    )
