"""OpenAI semantics over the runtime: validate a request, run it, shape the answer.

:meth:`OpenAIService.prepare` checks a request into a :class:`Call` (before the router's
``dispatch`` picks where it runs); :meth:`OpenAIService.run` runs a call in this process. The
worker and the gateway's in-process path both run here, so both answer identically. Responses
are built as plain dicts and encoded once (large float arrays make pydantic serialization the
bottleneck); their shapes are the models of :mod:`node.serving.schemas`. Embedding answers keep
their float32 arrays and are encoded by orjson (:func:`node.serving.http.dumps_arrays`).

Receipts: a service given a :class:`~node.serving.receipts.Notary` signs every answer it runs
(:meth:`OpenAIService.run`, the one path of both the worker and the gateway's in-process
runtime): a JSON answer carries ``"anchorml": {"receipt", "request"}`` and the
``anchorml-receipt`` header; a stream carries the same field in its last data event before
``[DONE]`` (``choices: []``, with the usage), for the equivalent non-streamed answer.

Streaming (``stream: true``) answers Server-Sent Events: a first chunk with the assistant role,
one chunk per decoded piece of text, a chunk with ``finish_reason``, optionally a usage chunk
(``stream_options.include_usage``), then ``data: [DONE]``. When the client goes away the
response task is cancelled; the ``finally`` of the event generator cancels the decode loop,
whose thread then frees its slot.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from node.models import GenerationDone, GenerationParams, TextDelta
from node.serving.catalog import Target
from node.serving.errors import (
    InvalidRequestError,
    MaxTokensError,
    UnsupportedParameterError,
    to_response,
)
from node.serving.http import SSE_DONE, SSE_HEADERS, dumps, dumps_arrays, error_body, sse
from node.serving.receipts import RECEIPT_HEADER, Notary, embeddings_hash, signed_request
from node.serving.runtime import GenerationStream, InferenceRuntime
from node.serving.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FINGERPRINT = "anchorml"

#: The OpenAI endpoints a :class:`Call` runs, and their paths.
Endpoint = Literal["embeddings", "classifications", "chat", "completions"]
PATHS: dict[Endpoint, str] = {
    "embeddings": "/v1/embeddings",
    "classifications": "/v1/classifications",
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
}


@dataclass(frozen=True)
class Limits:
    """Request bounds: ``max_tokens_cap`` is the hard cap (above it: 400)."""

    max_tokens_cap: int = 1024
    default_max_tokens: int = 256
    max_text_chars: int = 200_000


@dataclass(frozen=True)
class Call:
    """One authorized, checked OpenAI request, ready to run wherever ``dispatch`` sends it.

    Attributes:
        endpoint: which endpoint (:data:`PATHS` gives its path).
        target: the resolved version; answers name the model ``target.ref``.
        body: the parsed body (the app's own model: the gateway's carries ``anchorml``).
        request: the HTTP request (its ``Authorization`` is forwarded to a worker).
        params: the checked sampling parameters (chat and completions).
        messages: the conversation as the chat template takes it (chat).
        prompt: the one prompt (completions).
    """

    endpoint: Endpoint
    target: Target
    body: Any
    request: Request
    params: GenerationParams | None = None
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None

    @property
    def path(self) -> str:
        """The endpoint's path (``/v1/...``)."""
        return PATHS[self.endpoint]


