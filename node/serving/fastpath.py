"""A short way through FastAPI for one hot JSON endpoint (``POST /v1/embeddings``).

Under load a one-text embeddings request cost the gateway's event loop about 0.7 ms, and
FastAPI's per-request machinery — route matching, its exception and exit-stack middlewares,
dependency solving, body parsing — was about a third of it (py-spy, ~250 texts/s). On a 2-core
machine every millisecond the loop spends is taken from the lanes that run the model, and it
lengthens the round trip that leaves a lane idle between two batches.

:class:`JsonFastPath` is ASGI middleware that answers one route itself when the request carries
a JSON body that validates: it parses the body with the route's pydantic model
(``model_validate_json``) and calls the route's own handler, so the answer is the route's.
Everything else — other paths and methods, another content type, a body over ``max_body``
bytes, a body that does not validate — is handed to the app unchanged (the bytes already read
are replayed), so FastAPI still produces every validation error and the OpenAPI schema still
describes the route. Exceptions from the handler go through ``on_error``, the app's one error
translation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Handler = Callable[[Any, Request], Awaitable[Response]]


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


def _replay(chunks: list[bytes], more: bool, receive: Receive) -> Receive:
    """A ``receive`` that first yields what was already read, then reads on."""
    pending = list(chunks)

    async def replayed() -> Message:
        if pending:
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending) or more}
        if more:
            return await receive()
        return {"type": "http.request", "body": b"", "more_body": False}

    return replayed


class JsonFastPath:
    """Serve ``POST path`` with ``handler(body_model instance, request)``; see the module doc.

    Args:
        app: the application (it serves everything this does not).
        path: the route's path.
        body_model: the route's body model.
        handler: the route's work, given the parsed body and the request.
        on_error: the response for an exception ``handler`` raised.
        max_body: bodies larger than this go to the app (which enforces its own limit).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        body_model: type[BaseModel],
        handler: Handler,
        on_error: Callable[[Exception], Response],
        max_body: int,
    ) -> None:
        self.app = app
        self.path = path
        self.body_model = body_model
        self.handler = handler
        self.on_error = on_error
        self.max_body = max_body
        self._route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != self.path
            or scope["method"] != "POST"
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and size <= self.max_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before its request was read: nothing to answer
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
        if more or size > self.max_body:
            await self.app(scope, _replay(chunks, more, receive), send)
            return
        raw = b"".join(chunks)
        try:
            body = self.body_model.model_validate_json(raw)
        except ValidationError:
            await self.app(scope, _replay(chunks, False, receive), send)
            return
        scope["route"] = self._route or self._find_route(scope)
        request = Request(scope, receive)
        request._body = raw  # what Request.body() returns (a grant check reads it)
        try:
            response = await self.handler(body, request)
        except Exception as exc:  # noqa: BLE001 - translated like the app translates it
            response = self.on_error(exc)
        await response(scope, receive, send)

    def _find_route(self, scope: Scope) -> Any:
        """The app's route for ``path`` (what request metrics label the request with)."""
        for route in scope["app"].routes:
            if getattr(route, "path", None) == self.path and "POST" in getattr(
                route, "methods", ()
            ):
                self._route = route
        return self._route
