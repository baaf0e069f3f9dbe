"""Watch the chain for job events, trailing the head by N confirmations.

Loop:
    1. read the head; the target is ``head - confirmations``;
    2. check the stored cursor block's hash against the chain — on a mismatch (reorg) walk back
       to the last block whose hash still matches and rescan from there;
    3. scan ``(cursor, target]`` in windows of ``scan_window`` blocks for JobBoard and registry
       events, hand each to the processor's queue, and advance the cursor (with the block hash)
       after each window.
On first start the scan begins at the deployment block, so the node rebuilds its view of open
jobs from the chain itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

from node.rpc import with_retries
from node.service import Service
from node.state import NodeState
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


@dataclass(frozen=True)
class ChainEvent:
    """One decoded event for the processor."""

    name: str
    args: dict[str, Any]
    block: int


class Listener(Service):
    """Feeds :class:`ChainEvent` objects into ``queue`` in block order."""

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
        self.confirmations = confirmations
        self.poll_interval_s = poll_interval_s
        self.scan_window = scan_window
        self.outage_s = outage_s
        self.reorgs = 0
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        while not self.stopping.is_set():
            await self.poll_once()
            await self.sleep(self.poll_interval_s)

    async def poll_once(self) -> int:
        """Scan everything new up to the confirmed head; return the number of events queued."""
        chain = self.sdk.chain
        head = await self._rpc(lambda: int(chain.w3.eth.block_number), "head")
        target = head - self.confirmations
        cursor = await self._checked_cursor()
        start = cursor + 1
        queued = 0
        while start <= target and not self.stopping.is_set():
            end = min(start + self.scan_window - 1, target)
            events = await self._rpc(lambda s=start, e=end: self._scan(s, e), f"logs {start}-{end}")
            for event in events:
                await self.queue.put(event)
            queued += len(events)
            end_hash = await self._rpc(lambda e=end: self._hash(e), f"block {end}")
            if end_hash is None:
                break  # the chain shrank under us: the next poll sees the reorg
            self.state.advance(end, end_hash)
            self.health["cursor"] = end
            start = end + 1
        if start > target:
            self.caught_up.set()
        return queued

    async def _checked_cursor(self) -> int:
        """The cursor to scan from, after rewinding past any reorged blocks.

        Walks the recorded (number, hash) pairs from the newest down; the first one the chain
        still has with the same hash is the common ancestor (a block's hash commits to all its
        ancestors), and everything above it is rescanned.
        """
        recorded = self.state.recent_blocks()
        if not recorded:
            return self.sdk.deployment.deploy_block - 1
        cursor = recorded[0][0]
        for number, known in recorded:
            actual = await self._rpc(lambda n=number: self._hash(n), f"block {number}")
            if actual == known:
                if number != cursor:
                    self.reorgs += 1
                    self.health["reorgs"] = self.reorgs
                    log.warning(
                        "reorg of depth %s detected; rescanning from block %s",
                        cursor - number,
                        number + 1,
                    )
                    self.state.rewind(number)
                return number
        self.state.rewind(self.sdk.deployment.deploy_block - 1)
        log.warning(
            "reorg deeper than the %s recorded blocks; rescanning from the deployment",
            len(recorded),
        )
        return self.sdk.deployment.deploy_block - 1

    def _hash(self, number: int) -> str | None:
        """Hash of block ``number``, or None when the chain no longer has it (it got shorter)."""
        from web3.exceptions import BlockNotFound

        try:
            block = self.sdk.chain.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        return str(block["hash"].to_0x_hex())

    def _scan(self, start: int, end: int) -> list[ChainEvent]:
        """One ``eth_getLogs`` over both contracts for every event of interest."""
        logs = self.sdk.chain.w3.eth.get_logs(
            {
                "fromBlock": start,
                "toBlock": end,
                "address": [self.sdk.jobs.contract.address, self.sdk.models.contract.address],
                "topics": [list(self._decoders)],
            }
        )
        out = []
        for entry in sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"])):
            decoder = self._decoders.get(entry["topics"][0].to_0x_hex())
            if decoder is None:
                continue
            name, event = decoder
            decoded = event.process_log(entry)
            out.append(ChainEvent(name, dict(decoded["args"]), int(entry["blockNumber"])))
        return out

    @functools.cached_property
    def _decoders(self) -> dict[str, tuple[str, Any]]:
        from eth_utils import event_abi_to_log_topic

        table: dict[str, tuple[str, Any]] = {}
        sources = [
            (self.sdk.jobs.contract, JOB_EVENTS),
            (self.sdk.models.contract, REGISTRY_EVENTS),
        ]
        for contract, names in sources:
            for name in names:
                event = getattr(contract.events, name)()
                topic = "0x" + event_abi_to_log_topic(event.abi).hex()
                table[topic] = (name, event)
        return table

    async def _rpc(self, fn: Any, what: str) -> Any:
        return await with_retries(fn, what=what, outage_s=self.outage_s)
