"""C1 authorization: every privileged function, called by anyone but its holder, reverts with
the exact custom error and arguments, and a mined attempt leaves storage unchanged.

Each case names the function, who holds the right to call it, how to set the stage, the error
a non-holder gets, and a probe of the storage the call would change. Callers are fuzzed over
the funded dev accounts that do not hold the right (eth-tester refuses calls from unfunded
addresses, so arbitrary addresses are not drawn).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.chain import revert_errors
from registry.clients.models import model_id, version_id
from registry.errors import ContractRevertError
from support.chain import (
    ACTORS,
    GATED,
    PUBLIC,
    V1,
    World,
    content,
    output,
    role,
    send_unchecked,
    sha,
    simulate,
)

ADMIN_ONLY = frozenset({"admin"})
NOBODY = frozenset()  # held by a contract (the job board), never by an account
OWNER = frozenset({"owner"})


def rb(name: str) -> bytes:
    """A role id as bytes32."""
    return bytes.fromhex(role(name)[2:])


@dataclass(frozen=True)
class Case:
    """A privileged function and what a non-holder calling it must get."""

    id: str
    contract: str  # World attribute: registry, node_registry or board
    call: Callable[[World, Any, str], Any]  # (env, contract functions, caller) -> bound fn
    error: type[ContractRevertError]
    args: Callable[[World, str], dict[str, Any]]  # (env, caller) -> expected arguments
    probe: Callable[[World, Any], Any]  # (env, contract functions) -> storage it would change
    holders: frozenset[str] = ADMIN_ONLY
    setup: Callable[[World], None] = field(default=lambda env: None)


def unauthorized(role_name: str) -> Callable[[World, str], dict[str, Any]]:
    return lambda env, caller: {"account": caller, "needed_role": role(role_name)}


def not_owner(model: str) -> Callable[[World, str], dict[str, Any]]:
    return lambda env, caller: {"model_id": "0x" + model_id(model).hex(), "caller": caller}


def governed_cases(contract: str) -> list[Case]:
    """The admin and pauser functions every Governed contract has."""
    admin = unauthorized("DEFAULT_ADMIN_ROLE")
    return [
        Case(
            f"{contract}.pause",
            contract,
            lambda env, f, caller: f.pause(),
            revert_errors.AccessControlUnauthorizedAccount,
            unauthorized("PAUSER_ROLE"),
            lambda env, f: f.paused().call(),
        ),
        Case(
            f"{contract}.unpause",
            contract,
            lambda env, f, caller: f.unpause(),
            revert_errors.AccessControlUnauthorizedAccount,
            unauthorized("PAUSER_ROLE"),
            lambda env, f: f.paused().call(),
            setup=lambda env, c=contract: env.admin.wallet.transact(
                getattr(env, c).functions.pause()
            ),
        ),
        Case(
            f"{contract}.grantRole",
            contract,
            lambda env, f, caller: f.grantRole(rb("PAUSER_ROLE"), caller),
            revert_errors.AccessControlUnauthorizedAccount,
            admin,
            lambda env, f: [
                f.hasRole(rb("PAUSER_ROLE"), a.address).call() for a in env.actors.values()
            ],
        ),
        Case(
            f"{contract}.revokeRole",
            contract,
            lambda env, f, caller: f.revokeRole(rb("PAUSER_ROLE"), env.admin.address),
            revert_errors.AccessControlUnauthorizedAccount,
            admin,
            lambda env, f: f.hasRole(rb("PAUSER_ROLE"), env.admin.address).call(),
        ),
        Case(
            f"{contract}.beginDefaultAdminTransfer",
            contract,
            lambda env, f, caller: f.beginDefaultAdminTransfer(caller),
            revert_errors.AccessControlUnauthorizedAccount,
            admin,
            lambda env, f: (f.pendingDefaultAdmin().call(), f.defaultAdmin().call()),
        ),
        Case(
            f"{contract}.cancelDefaultAdminTransfer",
            contract,
            lambda env, f, caller: f.cancelDefaultAdminTransfer(),
            revert_errors.AccessControlUnauthorizedAccount,
            admin,
            lambda env, f: f.pendingDefaultAdmin().call(),
            setup=lambda env, c=contract: env.admin.wallet.transact(
                getattr(env, c).functions.beginDefaultAdminTransfer(env.newadmin.address)
            ),
        ),
        Case(
            f"{contract}.changeDefaultAdminDelay",
            contract,
            lambda env, f, caller: f.changeDefaultAdminDelay(1),
            revert_errors.AccessControlUnauthorizedAccount,
            admin,
            lambda env, f: (f.defaultAdminDelay().call(), f.pendingDefaultAdminDelay().call()),
        ),
        Case(
            f"{contract}.rollbackDefaultAdminDelay",
            contract,
            lambda env, f, caller: f.rollbackDefaultAdminDelay(),
            revert_errors.AccessControlUnauthorizedAccount,
            admin,
            lambda env, f: f.pendingDefaultAdminDelay().call(),
            setup=lambda env, c=contract: env.admin.wallet.transact(
                getattr(env, c).functions.changeDefaultAdminDelay(10)
            ),
        ),
    ]


def claimed(env: World, *nodes: str) -> None:
    env.claimed_job(*nodes)


def job_state(env: World, f: Any) -> Any:
    return (f.getJob(1).call(), f.getClaim(1, 0).call())


CASES: list[Case] = [
    *governed_cases("registry"),
    *governed_cases("node_registry"),
    *governed_cases("board"),
    # --- role-gated functions of one contract
    Case(
        "node_registry.setParams",
        "node_registry",
        lambda env, f, caller: f.setParams(1, 1),
        revert_errors.AccessControlUnauthorizedAccount,
        unauthorized("DEFAULT_ADMIN_ROLE"),
        lambda env, f: (f.minStake().call(), f.unstakeDelay().call()),
    ),
    Case(
        "node_registry.slash",
        "node_registry",
        lambda env, f, caller: f.slash(env.node1.address, 10**18, caller, 1),
        revert_errors.AccessControlUnauthorizedAccount,
        unauthorized("SLASHER_ROLE"),
        lambda env, f: (
            f.getNode(env.node1.address).call(),
            f.withdrawable(env.attacker.address).call(),
        ),
        holders=NOBODY,
    ),
    Case(
        "board.setParams",
        "board",
        lambda env, f, caller: f.setParams(1, 1),
        revert_errors.AccessControlUnauthorizedAccount,
        unauthorized("DEFAULT_ADMIN_ROLE"),
        lambda env, f: (f.slashAmount().call(), f.revealWindow().call()),
    ),
    Case(
        "registry.registerJobVersion",
        "registry",
        lambda env, f, caller: f.registerJobVersion(
            model_id(PUBLIC), "job-1", 0x55, sha("d"), sha("m"), version_id(PUBLIC, V1), 1
        ),
        revert_errors.AccessControlUnauthorizedAccount,
        unauthorized("JOB_BOARD_ROLE"),
        lambda env, f: f.getVersion(version_id(PUBLIC, "job-1")).call(),
        holders=NOBODY,
    ),
    # --- model-owner functions
    Case(
        "registry.setAccessPolicy",
        "registry",
        lambda env, f, caller: f.setAccessPolicy(model_id(PUBLIC), 1, 0, 0),
        revert_errors.NotModelOwner,
        not_owner(PUBLIC),
        lambda env, f: f.getModel(model_id(PUBLIC)).call(),
        holders=OWNER,
    ),
    Case(
        "registry.transferModel",
        "registry",
        lambda env, f, caller: f.transferModel(model_id(PUBLIC), caller),
        revert_errors.NotModelOwner,
        not_owner(PUBLIC),
        lambda env, f: f.getModel(model_id(PUBLIC)).call(),
        holders=OWNER,
    ),
    Case(
        "registry.registerVersion",
        "registry",
        lambda env, f, caller: f.registerVersion(
            model_id(PUBLIC), "v2", 0x55, sha("d"), sha("m"), bytes(32), bytes(22)
        ),
        revert_errors.NotModelOwner,
        not_owner(PUBLIC),
        lambda env, f: f.getVersion(version_id(PUBLIC, "v2")).call(),
        holders=OWNER,
    ),
    Case(
        "registry.revokeVersion",
        "registry",
        lambda env, f, caller: f.revokeVersion(version_id(PUBLIC, V1)),
        revert_errors.NotModelOwner,
        not_owner(PUBLIC),
        lambda env, f: f.getVersion(version_id(PUBLIC, V1)).call(),
        holders=OWNER,
    ),
    Case(
        "registry.setAlias",
        "registry",
        lambda env, f, caller: f.setAlias(model_id(PUBLIC), "prod", version_id(PUBLIC, V1)),
        revert_errors.NotModelOwner,
        not_owner(PUBLIC),
        lambda env, f: f.getAlias(model_id(PUBLIC), "prod").call(),
        holders=OWNER,
    ),
    Case(
        "registry.rollbackAlias",
        "registry",
        lambda env, f, caller: f.rollbackAlias(model_id(PUBLIC), "prod"),
        revert_errors.NotModelOwner,
        not_owner(PUBLIC),
        lambda env, f: f.getAlias(model_id(PUBLIC), "prod").call(),
        holders=OWNER,
        setup=lambda env: (
            env.owner.models.register_version(PUBLIC, "v2", content("v2"), sha("m2")),
            env.owner.models.set_alias(PUBLIC, "prod", V1),
            env.owner.models.set_alias(PUBLIC, "prod", "v2"),
        ),
    ),
    Case(
        "registry.grantAccess",
        "registry",
        lambda env, f, caller: f.grantAccess(model_id(GATED), caller, 0),
        revert_errors.NotModelOwner,
        not_owner(GATED),
        lambda env, f: [
            f.accessExpiry(model_id(GATED), a.address).call() for a in env.actors.values()
        ],
        holders=OWNER,
    ),
    Case(
        "registry.revokeAccess",
        "registry",
        lambda env, f, caller: f.revokeAccess(model_id(GATED), env.user.address),
        revert_errors.NotModelOwner,
        not_owner(GATED),
        lambda env, f: f.accessExpiry(model_id(GATED), env.user.address).call(),
        holders=OWNER,
        setup=lambda env: env.owner.models.grant_access(GATED, env.user.address),
    ),
    # --- requester, claimant and node functions of the job board and node registry
    Case(
        "board.cancelJob",
        "board",
        lambda env, f, caller: f.cancelJob(1),
        revert_errors.NotRequester,
        lambda env, caller: {"job_id": 1, "caller": caller},
        job_state,
        holders=frozenset({"user"}),
        setup=lambda env: env.create_job(),
    ),
    Case(
        "board.claim",
        "board",
        lambda env, f, caller: f.claim(1),
        revert_errors.NodeNotEligible,
        lambda env, caller: {"node": caller},
        job_state,
        holders=frozenset({"node1", "node2", "node3", "node4"}),
        setup=lambda env: env.create_job(),
    ),
    Case(
        "board.submitResult",
        "board",
        lambda env, f, caller: f.submitResult(
            1, 0x55, output("x").content.digest, output("x").sha256, 1
        ),
        revert_errors.NotClaimant,
        lambda env, caller: {"job_id": 1, "caller": caller},
        job_state,
        holders=frozenset({"node1"}),
        setup=lambda env: claimed(env, "node1"),
    ),
    Case(
        "board.releaseClaim",
        "board",
        lambda env, f, caller: f.releaseClaim(1),
        revert_errors.NotClaimant,
        lambda env, caller: {"job_id": 1, "caller": caller},
        job_state,
        holders=frozenset({"node1"}),
        setup=lambda env: claimed(env, "node1"),
    ),
    Case(
        "board.commitResult",
        "board",
        lambda env, f, caller: f.commitResult(1, sha("c")),
        revert_errors.NotClaimant,
        lambda env, caller: {"job_id": 1, "caller": caller},
        job_state,
        holders=frozenset({"node1", "node2"}),
        setup=lambda env: claimed(env, "node1", "node2"),
    ),
    Case(
        "board.withdraw",
        "board",
        lambda env, f, caller: f.withdraw(),
        revert_errors.NothingToWithdraw,
        lambda env, caller: {"account": caller},
        lambda env, f: (f.withdrawable(env.user.address).call(), env.balance(f.address)),
        holders=frozenset({"user"}),
        setup=lambda env: env.user.jobs.cancel(env.create_job()),
    ),
    Case(
        "node_registry.setServing",
        "node_registry",
        lambda env, f, caller: f.setServing([version_id(PUBLIC, V1)], True),
        revert_errors.NodeNotRegistered,
        lambda env, caller: {"node": caller},
        lambda env, f: [
            f.serves(a.address, version_id(PUBLIC, V1)).call() for a in env.actors.values()
        ],
        holders=frozenset({"node1", "node2", "node3", "node4"}),
    ),
    Case(
        "node_registry.requestUnstake",
        "node_registry",
        lambda env, f, caller: f.requestUnstake(),
        revert_errors.NodeNotRegistered,
        lambda env, caller: {"node": caller},
        lambda env, f: [f.getNode(a.address).call() for a in env.actors.values()],
        holders=frozenset({"node1", "node2", "node3", "node4"}),
    ),
    Case(
        "node_registry.withdrawStake",
        "node_registry",
        lambda env, f, caller: f.withdrawStake(),
        revert_errors.StakeLocked,
        lambda env, caller: {"node": caller, "unlock_at": 0},
        lambda env, f: [f.getNode(a.address).call() for a in env.actors.values()],
        holders=NOBODY,  # nobody asked to unstake
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_privileged_call_reverts_for_non_holders(env: World, case: Case) -> None:
    case.setup(env)
    fns = getattr(env, case.contract).functions
    before = case.probe(env, fns)
    outsiders = sorted(set(ACTORS) - case.holders)

    @settings(max_examples=20, deadline=None, database=None)
    @given(caller=st.sampled_from([env.actors[n].address for n in outsiders]))
    def non_holder_reverts(caller: str) -> None:
        with pytest.raises(case.error) as info:
            simulate(case.call(env, fns, caller), caller)
        assert type(info.value) is case.error
        assert info.value.args_by_name == case.args(env, caller)

    non_holder_reverts()

    # A mined attempt (no simulation first) fails and changes nothing.
    attacker = env.attacker
    receipt = send_unchecked(attacker.wallet, case.call(env, fns, attacker.address))
    assert receipt["status"] == 0
    assert case.probe(env, fns) == before
    # The gate is the only obstacle: a holder's identical call goes through.
    for name in sorted(case.holders):
        holder = env.actors[name].address
        simulate(case.call(env, fns, holder), holder)
