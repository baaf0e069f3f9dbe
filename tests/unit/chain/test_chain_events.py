"""The one event scanner (registry/chain/events.py) on every backend: bounded windows, typed
decoding, indexed-argument filters, confirmations, reorg rewinds from stored block hashes, and
chain failures surfacing as typed registry errors."""

from __future__ import annotations

import logging

import pytest
import requests
from web3 import Web3
from web3.exceptions import BlockNotFound, Web3RPCError

from registry.chain import revert_errors
from registry.chain.connection import Chain
from registry.chain.events import (
    ChainEvent,
    EventFollower,
    EventScanner,
    MemoryBlockLog,
)
from registry.chain.failures import chain_error
from registry.clients.models import model_id
from registry.errors import ChainError, RpcUnavailableError
from support.chain import GATED, PAID, PUBLIC, RpcCalls, World


def models_scanner(env: World, window: int = 3) -> EventScanner:
    return EventScanner(env.chain, [env.owner.models], ["ModelCreated"], window=window)


def follower(env: World, blocks: MemoryBlockLog | None = None, **kw: int) -> EventFollower:
    start = env.chain.head() + 1  # only what the test itself does
    return EventFollower(models_scanner(env), blocks or MemoryBlockLog(), start_block=start, **kw)


def created(windows_or_events: list[ChainEvent]) -> list[str]:
    return [str(e.args["name"]) for e in windows_or_events]


def drain(f: EventFollower) -> list[ChainEvent]:
    """One poll, every window handled and advanced past."""
    out: list[ChainEvent] = []
    for window in f.poll():
        out.extend(window.events)
        f.advance(window)
    return out


# ----------------------------------------------------------------------------- scanning


def test_a_scan_reads_bounded_windows_and_decodes_in_chain_order(
    env: World, rpc_calls: RpcCalls
) -> None:
    first = env.chain.head() + 1
    sent = [env.owner.models.create_model(f"scan-{i}") for i in range(4)]
    env.chain.mine(5)
    last = env.chain.head()
    rpc_calls.clear()

    found = list(models_scanner(env, window=3).scan(first, last))

    ranges = [
        (int(p[0]["fromBlock"], 16), int(p[0]["toBlock"], 16))
        for m, p in rpc_calls.params
        if m == "eth_getLogs"
    ]
    assert ranges[0][0] == first and ranges[-1][1] == last
    assert all(b - a + 1 <= 3 for a, b in ranges)  # bounded
    assert all(nxt[0] == prev[1] + 1 for prev, nxt in zip(ranges, ranges[1:], strict=False))
    assert created(found) == [f"scan-{i}" for i in range(4)]
    assert [(e.name, e.block, e.tx_hash) for e in found] == [
        ("ModelCreated", tx.block_number, tx.tx_hash) for tx in sent
    ]
    assert found[0].args["owner"] == env.owner.address
    assert found[0].args["modelId"] == model_id("scan-0")
    assert found[0].address == env.owner.models.address


def test_a_scan_filters_by_indexed_arguments(env: World) -> None:
    start = env.chain.head() + 1
    env.owner.models.create_model("by-owner")
    env.user.models.create_model("by-user")
    scanner = models_scanner(env)

    assert created(list(scanner.scan(start, where={"owner": env.user.address}))) == ["by-user"]
    mid = model_id("by-owner")
    assert created(list(scanner.scan(start, where={"modelId": mid}))) == ["by-owner"]
    with pytest.raises(ValueError, match="no indexed arguments"):
        list(scanner.scan(start, where={"name": "by-user"}))  # not indexed


def test_a_scanner_of_several_events_reads_them_in_one_request_per_window(
    env: World, rpc_calls: RpcCalls
) -> None:
    start = env.chain.head() + 1
    env.owner.models.create_model("several")
    env.owner.models.grant_access(GATED, env.user.address)
    scanner = EventScanner(
        env.chain, [env.owner.models, env.owner.nodes], ["ModelCreated", "AccessChanged"]
    )
    rpc_calls.clear()
    found = list(scanner.scan(start))
    assert [e.name for e in found] == ["ModelCreated", "AccessChanged"]
    assert rpc_calls["eth_getLogs"] == 1
    with pytest.raises(ValueError, match="not events"):
        EventScanner(env.chain, [env.owner.nodes], ["ModelCreated"])


# ----------------------------------------------------------------------------- following


