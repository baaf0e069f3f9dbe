"""OpenAI-compatible endpoints of the gateway, with the two inference paths.

Every request is resolved and access-checked first (401/403/404/410 before any inference or
store read). Then:

- **direct** (default): proxied to a worker serving the resolved version, or — when none does
  and ``inprocess`` is on — run in this process on the shared runtime; else 503 ``no_worker``;
- **on-chain** (``"anchorml": {"mode": "onchain", "redundancy": k, "reward_wei": w}``): an
  INFER job is created and the verified result returned with an ``anchorml`` receipt.

The ``model`` in answers is the resolved ``name@tag``, whatever alias the request used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.gateway.deps import (
    CallerDep,
    FreshGatewayDep,
    Gateway,
    GatewayDep,
    LimitedCallerDep,
    get_caller,
    get_gateway,
    get_limited_caller,
)
from api.gateway.errors import NoWorkerError
from api.gateway.onchain import OnchainOptions
from node.serving.catalog import Target
from node.serving.errors import InvalidRequestError, MaxTokensError, UnsupportedParameterError
from node.serving.generation import GenerationParams
from node.serving.handlers import (
    chat_body,
    completion_body,
    dumps,
    embedding_body,
    json_response,
)
from node.serving.router import STREAMING
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
from registry.jobs import MAX_NEW_TOKENS_CAP, JobKind, parse_params

router = APIRouter(tags=["openai"], responses=ERROR_RESPONSES)


class AnchormlOptions(BaseModel):
    """The ``anchorml`` extension field of inference requests."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["direct", "onchain"] = "direct"
    redundancy: int = Field(default=1, ge=1, le=16, description="nodes that must agree (k)")
    reward_wei: int | None = Field(default=None, ge=1, le=10**30, description="escrowed reward")
    timeout_s: float | None = Field(default=None, gt=0, le=3600, description="wait for the job")


class GatewayChatRequest(ChatCompletionRequest):
    """Chat completion request with the ``anchorml`` extension."""

    anchorml: AnchormlOptions | None = None


class GatewayCompletionRequest(CompletionRequest):
    """Completion request with the ``anchorml`` extension."""

    anchorml: AnchormlOptions | None = None


class GatewayEmbeddingRequest(EmbeddingRequest):
    """Embedding request with the ``anchorml`` extension."""

    anchorml: AnchormlOptions | None = None


Body = TypeVar("Body", bound=BaseModel)


def _onchain(gateway: Gateway, options: AnchormlOptions | None) -> OnchainOptions | None:
    if options is None or options.mode != "onchain":
        return None
    if options.reward_wei is not None and options.reward_wei > gateway.config.max_reward_wei:
        raise InvalidRequestError(
            f"reward_wei is above the gateway's limit of {gateway.config.max_reward_wei}",
            "anchorml.reward_wei",
        )
    return OnchainOptions(options.redundancy, options.reward_wei, options.timeout_s)


async def _direct(
    gateway: Gateway,
    request: Request,
    target: Target,
    path: str,
    body: Body,
    inprocess: Callable[[Target, Body], Awaitable[Response]],
) -> Response:
    """Proxy to a worker serving the version, else run in process (devnet mode), else 503."""
    if await gateway.pool.candidates(target.version.version_id):
        payload = body.model_dump(exclude_unset=True, exclude={"anchorml"})
        payload["model"] = target.pinned_ref  # the worker runs exactly the version resolved here
        stream = bool(payload.get("stream", False))
        authorization = request.headers.get("authorization")
        proxied = await gateway.pool.proxy(
            target.version.version_id, path, dumps(payload), authorization, stream
        )
        if proxied is not None:
            gateway.metrics.inference.labels(path="worker").inc()
            return proxied
    if not gateway.config.inprocess:
        raise NoWorkerError(f"no worker serves {target.pinned_ref} right now: retry later")
    gateway.metrics.inference.labels(path="inprocess").inc()
    return await inprocess(dataclasses.replace(target, ref=target.pinned_ref), body)


def _job_generation(params: GenerationParams, task: str) -> dict[str, Any]:
    if params.max_tokens > MAX_NEW_TOKENS_CAP:
        raise MaxTokensError(
            f"on-chain jobs generate at most {MAX_NEW_TOKENS_CAP} tokens", "max_tokens"
        )
    job = {
        "task": task,
        "max_new_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed or 0,
    }
    parse_params(JobKind.INFER, job)
    return job


def _apply_stops(text: str, stops: tuple[str, ...], finish: str) -> tuple[str, str]:
    """Cut an on-chain result at the first stop string (the executor has no stop strings)."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(hits)], "stop") if hits else (text, finish)


async def _generate_on_chain(
    gateway: Gateway,
    target: Target,
    job_input: dict[str, Any],
    params: GenerationParams,
    task: str,
    options: OnchainOptions,
    shape: Callable[..., dict[str, Any]],
) -> Response:
    """Run a generation as an on-chain job and answer in ``shape`` (:func:`chat_body` or
    :func:`completion_body`), stop strings applied, with the job's receipt under ``anchorml``."""
    job = _job_generation(params, task)
    gateway.metrics.inference.labels(path="onchain").inc()
    result, receipt = await gateway.onchain.run(target, job_input, job, options)
    text, finish = _apply_stops(str(result["text"]), params.stop, str(result["finish_reason"]))
    used = result.get("usage", {})
    answer = shape(
        target.pinned_ref, text, finish, int(used.get("prompt_tokens", 0)),
        int(used.get("completion_tokens", 0)), anchorml=receipt,
    )  # fmt: skip
    return json_response(answer)


