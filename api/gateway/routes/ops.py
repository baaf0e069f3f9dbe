"""Operations: ``/healthz`` (liveness plus what the gateway is connected to) and ``/metrics``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.gateway.deps import GatewayDep
from registry.errors import ChainError

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz(gateway: GatewayDep) -> dict[str, Any]:
    """``ok`` with the chain head, the watcher's cursor and the in-process models; ``degraded``
    when the chain does not answer."""
    try:
        head = await asyncio.to_thread(gateway.sdk.chain.head)
        status = "ok"
    except ChainError:  # the chain does not answer (or answers nonsense): degraded
        head, status = -1, "degraded"
    return {
        "status": status,
        "chain_id": gateway.sdk.deployment.chain_id,
        "block": head,
        "indexed_block": gateway.watcher.cursor,
        "signer": gateway.sdk.wallet.address if gateway.sdk.wallet else None,
        "inprocess": gateway.config.inprocess,
        "loaded_models": gateway.runtime.loaded(),
        "active_generations": gateway.runtime.active_generations,
    }


@router.get("/metrics", response_class=Response)
async def metrics(gateway: GatewayDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)
