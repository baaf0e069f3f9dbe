"""C4 reentrancy: a payee whose receive() re-enters the contract paying it gains nothing extra.

The attacker is ``ReentrantPayee`` (contracts/test): it acts as requester, model owner or node
through ``attack(data, reentry)`` and, when paid, replays ``reentry`` once. Balances are checked
to the wei: the payee is a contract, so no gas muddles its balance.
"""

from __future__ import annotations

from typing import Any

import pytest

from registry.chain import revert_errors
from registry.clients import Access
from registry.clients.models import model_id
from support.chain import MIN_STAKE, PRICE, REWARD, World, load_test_artifact, reverts


class Payee:
    """A deployed ReentrantPayee aimed at ``target``, driven by the attacker account."""

    def __init__(self, env: World, target: Any) -> None:
        art = load_test_artifact("ReentrantPayee")
        factory = env.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        sent = env.attacker.wallet.deploy(factory, target.address)
        self.env = env
        self.target = target
        self.address = sent.receipt["contractAddress"]
        self.contract = env.w3.eth.contract(address=self.address, abi=art.abi)

    def attack(self, fn: Any, reentry: Any = None, value: int = 0) -> Any:
        """Make the payee call ``fn`` (and replay ``reentry`` when it is paid)."""
        data = fn._encode_transaction_data()
        replay = reentry._encode_transaction_data() if reentry is not None else b""
        return self.env.attacker.wallet.transact(
            self.contract.functions.attack(data, replay), value
        )

    def received(self) -> int:
        return int(self.contract.functions.received().call())

    def reentry_succeeded(self) -> bool:
        return bool(self.contract.functions.reentrySucceeded().call())

    def balance(self) -> int:
        return self.env.balance(self.address)

    def credit(self) -> int:
        return self.env.credit(self.target, self.address)


def requester(env: World, jobs: int = 1) -> Payee:
    """A payee that created ``jobs`` jobs and cancelled the first (crediting its refund)."""
    payee = Payee(env, env.board)
    for i in range(jobs):
        payee.attack(
            env.board.functions.createJob(env.request(env.spec(seed=str(i)))), value=REWARD
        )
    payee.attack(env.board.functions.cancelJob(1))
    return payee


def test_withdraw_reentering_withdraw_gains_nothing(env: World) -> None:
    payee = requester(env)
    board_before = env.balance(env.board.address)
    withdraw = env.board.functions.withdraw()

    payee.attack(withdraw, reentry=withdraw)

    assert payee.received() == 1
    assert payee.reentry_succeeded() is False  # nonReentrant refused the nested withdraw
    assert payee.balance() == REWARD
    assert payee.credit() == 0
    assert env.balance(env.board.address) == board_before - REWARD
    with reverts(revert_errors.NothingToWithdraw, account=payee.address):
        payee.attack(withdraw)


def test_withdraw_reentering_cancel_of_paid_job_gains_nothing(env: World) -> None:
    payee = requester(env)
    payee.attack(env.board.functions.withdraw(), reentry=env.board.functions.cancelJob(1))
    assert payee.reentry_succeeded() is False  # already cancelled
    assert (payee.balance(), payee.credit()) == (REWARD, 0)


def test_withdraw_reentering_cancel_of_another_job_only_credits_it(env: World) -> None:
    """Cancelling its other open job from receive() works, but only credits that job's own
    escrow: the payee ends with exactly what it put in."""
    payee = requester(env, jobs=2)
    board_before = env.balance(env.board.address)

    payee.attack(env.board.functions.withdraw(), reentry=env.board.functions.cancelJob(2))

    assert payee.reentry_succeeded() is True
    assert (payee.balance(), payee.credit()) == (REWARD, REWARD)
    assert env.balance(env.board.address) == board_before - REWARD
    payee.attack(env.board.functions.withdraw())
    assert (payee.balance(), payee.credit()) == (2 * REWARD, 0)
    assert env.balance(env.board.address) == board_before - 2 * REWARD


def test_model_owner_reentering_withdraw_gains_nothing(env: World) -> None:
    payee = Payee(env, env.registry)
    payee.attack(env.registry.functions.createModel("evil", int(Access.PAID), PRICE, 3600))
    env.buyer.models.buy_access("evil", periods=2)
    registry_before = env.balance(env.registry.address)
    withdraw = env.registry.functions.withdraw()

    payee.attack(withdraw, reentry=withdraw)

    assert (payee.received(), payee.reentry_succeeded()) == (1, False)
    assert (payee.balance(), payee.credit()) == (2 * PRICE, 0)
    assert env.balance(env.registry.address) == registry_before - 2 * PRICE
    assert env.buyer.models.has_access(model_id("evil"), env.buyer.address) is True


@pytest.mark.parametrize("reentry", ["withdraw", "withdrawStake"])
def test_unstaked_node_reentering_gains_nothing(env: World, reentry: str) -> None:
    payee = Payee(env, env.node_registry)
    nodes = env.node_registry.functions
    payee.attack(nodes.register("http://evil", b"k"), value=MIN_STAKE)
    payee.attack(nodes.requestUnstake())
    env.warp(env.admin.nodes.get_node(payee.address).unlock_at)
    payee.attack(nodes.withdrawStake())
    registry_before = env.balance(env.node_registry.address)

    payee.attack(nodes.withdraw(), reentry=getattr(nodes, reentry)())

    assert (payee.received(), payee.reentry_succeeded()) == (1, False)
    assert (payee.balance(), payee.credit()) == (MIN_STAKE, 0)
    assert env.balance(env.node_registry.address) == registry_before - MIN_STAKE
