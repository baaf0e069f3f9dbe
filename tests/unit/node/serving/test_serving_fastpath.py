"""The JSON fast path: valid bodies go straight to the route's handler, everything else reaches
the app unchanged (so FastAPI still answers every validation error), handler errors go through
the app's translation, and request metrics still see the route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from node.serving.errors import InvalidRequestError, to_response
from node.serving.fastpath import JsonFastPath
from node.serving.handlers import json_response


class Body(BaseModel):
    model: str = Field(min_length=1)
    input: str


def json_post_scope() -> dict[str, Any]:
    """The ASGI scope of ``POST /v1/echo`` with a JSON body (for driving the app by hand)."""
    return {
        "type": "http", "method": "POST", "path": "/v1/echo", "raw_path": b"/v1/echo",
        "query_string": b"", "headers": [(b"content-type", b"application/json")],
        "http_version": "1.1", "scheme": "http", "server": ("t", 80), "client": ("c", 1),
        "root_path": "",
    }  # fmt: skip


def make_app(
    max_body: int = 1 << 20, *, fast_path: bool = True
) -> tuple[FastAPI, list[str], list[Any]]:
    """An app whose route and fast path share a handler; ``calls`` records who ran it and
    ``routes`` the ``scope["route"]`` an outer middleware (like the metrics one) saw."""
    app = FastAPI()
    calls: list[str] = []
    routes: list[Any] = []

    async def handler(body: Body, request: Request) -> Response:
        if body.input == "boom":
            raise InvalidRequestError("input must not be boom", "input")
        auth = request.headers.get("authorization", "")
        return json_response({"model": body.model, "length": len(body.input), "auth": auth})

    @app.post("/v1/echo")
    async def route(body: Body, request: Request) -> Response:
        calls.append("route")
        try:
            return await handler(body, request)
        except InvalidRequestError as exc:
            return to_response(exc)

    @app.post("/v1/other")
    async def other(body: Body) -> dict[str, str]:
        calls.append("other")
        return {"input": body.input}

    async def fast(body: Body, request: Request) -> Response:
        calls.append("fast")
        return await handler(body, request)

    if fast_path:
        app.add_middleware(
            JsonFastPath, path="/v1/echo", body_model=Body, handler=fast, on_error=to_response,
            max_body=max_body,
        )  # fmt: skip

    class RecordRoute:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)
            if scope["type"] == "http":
                routes.append(scope.get("route"))

    app.add_middleware(RecordRoute)
    return app, calls, routes


def test_a_valid_body_takes_the_fast_path_and_answers_like_the_route() -> None:
    app, calls, routes = make_app()
    with TestClient(app) as client:
        fast = client.post(
            "/v1/echo", json={"model": "m", "input": "hello"}, headers={"Authorization": "x"}
        )
        assert calls == ["fast"]
        assert fast.status_code == 200
        assert fast.json() == {"model": "m", "length": 5, "auth": "x"}
        assert getattr(routes[-1], "path", None) == "/v1/echo"  # metrics label the route
    plain, plain_calls, plain_routes = make_app(fast_path=False)
    with TestClient(plain) as client:
        slow = client.post(
            "/v1/echo", json={"model": "m", "input": "hello"}, headers={"Authorization": "x"}
        )
    assert plain_calls == ["route"]
    assert (slow.status_code, slow.json()) == (fast.status_code, fast.json())
    assert getattr(plain_routes[-1], "path", None) == "/v1/echo"


def test_another_content_type_reaches_fastapi() -> None:
    app, calls, _ = make_app()
    with TestClient(app) as client:
        response = client.post(
            "/v1/echo",
            content=b'{"model": "m", "input": "hello"}',
            headers={"Content-Type": "text/plain"},
        )
    assert calls == []  # FastAPI reads only JSON bodies into models: its 422, not the fast path
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 422),
        (b'{"model": "", "input": "x"}', 422),
        (b'{"model": "m"}', 422),
        (b"[1, 2]", 422),
    ],
)
def test_a_body_that_does_not_validate_reaches_fastapi_unchanged(
    content: bytes, status: int
) -> None:
    app, calls, _ = make_app()
    with TestClient(app) as client:
        response = client.post(
            "/v1/echo", content=content, headers={"Content-Type": "application/json"}
        )
        assert calls == []  # FastAPI refused it before the route ran
        assert response.status_code == status
        assert response.json()["detail"]  # FastAPI's own validation answer


def test_other_paths_and_methods_pass_through() -> None:
    app, calls, _ = make_app()
    with TestClient(app) as client:
        assert client.post("/v1/other", json={"model": "m", "input": "a"}).json() == {"input": "a"}
        assert client.get("/v1/echo").status_code == 405
        assert calls == ["other"]


def test_a_handler_error_goes_through_on_error() -> None:
    app, calls, _ = make_app()
    with TestClient(app) as client:
        response = client.post("/v1/echo", json={"model": "m", "input": "boom"})
    assert calls == ["fast"]
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "input must not be boom",
        "type": "invalid_request_error",
        "code": "invalid_request",
        "param": "input",
    }


def test_a_body_over_max_body_is_replayed_whole_to_the_app() -> None:
    app, calls, _ = make_app(max_body=16)
    text = "y" * 5000
    with TestClient(app) as client:
        response = client.post("/v1/echo", json={"model": "m", "input": text})
    assert calls == ["route"]  # the app got every byte, including those the fast path read
    assert response.json()["length"] == len(text)


def test_a_body_sent_in_chunks_is_read_whole() -> None:
    """Several ``http.request`` messages, within and beyond ``max_body``."""
    for max_body, expected in ((1 << 20, "fast"), (10, "route")):
        app, calls, _ = make_app(max_body=max_body)
        chunks = [b'{"model": "m", ', b'"input": "chunk', b'ed"}']
        sent: list[dict[str, Any]] = []

        async def receive(chunks: list[bytes] = chunks) -> dict[str, Any]:
            body = chunks.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(chunks)}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        asyncio.run(app(json_post_scope(), receive, send))
        assert calls == [expected]
        assert sent[0]["status"] == 200
        assert b'"length":7' in sent[1]["body"]


def test_a_client_gone_before_its_body_arrived_gets_nothing() -> None:
    app, calls, _ = make_app()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(json_post_scope(), receive, send))
    assert calls == [] and sent == []
