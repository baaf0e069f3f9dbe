"""Translate what a chain call raises into the typed registry errors, once, by exception type.

web3, eth-tester and the HTTP transport (requests) raise dozens of exception types. Every chain
read and send in ``registry`` goes through :func:`chain_error` (or :func:`translated`), so callers
above ``registry`` only ever see the :class:`~registry.errors.ChainError` family:

- a contract revert → its typed :class:`~registry.errors.ContractRevertError` subclass;
- the endpoint unreachable, timing out, throttling (HTTP 429/5xx) or answering with a JSON-RPC
  error → :class:`~registry.errors.RpcUnavailableError`, the one *transient* kind: a caller may
  retry it (the worker does, until its outage budget runs out);
- anything else (a "not found" answer, a malformed response, a validation error) →
  :class:`~registry.errors.ChainError`, which retrying would not fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from web3.exceptions import (
    BlockNotFound,
    MultipleFailedRequests,
    PersistentConnectionError,
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    TransactionNotFound,
    Web3RPCError,
)

from registry.chain.reverts import as_revert
from registry.errors import AnchormlError, ChainError, RpcUnavailableError

#: Failures of the endpoint or the way to it. requests' exceptions (refused, reset, timeouts,
#: HTTP 429/5xx after the provider's own retries) derive from OSError, as do socket errors.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    ProviderConnectionError,
    PersistentConnectionError,
    TooManyRequests,
    MultipleFailedRequests,
    TimeExhausted,
)
#: JSON-RPC answers that say "no such thing" rather than "try again".
_NOT_FOUND: tuple[type[BaseException], ...] = (BlockNotFound, TransactionNotFound)


def chain_error(exc: BaseException, what: str) -> AnchormlError:
    """The typed error for ``exc``, raised while doing ``what`` (e.g. ``"eth_getLogs at URL"``).

    Errors that already are anchorml errors are returned unchanged.
    """
    if isinstance(exc, AnchormlError):
        return exc
    revert = as_revert(exc)
    if revert is not None:
        return revert
    # The type names the failure; its text (URLs, raw node answers) stays on ``__cause__``.
    detail = f"{what} failed: {type(exc).__name__}"
    if isinstance(exc, _NOT_FOUND):
        return ChainError(detail)
    if isinstance(exc, _TRANSIENT):
        return RpcUnavailableError(detail)
    if isinstance(exc, Web3RPCError):  # a JSON-RPC error answer: the node struggles (or throttles)
        return RpcUnavailableError(detail)
    return ChainError(detail)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise whatever the block raises as its typed error (see :func:`chain_error`)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - classified by type just below
        raise chain_error(exc, what) from exc
