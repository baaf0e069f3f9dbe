"""The worker's HTTP server: health, Prometheus metrics, and (when a serving runtime is
attached) direct inference for the versions this node serves, mounted from
:class:`node.serving.WorkerServing`. The HTTP helpers both servers share (JSON, SSE, error
bodies) are in :mod:`node.serving.http`."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from node.metrics import NodeMetrics
from node.service import Service

log = logging.getLogger(__name__)


def create_app(
    metrics: NodeMetrics,
    health: dict[str, Any],
    mount: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """The worker's FastAPI app.

    Args:
        metrics: the node's metrics (served at ``/metrics``).
        health: a live dict merged into the ``/healthz`` body (address, served models, cursor).
        mount: adds the inference routes to the app, when given.
    """
    app = FastAPI(title="anchorml worker", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", **health}

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if mount is not None:
        mount(app)
    return app


class HttpServer(Service):
    """Runs the worker's FastAPI app on uvicorn, bound before the node registers its endpoint."""

    name = "http"

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)

    @property
    def url(self) -> str:
        """The URL the server answers on."""
        return f"http://{self.host}:{self.port}"

    async def run(self) -> None:
        self.server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
        await self.server.serve(sockets=[self.sock])

    async def stop(self) -> None:
        await super().stop()
        self.server.should_exit = True
        await asyncio.sleep(0)
