"""The gateway's one exception handler: every failure becomes an HTTP status and an OpenAI-shaped
``{"error": {"code", "message", "type", "param"}}`` body, never exception text.

The code → status table and the message policy live in :mod:`node.serving.errors` (the worker
answers the same way); this module adds the gateway's own errors and installs the handler for
anchorml errors (contract reverts included), request validation (400 ``invalid_json`` /
``invalid_request``), Starlette's routing errors and, last, anything unexpected (500, logged).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.gateway.auth import RateLimitedError, RateLimiter
from node.serving.errors import ServingError, to_response
from registry.errors import AnchormlError


class NoWorkerError(ServingError):
    """No worker serves the version and in-process inference is off."""

    code = "no_worker"
    status = 503


class WorkerError(ServingError):
    """A worker failed to answer (connection refused, reset, timed out)."""

    code = "worker_unavailable"
    status = 502


class BodyTooLargeError(ServingError):
    """The request body exceeds the configured limit."""

    code = "body_too_large"
    status = 413


class ContentTooLargeError(ServingError):
    """The content asked for exceeds what the gateway serves."""

    code = "content_too_large"
    status = 413


class JobNotFoundError(ServingError):
    """No job with that id."""

    code = "job_not_found"
    status = 404


class JobTimeoutError(ServingError):
    """An on-chain request's job did not settle in time (it stays on chain; see the message)."""

    code = "job_timeout"
    status = 504


class JobFailedError(ServingError):
    """An on-chain request's job expired or was cancelled without a result."""

    code = "job_failed"
    status = 502


class SignerUnavailableError(ServingError):
    """The gateway has no key, so it cannot create jobs."""

    code = "signer_unavailable"
    status = 503


def error_response(exc: Exception) -> JSONResponse:
    """The response for any exception (the gateway's single translation point)."""
    response = to_response(exc)
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = RateLimiter.retry_after(exc)
    return response


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    del request  # the translation depends on the error only
    return error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the app can raise through :func:`error_response`."""
    for kind in (AnchormlError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, _handle)