@router.get("/v1/models", response_model=ModelList)
async def list_models(gateway: FreshGatewayDep) -> Response:
    """Every model, each version as ``name@tag`` and each alias as ``name@alias``."""
    cards = []
    for model in gateway.index.models.values():
        cards.append({"id": model.name, "object": "model", "created": 0, "owned_by": model.owner})
        refs = [
            gateway.index.versions[v].tag
            for v in model.versions
            if not gateway.index.versions[v].revoked
        ]
        for ref in [*refs, *sorted(model.aliases)]:
            cards.append(
                {
                    "id": f"{model.name}@{ref}",
                    "object": "model",
                    "created": 0,
                    "owned_by": model.owner,
                }
            )
    return json_response({"object": "list", "data": cards})


@router.get("/v1/models/{model}", response_model=ModelCard)
async def get_model(model: str, gateway: GatewayDep, caller: CallerDep) -> Response:
    """One model reference, resolved (404 unknown, 410 revoked)."""
    del caller  # a malformed token is refused here too
    target = await gateway.catalog.resolve(model)
    card = {
        "id": target.pinned_ref,
        "object": "model",
        "created": 0,
        "owned_by": target.model.owner,
    }
    return json_response(card)


@router.post("/v1/embeddings", response_model=EmbeddingList)
async def embeddings(
    body: GatewayEmbeddingRequest, request: Request, gateway: GatewayDep, caller: LimitedCallerDep
) -> Response:
    """Sentence embeddings (``encoding_format`` float or base64)."""
    target = await gateway.authorize(body.model, caller)
    options = _onchain(gateway, body.anchorml)
    if options is None:
        return await _direct(
            gateway, request, target, "/v1/embeddings", body, gateway.service.embeddings
        )
    if body.dimensions is not None:
        raise UnsupportedParameterError("dimensions is not available on chain", "dimensions")
    gateway.metrics.inference.labels(path="onchain").inc()
    result, receipt = await gateway.onchain.run(
        target, {"texts": body.texts()}, {"task": "embed"}, options
    )
    answer = embedding_body(
        target.pinned_ref, result["embeddings"], 0, body.encoding_format, anchorml=receipt
    )
    return json_response(answer)


async def embeddings_fast(body: GatewayEmbeddingRequest, request: Request) -> Response:
    """:func:`embeddings` with its dependencies resolved here, for the app's fast path
    (:mod:`node.serving.fastpath`)."""
    gateway = await get_gateway(request)
    caller = await get_limited_caller(await get_caller(request, gateway), gateway)
    return await embeddings(body, request, gateway, caller)


@router.post("/v1/classifications", response_model=ClassificationList)
async def classifications(
    body: ClassificationRequest, request: Request, gateway: GatewayDep, caller: LimitedCallerDep
) -> Response:
    """Sequence classification (anchorml extension; direct path only)."""
    target = await gateway.authorize(body.model, caller)
    return await _direct(
        gateway, request, target, "/v1/classifications", body, gateway.service.classifications
    )


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses={200: STREAMING})
async def chat_completions(
    body: GatewayChatRequest, request: Request, gateway: GatewayDep, caller: LimitedCallerDep
) -> Response:
    """Chat completion; ``stream: true`` answers Server-Sent Events."""
    target = await gateway.authorize(body.model, caller)
    params = gateway.service.generation_params(body)
    messages = gateway.service.chat_messages(body)
    options = _onchain(gateway, body.anchorml)
    if options is None:
        return await _direct(
            gateway, request, target, "/v1/chat/completions", body, gateway.service.chat
        )
    if body.stream:
        raise UnsupportedParameterError(
            "stream is not available with anchorml.mode onchain", "stream"
        )
    return await _generate_on_chain(
        gateway, target, {"messages": messages}, params, "chat", options, chat_body
    )


@router.post("/v1/completions", response_model=Completion, responses={200: STREAMING})
async def completions(
    body: GatewayCompletionRequest, request: Request, gateway: GatewayDep, caller: LimitedCallerDep
) -> Response:
    """Text completion; ``stream: true`` answers Server-Sent Events."""
    target = await gateway.authorize(body.model, caller)
    params = gateway.service.generation_params(body)
    prompt = gateway.service.completion_prompt(body)
    options = _onchain(gateway, body.anchorml)
    if options is None:
        return await _direct(
            gateway, request, target, "/v1/completions", body, gateway.service.completions
        )
    if body.stream or body.echo:
        raise UnsupportedParameterError("stream/echo are not available on chain", "stream")
    return await _generate_on_chain(
        gateway, target, {"prompt": prompt}, params, "generate", options, completion_body
    )
