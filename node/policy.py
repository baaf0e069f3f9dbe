"""Which jobs this node takes: a reward floor, and a lease that fits the job's measured runtime.

A claim is a promise: let its lease lapse and the node is slashed. So before claiming, the node
checks that the job can be done in time and is worth doing — a requester who posts a 1-wei job
with a one-second lease (the "lease trap") finds no taker:

- the reward per claim slot (reward ÷ redundancy) must reach ``min_reward_wei``;
- the lease — and the time left before the deadline — must cover the expected runtime times
  ``margin``. The expected runtime is the longest this node measured for the same kind and params
  (the params hash: the same work), else ``min_lease_s`` ÷ ``margin`` for work it has not timed.

While a job runs, :meth:`JobPolicy.run_budget` says how long it may still run: until
``release_margin_s`` before the lease ends, when the processor releases the claim (no slash)
instead of letting the lease lapse. Measurements persist in the node's state directory, written
atomically, so a restart keeps them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from registry.clients import JobRecord
from registry.jobs import JobKind
from registry.store.atomic import atomic_file

log = logging.getLogger(__name__)

#: Runtimes remembered per kind (the most recent params hashes).
MAX_REMEMBERED = 256


class JobRefused(Exception):
    """The job does not meet this node's policy; the message says which rule and setting."""


class JobPolicy:
    """The node's rules for taking jobs (see the module doc).

    Args:
        min_reward_wei: least reward per claim slot.
        margin: how much longer than its expected runtime a job's lease must be.
        min_lease_s: least lease for work this node has not timed yet.
        release_margin_s: release a running job this long before its lease ends.
        path: where measurements persist (None: memory only).
    """

    def __init__(
        self,
        *,
        min_reward_wei: int,
        margin: float,
        min_lease_s: float,
        release_margin_s: float,
        path: Path | None = None,
    ) -> None:
        self.min_reward_wei = min_reward_wei
        self.margin = margin
        self.min_lease_s = min_lease_s
        self.release_margin_s = release_margin_s
        self.path = path
        self._runtimes: dict[str, float] = self._load()

    @staticmethod
    def _key(kind: JobKind, params_hash: bytes) -> str:
        return f"{kind.name}:{params_hash.hex()}"

    def _load(self) -> dict[str, float]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("job runtimes at %s unreadable (%s): starting afresh", self.path, exc)
            return {}

    def expected_s(self, kind: JobKind, params_hash: bytes) -> float | None:
        """The longest measured runtime of this work, or None if never timed."""
        return self._runtimes.get(self._key(kind, params_hash))

    def needed_lease_s(self, kind: JobKind, params_hash: bytes) -> float:
        """The least lease this node accepts for the work."""
        expected = self.expected_s(kind, params_hash)
        return (
            self.min_lease_s if expected is None else max(self.min_lease_s, expected * self.margin)
        )

    def check(self, job: JobRecord, now: int) -> None:
        """Raise :class:`JobRefused` unless the job meets the policy."""
        spec = job.spec
        per_slot = job.reward_wei // max(1, spec.redundancy)
        if per_slot < self.min_reward_wei:
            raise JobRefused(
                f"its reward per claim ({per_slot} wei) is below this node's floor "
                f"({self.min_reward_wei} wei, min_reward_wei)"
            )
        needed = self.needed_lease_s(spec.kind, spec.params_hash)
        if spec.lease_seconds < needed:
            raise JobRefused(
                f"its lease ({spec.lease_seconds} s) is shorter than this node needs for it "
                f"({needed:.0f} s: measured runtime x lease_margin, at least min_lease_s)"
            )
        if spec.deadline - now < needed:
            raise JobRefused(f"too little time before its deadline ({spec.deadline - now} s)")

    def run_budget(self, lease_expiry: int, now: int) -> float:
        """Seconds the job may still run before the claim must be released."""
        return lease_expiry - now - self.release_margin_s

    def observe(self, kind: JobKind, params_hash: bytes, seconds: float) -> None:
        """Remember how long the work took (the longest run counts) and persist it."""
        key = self._key(kind, params_hash)
        self._runtimes[key] = max(seconds, self._runtimes.pop(key, 0.0))  # now the most recent
        while len(self._runtimes) > MAX_REMEMBERED * len(JobKind):
            self._runtimes.pop(next(iter(self._runtimes)))
        if self.path is not None:
            try:
                with atomic_file(self.path) as handle:
                    handle.write(json.dumps(self._runtimes).encode())
            except OSError as exc:
                log.warning("job runtimes not saved to %s (%s)", self.path, exc)
