"""NodeRegistry behaviour, one test group per external function, on every backend.

Covers registration and stake, served versions, the two-step exit (request, then withdraw after
the unstake delay, probed at its exact second), slashing and the staking parameters.
"""

from __future__ import annotations

import pytest

from registry.chain import revert_errors
from registry.clients.models import version_id
from support.chain import (
    MIN_STAKE,
    NODE_STAKE,
    PUBLIC,
    SLASH,
    UNSTAKE_DELAY,
    V1,
    World,
    events,
    gas_cost,
    reverts,
    role,
    transact_at,
)

KEY = bytes([3]) * 33


def registered(env: World, name: str = "user", stake: int = MIN_STAKE) -> None:
    env.actors[name].nodes.register("http://127.0.0.1:9100", KEY, stake)


# -------------------------------------------------------------------------------- register


def test_register_records_node_and_stake(env: World) -> None:
    result = env.user.nodes.register("http://worker:8080", KEY, MIN_STAKE)

    node = env.user.nodes.get_node(env.user.address)
    assert (node.registered, node.stake_wei, node.endpoint, node.public_key) == (
        True,
        MIN_STAKE,
        "http://worker:8080",
        KEY,
    )
    assert (node.unlock_at, node.slash_count) == (0, 0)
    assert env.user.nodes.is_eligible(env.user.address) is True
    receipt = env.receipt(result.tx_hash)
    assert events(env.node_registry, receipt, "NodeRegistered") == [
        {"node": env.user.address, "endpoint": "http://worker:8080", "publicKey": KEY}
    ]
    assert events(env.node_registry, receipt, "StakeChanged") == [
        {"node": env.user.address, "stake": MIN_STAKE}
    ]


def test_register_again_updates_endpoint_without_new_stake(env: World) -> None:
    result = env.node1.nodes.register("http://moved:1", KEY)
    node = env.node("node1")
    assert (node.endpoint, node.public_key, node.stake_wei) == ("http://moved:1", KEY, NODE_STAKE)
    assert events(env.node_registry, env.receipt(result.tx_hash), "StakeChanged") == []


def test_register_adds_value_to_existing_stake(env: World) -> None:
    env.node1.nodes.register("http://x", KEY, 5)
    assert env.stake("node1") == NODE_STAKE + 5


@pytest.mark.parametrize("stake", [0, MIN_STAKE - 1])
def test_register_reverts_if_stake_below_minimum(env: World, stake: int) -> None:
    with reverts(revert_errors.InsufficientStake, stake=stake, min_stake=MIN_STAKE):
        registered(env, stake=stake)
    assert env.user.nodes.get_node(env.user.address).registered is False


@pytest.mark.parametrize(
    ("endpoint", "key"),
    [("", KEY), ("h" * 257, KEY), ("http://x", b""), ("http://x", b"k" * 129)],
    ids=["no-endpoint", "long-endpoint", "no-key", "long-key"],
)
def test_register_reverts_if_info_invalid(env: World, endpoint: str, key: bytes) -> None:
    with reverts(revert_errors.InvalidNodeInfo):
        env.user.nodes.register(endpoint, key, MIN_STAKE)


def test_register_accepts_maximum_sizes(env: World) -> None:
    env.user.nodes.register("h" * 256, b"k" * 128, MIN_STAKE)
    assert env.user.nodes.get_node(env.user.address).endpoint == "h" * 256


def test_register_reverts_if_exiting(env: World) -> None:
    result = env.node1.nodes.request_unstake()
    unlock = env.node("node1").unlock_at
    assert events(env.node_registry, env.receipt(result.tx_hash), "UnstakeRequested") == [
        {"node": env.node1.address, "unlockAt": unlock}
    ]
    with reverts(revert_errors.NodeExiting, node=env.node1.address, unlock_at=unlock):
        env.node1.nodes.register("http://x", KEY, MIN_STAKE)


# -------------------------------------------------------------------------------- addStake


