"""Gateway-paid jobs are bounded: a daily budget per caller and in total, charged before
anything is uploaded or sent (economics issue, "Gateway wallet").

The attack: any caller mints itself a token (a fresh address costs nothing) and makes the
gateway escrow rewards from its own wallet, which a colluding node collects. With the budget,
10,000 fresh callers move the gateway's balance by at most the configured total.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from api.gateway.budget import SponsorBudget, SponsorBudgetExceededError
from registry.auth import mint_token
from registry.jobs import InvalidJobParamsError
from support.gateway import GATEWAY, MINILM, GatewayNet

pytestmark = pytest.mark.timeout(900)

REWARD = 10**15
CALLERS = 10_000


def test_budget_bounds_each_caller_and_the_total_and_rolls_over_daily() -> None:
    now = [86_400.0 * 100]
    budget = SponsorBudget(per_caller_wei=30, total_wei=50, clock=lambda: now[0])
    budget.reserve("a", 20)
    with pytest.raises(SponsorBudgetExceededError, match="this caller's daily budget"):
        budget.reserve("a", 11)
    budget.reserve("b", 30)
    with pytest.raises(SponsorBudgetExceededError, match="gateway's daily budget"):
        budget.reserve("c", 1)
    assert budget.spent() == 50 and budget.spent("a") == 20
    now[0] += 86_400
    assert budget.spent() == 0
    budget.reserve("c", 30)


def test_a_sponsorship_failing_before_any_transaction_is_given_back() -> None:
    budget = SponsorBudget(per_caller_wei=10, total_wei=10)
    with pytest.raises(InvalidJobParamsError), budget.sponsoring("a", 10):
        raise InvalidJobParamsError("bad params")
    assert budget.spent() == 0
    with pytest.raises(RuntimeError), budget.sponsoring("a", 10):
        raise RuntimeError("the transaction may have been sent")
    assert budget.spent() == 10  # kept: the wallet may have paid


def test_ten_thousand_fresh_callers_move_the_gateways_balance_by_at_most_its_budget(
    gateway_net: GatewayNet,
) -> None:
    gateway_sdk = gateway_net.sdk(GATEWAY)
    assert gateway_sdk.wallet is not None
    fee = gateway_sdk.wallet.max_fee_per_gas()
    per_job = REWARD + 600_000 * fee
    total = 3 * per_job + per_job // 2  # room for three jobs, not four
    app = gateway_net.app(sponsor_daily_wei_per_caller=per_job, sponsor_daily_wei_total=total)
    w3 = gateway_sdk.chain.w3
    before_balance = w3.eth.get_balance(gateway_sdk.wallet.address)
    before_jobs = gateway_sdk.jobs.last_job_id()
    codes: dict[str, int] = {}
    with TestClient(app) as client:
        for _ in range(CALLERS):
            token = mint_token(Account.create(), 600)
            response = client.post(
                "/v1/jobs",
                json={"kind": "infer", "model": MINILM, "input": {"texts": ["x"]},
                      "params": {"task": "embed"}, "reward_wei": REWARD},
                headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            code = "created" if response.status_code == 201 else response.json()["error"]["code"]
            codes[code] = codes.get(code, 0) + 1
        spent = client.app.state.gateway.onchain.budget.spent()  # type: ignore[attr-defined]
    moved = before_balance - w3.eth.get_balance(gateway_sdk.wallet.address)
    assert codes == {"created": 3, "sponsor_budget_exceeded": CALLERS - 3}, codes
    assert gateway_sdk.jobs.last_job_id() - before_jobs == 3
    assert 3 * REWARD <= moved <= spent <= total
