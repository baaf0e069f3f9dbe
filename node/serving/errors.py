"""Errors of the serving path and the one translation of any error to HTTP: status + OpenAI
error body.

Every failure a client can cause maps to a 4xx with a stable ``code``; the status of each code
stands in one table (:data:`STATUS_BY_CODE`), the body is OpenAI's ``{"error": {"message",
"type", "code", "param"}}`` (:mod:`node.serving.http`). Messages are passed through only for
errors whose text this code base writes for the caller (it names the problem, never a path or a
library's exception text); anything else gets a fixed message per status, and the details go to
the log. Used by the OpenAI router (:class:`ErrorMappingRoute`) and the gateway's one exception
handler, so the worker and the gateway answer alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from node.serving.batching import BatcherClosedError, BatcherOverloadedError
from node.serving.http import error_response
from registry.auth import MissingTokenError, TokenExpiredError
from registry.chain import revert_errors as rv
from registry.errors import (
    AccessError,
    AnchormlError,
    ChainError,
    ConfigError,
    ContentNotFoundError,
    ContractRevertError,
    CorruptContentError,
    InvalidCIDError,
    ModelError,
    ModelNotFoundError,
    ModelRevokedError,
    RpcUnavailableError,
    StoreError,
    StoreUnavailableError,
    UnsafeModelError,
)
from registry.jobs import InvalidJobInputError, InvalidJobParamsError

log = logging.getLogger(__name__)


class ServingError(AnchormlError):
    """Base of the errors of the HTTP servers; ``param`` names the request field at fault. The
    status each code answers with is in :data:`STATUS_BY_CODE`."""

    code = "serving_error"
    param: str | None = None

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class InvalidRequestError(ServingError, ValueError):
    """The request is well-formed JSON but asks for something invalid."""

    code = "invalid_request"


class UnsupportedParameterError(InvalidRequestError):
    """A parameter OpenAI defines that this server does not implement (e.g. ``n > 1``)."""

    code = "unsupported_parameter"


class MaxTokensError(InvalidRequestError):
    """``max_tokens`` is above the server's hard cap."""

    code = "max_tokens_too_large"


class ContextLengthError(InvalidRequestError):
    """Prompt plus ``max_tokens`` does not fit the model's context window."""

    code = "context_length_exceeded"


class UnsupportedTaskError(InvalidRequestError):
    """The model cannot do what the endpoint asks (e.g. embeddings from a chat model)."""

    code = "unsupported_task"


class ModelNotServedError(ServingError):
    """This server does not serve the requested model version."""

    code = "model_not_served"


class NoAccessError(AccessError):
    """The caller's address has no on-chain access to a gated model."""

    code = "no_access"


class OverloadedError(ServingError):
    """Too many requests are queued; the client should back off and retry."""

    code = "overloaded"


#: HTTP status by error code, for the worker's and the gateway's errors alike (codes not listed
#: fall back to the class hierarchy in :func:`status_of`).
STATUS_BY_CODE: dict[str, int] = {
    "serving_error": 400,
    "invalid_json": 400,
    "invalid_request": 400,
    "unsupported_parameter": 400,
    "max_tokens_too_large": 400,
    "context_length_exceeded": 400,
    "unsupported_task": 400,
    "invalid_cid": 400,
    "invalid_job_params": 400,
    "invalid_job_input": 400,
    "config_error": 400,
    "missing_token": 401,
    "invalid_token": 401,
    "token_expired": 401,
    "no_access": 403,
    "access_denied": 403,
    "model_not_found": 404,
    "version_not_found": 404,
    "alias_not_found": 404,
    "content_not_found": 404,
    "job_not_found": 404,
    "not_found": 404,
    "model_not_served": 404,
    "method_not_allowed": 405,
    "model_revoked": 410,
    "version_is_revoked": 410,
    "body_too_large": 413,
    "content_too_large": 413,
    "unsafe_model": 422,
    "model_error": 422,
    "rate_limited": 429,
    "sponsor_budget_exceeded": 429,
    "content_corrupt": 502,
    "bad_worker_answer": 502,
    "job_failed": 502,
    "store_error": 502,
    "chain_error": 502,
    "transaction_failed": 502,
    "overloaded": 503,
    "batcher_closed": 503,
    "rpc_unavailable": 503,
    "store_unavailable": 503,
    "enforced_pause": 503,
    "no_worker": 503,
    "signer_unavailable": 503,
    "job_timeout": 504,
}

#: Errors whose message is written for the caller and safe to return verbatim.
PUBLIC_MESSAGES: tuple[type[AnchormlError], ...] = (
    ServingError,
    AccessError,
    InvalidCIDError,
    ModelNotFoundError,
    ModelRevokedError,
    InvalidJobParamsError,
    InvalidJobInputError,
    ConfigError,
)

