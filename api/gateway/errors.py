"""The gateway's own errors and its one exception handler.

Every failure becomes an HTTP status and an OpenAI-shaped ``{"error": {"code", "message",
"type", "param"}}`` body, never exception text. The code → status table and the message policy
are the serving package's (:func:`node.serving.to_response`, the worker answers the same way):
this module declares the errors only the gateway raises and installs that translation for
anchorml errors (contract reverts included), request validation (400 ``invalid_json`` /
``invalid_request``), Starlette's routing errors and, last, anything unexpected (500, logged).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from node.serving import ServingError, to_response
from registry.errors import AnchormlError


class NoWorkerError(ServingError):
    """No worker serves the version and in-process inference is off (503)."""

    code = "no_worker"


class BadWorkerAnswerError(ServingError):
    """Every worker that answered gave an answer whose receipt did not hold, and in-process
    inference is off (502)."""

    code = "bad_worker_answer"


class WorkersBusyError(ServingError):
    """Every worker serving the version is at its limits and in-process inference is off
    (503)."""

    code = "overloaded"


class ContentTooLargeError(ServingError):
    """The content asked for exceeds what the gateway serves (413)."""

    code = "content_too_large"


class JobNotFoundError(ServingError):
    """No job with that id (404)."""

    code = "job_not_found"


class JobTimeoutError(ServingError):
    """An on-chain request's job did not settle in time; it stays on chain (504)."""

    code = "job_timeout"


class JobFailedError(ServingError):
    """An on-chain request's job expired or was cancelled without a result (502)."""

    code = "job_failed"


class SignerUnavailableError(ServingError):
    """The gateway has no key, so it cannot create jobs (503)."""

    code = "signer_unavailable"


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    del request  # the translation depends on the error only
    return to_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the app can raise through :func:`node.serving.to_response`."""
    for kind in (AnchormlError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, _handle)
