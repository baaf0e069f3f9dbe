"""JobBoard behaviour, one test group per external function, on every backend.

Covers the lifecycle paths (create, claim, submit or commit/reveal, finalize, expire, cancel),
the redundancy cap (C6), lease windows around their exact expiry (C7), commit-reveal (C8) and
model-producing jobs registering their output version.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.chain import revert_errors
from registry.clients import ContentRef, JobStatus
from registry.clients.jobs import ClaimState, Output
from registry.clients.models import model_id, version_id
from registry.jobs import JobKind
from support.chain import (
    CODEC_DAG_PB,
    CODEC_RAW,
    GATED,
    LEASE,
    LICENSE,
    NODE_STAKE,
    PUBLIC,
    REVEAL_WINDOW,
    REWARD,
    SLASH,
    V1,
    ZERO_ADDRESS,
    World,
    events,
    output,
    reverts,
    sha,
    transact_at,
)

FUZZ = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
#: Offsets from a deadline: the three boundary seconds plus random ones further out.
AROUND = st.sampled_from([-1, 0, 1]) | st.integers(-300, 300)

OPEN, CLAIMED, REVEALING = int(JobStatus.OPEN), int(JobStatus.CLAIMED), int(JobStatus.REVEALING)
FINALIZED, EXPIRED, CANCELLED = (
    int(JobStatus.FINALIZED),
    int(JobStatus.EXPIRED),
    int(JobStatus.CANCELLED),
)


def credit(env: World, name: str) -> int:
    """What actor ``name`` can withdraw from the job board."""
    return env.credit(env.board, env.actors[name].address)


def node_credit(env: World, name: str) -> int:
    """What actor ``name`` can withdraw from the node registry (slashes it received)."""
    return env.credit(env.node_registry, env.actors[name].address)


def lease_expiry(env: World, job_id: int, slot: int = 0) -> int:
    return int(env.claim_slot(job_id, slot)["leaseExpiry"])


# ------------------------------------------------------------------------------- createJob


def test_create_job_escrows_reward_and_records_request(env: World) -> None:
    spec = env.spec(seed="create")
    board_before = env.balance(env.board.address)

    result = env.user.jobs.create_job(spec, REWARD)

    assert result.value == 1
    assert env.balance(env.board.address) == board_before + REWARD
    assert env.job(1) == {
        "requester": env.user.address,
        "reward": REWARD,
        "versionId": spec.version_id,
        "inputHash": spec.input_hash(),
        "deadline": spec.deadline,
        "leaseSeconds": LEASE,
        "kind": int(JobKind.INFER),
        "status": OPEN,
        "redundancy": 1,
        "claims": 0,
        "commits": 0,
        "reveals": 0,
        "revealDeadline": 0,
    }
    assert events(env.board, env.receipt(result.tx_hash), "JobCreated") == [
        {
            "jobId": 1,
            "requester": env.user.address,
            "versionId": spec.version_id,
            "kind": int(JobKind.INFER),
            "inputCodec": spec.input.codec,
            "inputDigest": spec.input.digest,
            "paramsHash": spec.params_hash,
            "reward": REWARD,
            "deadline": spec.deadline,
            "leaseSeconds": LEASE,
            "redundancy": 1,
            "outputModelId": b"\x00" * 32,
        }
    ]
    record = env.user.jobs.get_job(1)
    assert (record.spec, record.status, record.reward_wei) == (spec, JobStatus.OPEN, REWARD)


def test_create_job_numbers_jobs_consecutively(env: World) -> None:
    assert [env.create_job(seed=str(i)) for i in range(3)] == [1, 2, 3]
    assert env.user.jobs.last_job_id() == 3


def test_create_job_reverts_if_reward_zero(env: World) -> None:
    with reverts(revert_errors.InvalidReward, reward=0):
        env.user.jobs.create_job(env.spec(), 0)


@pytest.mark.parametrize(("lease", "k"), [(0, 1), (LEASE, 0), (LEASE, 16)])
def test_create_job_reverts_if_lease_or_redundancy_out_of_range(
    env: World, lease: int, k: int
) -> None:
    spec = env.spec(lease=lease, k=k)
    with reverts(
        revert_errors.InvalidJobTiming, deadline=spec.deadline, lease_seconds=lease, redundancy=k
    ):
        env.user.jobs.create_job(spec, REWARD)


def test_create_job_accepts_max_redundancy(env: World) -> None:
    assert env.job(env.create_job(k=15))["redundancy"] == 15


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_create_job_reverts_if_deadline_not_in_future(env: World, offset: int) -> None:
    spec = env.spec(deadline_in=100)
    fn = env.board.functions.createJob(env.request(spec))
    at = spec.deadline + offset
    if offset < 0:
        transact_at(env.user.wallet, fn, at, value=REWARD)
        assert env.job(1)["status"] == OPEN
    else:
        with reverts(
            revert_errors.InvalidJobTiming,
            deadline=spec.deadline,
            lease_seconds=LEASE,
            redundancy=1,
        ):
            transact_at(env.user.wallet, fn, at, value=REWARD)
        assert env.board.functions.lastJobId().call() == 0


def test_create_job_reverts_if_input_codec_invalid(env: World) -> None:
    spec = env.spec()
    request = list(env.request(spec))
    request[2] = 0x71  # dag-cbor: not a codec the workers fetch
    with reverts(revert_errors.InvalidInput, codec=0x71):
        env.user.wallet.transact(env.board.functions.createJob(tuple(request)), REWARD)


def test_create_job_reverts_if_version_unknown(env: World) -> None:
    with reverts(revert_errors.VersionNotFound, version_id="0x" + version_id(PUBLIC, "nope").hex()):
        env.create_job(tag="nope")


def test_create_job_reverts_if_version_revoked(env: World) -> None:
    env.owner.models.revoke_version(PUBLIC, V1)
    with reverts(revert_errors.VersionIsRevoked, version_id="0x" + version_id(PUBLIC, V1).hex()):
        env.create_job()


def test_create_job_reverts_if_requester_lacks_access(env: World) -> None:
    with reverts(
        revert_errors.NoAccess, model_id="0x" + model_id(GATED).hex(), account=env.user.address
    ):
        env.create_job(model=GATED)


@pytest.mark.parametrize(
    ("kind", "output_model"),
    [
        (JobKind.FINETUNE, PUBLIC),  # a model the requester does not own
        (JobKind.TRAIN, None),  # no output model at all
        (JobKind.INFER, "user-model"),  # inference must not name one
    ],
)
def test_create_job_reverts_if_output_model_invalid(
    env: World, kind: JobKind, output_model: str | None
) -> None:
    env.user.models.create_model("user-model")
    expected = model_id(output_model) if output_model else b"\x00" * 32
    with reverts(revert_errors.InvalidOutputModel, model_id="0x" + expected.hex()):
        env.create_job(kind=kind, output_model=output_model)


# ------------------------------------------------------------------------------- cancelJob


def test_cancel_job_credits_the_refund(env: World) -> None:
    job = env.create_job()
    board_before = env.balance(env.board.address)

    result = env.user.jobs.cancel(job)

    assert env.job(job)["status"] == CANCELLED
    assert credit(env, "user") == REWARD
    assert env.balance(env.board.address) == board_before  # credited, not pushed
    assert events(env.board, env.receipt(result.tx_hash), "JobCancelled") == [{"jobId": job}]


def test_cancel_job_reverts_if_not_requester(env: World) -> None:
    job = env.create_job()
    with reverts(revert_errors.NotRequester, job_id=job, caller=env.attacker.address):
        env.attacker.jobs.cancel(job)


def test_cancel_job_reverts_if_claimed(env: World) -> None:
    job = env.claimed_job("node1")
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=CLAIMED):
        env.user.jobs.cancel(job)


def test_cancel_job_reverts_if_a_slot_is_claimed(env: World) -> None:
    job = env.create_job(k=2)
    env.node1.jobs.claim(job)
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=OPEN):
        env.user.jobs.cancel(job)


def test_cancel_job_works_after_the_claim_is_released(env: World) -> None:
    job = env.claimed_job("node1")
    env.node1.jobs.release(job)
    env.user.jobs.cancel(job)
    assert (env.job(job)["status"], credit(env, "user")) == (CANCELLED, REWARD)


def test_cancel_job_reverts_if_already_cancelled(env: World) -> None:
    job = env.create_job()
    env.user.jobs.cancel(job)
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=CANCELLED):
        env.user.jobs.cancel(job)
    assert credit(env, "user") == REWARD


def test_cancel_job_reverts_if_job_unknown(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=99):
        env.user.jobs.cancel(99)


# ---------------------------------------------------------------------------------- expire


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_expire_around_deadline(env: World, offset: int) -> None:
    job = env.create_job(deadline_in=100)
    deadline = env.job(job)["deadline"]
    fn = env.board.functions.expire(job)
    if offset < 0:
        with reverts(revert_errors.DeadlineNotReached, job_id=job, deadline=deadline):
            transact_at(env.attacker.wallet, fn, deadline + offset)
        assert (env.job(job)["status"], credit(env, "user")) == (OPEN, 0)
    else:
        transact_at(env.attacker.wallet, fn, deadline + offset)  # anyone may expire
        assert (env.job(job)["status"], credit(env, "user")) == (EXPIRED, REWARD)


def test_expire_refunds_requester_and_slashes_silent_claimants(env: World) -> None:
    job = env.create_job(k=3, deadline_in=300)
    env.node1.jobs.claim(job)
    env.node1.jobs.commit(job, output("a"))  # delivered a commitment: not slashed
    env.node2.jobs.claim(job)  # holds a lease, delivers nothing: slashed
    stakes = {n: env.stake(n) for n in ("node1", "node2")}
    env.warp(env.job(job)["deadline"])

    result = env.attacker.jobs.expire(job)

    receipt = env.receipt(result.tx_hash)
    assert env.job(job)["status"] == EXPIRED
    assert events(env.board, receipt, "JobExpired") == [{"jobId": job, "refund": REWARD}]
    assert events(env.node_registry, receipt, "Slashed") == [
        {"node": env.node2.address, "amount": SLASH, "beneficiary": env.user.address, "jobId": job}
    ]
    assert env.stake("node1") == stakes["node1"]
    assert env.stake("node2") == stakes["node2"] - SLASH
    assert credit(env, "user") == REWARD
    assert node_credit(env, "user") == SLASH


def test_expire_reverts_if_finalized(env: World) -> None:
    job = env.claimed_job("node1", deadline_in=100)
    env.node1.jobs.submit(job, output("a"))
    env.warp(env.job(job)["deadline"])
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=FINALIZED):
        env.user.jobs.expire(job)


def test_expire_reverts_if_already_expired(env: World) -> None:
    job = env.create_job(deadline_in=100)
    env.warp(env.job(job)["deadline"])
    env.user.jobs.expire(job)
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=EXPIRED):
        env.user.jobs.expire(job)
    assert credit(env, "user") == REWARD


def test_expire_reverts_while_revealing(env: World) -> None:
    job = env.claimed_job("node1", "node2", deadline_in=300)
    env.commit_all(job, {"node1": output("a"), "node2": output("a")})
    env.warp(env.job(job)["deadline"])
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=REVEALING):
        env.user.jobs.expire(job)


def test_expire_reverts_if_job_unknown(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=7):
        env.user.jobs.expire(7)


# ----------------------------------------------------------------------------------- claim


def test_claim_grants_a_lease(env: World) -> None:
    job = env.create_job()
    result = env.node1.jobs.claim(job)
    mined_at = int(env.w3.eth.get_block(result.block_number)["timestamp"])

    assert result.value == mined_at + LEASE
    assert events(env.board, env.receipt(result.tx_hash), "JobClaimed") == [
        {"jobId": job, "node": env.node1.address, "leaseExpiry": mined_at + LEASE}
    ]
    slot = env.claim_slot(job, 0)
    assert (slot["node"], slot["leaseExpiry"], slot["state"]) == (
        env.node1.address,
        mined_at + LEASE,
        int(ClaimState.ACTIVE),
    )
    assert (env.job(job)["status"], env.job(job)["claims"]) == (CLAIMED, 1)


def test_claim_caps_the_lease_at_the_deadline(env: World) -> None:
    job = env.create_job(deadline_in=100, lease=LEASE)
    assert env.node1.jobs.claim(job).value == env.job(job)["deadline"]


def test_claim_keeps_job_open_until_all_slots_taken(env: World) -> None:
    job = env.create_job(k=2)
    env.node1.jobs.claim(job)
    assert (env.job(job)["status"], env.job(job)["claims"]) == (OPEN, 1)
    env.node2.jobs.claim(job)
    assert (env.job(job)["status"], env.job(job)["claims"]) == (CLAIMED, 2)


def test_claim_reverts_if_node_unregistered(env: World) -> None:
    job = env.create_job()
    with reverts(revert_errors.NodeNotEligible, node=env.attacker.address):
        env.attacker.jobs.claim(job)


def test_claim_reverts_if_node_exiting(env: World) -> None:
    job = env.create_job()
    env.node1.nodes.request_unstake()
    with reverts(revert_errors.NodeNotEligible, node=env.node1.address):
        env.node1.jobs.claim(job)


def test_claim_reverts_if_stake_below_minimum(env: World) -> None:
    job = env.create_job()
    env.admin.wallet.transact(env.node_registry.functions.setParams(NODE_STAKE + 1, 3600))
    with reverts(revert_errors.NodeNotEligible, node=env.node1.address):
        env.node1.jobs.claim(job)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_claim_around_deadline(env: World, offset: int) -> None:
    job = env.create_job(deadline_in=100)
    deadline = env.job(job)["deadline"]
    fn = env.board.functions.claim(job)
    if offset < 0:
        transact_at(env.node1.wallet, fn, deadline + offset)
        assert lease_expiry(env, job) == deadline  # capped: one second of lease
    else:
        with reverts(revert_errors.DeadlinePassed, job_id=job, deadline=deadline):
            transact_at(env.node1.wallet, fn, deadline + offset)
        assert env.job(job)["claims"] == 0


def test_claim_reverts_if_caller_already_holds_a_slot(env: World) -> None:
    job = env.create_job(k=2)
    env.node1.jobs.claim(job)
    with reverts(revert_errors.AlreadyClaimed, job_id=job, node=env.node1.address):
        env.node1.jobs.claim(job)


def test_claim_reverts_if_caller_committed_already(env: World) -> None:
    job = env.create_job(k=2)
    env.node1.jobs.claim(job)
    env.node1.jobs.commit(job, output("a"))
    with reverts(revert_errors.AlreadyClaimed, job_id=job, node=env.node1.address):
        env.node1.jobs.claim(job)


def test_claim_reverts_if_lease_active(env: World) -> None:
    job = env.claimed_job("node1")
    expiry = lease_expiry(env, job)
    with reverts(
        revert_errors.LeaseActive, job_id=job, holder=env.node1.address, lease_expiry=expiry
    ):
        env.node2.jobs.claim(job)


def test_claim_reverts_if_job_finalized(env: World) -> None:
    job = env.claimed_job("node1")
    env.node1.jobs.submit(job, output("a"))
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=FINALIZED):
        env.node2.jobs.claim(job)


def test_claim_reverts_if_job_unknown(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=5):
        env.node1.jobs.claim(5)


@pytest.fixture
def lapsing(env: World) -> tuple[int, int]:
    """A redundancy-1 job claimed by node1: (job id, lease expiry)."""
    job = env.claimed_job("node1")
    return job, lease_expiry(env, job)


@FUZZ
@given(offset=AROUND)
def test_claim_takes_over_a_lapsed_lease(env: World, lapsing: tuple[int, int], offset: int) -> None:
    job, expiry = lapsing
    with env.isolated():
        stake = env.stake("node1")
        fn = env.board.functions.claim(job)
        if offset < 0:
            with reverts(
                revert_errors.LeaseActive, job_id=job, holder=env.node1.address, lease_expiry=expiry
            ):
                transact_at(env.node2.wallet, fn, expiry + offset)
            assert env.claim_slot(job, 0)["node"] == env.node1.address
            assert env.stake("node1") == stake
        else:
            receipt = transact_at(env.node2.wallet, fn, expiry + offset)
            assert events(env.board, receipt, "ClaimReleased") == [
                {"jobId": job, "node": env.node1.address, "lapsed": True}
            ]
            assert env.claim_slot(job, 0)["node"] == env.node2.address
            assert (env.job(job)["status"], env.job(job)["claims"]) == (CLAIMED, 1)
            assert env.stake("node1") == stake - SLASH
            assert node_credit(env, "user") == SLASH
            with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node1.address):
                env.node1.jobs.submit(job, output("late"))


# ------------------------------------------------------------------------------ releaseClaim


def test_release_claim_reopens_without_slashing(env: World) -> None:
    job = env.claimed_job("node1")
    stake = env.stake("node1")

    result = env.node1.jobs.release(job)

    assert events(env.board, env.receipt(result.tx_hash), "ClaimReleased") == [
        {"jobId": job, "node": env.node1.address, "lapsed": False}
    ]
    assert (env.job(job)["status"], env.job(job)["claims"]) == (OPEN, 0)
    assert env.claim_slot(job, 0)["state"] == int(ClaimState.FREE)
    assert env.stake("node1") == stake
    env.node2.jobs.claim(job)  # the slot is free for others


def test_release_claim_reverts_if_not_claimant(env: World) -> None:
    job = env.claimed_job("node1")
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node2.address):
        env.node2.jobs.release(job)


def test_release_claim_reverts_if_lease_lapsed(env: World) -> None:
    job = env.claimed_job("node1")
    env.warp(lease_expiry(env, job))
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node1.address):
        env.node1.jobs.release(job)


def test_release_claim_reverts_if_committed(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    env.node1.jobs.commit(job, output("a"))
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node1.address):
        env.node1.jobs.release(job)


def test_release_claim_reverts_after_submit(env: World) -> None:
    """Regression: releasing after delivery reopened a finalized job (double refund/payout)."""
    job = env.claimed_job("node1")
    env.node1.jobs.submit(job, output("a"))
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=FINALIZED):
        env.node1.jobs.release(job)
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=FINALIZED):
        env.user.jobs.cancel(job)
    assert (credit(env, "node1"), credit(env, "user")) == (REWARD, 0)


def test_release_claim_reverts_if_job_unknown(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=3):
        env.node1.jobs.release(3)


# ----------------------------------------------------------------------------- reclaimLapsed


@FUZZ
@given(offset=AROUND)
def test_reclaim_lapsed_around_lease_expiry(
    env: World, lapsing: tuple[int, int], offset: int
) -> None:
    job, expiry = lapsing
    with env.isolated():
        stake = env.stake("node1")
        fn = env.board.functions.reclaimLapsed(job)
        if offset < 0:
            with reverts(
                revert_errors.LeaseActive, job_id=job, holder=env.node1.address, lease_expiry=expiry
            ):
                transact_at(env.attacker.wallet, fn, expiry + offset)
            assert (env.job(job)["status"], env.stake("node1")) == (CLAIMED, stake)
        else:
            receipt = transact_at(env.attacker.wallet, fn, expiry + offset)  # anyone may call
            assert events(env.board, receipt, "ClaimReleased") == [
                {"jobId": job, "node": env.node1.address, "lapsed": True}
            ]
            assert events(env.node_registry, receipt, "Slashed") == [
                {
                    "node": env.node1.address,
                    "amount": SLASH,
                    "beneficiary": env.user.address,
                    "jobId": job,
                }
            ]
            assert (env.job(job)["status"], env.job(job)["claims"]) == (OPEN, 0)
            assert env.stake("node1") == stake - SLASH
            assert env.node("node1").slash_count == 1
            with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node1.address):
                env.node1.jobs.submit(job, output("late"))


def test_reclaim_lapsed_reports_the_running_lease(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    env.node1.jobs.commit(job, output("a"))  # slot 0 committed: not a lease
    with reverts(
        revert_errors.LeaseActive,
        job_id=job,
        holder=env.node2.address,
        lease_expiry=lease_expiry(env, job, 1),
    ):
        env.attacker.jobs.reclaim_lapsed(job)


def test_reclaim_lapsed_reverts_if_nothing_claimed(env: World) -> None:
    job = env.create_job()
    with reverts(revert_errors.LeaseActive, job_id=job, holder=ZERO_ADDRESS, lease_expiry=0):
        env.attacker.jobs.reclaim_lapsed(job)


def test_reclaim_lapsed_reopens_only_lapsed_slots(env: World) -> None:
    job = env.create_job(k=2)
    env.node1.jobs.claim(job)
    env.warp(env.now() + LEASE // 2)
    env.node2.jobs.claim(job)
    env.warp(lease_expiry(env, job, 0))

    result = env.attacker.jobs.reclaim_lapsed(job)

    assert events(env.board, env.receipt(result.tx_hash), "ClaimReleased") == [
        {"jobId": job, "node": env.node1.address, "lapsed": True}
    ]
    assert env.claim_slot(job, 1)["node"] == env.node2.address
    assert (env.job(job)["status"], env.job(job)["claims"]) == (OPEN, 1)


def test_reclaim_lapsed_reverts_if_job_settled(env: World) -> None:
    job = env.claimed_job("node1")
    env.node1.jobs.submit(job, output("a"))
    env.warp(env.now() + 2 * LEASE)
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=FINALIZED):
        env.attacker.jobs.reclaim_lapsed(job)


def test_reclaim_lapsed_does_not_slash_when_slash_amount_zero(env: World) -> None:
    env.admin.wallet.transact(env.board.functions.setParams(0, REVEAL_WINDOW))
    job = env.claimed_job("node1")
    stake = env.stake("node1")
    env.warp(lease_expiry(env, job))
    result = env.attacker.jobs.reclaim_lapsed(job)
    assert events(env.node_registry, env.receipt(result.tx_hash), "Slashed") == []
    assert env.stake("node1") == stake


# ------------------------------------------------------------------------------ submitResult


def test_submit_result_finalizes_and_credits_the_reward(env: World) -> None:
    job = env.claimed_job("node1")
    out = output("result", size=1234)

    result = env.node1.jobs.submit(job, out)

    assert env.job(job)["status"] == FINALIZED
    assert credit(env, "node1") == REWARD
    assert bytes(env.board.functions.resultHashOf(job).call()) == out.commitment()
    assert events(env.board, env.receipt(result.tx_hash), "JobFinalized") == [
        {
            "jobId": job,
            "codec": out.content.codec,
            "digest": out.content.digest,
            "sha256": out.sha256,
            "size": 1234,
            "agreeing": 1,
            "reward": REWARD,
        }
    ]
    assert env.claim_slot(job, 0)["state"] == int(ClaimState.REVEALED)
    assert env.user.jobs.get_job(job).result == out


def test_submit_result_reverts_on_repeat(env: World) -> None:
    """C6 / regression: a second submit was paid again out of other jobs' escrow."""
    other = env.create_job(requester="buyer", seed="other")  # escrow a repeat could steal
    job = env.claimed_job("node1")
    env.node1.jobs.submit(job, output("a"))
    board = env.balance(env.board.address)

    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=FINALIZED):
        env.node1.jobs.submit(job, output("a"))

    assert credit(env, "node1") == REWARD
    assert board == REWARD + credit(env, "node1")  # other job's escrow + node1's credit
    assert env.job(other)["status"] == OPEN


