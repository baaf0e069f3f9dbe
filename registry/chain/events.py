"""Read contract events in bounded block windows.

``eth_getLogs`` over a long range is slow on eth-tester and refused by many providers, so every
scan walks ``[from_block, to_block]`` in windows of at most ``window`` blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from web3.types import EventData

from registry.chain.connection import Chain

DEFAULT_WINDOW = 2_000


def iter_events(
    chain: Chain,
    event: Any,
    from_block: int,
    to_block: int | None = None,
    *,
    argument_filters: dict[str, Any] | None = None,
    window: int = DEFAULT_WINDOW,
) -> Iterator[EventData]:
    """Yield decoded ``event`` logs (a web3 contract event, e.g. ``c.events.JobCreated``) in
    block order, scanning ``window`` blocks per request."""
    last = int(chain.w3.eth.block_number) if to_block is None else to_block
    start = from_block
    while start <= last:
        end = min(start + window - 1, last)
        logs = event.get_logs(from_block=start, to_block=end, argument_filters=argument_filters)
        yield from sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
        start = end + 1
