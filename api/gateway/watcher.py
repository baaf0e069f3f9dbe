"""Follow the contracts' events: keep the :class:`RegistryIndex` current and invalidate caches.

The scanning — bounded windows, a cursor kept with block hashes, reorg detection — is the SDK's
:class:`~registry.chain.events.EventFollower` (every event of the three contracts, no
confirmations: the index shows the head). Each poll (one at a time):
1. in a worker thread: scan from the cursor to the head (for ``JobFinalized``, also look up who
   sent the transaction: the delivering node when k = 1);
2. on the event loop: fold the events into the index in chain order, advance the cursor, and
   hand the changed views to ``on_change`` (``access`` → access answers dropped, ``models`` →
   resolutions dropped, ``nodes`` → worker routing refreshed).

Folding on the event loop means request handlers never see the index change under them. The
first poll starts at the deployment block, so the index holds the whole history. A projection
cannot take events back, so after a reorg the index is rebuilt from the deployment block.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from api.gateway.index import VIEWS, LogMeta, RegistryIndex
from registry.chain.events import ChainEvent, EventFollower, EventScanner, MemoryBlockLog, Window
from registry.sdk import Anchorml

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Scan:
    """What one poll read in the worker thread."""

    head: int
    rebuild: bool  # a reorg: fold into an empty index
    windows: list[Window]
    senders: dict[str, str]  # tx hash -> sender, for JobFinalized


class ChainWatcher:
    """Polls the chain for the contracts' events.

    Args:
        sdk: the connected client (its deployment names the contracts).
        index: the projection to fold events into.
        on_change: called on the event loop with the views each poll changed.
        interval_s: seconds between polls in :meth:`run`.
        window: blocks per ``eth_getLogs`` request.
    """

    def __init__(
        self,
        sdk: Anchorml,
        index: RegistryIndex,
        on_change: Callable[[set[str]], None],
        *,
        interval_s: float = 1.0,
        window: int = 1000,
    ) -> None:
        self.sdk = sdk
        self.index = index
        self.on_change = on_change
        self.on_tick: Callable[[], None] = lambda: None  # after every poll in :meth:`run`
        self.interval_s = interval_s
        scanner = EventScanner(sdk.chain, [sdk.models, sdk.nodes, sdk.jobs], window=window)
        self.follower = EventFollower(
            scanner, MemoryBlockLog(), start_block=sdk.deployment.deploy_block
        )
        self.last_poll = 0.0
        self.errors = 0
        self._lock = asyncio.Lock()
        self._rebuild = False  # a reorg was seen: the next fold starts from an empty index

    @property
    def cursor(self) -> int:
        """The last block folded into the index."""
        return self.follower.position

    # --- fetching (worker thread) ---------------------------------------------------------------

    def fetch(self) -> _Scan:
        """Everything from the cursor to the head (from the deployment block after a reorg)."""
        follower = self.follower
        head = follower.target()
        reorgs = follower.reorgs
        start = follower.resume(head) + 1
        if follower.reorgs != reorgs:
            # kept until the rebuilt index is folded, so a failed scan cannot lose it
            self._rebuild = True
            follower.reset()
            start = follower.start_block
        rebuild = self._rebuild
        windows = []
        for first, last in follower.windows(start, head):
            window = follower.fetch(first, last)
            windows.append(window)
            if window.end_hash is None:
                break  # the chain shrank under the scan: the next poll sees the reorg
        senders = {
            event.tx_hash: self.sdk.chain.tx_sender(event.tx_hash)
            for window in windows
            for event in window.events
            if event.name == "JobFinalized"
        }
        return _Scan(head, rebuild, windows, senders)

    # --- folding (event loop) ------------------------------------------------------------------

    async def poll(self) -> int:
        """Scan the new blocks once; return how many were scanned."""
        async with self._lock:
            before = self.cursor
            scan = await asyncio.to_thread(self.fetch)
            changed: set[str] = set()
            if scan.rebuild:
                log.warning("chain watcher: a reorg; rebuilding the index from the deployment")
                self.index.reset()
                self._rebuild = False
                before = self.follower.start_block - 1
                changed |= VIEWS
            for window in scan.windows:
                for event in window.events:
                    changed |= self.index.apply(event.name, event.args, self._meta(event, scan))
                self.follower.advance(window)
            scanned = max(0, self.cursor - before)
            self.last_poll = time.monotonic()
        if changed:
            self.on_change(changed)
        return scanned

    @staticmethod
    def _meta(event: ChainEvent, scan: _Scan) -> LogMeta:
        return LogMeta(event.block, event.tx_hash, scan.senders.get(event.tx_hash, ""))

    async def catch_up(self) -> None:
        """Poll now if the chain has blocks the index has not seen."""
        head = await asyncio.to_thread(self.sdk.chain.head)
        if head > self.cursor:
            await self.poll()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval_s`` until ``stop`` is set, calling ``on_tick`` after each poll;
        errors are logged and retried."""
        while not stop.is_set():
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001 - a failed poll is retried on the next tick
                self.errors += 1
                log.warning("chain watcher: poll failed (%s); retrying", type(exc).__name__)
            self.on_tick()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