_GENERIC: dict[int, str] = {
    400: "the request is invalid",
    401: "authentication failed",
    403: "access denied",
    404: "not found",
    409: "the chain refused the request in its current state",
    410: "the model version was revoked",
    413: "too large",
    422: "the model cannot be loaded",
    429: "rate limit exceeded",
    502: "an upstream service failed",
    503: "the service is temporarily unavailable",
    504: "timed out",
}


def status_of(exc: AnchormlError) -> int:
    """The HTTP status an anchorml error answers with."""
    status = STATUS_BY_CODE.get(exc.code)
    if status is not None:
        return status
    if isinstance(exc, ServingError):
        return 400
    if isinstance(exc, ContractRevertError):
        return 409  # the chain refused in its current state (paused, wrong status, ...)
    if isinstance(exc, MissingTokenError | TokenExpiredError):
        return 401
    if isinstance(exc, AccessError):
        return 403
    if isinstance(exc, ModelNotFoundError | ContentNotFoundError):
        return 404
    if isinstance(exc, ModelRevokedError):
        return 410
    if isinstance(exc, UnsafeModelError | ModelError):
        return 422
    if isinstance(
        exc,
        RpcUnavailableError | StoreUnavailableError | BatcherOverloadedError | BatcherClosedError,
    ):
        return 503
    if isinstance(exc, ValueError):
        return 400
    if isinstance(exc, ChainError | StoreError | CorruptContentError):
        return 502
    return 500


def public_message(exc: AnchormlError, status: int) -> str:
    """The message safe to show the caller (our own text, or a fixed one per status)."""
    if isinstance(exc, NoAccessError | rv.NoAccess):
        return exc.message if isinstance(exc, NoAccessError) else "no access to this model"
    if isinstance(exc, PUBLIC_MESSAGES):
        return exc.message[:500]
    return _GENERIC.get(status, "internal error")


def anchorml_error_response(exc: AnchormlError) -> JSONResponse:
    """Translate an anchorml error to its HTTP response (logging server-side details)."""
    status = status_of(exc)
    code = exc.code if status != 500 else "internal_error"
    if isinstance(exc, rv.NoAccess):
        code = "no_access"
        status = 403
    if status >= 500:
        log.warning("%s (%s): %s", type(exc).__name__, exc.code, exc.message)
    headers = {"Retry-After": retry_after(exc)} if status in (429, 503) else None
    param = exc.param if isinstance(exc, ServingError) else None
    return error_response(status, code, public_message(exc, status), param, headers)


def retry_after(exc: AnchormlError) -> str:
    """The ``Retry-After`` header of a 429/503: the error's own ``retry_after_s`` when it has
    one (a rate limiter's refill time), in whole seconds, at least 1."""
    wait = getattr(exc, "retry_after_s", 1.0)
    return str(max(1, math.ceil(wait)))


def validation_error_response(errors: Sequence[Any]) -> JSONResponse:
    """400 for a body that is not JSON (``invalid_json``) or does not fit the schema."""
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    if any(isinstance(e, dict) and e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    where = ".".join(loc) or "body"
    msg = str(first.get("msg", "invalid value"))[:200]
    return error_response(400, "invalid_request", f"{where}: {msg}", where)


def http_exception_response(exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method) in the same shape."""
    codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    status = exc.status_code
    code = codes.get(status, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else _GENERIC.get(status, "error")
    return error_response(status, code, message[:200], headers=dict(exc.headers or {}) or None)


def unexpected_error_response(exc: Exception) -> JSONResponse:
    """Last resort: a bug. Logged with its traceback; the caller sees no exception text."""
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def to_response(exc: Exception) -> JSONResponse:
    """Any exception a handler raised, as its error response."""
    if isinstance(exc, AnchormlError):
        return anchorml_error_response(exc)
    if isinstance(exc, RequestValidationError):
        return validation_error_response(exc.errors())
    if isinstance(exc, HTTPException):
        return http_exception_response(exc)
    return unexpected_error_response(exc)


#: Largest request body the serving routes read (the gateway enforces its own, smaller, limit).
MAX_BODY_BYTES = 8 << 20


class ErrorMappingRoute(APIRoute):
    """An ``APIRoute`` whose handler translates errors itself (for routers mounted on apps this
    package does not own, such as the worker's, where no app-level handler is installed), and
    refuses bodies over :data:`MAX_BODY_BYTES` with 413 before parsing them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                if request.method == "POST" and not await _body_fits(request):
                    return error_response(
                        413, "body_too_large", f"the request body exceeds {MAX_BODY_BYTES} bytes"
                    )
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an error response
                return to_response(exc)

        return guarded


async def _body_fits(request: Request) -> bool:
    """Read the body up to the limit; it stays cached on the request for the handler."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return False
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return False
        chunks.append(chunk)
    request._body = b"".join(chunks)  # what Request.body() returns from now on
    return True