def test_submit_result_reverts_if_redundancy_above_one(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    with reverts(revert_errors.WrongRedundancyMode, job_id=job, redundancy=2):
        env.node1.jobs.submit(job, output("a"))


def test_submit_result_reverts_if_not_claimant(env: World) -> None:
    job = env.claimed_job("node1")
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node2.address):
        env.node2.jobs.submit(job, output("a"))


def test_submit_result_reverts_if_unclaimed(env: World) -> None:
    job = env.create_job()
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node1.address):
        env.node1.jobs.submit(job, output("a"))


@pytest.mark.parametrize(
    "bad",
    [
        Output(ContentRef(0x71, sha("x")), sha("y"), 1),  # bad codec
        Output(ContentRef(CODEC_RAW, b"\x00" * 32), sha("y"), 1),  # no digest
        Output(output("a").content, b"\x00" * 32, 1),  # no sha256
    ],
    ids=["codec", "digest", "sha256"],
)
def test_submit_result_reverts_if_result_malformed(env: World, bad: Output) -> None:
    job = env.claimed_job("node1")
    with reverts(revert_errors.InvalidResult):
        env.node1.jobs.submit(job, bad)


def test_submit_result_accepts_dag_pb_output(env: World) -> None:
    job = env.claimed_job("node1")
    out = Output(ContentRef(CODEC_DAG_PB, sha("dir")), sha("m"), 10)
    env.node1.jobs.submit(job, out)
    assert env.user.jobs.get_result(job) == out


