"""The gateway's OpenAI-compatible endpoints: the serving package's one router
(:func:`node.serving.create_openai_router`) with the gateway's ``anchorml`` request extension,
its caller checks and its dispatch.

Every request is resolved and access-checked first (401/403/404/410/429 before any inference or
store read), then checked (sampling parameters, prompt). Then :func:`dispatch` sends it:

- **direct** (default): proxied to a worker serving the resolved version, or — when none does
  and ``inprocess`` is on — run in this process on the shared runtime; else 503 ``no_worker``;
- **on-chain** (``"anchorml": {"mode": "onchain", "redundancy": k, "reward_wei": w}``): an
  INFER job is created and the verified result returned with an ``anchorml`` receipt.

The ``model`` in answers is the resolved ``name@tag``, whatever alias the request used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.gateway.answers import Expected
from api.gateway.auth import Caller
from api.gateway.deps import Gateway, fresh_index, get_caller, get_gateway, get_limited_caller
from api.gateway.errors import BadWorkerAnswerError, NoWorkerError, WorkersBusyError
from api.gateway.onchain import OnchainOptions
from api.gateway.upstream import Failure
from node.serving import (
    Bodies,
    Call,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    GenerationParams,
    InvalidRequestError,
    MaxTokensError,
    ModelCard,
    OpenAIService,
    Target,
    UnsupportedParameterError,
    add_embeddings_fast_path,
    chat_body,
    completion_body,
    create_openai_router,
    embedding_body,
    json_response,
)
from registry.jobs import MAX_NEW_TOKENS_CAP, JobKind, parse_params


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


BODIES = Bodies(
    embeddings=GatewayEmbeddingRequest,
    chat=GatewayChatRequest,
    completions=GatewayCompletionRequest,
)


# --- the router's three parts ----------------------------------------------------------------


def service(request: Request) -> OpenAIService:
    """The in-process service (built in the app's lifespan, so found per request)."""
    gateway: Gateway = request.app.state.gateway
    return gateway.service


async def authorize(ref: str, request: Request) -> Target:
    """The caller (401 for a bad token), one request of its rate (429), then ``ref`` resolved
    and the caller's access checked (404/410/403)."""
    gateway = await get_gateway(request)
    caller = await get_limited_caller(await get_caller(request, gateway), gateway)
    request.state.caller = caller  # who pays, should the call go on chain
    return await gateway.authorize(ref, caller)


async def dispatch(call: Call) -> Response | Call:
    """On chain when the request asks for it, else direct: a worker, else here (the call is
    handed back to the router, which runs it in this process)."""
    gateway = await get_gateway(call.request)
    options = _onchain(gateway, getattr(call.body, "anchorml", None))
    if options is None:
        return await _direct(gateway, call)
    if call.endpoint == "embeddings":
        return await _embed_on_chain(gateway, call, options)
    if call.endpoint == "chat":
        if call.body.stream:
            raise UnsupportedParameterError(
                "stream is not available with anchorml.mode onchain", "stream"
            )
        return await _generate_on_chain(gateway, call, {"messages": call.messages}, "chat", options)
    if call.body.stream or call.body.echo:
        raise UnsupportedParameterError("stream/echo are not available on chain", "stream")
    return await _generate_on_chain(gateway, call, {"prompt": call.prompt}, "generate", options)


async def list_models(request: Request) -> list[ModelCard]:
    """Every model, each version as ``name@tag`` and each alias as ``name@alias``."""
    gateway = await fresh_index(await get_gateway(request))
    cards = []
    for model in gateway.index.models.values():
        cards.append(ModelCard(id=model.name, owned_by=model.owner))
        refs = [
            gateway.index.versions[v].tag
            for v in model.versions
            if not gateway.index.versions[v].revoked
        ]
        for ref in [*refs, *sorted(model.aliases)]:
            cards.append(ModelCard(id=f"{model.name}@{ref}", owned_by=model.owner))
    return cards


async def describe_model(ref: str, request: Request) -> ModelCard:
    """One model reference, resolved (404 unknown, 410 revoked)."""
    gateway = await get_gateway(request)
    await get_caller(request, gateway)  # a malformed token is refused here too
    target = await gateway.catalog.resolve(ref)
    return ModelCard(id=target.pinned_ref, owned_by=target.model.owner)


router = create_openai_router(
    service, authorize, dispatch,
    list_models=list_models, describe_model=describe_model, bodies=BODIES,
)  # fmt: skip


def add_fast_path(app: FastAPI, max_body: int) -> None:
    """Serve valid embeddings requests on ``app`` around FastAPI, with the route's handler."""
    add_embeddings_fast_path(
        app, service, authorize, dispatch, body=GatewayEmbeddingRequest, max_body=max_body
    )


# --- dispatch --------------------------------------------------------------------------------


def _onchain(gateway: Gateway, options: AnchormlOptions | None) -> OnchainOptions | None:
    if options is None or options.mode != "onchain":
        return None
    if options.reward_wei is not None and options.reward_wei > gateway.config.max_reward_wei:
        raise InvalidRequestError(
            f"reward_wei is above the gateway's limit of {gateway.config.max_reward_wei}",
            "anchorml.reward_wei",
        )
    return OnchainOptions(options.redundancy, options.reward_wei, options.timeout_s)


async def _direct(gateway: Gateway, call: Call) -> Response | Call:
    """Proxy to a worker serving the version (with a grant of the gateway's, never the caller's
    credentials), else run here (devnet mode), else 503 (502 when every answer was bad)."""
    target = call.target
    failure = Failure.NONE
    if await gateway.pool.candidates(target.version.version_id):
        payload = call.body.model_dump(exclude_unset=True, exclude={"anchorml"})
        payload["model"] = target.pinned_ref  # the worker runs exactly the version resolved here
        stream = bool(payload.get("stream", False))
        expected = Expected.of(call.endpoint, payload, target.version.version_id)
        proxied = await gateway.pool.proxy(expected, call.path, payload, stream)
        if not isinstance(proxied, Failure):
            gateway.metrics.inference.labels(path="worker").inc()
            gateway.spotcheck.consider(call, payload, proxied)
            return proxied
        failure = proxied
    if not gateway.config.inprocess:
        if failure is Failure.BAD:
            raise BadWorkerAnswerError(
                f"no worker serving {target.pinned_ref} gave an answer that verifies: retry later"
            )
        if failure is Failure.BUSY:
            raise WorkersBusyError(f"every worker serving {target.pinned_ref} is busy: retry later")
        raise NoWorkerError(f"no worker serves {target.pinned_ref} right now: retry later")
    gateway.metrics.inference.labels(path="inprocess").inc()
    pinned = dataclasses.replace(target, ref=target.pinned_ref)  # answers name the version
    return dataclasses.replace(call, target=pinned)


def _payer(call: Call) -> str:
    """Whose daily sponsorship budget an on-chain call is charged to (the caller's address, else
    its client IP), as :func:`authorize` identified it."""
    caller: Caller = call.request.state.caller
    return caller.key


async def _embed_on_chain(gateway: Gateway, call: Call, options: OnchainOptions) -> Response:
    body = call.body
    if body.dimensions is not None:
        raise UnsupportedParameterError("dimensions is not available on chain", "dimensions")
    gateway.metrics.inference.labels(path="onchain").inc()
    result, receipt = await gateway.onchain.run(
        call.target, {"texts": body.texts()}, {"task": "embed"}, options, _payer(call)
    )
    answer = embedding_body(
        call.target.pinned_ref, result["embeddings"], 0, body.encoding_format, anchorml=receipt
    )
    return json_response(answer)


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
        "stop": list(params.stop),
    }
    parse_params(JobKind.INFER, job)
    return job


_SHAPES: dict[str, Callable[..., dict[str, Any]]] = {
    "chat": chat_body,
    "completions": completion_body,
}


async def _generate_on_chain(
    gateway: Gateway, call: Call, job_input: dict[str, Any], task: str, options: OnchainOptions
) -> Response:
    """Run a generation as an on-chain job (stop strings in its params: the executor decodes with
    the serving loop) and answer in the endpoint's shape, with the job's receipt under
    ``anchorml``."""
    params, target = call.params, call.target
    assert params is not None  # generation calls carry their checked parameters
    job = _job_generation(params, task)
    gateway.metrics.inference.labels(path="onchain").inc()
    result, receipt = await gateway.onchain.run(target, job_input, job, options, _payer(call))
    text, finish = str(result["text"]), str(result["finish_reason"])
    used = result.get("usage", {})
    answer = _SHAPES[call.endpoint](
        target.pinned_ref, text, finish, int(used.get("prompt_tokens", 0)),
        int(used.get("completion_tokens", 0)), anchorml=receipt,
    )  # fmt: skip
    return json_response(answer)