def usage(prompt: int, completion: int = 0) -> dict[str, int]:
    """OpenAI's usage object."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def new_id(prefix: str) -> str:
    """A response id such as ``chatcmpl-3f9a…``."""
    return f"{prefix}-{secrets.token_hex(12)}"


def chat_body(
    model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int, **extra: Any
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "system_fingerprint": FINGERPRINT,
        **extra,
    }


def completion_body(
    model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int, **extra: Any
) -> dict[str, Any]:
    """A ``text_completion`` object."""
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        "usage": usage(prompt_tokens, completion_tokens),
        **extra,
    }


def embedding_body(
    model: str,
    vectors: list[Any],
    tokens: int,
    encoding: str,
    *,
    arrays: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """An embeddings ``list``; ``vectors`` are float32 arrays or float lists. With ``arrays``
    float vectors stay float32 arrays, for :func:`dumps_arrays`; otherwise they become lists."""
    import numpy as np

    data = []
    for i, vector in enumerate(vectors):
        array = np.ascontiguousarray(vector, dtype="<f4")
        value: Any = (
            base64.b64encode(array.tobytes()).decode("ascii")
            if encoding == "base64"
            else array
            if arrays
            else array.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": model, "usage": usage(tokens), **extra}


class OpenAIService:
    """Runs OpenAI-shaped requests on an :class:`InferenceRuntime`.

    Args:
        runtime: the models.
        limits: request bounds.
        notary: signs every answer :meth:`run` gives (the ``anchorml`` body field and header;
            :mod:`node.serving.receipts`); None answers unsigned (a gateway without a key, or
            the bench's receipts-off side).
    """

    def __init__(
        self, runtime: InferenceRuntime, limits: Limits | None = None, notary: Notary | None = None
    ) -> None:
        self.runtime = runtime
        self.limits = limits or Limits()
        self.notary = notary

    # --- validation ----------------------------------------------------------------------------

    def generation_params(self, req: ChatCompletionRequest | CompletionRequest) -> GenerationParams:
        """Check the sampling parameters of a request.

        Raises:
            MaxTokensError: ``max_tokens`` above the hard cap.
            UnsupportedParameterError: ``n > 1``, ``logprobs``, tools, penalties, ...
        """
        if (req.n or 1) > 1:
            raise UnsupportedParameterError("only n=1 is supported", "n")
        if req.logprobs:
            raise UnsupportedParameterError("logprobs are not supported", "logprobs")
        if req.presence_penalty or req.frequency_penalty:
            raise UnsupportedParameterError("presence/frequency penalties are not supported")
        if isinstance(req, ChatCompletionRequest):
            if req.tools:
                raise UnsupportedParameterError("tools are not supported", "tools")
            if req.response_format and req.response_format.get("type", "text") != "text":
                raise UnsupportedParameterError("only text responses", "response_format")
        else:
            if req.suffix:
                raise UnsupportedParameterError("suffix is not supported", "suffix")
            if (req.best_of or 1) > 1:
                raise UnsupportedParameterError("only best_of=1 is supported", "best_of")
        stops = req.stop_list()
        if len(stops) > 4 or any(len(s) > 256 for s in stops):
            raise InvalidRequestError("at most 4 stop strings of up to 256 characters", "stop")
        requested = req.requested_max_tokens()
        cap = self.limits.max_tokens_cap
        if requested is not None and requested > cap:
            raise MaxTokensError(
                f"max_tokens is {requested}; this server's limit is {cap}", "max_tokens"
            )
        return GenerationParams(
            max_tokens=requested or min(self.limits.default_max_tokens, cap),
            temperature=req.temperature or 0.0,
            top_p=req.top_p if req.top_p is not None else 1.0,
            seed=req.seed,
            stop=tuple(stops),
        )

    def _check_texts(self, texts: list[str], param: str) -> None:
        limit = self.limits.max_text_chars
        if any(len(t) > limit for t in texts):
            raise InvalidRequestError(f"each input is limited to {limit} characters", param)

    def chat_messages(self, req: ChatCompletionRequest) -> list[dict[str, str]]:
        """The conversation as the chat template takes it (``developer`` → ``system``)."""
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in req.messages
        ]
        self._check_texts([m["content"] for m in messages], "messages")
        return messages

    def completion_prompt(self, req: CompletionRequest) -> str:
        """The one prompt of a completion request."""
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if len(prompts) != 1:
            raise UnsupportedParameterError("send exactly one prompt per request", "prompt")
        self._check_texts(prompts, "prompt")
        return prompts[0]

    def prepare(self, endpoint: Endpoint, target: Target, body: Any, request: Request) -> Call:
        """Check ``body`` for ``endpoint`` (generation parameters, conversation or prompt) into
        a :class:`Call`; what fails here fails before any inference, wherever it would run.

        Raises:
            InvalidRequestError: a parameter is invalid or unsupported (see the checks above).
        """
        if endpoint == "chat":
            params, messages = self.generation_params(body), self.chat_messages(body)
            return Call(endpoint, target, body, request, params, messages=messages)
        if endpoint == "completions":
            params, prompt = self.generation_params(body), self.completion_prompt(body)
            return Call(endpoint, target, body, request, params, prompt=prompt)
        return Call(endpoint, target, body, request)

    async def run(self, call: Call) -> Response:
        """Run ``call`` in this process; with a notary, the answer carries its receipt."""
        if call.endpoint == "embeddings":
            return await self._embeddings(call)
        if call.endpoint == "classifications":
            return await self._classifications(call)
        if call.endpoint == "chat":
            return await self._chat(call)
        return await self._completions(call)

    def _signed(
        self,
        call: Call,
        body: dict[str, Any],
        *,
        digest: bytes | None = None,
        arrays: bool = False,
    ) -> Response:
        """``body`` as JSON, with its receipt (in the body and the header) when signing.

        Args:
            call: the call answered (its canonical request and version go into the receipt).
            body: the answer.
            digest: its response hash, when the caller has it cheaper than from ``body``
                (embeddings: from the float32 arrays).
            arrays: ``body`` holds numpy arrays (:func:`dumps_arrays` writes them).
        """
        headers = None
        if self.notary is not None:
            version_id = call.target.version.version_id
            request = signed_request(call.endpoint, call.body, version_id)
            if digest is None:
                stamp = self.notary.stamp_body(call.endpoint, request, version_id, body)
            else:
                stamp = self.notary.stamp(call.endpoint, request, version_id, digest)
            body["anchorml"], receipt = stamp
            headers = {RECEIPT_HEADER: receipt}
        encoded = dumps_arrays(body) if arrays else dumps(body)
        return Response(encoded, media_type="application/json", headers=headers)

    # --- encoders ------------------------------------------------------------------------------

    async def _embeddings(self, call: Call) -> Response:
        """``/v1/embeddings``."""
        target, req = call.target, call.body
        started = time.perf_counter()
        texts = req.texts()
        self._check_texts(texts, "input")
        results = await self.runtime.embed(target.version, texts)
        dim = len(results[0][0]) if results else 0
        if req.dimensions is not None and req.dimensions != dim:
            raise UnsupportedParameterError(
                f"this model's vectors have {dim} dimensions", "dimensions"
            )
        tokens = sum(count for _, count in results)
        vectors: list[np.ndarray] = [vector for vector, _ in results]
        body = embedding_body(target.ref, vectors, tokens, req.encoding_format, arrays=True)
        digest = embeddings_hash(body, vectors) if self.notary is not None else None
        response = self._signed(call, body, digest=digest, arrays=True)
        self.runtime.metrics.requests.labels(endpoint="embeddings").observe(
            time.perf_counter() - started
        )
        return response

    async def _classifications(self, call: Call) -> Response:
        """``/v1/classifications``."""
        target, req = call.target, call.body
        started = time.perf_counter()
        texts = req.texts()
        self._check_texts(texts, "input")
        results = await self.runtime.classify(target.version, texts)
        data = [{"index": i, **row} for i, (row, _) in enumerate(results)]
        tokens = sum(count for _, count in results)
        body = {"object": "list", "data": data, "model": target.ref, "usage": usage(tokens)}
        response = self._signed(call, body)
        self.runtime.metrics.requests.labels(endpoint="classifications").observe(
            time.perf_counter() - started
        )
        return response

    # --- generation ----------------------------------------------------------------------------

    async def _chat(self, call: Call) -> Response:
        """``/v1/chat/completions`` (JSON, or SSE with ``stream``)."""
        target, req, params = call.target, call.body, call.params
        assert params is not None and call.messages is not None  # set by prepare()
        loaded, prompt = await self.runtime.prompt(target.version, params, messages=call.messages)
        stream = await self.runtime.generate(loaded, prompt)
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            events = self._events(stream, call, chat=True, include_usage=include)
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        started = time.perf_counter()
        text, done = await stream.collect()
        self.runtime.metrics.requests.labels(endpoint="chat").observe(time.perf_counter() - started)
        body = chat_body(
            target.ref, text, done.finish_reason, done.prompt_tokens, done.completion_tokens
        )
        return self._signed(call, body)

    async def _completions(self, call: Call) -> Response:
        """``/v1/completions`` (JSON, or SSE with ``stream``)."""
        target, req, params, prompt_text = call.target, call.body, call.params, call.prompt
        assert params is not None and prompt_text is not None  # set by prepare()
        loaded, prompt = await self.runtime.prompt(target.version, params, text=prompt_text)
        stream = await self.runtime.generate(loaded, prompt)
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            events = self._events(
                stream, call, chat=False, include_usage=include,
                echo=prompt_text if req.echo else "",
            )  # fmt: skip
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        started = time.perf_counter()
        text, done = await stream.collect()
        self.runtime.metrics.requests.labels(endpoint="completions").observe(
            time.perf_counter() - started
        )
        if req.echo:
            text = prompt_text + text
        body = completion_body(
            target.ref, text, done.finish_reason, done.prompt_tokens, done.completion_tokens
        )
        return self._signed(call, body)

    async def _events(
        self,
        stream: GenerationStream,
        call: Call,
        *,
        chat: bool,
        include_usage: bool,
        echo: str = "",
    ) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        model = call.target.ref
        rid = new_id("chatcmpl" if chat else "cmpl")
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"
        pieces = [echo]  # the assembled text, for the receipt

        def chunk(text: str | None, finish: str | None = None, role: bool = False) -> bytes:
            choice: dict[str, Any]
            if chat:
                delta: dict[str, Any] = {}
                if role:
                    delta["role"] = "assistant"
                if text is not None:
                    delta["content"] = text
                choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
            return sse(
                {"id": rid, "object": kind, "created": created, "model": model, "choices": [choice]}
            )

        try:
            if chat:
                yield chunk("", role=True)
            elif echo:
                yield chunk(echo)
            done: GenerationDone | None = None
            while done is None:
                event = await stream.next()
                if isinstance(event, TextDelta):
                    pieces.append(event.text)
                    yield chunk(event.text)
                else:
                    done = event
            yield chunk(None if chat else "", finish=done.finish_reason)
            if include_usage:
                tail = usage(done.prompt_tokens, done.completion_tokens)
                yield sse({"id": rid, "object": kind, "created": created, "model": model,
                           "choices": [], "usage": tail})  # fmt: skip
            if self.notary is not None:
                yield self._receipt_event(call, "".join(pieces), done, rid, created, kind)
            yield SSE_DONE
            self.runtime.metrics.requests.labels(
                endpoint="chat" if chat else "completions"
            ).observe(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in-band
            response = to_response(exc)
            yield sse(
                json.loads(bytes(response.body))
                if response.body
                else error_body(500, "internal_error", "internal error")
            )
        finally:
            stream.cancel()

    def _receipt_event(
        self, call: Call, text: str, done: GenerationDone, rid: str, created: int, kind: str
    ) -> bytes:
        """A stream's last data event: the receipt of the equivalent non-streamed answer (same
        id, creation time, model, assembled text, finish reason and usage)."""
        assert self.notary is not None
        shape = chat_body if call.endpoint == "chat" else completion_body
        model = call.target.ref
        answer = shape(
            model, text, done.finish_reason, done.prompt_tokens, done.completion_tokens,
            id=rid, created=created,
        )  # fmt: skip
        version_id = call.target.version.version_id
        request = signed_request(call.endpoint, call.body, version_id)
        anchorml, _ = self.notary.stamp_body(call.endpoint, request, version_id, answer)
        # With the usage the hash covers, so a stream without include_usage can be checked too.
        return sse({"id": rid, "object": kind, "created": created, "model": model,
                    "choices": [], "usage": answer["usage"], "anchorml": anchorml})  # fmt: skip