def test_submit_result_reverts_if_job_unknown(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=9):
        env.node1.jobs.submit(9, output("a"))


# ------------------------------------------------------------------------------ commitResult


def test_commit_result_records_commitment(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    salt = sha("salt")
    out = output("a")

    result = env.node1.jobs.commit(job, out, salt)

    commitment = env.node1.jobs.commitment(job, env.node1.address, out, salt)
    assert events(env.board, env.receipt(result.tx_hash), "ResultCommitted") == [
        {"jobId": job, "node": env.node1.address, "commitment": commitment}
    ]
    slot = env.claim_slot(job, 0)
    assert (slot["state"], slot["commitment"]) == (int(ClaimState.COMMITTED), commitment)
    assert (env.job(job)["status"], env.job(job)["commits"]) == (CLAIMED, 1)


def test_commit_result_opens_reveal_window_after_last_commit(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    env.node1.jobs.commit(job, output("a"))
    result = env.node2.jobs.commit(job, output("a"))
    mined_at = int(env.w3.eth.get_block(result.block_number)["timestamp"])
    job_now = env.job(job)
    assert (job_now["status"], job_now["commits"]) == (REVEALING, 2)
    assert job_now["revealDeadline"] == mined_at + REVEAL_WINDOW


def test_commit_result_allowed_before_all_slots_claimed(env: World) -> None:
    job = env.create_job(k=2)
    env.node1.jobs.claim(job)
    env.node1.jobs.commit(job, output("a"))
    assert (env.job(job)["status"], env.job(job)["commits"]) == (OPEN, 1)


def test_commit_result_reverts_if_redundancy_one(env: World) -> None:
    job = env.claimed_job("node1")
    with reverts(revert_errors.WrongRedundancyMode, job_id=job, redundancy=1):
        env.node1.jobs.commit(job, output("a"))


def test_commit_result_reverts_if_not_claimant(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node3.address):
        env.node3.jobs.commit(job, output("a"))


def test_commit_result_reverts_on_repeat(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    env.node1.jobs.commit(job, output("a"))
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node1.address):
        env.node1.jobs.commit(job, output("b"))
    assert env.job(job)["commits"] == 1


def test_commit_result_reverts_if_lease_lapsed(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    env.warp(lease_expiry(env, job))
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node1.address):
        env.node1.jobs.commit(job, output("a"))


def test_commit_result_reverts_if_job_unknown(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=4):
        env.node1.jobs.commit(4, output("a"))


# ------------------------------------------------------------------------------ revealResult


def test_reveal_result_reverts_before_all_committed(env: World) -> None:
    """C8: nobody reveals (and so exposes its output) before every claimant committed."""
    job = env.claimed_job("node1", "node2")
    salts = env.commit_all(job, {"node1": output("a")})
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=CLAIMED):
        env.node1.jobs.reveal(job, output("a"), salts["node1"])


def test_reveal_result_reverts_if_output_differs_from_commitment(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    salts = env.commit_all(job, {"node1": output("a"), "node2": output("a")})
    with reverts(revert_errors.CommitmentMismatch, job_id=job, node=env.node1.address):
        env.node1.jobs.reveal(job, output("b"), salts["node1"])
    with reverts(revert_errors.CommitmentMismatch, job_id=job, node=env.node1.address):
        env.node1.jobs.reveal(job, output("a"), salts["node2"])


def test_reveal_result_records_output(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    out = output("a", size=77)
    salts = env.commit_all(job, {"node1": out, "node2": out})

    result = env.node1.jobs.reveal(job, out, salts["node1"])

    assert events(env.board, env.receipt(result.tx_hash), "ResultRevealed") == [
        {
            "jobId": job,
            "node": env.node1.address,
            "codec": out.content.codec,
            "digest": out.content.digest,
            "sha256": out.sha256,
            "size": 77,
        }
    ]
    slot = env.claim_slot(job, 0)
    assert (slot["state"], slot["digest"], slot["sha256"], slot["size"]) == (
        int(ClaimState.REVEALED),
        out.content.digest,
        out.sha256,
        77,
    )
    assert (env.job(job)["status"], env.job(job)["reveals"]) == (REVEALING, 1)


def test_reveal_result_copied_commitment_gains_nothing(env: World) -> None:
    """C8: the commitment binds msg.sender, so replaying another node's commitment and reveal
    fails, and the copier is slashed as silent."""
    job = env.claimed_job("node1", "node2", "node3")
    honest = output("honest")
    salts = env.commit_all(job, {"node1": honest})
    copied = env.claim_slot(job, 0)["commitment"]
    env.node2.wallet.transact(env.board.functions.commitResult(job, copied))
    salts |= env.commit_all(job, {"node3": honest})
    env.node1.jobs.reveal(job, honest, salts["node1"])

    with reverts(revert_errors.CommitmentMismatch, job_id=job, node=env.node2.address):
        env.node2.jobs.reveal(job, honest, salts["node1"])

    env.node3.jobs.reveal(job, honest, salts["node3"])
    stake2 = env.stake("node2")
    env.warp(env.job(job)["revealDeadline"])
    env.attacker.jobs.finalize(job)
    assert env.job(job)["status"] == FINALIZED
    assert [credit(env, n) for n in ("node1", "node2", "node3")] == [REWARD // 2, 0, REWARD // 2]
    assert env.stake("node2") == stake2 - SLASH


@pytest.fixture
def revealing(env: World) -> tuple[int, int, dict[str, bytes]]:
    """A k=2 job both nodes committed the same output to: (job id, reveal deadline, salts)."""
    job = env.claimed_job("node1", "node2")
    salts = env.commit_all(job, {"node1": output("a"), "node2": output("a")})
    return job, int(env.job(job)["revealDeadline"]), salts


@FUZZ
@given(offset=AROUND)
def test_reveal_result_around_reveal_deadline(
    env: World, revealing: tuple[int, int, dict[str, bytes]], offset: int
) -> None:
    job, deadline, salts = revealing
    out = output("a")
    fn = env.board.functions.revealResult(
        job, out.content.codec, out.content.digest, out.sha256, out.size, salts["node1"]
    )
    with env.isolated():
        if offset < 0:
            transact_at(env.node1.wallet, fn, deadline + offset)
            assert env.job(job)["reveals"] == 1
        else:
            with reverts(revert_errors.RevealWindow, job_id=job, reveal_deadline=deadline):
                transact_at(env.node1.wallet, fn, deadline + offset)
            assert env.job(job)["reveals"] == 0


def test_reveal_result_reverts_on_repeat(env: World) -> None:
    job = env.claimed_job("node1", "node2", "node3")
    salts = env.commit_all(job, {n: output("a") for n in ("node1", "node2", "node3")})
    env.node1.jobs.reveal(job, output("a"), salts["node1"])
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node1.address):
        env.node1.jobs.reveal(job, output("a"), salts["node1"])
    assert env.job(job)["reveals"] == 1


def test_reveal_result_reverts_if_not_claimant(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    salts = env.commit_all(job, {"node1": output("a"), "node2": output("a")})
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node3.address):
        env.node3.jobs.reveal(job, output("a"), salts["node1"])


def test_reveal_result_reverts_if_committed_output_malformed(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    bad = Output(output("a").content, b"\x00" * 32, 1)
    salts = env.commit_all(job, {"node1": bad, "node2": output("a")})
    with reverts(revert_errors.InvalidResult):
        env.node1.jobs.reveal(job, bad, salts["node1"])


def test_reveal_result_reverts_if_job_unknown(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=8):
        env.node1.jobs.reveal(8, output("a"), sha("s"))


# ---------------------------------------------------------------- settlement (last reveal)


def test_reveal_unanimous_pays_exactly_k_nodes(env: World) -> None:
    """C6: k distinct nodes succeed; node k+1 and repeats are refused; exactly k payouts."""
    reward = 10**16 + 1  # 2 mod 3: the remainder goes back to the requester
    nodes = ("node1", "node2", "node3")
    job = env.create_job(k=3, reward=reward)
    for n in nodes:
        env.actors[n].jobs.claim(job)
    with reverts(
        revert_errors.LeaseActive,
        job_id=job,
        holder=env.node1.address,
        lease_expiry=lease_expiry(env, job, 0),
    ):
        env.node4.jobs.claim(job)
    with reverts(revert_errors.AlreadyClaimed, job_id=job, node=env.node2.address):
        env.node2.jobs.claim(job)
    out = output("same")
    salts = env.commit_all(job, dict.fromkeys(nodes, out))
    with reverts(revert_errors.NotClaimant, job_id=job, caller=env.node3.address):
        env.node3.jobs.commit(job, out)
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=REVEALING):
        env.node4.jobs.claim(job)
    env.node1.jobs.reveal(job, out, salts["node1"])
    env.node2.jobs.reveal(job, out, salts["node2"])

    result = env.node3.jobs.reveal(job, out, salts["node3"])

    receipt = env.receipt(result.tx_hash)
    share = reward // 3
    assert events(env.board, receipt, "Credited") == [
        {"account": env.actors[n].address, "amount": share} for n in nodes
    ] + [{"account": env.user.address, "amount": reward - 3 * share}]
    assert events(env.board, receipt, "JobFinalized")[0]["agreeing"] == 3
    assert [credit(env, n) for n in (*nodes, "node4")] == [share, share, share, 0]
    assert env.job(job)["status"] == FINALIZED
    assert env.user.jobs.get_result(job) == out


def test_reveal_majority_slashes_the_dissenter(env: World) -> None:
    job = env.claimed_job("node1", "node2", "node3")
    good, bad = output("good"), output("bad")
    salts = env.commit_all(job, {"node1": good, "node2": bad, "node3": good})
    stakes = {n: env.stake(n) for n in ("node1", "node2", "node3")}
    env.node1.jobs.reveal(job, good, salts["node1"])
    env.node2.jobs.reveal(job, bad, salts["node2"])

    result = env.node3.jobs.reveal(job, good, salts["node3"])

    receipt = env.receipt(result.tx_hash)
    assert events(env.node_registry, receipt, "Slashed") == [
        {"node": env.node2.address, "amount": SLASH, "beneficiary": env.user.address, "jobId": job}
    ]
    assert events(env.board, receipt, "JobFinalized")[0]["agreeing"] == 2
    assert [credit(env, n) for n in ("node1", "node2", "node3")] == [REWARD // 2, 0, REWARD // 2]
    assert credit(env, "user") == 0
    assert [env.stake(n) for n in ("node1", "node2", "node3")] == [
        stakes["node1"],
        stakes["node2"] - SLASH,
        stakes["node3"],
    ]
    assert env.user.jobs.get_result(job) == good


@pytest.mark.parametrize("k", [2, 3])
def test_reveal_without_majority_refunds_the_requester(env: World, k: int) -> None:
    nodes = ("node1", "node2", "node3")[:k]
    job = env.claimed_job(*nodes)
    outs = {n: output(n) for n in nodes}  # every node disagrees
    salts = env.commit_all(job, outs)
    stakes = {n: env.stake(n) for n in nodes}
    for n in nodes:
        result = env.actors[n].jobs.reveal(job, outs[n], salts[n])

    receipt = env.receipt(result.tx_hash)
    assert events(env.board, receipt, "JobExpired") == [{"jobId": job, "refund": REWARD}]
    assert env.job(job)["status"] == EXPIRED
    assert credit(env, "user") == REWARD
    assert [credit(env, n) for n in nodes] == [0] * k
    assert {n: env.stake(n) for n in nodes} == stakes  # revealed honestly: nobody slashed
    assert bytes(env.board.functions.resultHashOf(job).call()) == b"\x00" * 32


# ---------------------------------------------------------------------------------- finalize


@FUZZ
@given(offset=AROUND)
def test_finalize_around_reveal_deadline(
    env: World, revealing: tuple[int, int, dict[str, bytes]], offset: int
) -> None:
    job, deadline, _ = revealing
    fn = env.board.functions.finalize(job)
    with env.isolated():
        if offset < 0:
            with reverts(revert_errors.RevealWindow, job_id=job, reveal_deadline=deadline):
                transact_at(env.attacker.wallet, fn, deadline + offset)
            assert env.job(job)["status"] == REVEALING
        else:
            transact_at(env.attacker.wallet, fn, deadline + offset)
            assert env.job(job)["status"] == EXPIRED  # nobody revealed


def test_finalize_pays_revealed_majority_and_slashes_silent(env: World) -> None:
    reward = 10**16 + 1
    job = env.claimed_job("node1", "node2", "node3", reward=reward)
    out = output("a")
    salts = env.commit_all(job, dict.fromkeys(("node1", "node2", "node3"), out))
    env.node1.jobs.reveal(job, out, salts["node1"])
    env.node3.jobs.reveal(job, out, salts["node3"])
    stake2 = env.stake("node2")
    env.warp(env.job(job)["revealDeadline"])

    result = env.attacker.jobs.finalize(job)

    receipt = env.receipt(result.tx_hash)
    assert events(env.board, receipt, "JobFinalized")[0]["agreeing"] == 2
    assert [credit(env, n) for n in ("node1", "node2", "node3")] == [reward // 2, 0, reward // 2]
    assert credit(env, "user") == 1  # the odd wei
    assert env.stake("node2") == stake2 - SLASH


def test_finalize_without_majority_refunds_and_slashes_only_silent(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    salts = env.commit_all(job, {"node1": output("a"), "node2": output("a")})
    env.node1.jobs.reveal(job, output("a"), salts["node1"])  # 1 of 2 is no strict majority
    stakes = {n: env.stake(n) for n in ("node1", "node2")}
    env.warp(env.job(job)["revealDeadline"])

    env.attacker.jobs.finalize(job)

    assert env.job(job)["status"] == EXPIRED
    assert credit(env, "user") == REWARD
    assert env.stake("node1") == stakes["node1"]
    assert env.stake("node2") == stakes["node2"] - SLASH


def test_finalize_reverts_if_not_revealing(env: World) -> None:
    job = env.claimed_job("node1", "node2")
    with reverts(revert_errors.InvalidJobStatus, job_id=job, status=CLAIMED):
        env.attacker.jobs.finalize(job)


def test_finalize_reverts_if_job_unknown(env: World) -> None:
    with reverts(revert_errors.JobNotFound, job_id=6):
        env.attacker.jobs.finalize(6)


# ---------------------------------------------------------------------- model-producing jobs


@pytest.mark.parametrize("kind", [JobKind.FINETUNE, JobKind.TRAIN, JobKind.COMPRESS])
def test_model_job_registers_output_version(env: World, kind: JobKind) -> None:
    env.user.models.create_model("user-ft")
    job = env.claimed_job("node1", kind=kind, output_model="user-ft")
    assert bytes(env.board.functions.outputModelOf(job).call()) == model_id("user-ft")
    out = output("weights")

    result = env.node1.jobs.submit(job, out)

    tag = f"job-{job}"
    expected_vid = version_id("user-ft", tag)
    license = LICENSE.encode().ljust(22, b"\x00")
    assert events(env.registry, env.receipt(result.tx_hash), "VersionRegistered") == [
        {
            "modelId": model_id("user-ft"),
            "versionId": expected_vid,
            "tag": tag,
            "cidCodec": out.content.codec,
            "cidDigest": out.content.digest,
            "manifestSha256": out.sha256,
            "parent": version_id(PUBLIC, V1),
            "jobId": job,
            "license": license,
        }
    ]
    version = env.user.models.version("user-ft", tag)
    assert (version.content, version.manifest_sha256, version.parent, version.job_id) == (
        out.content,
        out.sha256,
        version_id(PUBLIC, V1),
        job,
    )
    assert (version.license, version.revoked) == (LICENSE, False)
    assert credit(env, "node1") == REWARD


def test_model_job_with_redundancy_registers_agreed_output(env: World) -> None:
    env.user.models.create_model("user-ft")
    job = env.claimed_job("node1", "node2", kind=JobKind.FINETUNE, output_model="user-ft")
    out = output("weights")
    salts = env.commit_all(job, {"node1": out, "node2": out})
    env.node1.jobs.reveal(job, out, salts["node1"])
    env.node2.jobs.reveal(job, out, salts["node2"])
    version = env.user.models.version("user-ft", f"job-{job}")
    assert (version.content, version.job_id) == (out.content, job)


def test_inference_job_registers_no_version(env: World) -> None:
    job = env.claimed_job("node1")
    result = env.node1.jobs.submit(job, output("a"))
    assert events(env.registry, env.receipt(result.tx_hash), "VersionRegistered") == []
    assert bytes(env.board.functions.outputModelOf(job).call()) == b"\x00" * 32


def test_model_job_tag_cannot_be_taken_by_the_requester(env: World) -> None:
    """Regression: registering ``job-<id>`` first made the job undeliverable, so its claimants
    were slashed to the requester's profit."""
    env.user.models.create_model("user-ft")
    job = env.claimed_job("node1", kind=JobKind.FINETUNE, output_model="user-ft")
    with reverts(revert_errors.ReservedTag, tag=f"job-{job}"):
        env.user.models.register_version("user-ft", f"job-{job}", output("x").content, sha("m"))
    env.node1.jobs.submit(job, output("weights"))
    assert env.job(job)["status"] == FINALIZED


# --------------------------------------------------------------------------------- setParams


def test_set_params_updates_slash_and_window(env: World) -> None:
    result = env.admin.wallet.transact(env.board.functions.setParams(7, 60))
    assert events(env.board, result.receipt, "ParamsSet") == [
        {"slashAmount": 7, "revealWindow": 60}
    ]
    assert (
        env.board.functions.slashAmount().call(),
        env.board.functions.revealWindow().call(),
    ) == (
        7,
        60,
    )


def test_set_params_reverts_if_reveal_window_zero(env: World) -> None:
    with reverts(revert_errors.InvalidParams):
        env.admin.wallet.transact(env.board.functions.setParams(SLASH, 0))


# ------------------------------------------------------------------------------------- views


def test_get_job_of_unknown_job_is_empty(env: World) -> None:
    assert env.job(42)["status"] == int(JobStatus.NONE)
    assert env.job(42)["requester"] == ZERO_ADDRESS
