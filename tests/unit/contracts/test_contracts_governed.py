"""What the three contracts share (Governed): pause (C3), pull-payment withdraw, and the
two-step default-admin transfer (C2), each run against all three contracts on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from registry.chain import revert_errors
from registry.clients import JobStatus
from registry.clients.models import model_id, version_id
from registry.errors import ContractRevertError
from registry.jobs import JobKind
from support.chain import (
    ADMIN_DELAY,
    LEASE,
    MIN_STAKE,
    NODE_STAKE,
    PAID,
    PRICE,
    PUBLIC,
    REWARD,
    V1,
    ZERO32,
    ZERO_ADDRESS,
    World,
    events,
    gas_cost,
    load_test_artifact,
    output,
    reverts,
    role,
    send_unchecked,
    sha,
    simulate,
    transact_at,
)

CONTRACTS = ("registry", "node_registry", "board")


@pytest.fixture(params=CONTRACTS)
def contract(request: pytest.FixtureRequest, env: World) -> Any:
    """Each of the three deployed contracts in turn."""
    return getattr(env, request.param)


# ------------------------------------------------------------------------------ pause/unpause


def test_pause_stops_and_unpause_resumes(env: World, contract: Any) -> None:
    sent = env.admin.wallet.transact(contract.functions.pause())
    assert contract.functions.paused().call() is True
    assert events(contract, sent.receipt, "Paused") == [{"account": env.admin.address}]

    sent = env.admin.wallet.transact(contract.functions.unpause())
    assert contract.functions.paused().call() is False
    assert events(contract, sent.receipt, "Unpaused") == [{"account": env.admin.address}]


def test_pause_reverts_if_already_paused(env: World, contract: Any) -> None:
    env.admin.wallet.transact(contract.functions.pause())
    with reverts(revert_errors.EnforcedPause):
        env.admin.wallet.transact(contract.functions.pause())


def test_unpause_reverts_if_not_paused(env: World, contract: Any) -> None:
    with reverts(revert_errors.ExpectedPause):
        env.admin.wallet.transact(contract.functions.unpause())


def test_pause_reverts_if_caller_lacks_pauser_role(env: World, contract: Any) -> None:
    with reverts(
        revert_errors.AccessControlUnauthorizedAccount,
        account=env.attacker.address,
        needed_role=role("PAUSER_ROLE"),
    ):
        env.attacker.wallet.transact(contract.functions.pause())


def test_pauser_role_can_be_granted(env: World, contract: Any) -> None:
    env.admin.wallet.transact(
        contract.functions.grantRole(role_bytes("PAUSER_ROLE"), env.buyer.address)
    )
    env.buyer.wallet.transact(contract.functions.pause())
    assert contract.functions.paused().call() is True


def role_bytes(name: str) -> bytes:
    return bytes.fromhex(role(name)[2:])


# ------------------------------------------------------------- C3: what pausing blocks/allows


@pytest.fixture
def busy(env: World) -> dict[str, Any]:
    """State with work in every phase, then all three contracts paused.

    Jobs: ``open`` (k=1, unclaimed), ``claimed`` (k=1, node1), ``revealing`` (k=2, both
    committed), ``lapsing`` (k=1, node3's lease about to lapse). Credits: ``owner`` on the
    registry (an access sale), ``user`` on the board (a cancelled job), ``node4`` on the node
    registry (unstaked).
    """
    env.node4.nodes.request_unstake()
    env.warp(env.node("node4").unlock_at)
    env.node4.nodes.withdraw_stake()
    s: dict[str, Any] = {}
    s["open"] = env.create_job(seed="open", deadline_in=LEASE)
    s["claimed"] = env.claimed_job("node1", seed="claimed")
    s["revealing"] = env.claimed_job("node1", "node2", seed="revealing")
    s["salts"] = env.commit_all(s["revealing"], {"node1": output("a"), "node2": output("a")})
    s["lapsing"] = env.claimed_job("node3", seed="lapsing")
    env.user.jobs.cancel(env.create_job(seed="cancelled"))
    env.buyer.models.buy_access(PAID)
    for c in (env.registry, env.node_registry, env.board):
        env.admin.wallet.transact(c.functions.pause())
    return s


def test_paused_contracts_refuse_new_work(env: World, busy: dict[str, Any]) -> None:
    reg, nodes, board = env.registry.functions, env.node_registry.functions, env.board.functions
    out = output("a")
    spec = env.spec()
    blocked = {
        "createModel": (env.user, reg.createModel("new", 0, 0, 0), 0),
        "registerVersion": (
            env.owner,
            reg.registerVersion(
                model_id(PUBLIC), "v2", 0x55, sha("d"), sha("m"), bytes(32), bytes(22)
            ),
            0,
        ),
        "setAlias": (env.owner, reg.setAlias(model_id(PUBLIC), "prod", version_id(PUBLIC, V1)), 0),
        "grantAccess": (env.owner, reg.grantAccess(model_id(PUBLIC), env.user.address, 0), 0),
        "buyAccess": (env.buyer, reg.buyAccess(model_id(PAID), 1), PRICE),
        "revokeVersion": (env.owner, reg.revokeVersion(version_id(PUBLIC, V1)), 0),
        "register": (env.user, nodes.register("http://x", b"k"), MIN_STAKE),
        "addStake": (env.node1, nodes.addStake(), 1),
        "setServing": (env.node1, nodes.setServing([version_id(PUBLIC, V1)], True), 0),
        "createJob": (env.user, board.createJob(env.request(spec)), REWARD),
        "claim": (env.node2, board.claim(busy["open"]), 0),
        "submitResult": (
            env.node1,
            board.submitResult(busy["claimed"], 0x55, out.content.digest, out.sha256, 1),
            0,
        ),
        "commitResult": (env.node1, board.commitResult(busy["claimed"], sha("c")), 0),
        "revealResult": (
            env.node1,
            board.revealResult(
                busy["revealing"],
                0x55,
                out.content.digest,
                out.sha256,
                out.size,
                busy["salts"]["node1"],
            ),
            0,
        ),
    }
    for name, (actor, fn, value) in blocked.items():
        with reverts(revert_errors.EnforcedPause):
            actor.wallet.transact(fn, value)
        receipt = send_unchecked(actor.wallet, fn, value)
        assert receipt["status"] == 0, f"{name} was mined successfully while paused"
    assert env.job(busy["open"])["claims"] == 0
    assert env.job(busy["claimed"])["status"] == int(JobStatus.CLAIMED)

    for c in (env.registry, env.node_registry, env.board):
        env.admin.wallet.transact(c.functions.unpause())
    env.node2.jobs.claim(busy["open"])
    env.node1.jobs.submit(busy["claimed"], out)
    assert env.job(busy["claimed"])["status"] == int(JobStatus.FINALIZED)


def test_paused_contracts_still_pay_out_and_let_work_end(env: World, busy: dict[str, Any]) -> None:
    """Withdrawing earned funds, refunds and exits never depend on the pause switch."""
    paid = {}
    for actor, contract, amount in (
        (env.owner, env.registry, PRICE),
        (env.user, env.board, REWARD),
        (env.node4, env.node_registry, NODE_STAKE),
    ):
        before = env.balance(actor.address)
        sent = actor.wallet.transact(contract.functions.withdraw())
        paid[actor.name] = env.balance(actor.address) - before + gas_cost(sent.receipt)
        assert paid[actor.name] == amount
    assert paid == {"owner": PRICE, "user": REWARD, "node4": NODE_STAKE}

    env.node1.jobs.release(busy["claimed"])
    env.user.jobs.cancel(busy["claimed"])
    env.warp(
        max(
            env.claim_slot(busy["lapsing"], 0)["leaseExpiry"],
            env.job(busy["open"])["deadline"],
            env.job(busy["revealing"])["revealDeadline"],
        )
    )
    env.attacker.jobs.reclaim_lapsed(busy["lapsing"])
    env.attacker.jobs.expire(busy["open"])
    env.attacker.jobs.finalize(busy["revealing"])
    env.node1.nodes.request_unstake()
    statuses = [env.job(busy[k])["status"] for k in ("claimed", "lapsing", "open", "revealing")]
    assert (
        statuses == [int(JobStatus.CANCELLED), int(JobStatus.OPEN)] + [int(JobStatus.EXPIRED)] * 2
    )


def test_paused_registry_blocks_model_job_delivery(env: World) -> None:
    """A model-producing job registers its output in the registry, so pausing the registry
    pauses its delivery too (the claimant can still release without a slash)."""
    env.user.models.create_model("ft")
    job = env.claimed_job("node1", kind=JobKind.FINETUNE, output_model="ft")
    env.admin.wallet.transact(env.registry.functions.pause())
    with reverts(revert_errors.EnforcedPause):
        env.node1.jobs.submit(job, output("w"))
    env.node1.jobs.release(job)
    assert env.stake("node1") == NODE_STAKE


# ---------------------------------------------------------------------------------- withdraw


def test_withdraw_reverts_if_nothing_credited(env: World, contract: Any) -> None:
    with reverts(revert_errors.NothingToWithdraw, account=env.attacker.address):
        env.attacker.wallet.transact(contract.functions.withdraw())


def test_withdraw_pays_the_exact_credit_once(env: World) -> None:
    job = env.create_job()
    env.user.jobs.cancel(job)
    board_before, user_before = env.balance(env.board.address), env.balance(env.user.address)

    sent = env.user.wallet.transact(env.board.functions.withdraw())

    assert env.balance(env.user.address) == user_before + REWARD - gas_cost(sent.receipt)
    assert env.balance(env.board.address) == board_before - REWARD
    assert events(env.board, sent.receipt, "Withdrawn") == [
        {"account": env.user.address, "amount": REWARD}
    ]
    with reverts(revert_errors.NothingToWithdraw, account=env.user.address):
        env.user.wallet.transact(env.board.functions.withdraw())


def test_withdraw_reverts_if_payee_cannot_take_payment(env: World) -> None:
    """A payee whose receive() runs out of gas keeps its credit (TransferFailed rolls back)."""
    art = load_test_artifact("ReentrantPayee")
    factory = env.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    address = env.attacker.wallet.deploy(factory, env.board.address).receipt["contractAddress"]
    payee = env.w3.eth.contract(address=address, abi=art.abi)
    board = env.board.functions
    create = board.createJob(env.request(env.spec()))._encode_transaction_data()
    env.attacker.wallet.transact(payee.functions.attack(create, b""), value=REWARD)
    env.attacker.wallet.transact(
        payee.functions.attack(board.cancelJob(1)._encode_transaction_data(), b"")
    )
    withdraw = payee.functions.attack(board.withdraw()._encode_transaction_data(), b"")

    def outcome(gas: int) -> str:
        try:
            simulate(withdraw, env.attacker.address, gas=gas)
        except ContractRevertError as exc:
            return exc.error_name
        return "ok"

    # Bisect the least gas that pays out; a little below it, receive() runs out of gas while
    # withdraw() keeps enough (the 1/64 it holds back) to revert with its reason.
    low, high = 50_000, 500_000
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if outcome(middle) == "ok" else (middle, high)
    starved = next(g for g in range(high - 1, high - 20_000, -50) if outcome(g) == "TransferFailed")
    with reverts(revert_errors.TransferFailed, to=address, amount=REWARD):
        simulate(withdraw, env.attacker.address, gas=starved)
    receipt = send_unchecked(env.attacker.wallet, withdraw, gas=starved)
    assert receipt["status"] == 0
    assert (env.credit(env.board, address), env.balance(address)) == (REWARD, 0)
    env.attacker.wallet.transact(withdraw)
    assert (env.credit(env.board, address), env.balance(address)) == (0, REWARD)


# ------------------------------------------------------------------ C2: default admin transfer


def begin_transfer(env: World, contract: Any) -> int:
    """Admin starts handing the contract to ``newadmin``; returns the accept schedule."""
    sent = env.admin.wallet.transact(
        contract.functions.beginDefaultAdminTransfer(env.newadmin.address)
    )
    mined_at = int(env.w3.eth.get_block(sent.receipt["blockNumber"])["timestamp"])
    assert events(contract, sent.receipt, "DefaultAdminTransferScheduled") == [
        {"newAdmin": env.newadmin.address, "acceptSchedule": mined_at + ADMIN_DELAY}
    ]
    return mined_at + ADMIN_DELAY


def test_begin_default_admin_transfer_changes_nothing_yet(env: World, contract: Any) -> None:
    schedule = begin_transfer(env, contract)
    fns = contract.functions
    assert fns.pendingDefaultAdmin().call() == [env.newadmin.address, schedule]
    assert fns.defaultAdmin().call() == env.admin.address
    assert fns.hasRole(bytes(32), env.admin.address).call() is True
    assert fns.hasRole(bytes(32), env.newadmin.address).call() is False
    grant = fns.grantRole(role_bytes("PAUSER_ROLE"), env.buyer.address)
    with reverts(
        revert_errors.AccessControlUnauthorizedAccount,
        account=env.newadmin.address,
        needed_role=ZERO32,
    ):
        env.newadmin.wallet.transact(grant)
    env.admin.wallet.transact(grant)  # the current admin keeps its powers meanwhile
    assert fns.hasRole(role_bytes("PAUSER_ROLE"), env.buyer.address).call() is True


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_accept_default_admin_transfer_around_schedule(
    env: World, contract: Any, offset: int
) -> None:
    schedule = begin_transfer(env, contract)
    fns = contract.functions
    accept = fns.acceptDefaultAdminTransfer()
    if offset <= 0:  # the schedule must have *passed*: block.timestamp > schedule
        with reverts(revert_errors.AccessControlEnforcedDefaultAdminDelay, schedule=schedule):
            transact_at(env.newadmin.wallet, accept, schedule + offset)
        assert fns.defaultAdmin().call() == env.admin.address
        return
    transact_at(env.newadmin.wallet, accept, schedule + offset)
    assert fns.defaultAdmin().call() == env.newadmin.address
    assert fns.hasRole(bytes(32), env.admin.address).call() is False
    assert fns.pendingDefaultAdmin().call() == [ZERO_ADDRESS, 0]
    grant = fns.grantRole(role_bytes("PAUSER_ROLE"), env.buyer.address)
    with reverts(
        revert_errors.AccessControlUnauthorizedAccount,
        account=env.admin.address,
        needed_role=ZERO32,
    ):
        env.admin.wallet.transact(grant)
    env.newadmin.wallet.transact(grant)


def test_accept_default_admin_transfer_reverts_if_not_pending_admin(
    env: World, contract: Any
) -> None:
    schedule = begin_transfer(env, contract)
    env.warp(schedule + 1)
    with reverts(
        revert_errors.AccessControlInvalidDefaultAdmin, default_admin=env.attacker.address
    ):
        env.attacker.wallet.transact(contract.functions.acceptDefaultAdminTransfer())
    assert contract.functions.defaultAdmin().call() == env.admin.address


def test_cancel_default_admin_transfer_voids_it(env: World, contract: Any) -> None:
    schedule = begin_transfer(env, contract)
    env.admin.wallet.transact(contract.functions.cancelDefaultAdminTransfer())
    assert contract.functions.pendingDefaultAdmin().call() == [ZERO_ADDRESS, 0]
    env.warp(schedule + 1)
    with reverts(
        revert_errors.AccessControlInvalidDefaultAdmin, default_admin=env.newadmin.address
    ):
        env.newadmin.wallet.transact(contract.functions.acceptDefaultAdminTransfer())


def test_default_admin_role_cannot_be_granted_directly(env: World, contract: Any) -> None:
    with reverts(revert_errors.AccessControlEnforcedDefaultAdminRules):
        env.admin.wallet.transact(contract.functions.grantRole(bytes(32), env.newadmin.address))