def test_add_stake_increases_stake(env: World) -> None:
    result = env.node1.nodes.add_stake(7)
    assert env.stake("node1") == NODE_STAKE + 7
    assert events(env.node_registry, env.receipt(result.tx_hash), "StakeChanged") == [
        {"node": env.node1.address, "stake": NODE_STAKE + 7}
    ]


def test_add_stake_reverts_if_unregistered(env: World) -> None:
    with reverts(revert_errors.NodeNotRegistered, node=env.user.address):
        env.user.nodes.add_stake(MIN_STAKE)


def test_add_stake_reverts_if_exiting(env: World) -> None:
    env.node1.nodes.request_unstake()
    with reverts(
        revert_errors.NodeExiting, node=env.node1.address, unlock_at=env.node("node1").unlock_at
    ):
        env.node1.nodes.add_stake(1)


def test_add_stake_restores_eligibility_after_slashing(env: World) -> None:
    registered(env)  # exactly MIN_STAKE
    job = env.claimed_job("user")
    env.warp(env.claim_slot(job, 0)["leaseExpiry"])
    env.attacker.jobs.reclaim_lapsed(job)
    assert env.user.nodes.is_eligible(env.user.address) is False
    env.user.nodes.add_stake(SLASH)
    assert env.user.nodes.is_eligible(env.user.address) is True


# ------------------------------------------------------------------------------ setServing


def test_set_serving_declares_and_withdraws_versions(env: World) -> None:
    vid = version_id(PUBLIC, V1)
    result = env.node1.nodes.set_serving([vid])
    assert events(env.node_registry, env.receipt(result.tx_hash), "ServingChanged") == [
        {"node": env.node1.address, "versionId": vid, "serving": True}
    ]
    assert env.node1.nodes.serves(env.node1.address, vid) is True
    assert [n.address for n in env.node1.nodes.serving_nodes(vid)] == [env.node1.address]
    env.node1.nodes.set_serving([vid], serving=False)
    assert env.node1.nodes.serves(env.node1.address, vid) is False


def test_set_serving_reverts_if_unregistered(env: World) -> None:
    with reverts(revert_errors.NodeNotRegistered, node=env.user.address):
        env.user.nodes.set_serving([version_id(PUBLIC, V1)])


# -------------------------------------------------------------------------- requestUnstake


def test_request_unstake_stops_new_work(env: World) -> None:
    result = env.node1.nodes.request_unstake()
    mined_at = int(env.w3.eth.get_block(result.block_number)["timestamp"])
    assert env.node("node1").unlock_at == mined_at + UNSTAKE_DELAY
    assert env.node1.nodes.is_eligible(env.node1.address) is False


def test_request_unstake_reverts_if_unregistered(env: World) -> None:
    with reverts(revert_errors.NodeNotRegistered, node=env.user.address):
        env.user.nodes.request_unstake()


def test_request_unstake_reverts_on_repeat(env: World) -> None:
    env.node1.nodes.request_unstake()
    with reverts(
        revert_errors.NodeExiting, node=env.node1.address, unlock_at=env.node("node1").unlock_at
    ):
        env.node1.nodes.request_unstake()


# --------------------------------------------------------------------------- withdrawStake


def test_withdraw_stake_reverts_without_request(env: World) -> None:
    with reverts(revert_errors.StakeLocked, node=env.node1.address, unlock_at=0):
        env.node1.nodes.withdraw_stake()


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_withdraw_stake_after_unstake_delay(env: World, offset: int) -> None:
    env.node1.nodes.request_unstake()
    unlock = env.node("node1").unlock_at
    fn = env.node_registry.functions.withdrawStake()
    if offset < 0:
        with reverts(revert_errors.StakeLocked, node=env.node1.address, unlock_at=unlock):
            transact_at(env.node1.wallet, fn, unlock + offset)
        assert env.stake("node1") == NODE_STAKE
        return
    receipt = transact_at(env.node1.wallet, fn, unlock + offset)
    node = env.node("node1")
    assert (node.registered, node.stake_wei, node.unlock_at) == (False, 0, 0)
    assert env.credit(env.node_registry, env.node1.address) == NODE_STAKE
    assert events(env.node_registry, receipt, "StakeChanged") == [
        {"node": env.node1.address, "stake": 0}
    ]


