"""The gateway's FastAPI app factory.

``create_app(config, sdk)`` wires the routes, the body limit and metrics middleware, the
embeddings fast path (the OpenAI router's handler around FastAPI), the one error handler and the
dashboard page. Its lifespan:
1. builds the components (:func:`api.gateway.deps.build`) inside the serving event loop;
2. replays the contracts' events into the index (so the first answers are complete);
3. starts the chain watcher and the job tracker;
4. on shutdown stops both, unloads in-process models and closes the worker client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.gateway.config import GatewayConfig
from api.gateway.deps import build
from api.gateway.errors import install_error_handlers
from api.gateway.metrics import GatewayMetrics
from api.gateway.middleware import BodyLimitMiddleware, MetricsMiddleware
from api.gateway.routes import ipfs, jobs, nodes, openai, ops, registry
from registry.sdk import Anchorml

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")


def create_app(config: GatewayConfig, sdk: Anchorml) -> FastAPI:
    """The gateway app for ``sdk``'s chain, deployment and store."""
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = build(config, sdk, metrics)
        app.state.gateway = gateway
        await gateway.watcher.poll()
        tasks = [
            asyncio.create_task(gateway.watcher.run(gateway.stop), name="chain-watcher"),
            asyncio.create_task(gateway.tracker.run(gateway.stop), name="job-tracker"),
        ]
        log.info(
            "gateway ready (chain %s, block %s)", sdk.deployment.chain_id, gateway.watcher.cursor
        )
        try:
            yield
        finally:
            gateway.stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=30)
            await gateway.spotcheck.aclose()
            await gateway.runtime.stop()
            await gateway.pool.aclose()

    app = FastAPI(
        title="anchorml gateway",
        version="0.1.0",
        description=(
            "OpenAI-compatible inference over a blockchain-anchored model registry, plus the "
            'registry, job board and worker nodes. Errors: `{"error": {"code", "message"}}`.'
        ),
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (openai, registry, jobs, nodes, ipfs, ops):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    openai.add_fast_path(app, config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes)
    return app
