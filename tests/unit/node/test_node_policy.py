"""The node's job policy: reward floor, leases that fit the measured runtime, the release
point, and measurements that survive a restart (economics issue, "lease trap")."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.policy import JobPolicy, JobRefused
from registry.clients import ContentRef, JobStatus
from registry.clients.jobs import JobRecord, JobSpec
from registry.jobs import JobKind

PARAMS = b"\x01" * 32


def _job(
    *, reward: int = 10**15, lease: int = 600, k: int = 1, deadline: int = 10_000
) -> JobRecord:
    spec = JobSpec(
        kind=JobKind.INFER, version_id=b"\x00" * 32, input=ContentRef(0x55, b"\x00" * 32),
        params_hash=PARAMS, deadline=deadline, lease_seconds=lease, redundancy=k,
        output_model_id=b"\x00" * 32,
    )  # fmt: skip
    return JobRecord(
        job_id=1, requester="0x" + "00" * 20, reward_wei=reward, spec=spec,
        status=JobStatus.OPEN, claims=0, commits=0, reveals=0, reveal_deadline=0,
        created_block=0, result=None,
    )  # fmt: skip


def _policy(path: Path | None = None) -> JobPolicy:
    return JobPolicy(min_reward_wei=1000, margin=2.0, min_lease_s=10, release_margin_s=5, path=path)


def test_dust_rewards_are_refused_per_claim_slot() -> None:
    policy = _policy()
    policy.check(_job(reward=1000), now=0)
    with pytest.raises(JobRefused, match="min_reward_wei"):
        policy.check(_job(reward=1), now=0)
    with pytest.raises(JobRefused, match="per claim"):
        policy.check(_job(reward=2999, k=3), now=0)


def test_a_lease_must_cover_the_measured_runtime_times_the_margin(tmp_path: Path) -> None:
    policy = _policy(tmp_path / "runtimes.json")
    with pytest.raises(JobRefused, match="lease"):
        policy.check(_job(lease=1), now=0)  # the lease trap: untimed work needs min_lease_s
    policy.check(_job(lease=10), now=0)
    policy.observe(JobKind.INFER, PARAMS, 30.0)
    policy.observe(JobKind.INFER, PARAMS, 12.0)  # the longest run counts
    with pytest.raises(JobRefused, match="60 s"):
        policy.check(_job(lease=59), now=0)
    policy.check(_job(lease=60), now=0)
    with pytest.raises(JobRefused, match="deadline"):
        policy.check(_job(lease=600, deadline=50), now=0)
    again = _policy(tmp_path / "runtimes.json")  # a restart keeps what was measured
    assert again.expected_s(JobKind.INFER, PARAMS) == 30.0
    assert again.expected_s(JobKind.TRAIN, PARAMS) is None


def test_a_running_job_is_released_before_its_lease_ends() -> None:
    assert _policy().run_budget(lease_expiry=100, now=40) == 55


def test_unreadable_measurements_start_afresh(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.json"
    path.write_text("not json")
    assert _policy(path).expected_s(JobKind.INFER, PARAMS) is None