def test_a_follower_trails_the_head_by_its_confirmations(env: World) -> None:
    f = follower(env, confirmations=2)
    env.owner.models.create_model("confirmed")
    assert drain(f) == []  # its block is the head: 0 confirmations
    env.chain.mine(1)
    assert drain(f) == []
    env.chain.mine(1)
    assert created(drain(f)) == ["confirmed"]
    assert f.position == env.chain.head() - 2
    env.chain.mine(3)
    assert drain(f) == []  # nothing twice


def test_a_follower_rewinds_to_the_common_ancestor_after_a_reorg(
    env: World, caplog: pytest.LogCaptureFixture
) -> None:
    f = follower(env)
    env.owner.models.create_model("before")
    assert created(drain(f)) == ["before"]
    fork = env.snapshot()
    ancestor = env.chain.head()
    env.owner.models.create_model("old-branch")
    env.chain.mine(2)
    assert created(drain(f)) == ["old-branch"]

    env.restore(fork)  # the old branch is gone; a longer new one replaces it
    env.owner.models.create_model("new-branch")
    env.chain.mine(4)
    with caplog.at_level(logging.WARNING, logger="registry.chain.events"):
        found = drain(f)

    assert created(found) == ["new-branch"]
    assert f.reorgs == 1
    assert f"rescanning from block {ancestor + 1}" in caplog.text
    assert f.blocks.recent_blocks()[0] == (env.chain.head(), env.chain.block_hash(env.chain.head()))


def test_a_follower_rewinds_when_the_chain_got_shorter(env: World) -> None:
    f = follower(env)
    fork = env.snapshot()
    env.owner.models.create_model("vanishes")
    env.chain.mine(3)
    assert created(drain(f)) == ["vanishes"]
    env.restore(fork)
    assert drain(f) == []
    assert f.reorgs == 1 and f.position <= env.chain.head()
    env.owner.models.create_model("replaces")
    assert created(drain(f)) == ["replaces"]


def test_a_reorg_deeper_than_the_record_rescans_from_the_start(env: World) -> None:
    f = follower(env, MemoryBlockLog(keep=2))
    f.scanner.window = 1  # one recorded hash per block
    fork = env.snapshot()
    env.owner.models.create_model("deep-old")
    env.chain.mine(4)
    assert created(drain(f)) == ["deep-old"]
    env.restore(fork)
    env.owner.models.create_model("deep-new")
    env.chain.mine(6)
    assert created(drain(f)) == ["deep-new"]
    assert f.reorgs == 1


def test_nothing_new_costs_one_request(env: World, rpc_calls: RpcCalls) -> None:
    f = follower(env)
    env.owner.models.create_model("idle")
    drain(f)
    rpc_calls.clear()
    assert drain(f) == []
    assert dict(rpc_calls) == {"eth_blockNumber": 1}


# ----------------------------------------------------------------------------- failures


def test_chain_failures_are_classified_by_type() -> None:
    transient = [
        requests.ConnectionError("refused"),
        requests.HTTPError("429 Too Many Requests"),
        TimeoutError(),
        Web3RPCError("header not found"),
    ]
    for exc in transient:
        assert type(chain_error(exc, "x")) is RpcUnavailableError, exc
    for exc in (BlockNotFound("gone"), ValueError("bad")):
        assert type(chain_error(exc, "x")) is ChainError, exc
    typed = RpcUnavailableError("already typed")
    assert chain_error(typed, "x") is typed


def test_a_revert_is_its_typed_error(env: World) -> None:
    fn = env.registry.functions.checkVersionAccess(b"\x01" * 32, env.user.address)
    with pytest.raises(revert_errors.VersionNotFound):
        env.user.wallet.call(fn)


def test_an_unreachable_chain_is_rpc_unavailable_for_every_read(world: World) -> None:
    dead_url = "http://127.0.0.1:9"  # discard port: nothing answers
    dead = Chain(w3=Web3(Web3.HTTPProvider(dead_url, request_kwargs={"timeout": 1})), url=dead_url)
    with pytest.raises(RpcUnavailableError):
        dead.head()
    with pytest.raises(RpcUnavailableError):
        dead.block_hash(1)
    models = world.owner.models
    scanner = EventScanner(dead, [models], ["ModelCreated"])
    with pytest.raises(RpcUnavailableError):
        scanner.fetch(0, 1)
    assert {PUBLIC, PAID} <= set(created(list(models_scanner(world).scan(0))))
