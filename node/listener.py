"""Feed the processor the job events, trailing the head by N confirmations.

The scanning — bounded windows, confirmations, the reorg check against the block hashes kept in
:class:`~node.state.NodeState` — is the SDK's :class:`~registry.chain.events.EventFollower`.
Each poll, every chain request retried through an RPC outage (:func:`~node.rpc.with_retries`):
    1. read the head; the target is ``head - confirmations``;
    2. resume from the stored cursor, rewound past any reorg;
    3. scan ``(cursor, target]`` window by window for JobBoard and registry events, hand each to
       the processor's queue, and only then advance the cursor (with the block hash).
On first start the scan begins at the deployment block, so the node rebuilds its view of open
jobs from the chain itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from node.rpc import with_retries
from node.service import Service
from node.state import NodeState
from registry.chain.events import ChainEvent, EventFollower, EventScanner
from registry.sdk import Anchorml

log = logging.getLogger(__name__)

JOB_EVENTS = (
    "JobCreated",
    "JobClaimed",
    "ClaimReleased",
    "ResultCommitted",
    "JobFinalized",
    "JobExpired",
    "JobCancelled",
)
REGISTRY_EVENTS = ("VersionRevoked",)


class Listener(Service):
    """Feeds :class:`~registry.chain.events.ChainEvent` objects into ``queue`` in block order."""

    name = "listener"

    def __init__(
        self,
        sdk: Anchorml,
        state: NodeState,
        queue: asyncio.Queue[ChainEvent],
        *,
        confirmations: int = 0,
        poll_interval_s: float = 0.5,
        scan_window: int = 500,
        outage_s: float = 30.0,
        health: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.health = health if health is not None else {}
        self.sdk = sdk
        self.state = state
        self.queue = queue
        self.poll_interval_s = poll_interval_s
        self.outage_s = outage_s
        scanner = EventScanner(
            sdk.chain, [sdk.jobs, sdk.models], JOB_EVENTS + REGISTRY_EVENTS, window=scan_window
        )
        self.follower = EventFollower(
            scanner,
            state,
            start_block=sdk.deployment.deploy_block,
            confirmations=confirmations,
        )
        self.caught_up = asyncio.Event()

    @property
    def reorgs(self) -> int:
        """Reorgs detected since start."""
        return self.follower.reorgs

    async def run(self) -> None:
        while not self.stopping.is_set():
            await self.poll_once()
            await self.sleep(self.poll_interval_s)

    async def poll_once(self) -> int:
        """Scan everything new up to the confirmed head; return the number of events queued."""
        follower = self.follower
        target = await self._rpc(follower.target, "head")
        cursor = await self._rpc(lambda: follower.resume(target), "cursor")
        if follower.reorgs:
            self.health["reorgs"] = follower.reorgs
        start = cursor + 1
        queued = 0
        for first, last in follower.windows(start, target):
            if self.stopping.is_set():
                break
            window = await self._rpc(
                lambda s=first, e=last: follower.fetch(s, e), f"logs {first}-{last}"
            )
            for event in window.events:
                await self.queue.put(event)
            queued += len(window.events)
            if window.end_hash is None:
                break  # the chain shrank under us: the next poll sees the reorg
            follower.advance(window)
            self.health["cursor"] = last
            start = last + 1
        if start > target:
            self.caught_up.set()
        return queued

    async def _rpc(self, fn: Any, what: str) -> Any:
        return await with_retries(fn, what=what, outage_s=self.outage_s)
