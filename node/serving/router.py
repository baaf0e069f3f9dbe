"""The one FastAPI router of the OpenAI-compatible endpoints, for the worker and the gateway.

``create_openai_router(service, authorize, dispatch, ...)`` gives ``/v1/models``,
``/v1/models/{model}``, ``/v1/embeddings``, ``/v1/chat/completions``, ``/v1/completions`` and
``/v1/classifications``. Every inference route takes the same three steps:

1. ``authorize(model, request)`` resolves the model reference and decides whether the caller may
   use it (served versions, bearer token, on-chain access, rate limits), or raises;
2. ``service.prepare`` checks the request (sampling parameters, prompt) into a :class:`Call`;
3. ``dispatch(call)`` decides where the call runs: it answers with the response of a run
   elsewhere (the gateway: a worker, or a job on chain), or hands the call back to run in this
   process (the worker always does: :func:`run_here`), which the router then does.

Errors are translated by the routes themselves (:class:`ErrorMappingRoute`, the one
translation of :mod:`node.serving.errors`), so the router works on any app.
:func:`add_embeddings_fast_path` serves ``POST /v1/embeddings`` with the same handler, around
FastAPI's per-request machinery (:mod:`node.serving.fastpath`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel

from node.serving.catalog import Target
from node.serving.errors import MAX_BODY_BYTES, ErrorMappingRoute, to_response
from node.serving.fastpath import JsonFastPath
from node.serving.handlers import PATHS, Call, Endpoint, OpenAIService
from node.serving.http import ERROR_RESPONSES, STREAMING, json_response
from node.serving.schemas import (
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
Dispatch = Callable[[Call], Awaitable[Response | Call]]
ListModels = Callable[[Request], Awaitable[list[ModelCard]]]
DescribeModel = Callable[[str, Request], Awaitable[ModelCard]]
#: The service itself, or (when it is built after the routes, as in the gateway's lifespan) a
#: function that finds it from the request.
ServiceSource = OpenAIService | Callable[[Request], OpenAIService]


@dataclass(frozen=True)
class Bodies:
    """The request body models of the inference routes (an app may extend OpenAI's, as the
    gateway does with its ``anchorml`` field)."""

    embeddings: type[BaseModel] = EmbeddingRequest
    classifications: type[BaseModel] = ClassificationRequest
    chat: type[BaseModel] = ChatCompletionRequest
    completions: type[BaseModel] = CompletionRequest


async def run_here(call: Call) -> Call:
    """The dispatch of a process that serves every call itself (the worker)."""
    return call


def _lookup(service: ServiceSource) -> Callable[[Request], OpenAIService]:
    if isinstance(service, OpenAIService):
        fixed = service
        return lambda _request: fixed
    return service


Handler = Callable[[Any, Request], Awaitable[Response]]


def inference_handler(
    endpoint: Endpoint, service: ServiceSource, authorize: Authorize, dispatch: Dispatch
) -> Handler:
    """The work of one inference route: authorize, check, dispatch (the route's handler and the
    fast path's)."""
    find = _lookup(service)

    async def handle(body: Any, request: Request) -> Response:
        target = await authorize(body.model, request)
        here = find(request)
        outcome = await dispatch(here.prepare(endpoint, target, body, request))
        return outcome if isinstance(outcome, Response) else await here.run(outcome)

    return handle


def _as_route(handler: Handler, body: type[BaseModel], name: str, doc: str) -> Handler:
    """``handler`` (a fresh closure) named, documented and with ``body``'s model in its
    signature: what FastAPI parses and documents."""
    handler.__name__, handler.__doc__ = name, doc
    handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=body),
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
            ),
        ],
        return_annotation=Response,
    )
    return handler


def create_openai_router(
    service: ServiceSource,
    authorize: Authorize,
    dispatch: Dispatch,
    *,
    list_models: ListModels,
    describe_model: DescribeModel,
    bodies: Bodies | None = None,
) -> APIRouter:
    """The OpenAI-compatible routes (see the module doc).

    Args:
        service: runs calls in this process (and checks every request).
        authorize: the version a request may use, or raises an anchorml error.
        dispatch: where a checked call runs: a response from elsewhere, or the call to run here
            (:func:`run_here`: always here).
        list_models: the cards of ``GET /v1/models``.
        describe_model: the card of ``GET /v1/models/{model}`` (raises when unknown).
        bodies: the request body models (OpenAI's by default).
    """
    bodies = bodies or Bodies()
    router = APIRouter(route_class=ErrorMappingRoute, responses=ERROR_RESPONSES, tags=["openai"])

    @router.get("/v1/models", response_model=ModelList, name="list_models")
    async def list_models_route(request: Request) -> Response:
        """The models this server answers for."""
        cards = await list_models(request)
        return json_response({"object": "list", "data": [c.model_dump() for c in cards]})

    @router.get("/v1/models/{model}", response_model=ModelCard, name="get_model")
    async def get_model(model: str, request: Request) -> Response:
        """One model reference, resolved (404 unknown, 410 revoked)."""
        return json_response((await describe_model(model, request)).model_dump())

    routes: tuple[tuple[Endpoint, type[BaseModel], dict[str, Any]], ...] = (
        ("embeddings", EmbeddingList, {}),
        ("classifications", ClassificationList, {}),
        ("chat", ChatCompletion, {"responses": {200: STREAMING}}),
        ("completions", Completion, {"responses": {200: STREAMING}}),
    )
    for endpoint, answer, extra in routes:
        handler = inference_handler(endpoint, service, authorize, dispatch)
        route = _as_route(handler, getattr(bodies, endpoint), *_NAMES[endpoint])
        router.add_api_route(
            PATHS[endpoint], route, methods=["POST"], response_model=answer, **extra
        )
    return router


#: Each inference route's name and description (OpenAPI's operation id and text).
_NAMES: dict[Endpoint, tuple[str, str]] = {
    "embeddings": ("embeddings", "Sentence embeddings (``encoding_format`` float or base64)."),
    "classifications": ("classifications", "Sequence classification (anchorml extension)."),
    "chat": ("chat_completions", "Chat completion; ``stream: true`` answers Server-Sent Events."),
    "completions": ("completions", "Text completion; ``stream: true`` answers Server-Sent Events."),
}


def add_embeddings_fast_path(
    app: FastAPI,
    service: ServiceSource,
    authorize: Authorize,
    dispatch: Dispatch,
    *,
    body: type[BaseModel] = EmbeddingRequest,
    max_body: int = MAX_BODY_BYTES,
) -> None:
    """Serve valid ``POST /v1/embeddings`` requests on ``app`` through :class:`JsonFastPath`
    with the route's own handler (the router must be included too: it answers everything the
    fast path hands over)."""
    app.add_middleware(
        JsonFastPath,
        path="/v1/embeddings",
        body_model=body,
        handler=inference_handler("embeddings", service, authorize, dispatch),
        on_error=to_response,
        max_body=max_body,
    )
