"""Worker nodes: stake, endpoint, served versions and delivery record.

Each node's current stake, eligibility and slash count are read from NodeRegistry; the served
versions, deliveries (jobs finalized with its result) and slashes are counted from events. Each
registered node's endpoint is checked as routing checks it: ``endpoint_error`` says why the
gateway refuses to call it (None: it may), ``rejected_answers`` counts the answers of that
node the gateway dropped because their receipts did not hold, and ``excluded`` says why the
gateway stopped routing to it (a spot check caught a wrong answer).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.gateway.deps import FreshGatewayDep, Gateway
from api.gateway.index import NodeEntry
from node.serving import ERROR_RESPONSES, json_response

router = APIRouter(prefix="/v1/nodes", tags=["nodes"], responses=ERROR_RESPONSES)


class NodeOut(BaseModel):
    """A worker node."""

    address: str
    endpoint: str
    stake_wei: int
    registered: bool
    eligible: bool
    unlock_at: int
    serving: list[str]
    delivered: int
    slashes: int
    slashed_wei: int
    inflight: int
    endpoint_error: str | None
    rejected_answers: int
    excluded: str | None


class NodeListOut(BaseModel):
    """Every node that ever registered."""

    object: str = "list"
    data: list[NodeOut]


def _read(
    gateway: Gateway, entries: list[tuple[NodeEntry, list[str]]], inflight: dict[str, int]
) -> list[dict[str, Any]]:
    out = []
    for entry, serving in entries:
        record = gateway.sdk.nodes.get_node(entry.address)
        out.append(
            {
                "address": record.address,
                "endpoint": record.endpoint,
                "stake_wei": record.stake_wei,
                "registered": record.registered,
                "eligible": gateway.sdk.nodes.is_eligible(record.address),
                "unlock_at": record.unlock_at,
                "serving": serving,
                "delivered": entry.delivered,
                "slashes": max(entry.slashes, record.slash_count),
                "slashed_wei": entry.slashed_wei,
                "inflight": inflight.get(record.address, 0),
            }
        )
    return out


@router.get("", response_model=NodeListOut)
async def list_nodes(gateway: FreshGatewayDep) -> Any:
    """Every registered node with its stake and delivery record."""
    entries = [  # a snapshot taken on the event loop, where the index changes
        (dataclasses.replace(e), sorted(gateway.index.ref_of(v) for v in e.serving))
        for e in gateway.index.nodes.values()
    ]
    inflight = gateway.pool.inflight()
    rows = await asyncio.to_thread(_read, gateway, entries, inflight)
    rejected = gateway.pool.rejected()
    excluded = gateway.pool.excluded()
    for row in rows:
        if row["registered"]:
            await gateway.pool.vet(row["address"], row["endpoint"])
        row["endpoint_error"] = gateway.pool.endpoint_problems().get(row["address"])
        row["rejected_answers"] = rejected.get(row["address"], 0)
        row["excluded"] = excluded.get(row["address"])
    return json_response({"object": "list", "data": rows})
