"""HTTP helpers of every anchorml server (worker and gateway): JSON bodies, Server-Sent Events,
OpenAI-shaped error bodies and the OpenAPI ``responses=`` declarations that describe them.

JSON is written compactly; documents holding numpy arrays (embeddings) go through orjson, which
writes each float32 in the shortest form that reads back to the same float. Errors are
``{"error": {"message", "type", "code", "param"}}``; which status and code an exception answers
with is decided in :mod:`node.serving.errors`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from node.serving.schemas import ErrorBody

# --- JSON ------------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dumps_arrays(value: Any) -> bytes:
    """Compact JSON bytes of a document holding numpy arrays (written as lists of numbers).
    Its integers must fit in 64 bits (orjson's limit), so wei amounts go through :func:`dumps`."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON response from a ready dict."""
    return Response(dumps(body), status_code=status, media_type="application/json")


# --- Server-Sent Events ----------------------------------------------------------------------

#: Headers of every event stream (no caching, no buffering by a proxy in front).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: The last event of an OpenAI stream.
SSE_DONE = b"data: [DONE]\n\n"


def sse(value: Any) -> bytes:
    """One Server-Sent Event carrying ``value`` as JSON."""
    return b"data: " + dumps(value) + b"\n\n"


# --- errors ----------------------------------------------------------------------------------

_TYPES: dict[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for a status."""
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if status < 500 else "server_error"


def error_body(
    status: int, code: str, message: str, param: str | None = None
) -> dict[str, dict[str, Any]]:
    """The OpenAI-shaped error body."""
    return {"error": {"message": message, "type": error_type(status), "code": code, "param": param}}


def error_response(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response."""
    body = error_body(status, code, message, param)
    return JSONResponse(body, status_code=status, headers=headers)


# --- OpenAPI ---------------------------------------------------------------------------------

#: OpenAPI ``responses`` for the error statuses every route may answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Invalid request (stable code in error.code)"),
        (401, "Missing, expired or forged bearer token"),
        (403, "No on-chain access to the model"),
        (404, "Unknown model"),
        (410, "Model version revoked"),
        (413, "Body too large"),
        (422, "The model cannot be loaded"),
        (429, "Rate limited"),
        (502, "Upstream failure"),
        (503, "No capacity or no worker"),
        (504, "Timed out"),
    )
}

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