def test_unstaked_node_withdraws_and_may_register_again(env: World) -> None:
    env.node1.nodes.request_unstake()
    env.warp(env.node("node1").unlock_at)
    env.node1.nodes.withdraw_stake()
    before = env.balance(env.node1.address)

    sent = env.node1.wallet.transact(env.node_registry.functions.withdraw())

    assert env.balance(env.node1.address) == before + NODE_STAKE - gas_cost(sent.receipt)
    assert env.balance(env.node_registry.address) == 3 * NODE_STAKE  # the other three nodes
    env.node1.nodes.register("http://back", KEY, MIN_STAKE)
    assert env.node1.nodes.is_eligible(env.node1.address) is True


def test_slash_during_unstake_delay_reduces_what_is_withdrawn(env: World) -> None:
    job = env.claimed_job("node1")
    env.node1.nodes.request_unstake()  # leaving does not escape a lapsed lease
    env.warp(env.claim_slot(job, 0)["leaseExpiry"])
    env.attacker.jobs.reclaim_lapsed(job)
    env.warp(env.node("node1").unlock_at)
    env.node1.nodes.withdraw_stake()
    assert env.credit(env.node_registry, env.node1.address) == NODE_STAKE - SLASH


# ----------------------------------------------------------------------------------- slash


@pytest.fixture
def slasher(env: World) -> None:
    """Give ``admin`` the job board's slasher role, to call slash directly."""
    env.admin.wallet.transact(
        env.node_registry.functions.grantRole(role("SLASHER_ROLE"), env.admin.address)
    )


def test_slash_moves_stake_to_beneficiary(env: World, slasher: None) -> None:
    fn = env.node_registry.functions.slash(env.node1.address, 123, env.buyer.address, 9)
    sent = env.admin.wallet.transact(fn)
    assert events(env.node_registry, sent.receipt, "Slashed") == [
        {"node": env.node1.address, "amount": 123, "beneficiary": env.buyer.address, "jobId": 9}
    ]
    assert env.stake("node1") == NODE_STAKE - 123
    assert env.node("node1").slash_count == 1
    assert env.credit(env.node_registry, env.buyer.address) == 123


def test_slash_is_capped_at_the_stake(env: World, slasher: None) -> None:
    fn = env.node_registry.functions.slash(env.node1.address, 10 * NODE_STAKE, env.buyer.address, 1)
    assert env.admin.wallet.call(fn) == NODE_STAKE
    env.admin.wallet.transact(fn)
    assert env.stake("node1") == 0
    assert env.credit(env.node_registry, env.buyer.address) == NODE_STAKE
    assert env.node1.nodes.is_eligible(env.node1.address) is False
    env.admin.wallet.transact(fn)  # nothing left: slashes zero, credits nothing
    assert env.credit(env.node_registry, env.buyer.address) == NODE_STAKE
    assert env.node("node1").slash_count == 2


# ------------------------------------------------------------------------------- setParams


def test_set_params_changes_eligibility(env: World) -> None:
    sent = env.admin.wallet.transact(env.node_registry.functions.setParams(NODE_STAKE + 1, 60))
    assert events(env.node_registry, sent.receipt, "ParamsSet") == [
        {"minStake": NODE_STAKE + 1, "unstakeDelay": 60}
    ]
    assert env.node1.nodes.min_stake() == NODE_STAKE + 1
    assert env.node1.nodes.is_eligible(env.node1.address) is False
    env.node1.nodes.add_stake(1)
    assert env.node1.nodes.is_eligible(env.node1.address) is True


# ----------------------------------------------------------------------------------- views


def test_unknown_node_is_not_registered(env: World) -> None:
    node = env.user.nodes.get_node(env.attacker.address)
    assert (node.registered, node.stake_wei) == (False, 0)
    assert env.user.nodes.is_eligible(env.attacker.address) is False


def test_list_nodes_returns_every_registered_node(env: World) -> None:
    listed = [n.address for n in env.user.nodes.list_nodes()]
    assert listed == [env.actors[n].address for n in ("node1", "node2", "node3", "node4")]
