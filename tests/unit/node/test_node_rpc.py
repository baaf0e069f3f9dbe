"""The worker's retry of chain calls: it retries exactly the SDK's transient error, and guesses
nothing from exception names or messages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import requests

from node.rpc import RpcOutageError, with_retries
from registry.chain import revert_errors
from registry.errors import ChainError, RpcUnavailableError


def failing(errors: list[Exception]) -> tuple[Callable[[], str], list[int]]:
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return "ok"

    return fn, calls


def retried(fn: Callable[[], str], outage_s: float = 5.0) -> str:
    return asyncio.run(with_retries(fn, what="t", outage_s=outage_s, first_delay_s=0.001))


def test_rpc_unavailable_is_retried_until_it_answers() -> None:
    fn, calls = failing([RpcUnavailableError("down"), RpcUnavailableError("down")])
    assert retried(fn) == "ok" and calls == [3]


@pytest.mark.parametrize(
    "error",
    [
        ChainError("job 7 does not exist"),
        revert_errors.LeaseActive("contract reverted: LeaseActive", {}),
        # untyped transport errors never reach the node from the SDK; if one does, it is a bug
        # to surface, not a failure to guess at from its class name or text
        requests.ConnectionError("Read timed out (503)"),
    ],
)
def test_anything_else_propagates_at_once(error: Exception) -> None:
    fn, calls = failing([error])
    with pytest.raises(type(error)):
        retried(fn)
    assert calls == [1]


def test_a_sustained_outage_is_an_rpc_outage() -> None:
    fn, _calls = failing([RpcUnavailableError("down")] * 1000)
    with pytest.raises(RpcOutageError, match="chain unreachable"):
        retried(fn, outage_s=0.05)
