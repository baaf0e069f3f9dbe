"""Follow the contracts' events: keep the :class:`RegistryIndex` current and invalidate caches.

Each poll (one at a time):
1. in a worker thread: read the head block number and fetch the logs of the three contracts from
   the cursor to the head with ``eth_getLogs``, in bounded block windows (one request per
   window for all three addresses); decode each log by its topic with the contract ABIs (and,
   for ``JobFinalized``, look up who sent the transaction: the delivering node when k = 1);
2. on the event loop: fold the events into the index in chain order, advance the cursor, and
   hand the changed views to ``on_change`` (``access`` → access answers dropped, ``models`` →
   resolutions dropped, ``nodes`` → worker routing refreshed).

Folding on the event loop means request handlers never see the index change under them. The
first poll starts at the deployment block, so the index holds the whole history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from eth_utils.abi import event_abi_to_log_topic

from api.gateway.index import LogMeta, RegistryIndex
from registry.sdk import Anchorml

log = logging.getLogger(__name__)

Decoded = tuple[str, dict[str, Any], LogMeta]


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
        self.window = window
        self.cursor = sdk.deployment.deploy_block - 1
        self.last_poll = 0.0
        self.errors = 0
        self._lock = asyncio.Lock()
        self._events: dict[bytes, Any] = {}
        contracts = (sdk.models.contract, sdk.nodes.contract, sdk.jobs.contract)
        self._addresses = [c.address for c in contracts]
        for contract in contracts:
            for entry in contract.abi:
                if entry.get("type") == "event":
                    event: Any = entry
                    topic = bytes(event_abi_to_log_topic(event))
                    self._events[topic] = getattr(contract.events, event["name"])()

    # --- fetching (worker thread) ---------------------------------------------------------------

    def fetch(self, start: int) -> tuple[int, list[Decoded]]:
        """Decoded events from block ``start`` to the head; returns ``(head, events)``."""
        w3 = self.sdk.chain.w3
        head = int(w3.eth.block_number)
        out: list[Decoded] = []
        while start <= head:
            end = min(start + self.window - 1, head)
            query: Any = {"fromBlock": start, "toBlock": end, "address": self._addresses}
            logs = w3.eth.get_logs(query)
            for raw in sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"])):
                decoded = self._decode(raw)
                if decoded is not None:
                    out.append(decoded)
            start = end + 1
        return head, out

    def _decode(self, raw: Any) -> Decoded | None:
        topics = raw.get("topics") or []
        event = self._events.get(bytes(topics[0])) if topics else None
        if event is None:
            return None
        decoded = event.process_log(raw)
        name = str(decoded["event"])
        sender = ""
        if name == "JobFinalized":
            sender = str(self.sdk.chain.w3.eth.get_transaction(raw["transactionHash"])["from"])
        tx_hash = "0x" + bytes(raw["transactionHash"]).hex()
        meta = LogMeta(int(raw["blockNumber"]), tx_hash, sender)
        return name, dict(decoded["args"]), meta

    # --- folding (event loop) ------------------------------------------------------------------

    async def poll(self) -> int:
        """Scan the new blocks once; return how many were scanned."""
        async with self._lock:
            head, events = await asyncio.to_thread(self.fetch, self.cursor + 1)
            changed: set[str] = set()
            for name, args, meta in events:
                changed |= self.index.apply(name, args, meta)
            scanned = max(0, head - self.cursor)
            self.cursor = max(self.cursor, head)
            self.last_poll = time.monotonic()
        if changed:
            self.on_change(changed)
        return scanned

    async def catch_up(self) -> None:
        """Poll now if the chain has blocks the index has not seen."""
        head = await asyncio.to_thread(lambda: int(self.sdk.chain.w3.eth.block_number))
        if head > self.cursor:
            await self.poll()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval_s`` until ``stop`` is set, calling ``on_tick`` after each poll;
        errors are logged and retried."""
        while not stop.is_set():
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001 - RPC/transport errors have many types
                self.errors += 1
                log.warning("chain watcher: poll failed (%s); retrying", type(exc).__name__)
            self.on_tick()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
