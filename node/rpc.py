"""Retry transient chain failures with capped backoff; give up (raise) after a sustained outage.

Which failures are transient is decided once, in the SDK: it raises every chain failure as a
typed error, and :class:`~registry.errors.RpcUnavailableError` is the kind worth retrying.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from registry.errors import RpcUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")


class RpcOutageError(RpcUnavailableError):
    """The chain stayed unreachable longer than the node tolerates."""

    code = "rpc_outage"


async def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    outage_s: float = 30.0,
    first_delay_s: float = 0.1,
    max_delay_s: float = 2.0,
) -> T:
    """Run blocking ``fn`` in a thread, retrying :class:`RpcUnavailableError` until ``outage_s``
    elapses. Every other error (a contract revert, a job that does not exist) propagates at once.

    Raises:
        RpcOutageError: still failing after ``outage_s`` seconds.
    """
    started = time.monotonic()
    delay = first_delay_s
    while True:
        try:
            return await asyncio.to_thread(fn)
        except RpcUnavailableError as exc:  # the SDK's one transient chain failure
            elapsed = time.monotonic() - started
            if elapsed >= outage_s:
                raise RpcOutageError(
                    f"{what}: chain unreachable for {elapsed:.0f} s ({exc.message})"
                ) from None
            log.info("%s failed (%s); retrying in %.2f s", what, exc.message, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
