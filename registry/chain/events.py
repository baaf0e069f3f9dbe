"""The one event scanner: contract events read in bounded block windows, decoded into
:class:`ChainEvent` objects, and followed from a stored cursor behind the head, past reorgs.

``eth_getLogs`` over a long range is slow on eth-tester and refused by many providers, so every
scan walks its range in windows of at most ``window`` blocks: one request per window for all the
contracts and events a scanner watches. Three users, three layers:

- :class:`EventScanner` (the clients' look-ups): which events of which contracts; :meth:`~
  EventScanner.fetch` reads one window, :meth:`~EventScanner.scan` a whole range, optionally
  filtered by indexed arguments.
- :class:`EventFollower` (the worker's listener, the gateway's watcher): a cursor kept with
  block hashes in a :class:`BlockLog` (the worker's SQLite, or :class:`MemoryBlockLog`). One poll:

  1. the target is ``head - confirmations``;
  2. :meth:`~EventFollower.resume` checks the newest recorded block's hash against the chain; on
     a mismatch (a reorg) it walks the recorded blocks down to the newest one whose hash still
     matches — a block's hash commits to all its ancestors, so that is the common ancestor —
     and rewinds the log to it (past every recorded block: back to the start block);
  3. each window of ``(cursor, target]`` is fetched with the hash of its last block; the caller
     handles its events, then :meth:`~EventFollower.advance` records that block and hash.

- :class:`IncrementalScan` (repeated look-ups of one filter, e.g. a model's versions): each
  scan starts where the last one for the same key ended, less :data:`RESCAN_DEPTH` blocks.

Every chain failure reaches the caller as a typed registry error (:mod:`registry.chain.failures`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_abi import encode as abi_encode
from eth_utils import event_abi_to_log_topic, keccak

from registry.chain.connection import Chain
from registry.chain.failures import translated

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 2_000
#: Recorded (block, hash) pairs kept for reorg detection: a reorg deeper than this rescans from
#: the start block.
KEEP_BLOCKS = 128
#: Blocks below the last scanned head that an incremental scan looks at again, so events from a
#: block replaced by a shallow reorg are still found.
RESCAN_DEPTH = 64


@dataclass(frozen=True)
class ChainEvent:
    """One decoded log.

    Attributes:
        name: the event's name (e.g. ``JobCreated``).
        args: its arguments by name (bytes32 as ``bytes``, addresses checksummed).
        block: the block it was emitted in.
        log_index: its position in that block.
        tx_hash: 0x-hex hash of the emitting transaction.
        address: the emitting contract.
    """

    name: str
    args: dict[str, Any]
    block: int
    log_index: int = 0
    tx_hash: str = ""
    address: str = ""


class HasContract(Protocol):
    """A contract client: anything holding a bound web3 contract as ``contract``."""

    contract: Any


class EventScanner:
    """Reads and decodes some events of some contracts, ``window`` blocks per request.

    Args:
        chain: the connected chain.
        sources: the contract clients whose events to read.
        names: the events to read (by name); None for every event of the sources' ABIs.
        window: blocks per ``eth_getLogs`` request.

    Raises:
        ValueError: a name is not an event of any source.
    """

    def __init__(
        self,
        chain: Chain,
        sources: Sequence[HasContract],
        names: Collection[str] | None = None,
        *,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.chain = chain
        self.window = window
        self._addresses = [source.contract.address for source in sources]
        # topic -> (bound event, its ABI). Events with one signature decode alike whichever
        # contract emitted them (e.g. the shared Credited/Withdrawn), so one entry serves all.
        self._events: dict[str, tuple[Any, Any]] = {}
        for source in sources:
            for abi in source.contract.abi:
                if abi.get("type") != "event" or (names is not None and abi["name"] not in names):
                    continue
                topic = "0x" + bytes(event_abi_to_log_topic(abi)).hex()
                bound = getattr(source.contract.events, abi["name"])()
                self._events.setdefault(topic, (bound, abi))
        missing = set(names or ()) - {abi["name"] for _bound, abi in self._events.values()}
        if missing:
            raise ValueError(f"not events of these contracts: {sorted(missing)}")

    def fetch(
        self, start: int, end: int, where: Mapping[str, Any] | None = None
    ) -> list[ChainEvent]:
        """The events of blocks ``start..end`` (one request: keep the range within a window),
        in chain order; ``where`` filters a one-event scanner by indexed arguments."""
        topics: list[Any] = [list(self._events)] if where is None else self._where(where)
        query: Any = {
            "fromBlock": start,
            "toBlock": end,
            "address": self._addresses,
            "topics": topics,
        }
        with translated(f"eth_getLogs({start}-{end}) at {self.chain.url}"):
            logs = self.chain.w3.eth.get_logs(query)
        out = []
        for raw in sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"])):
            found = self._events.get(raw["topics"][0].to_0x_hex()) if raw["topics"] else None
            if found is None:
                continue
            with translated(f"decoding a log of block {raw['blockNumber']}"):
                decoded = found[0].process_log(raw)
            out.append(
                ChainEvent(
                    name=str(decoded["event"]),
                    args=dict(decoded["args"]),
                    block=int(raw["blockNumber"]),
                    log_index=int(raw["logIndex"]),
                    tx_hash=raw["transactionHash"].to_0x_hex(),
                    address=str(raw["address"]),
                )
            )
        return out

    def scan(
        self, start: int, end: int | None = None, where: Mapping[str, Any] | None = None
    ) -> Iterator[ChainEvent]:
        """The events of blocks ``start..end`` (default: the head), window by window."""
        last = self.chain.head() if end is None else end
        while start <= last:
            stop = min(start + self.window - 1, last)
            yield from self.fetch(start, stop, where)
            start = stop + 1

    def _where(self, where: Mapping[str, Any]) -> list[Any]:
        """``eth_getLogs`` topics selecting the one watched event with these indexed args."""
        if len(self._events) != 1:
            raise ValueError("argument filters need a scanner of exactly one event")
        ((topic, (_bound, abi)),) = self._events.items()
        indexed = [arg for arg in abi["inputs"] if arg.get("indexed")]
        unknown = set(where) - {arg["name"] for arg in indexed}
        if unknown:
            raise ValueError(f"{abi['name']} has no indexed arguments {sorted(unknown)}")
        topics: list[Any] = [topic]
        for arg in indexed:
            value = where.get(arg["name"])
            topics.append(None if value is None else _topic(arg["type"], value))
        while topics[-1] is None:
            topics.pop()
        return topics


def _topic(abi_type: str, value: Any) -> str:
    """The topic an indexed argument of ``abi_type`` holding ``value`` is logged as."""
    if abi_type == "string":
        return "0x" + keccak(text=value).hex()
    if abi_type == "bytes" or abi_type.endswith("]") or abi_type.startswith("("):
        raise ValueError(f"filtering on an indexed {abi_type} is not supported")
    return "0x" + abi_encode([abi_type], [value]).hex()


# --- following the chain ------------------------------------------------------------------------


class BlockLog(Protocol):
    """Where a follower keeps its cursor: recently processed blocks with their hashes."""

    def recent_blocks(self) -> list[tuple[int, str]]:
        """Recorded ``(number, hash)`` pairs, newest first."""
        ...

    def advance(self, number: int, block_hash: str) -> None:
        """Record that every block up to ``number`` (hash ``block_hash``) was processed."""
        ...

    def rewind(self, number: int) -> None:
        """Forget the blocks above ``number``."""
        ...


@dataclass
class MemoryBlockLog:
    """A :class:`BlockLog` in memory (for a process that rebuilds its view on start)."""

    keep: int = KEEP_BLOCKS
    _blocks: list[tuple[int, str]] = field(default_factory=list)  # oldest first

    def recent_blocks(self) -> list[tuple[int, str]]:
        """Recorded ``(number, hash)`` pairs, newest first."""
        return self._blocks[::-1]

    def advance(self, number: int, block_hash: str) -> None:
        """Record block ``number`` with ``block_hash``."""
        self.rewind(number - 1)
        self._blocks.append((number, block_hash))
        del self._blocks[: -self.keep]

    def rewind(self, number: int) -> None:
        """Forget the blocks above ``number``."""
        self._blocks = [(n, h) for n, h in self._blocks if n <= number]


@dataclass(frozen=True)
class Window:
    """One scanned window: its events, and the hash its last block had when read (None when the
    chain no longer reached that block: it shrank under the scan)."""

    start: int
    end: int
    end_hash: str | None
    events: list[ChainEvent]


class EventFollower:
    """Follows ``scanner``'s events from the cursor in ``blocks`` to ``confirmations`` blocks
    behind the head (the numbered steps are in the module doc).

    Args:
        scanner: what to read.
        blocks: the cursor's store.
        start_block: where the first scan starts (the deployment's block).
        confirmations: blocks the target trails the head by.
    """

    def __init__(
        self,
        scanner: EventScanner,
        blocks: BlockLog,
        *,
        start_block: int,
        confirmations: int = 0,
    ) -> None:
        self.scanner = scanner
        self.chain = scanner.chain
        self.blocks = blocks
        self.start_block = start_block
        self.confirmations = confirmations
        self.reorgs = 0  # detected so far

    @property
    def position(self) -> int:
        """The last block processed (``start_block - 1`` before the first)."""
        recorded = self.blocks.recent_blocks()
        return recorded[0][0] if recorded else self.start_block - 1

    def target(self) -> int:
        """The newest block to scan: the head less the confirmations."""
        return self.chain.head() - self.confirmations

    def resume(self, target: int | None = None) -> int:
        """The last block still on the chain as processed, after rewinding past a reorg.

        With ``target`` equal to the cursor there is nothing to scan and no request is made: a
        reorg that kept the chain's length is found with the next block.
        """
        recorded = self.blocks.recent_blocks()
        if not recorded:
            return self.start_block - 1
        cursor = recorded[0][0]
        if target == cursor:
            return cursor
        for number, known in recorded:
            if self.chain.block_hash(number) == known:
                if number != cursor:
                    self.reorgs += 1
                    log.warning(
                        "reorg of depth %s detected; rescanning from block %s",
                        cursor - number,
                        number + 1,
                    )
                    self.blocks.rewind(number)
                return number
        self.reorgs += 1
        self.reset()
        log.warning(
            "reorg deeper than the %s recorded blocks; rescanning from block %s",
            len(recorded),
            self.start_block,
        )
        return self.start_block - 1

    def reset(self) -> None:
        """Forget every recorded block: the next poll scans from the start block."""
        self.blocks.rewind(self.start_block - 1)

    def windows(self, start: int, target: int) -> Iterator[tuple[int, int]]:
        """``(first, last)`` block of each window from ``start`` to ``target``."""
        while start <= target:
            end = min(start + self.scanner.window - 1, target)
            yield start, end
            start = end + 1

    def fetch(self, start: int, end: int) -> Window:
        """The events of one window and the hash of its last block."""
        events = self.scanner.fetch(start, end)
        return Window(start, end, self.chain.block_hash(end), events)

    def advance(self, window: Window) -> None:
        """Record ``window`` as processed (call once its events are handled)."""
        if window.end_hash is not None:
            self.blocks.advance(window.end, window.end_hash)

    def poll(self) -> list[Window]:
        """Steps 1-3 at once, for a caller that handles the windows afterwards (in order, then
        :meth:`advance` past each). Stops at a window whose last block vanished."""
        target = self.target()
        out = []
        for start, end in self.windows(self.resume(target) + 1, target):
            window = self.fetch(start, end)
            out.append(window)
            if window.end_hash is None:
                break
        return out


class IncrementalScan:
    """Repeated scans of one event per key (e.g. a model's ``VersionRegistered``), each from
    where the last scan of that key ended less :data:`RESCAN_DEPTH` blocks — so a look-up costs
    a scan of the new blocks, not of the chain since deployment — and from ``from_block`` again
    when the chain got shorter than the last scan (a reorg, a dev chain reverted). Callers keep
    what earlier scans found, de-duplicated by their own key, and confirm it with contract calls.
    """

    def __init__(self, scanner: EventScanner, from_block: int, depth: int = RESCAN_DEPTH) -> None:
        self.scanner = scanner
        self.from_block = from_block
        self.depth = depth
        self._scanned: dict[Hashable, int] = {}  # key -> head at its last scan

    def new_events(self, key: Hashable, where: Mapping[str, Any]) -> list[ChainEvent]:
        """The events matching ``where`` since the last scan of ``key`` (with the overlap)."""
        head = self.scanner.chain.head()
        last = self._scanned.get(key)
        if last is None or head < last:
            start = self.from_block
        else:
            start = max(self.from_block, last - self.depth)
        events = list(self.scanner.scan(start, head, where))
        self._scanned[key] = head
        return events
