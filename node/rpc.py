"""Retry transient RPC failures with capped backoff; give up (raise) after a sustained outage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from registry.errors import ContractRevertError, RpcUnavailableError

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
    """Run blocking ``fn`` in a thread, retrying transport errors until ``outage_s`` elapses.

    Contract reverts are not transient and propagate at once.

    Raises:
        RpcOutageError: still failing after ``outage_s`` seconds.
    """
    started = time.monotonic()
    delay = first_delay_s
    while True:
        try:
            return await asyncio.to_thread(fn)
        except ContractRevertError:
            raise
        except Exception as exc:  # transport errors come in many types (requests, web3, OSError)
            if not _transient(exc):
                raise
            elapsed = time.monotonic() - started
            if elapsed >= outage_s:
                raise RpcOutageError(
                    f"{what}: chain unreachable for {elapsed:.0f} s ({type(exc).__name__})"
                ) from None
            log.info("%s failed (%s); retrying in %.2f s", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, RpcUnavailableError | ConnectionError | TimeoutError | OSError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return (
        name in {"HTTPError", "ConnectionError", "ReadTimeout", "Timeout", "Web3RPCError"}
        or "429" in text
        or "503" in text
        or "timed out" in text
        or "too many requests" in text
    )
