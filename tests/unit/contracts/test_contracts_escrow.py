"""C5 escrow conservation: random sequences of job and stake operations by several actors
never create or lose ETH.

A hypothesis state machine creates, claims, submits, commits, reveals, releases, reclaims,
expires, finalizes, cancels and withdraws (and stakes, unstakes, withdraws stake and comes back)
as random actors, with time jumps around leases and deadlines. Each step draws one operation
from a weighted list (honest progress on a job most often, adversarial calls and settlement
less), so short runs still reach every phase. Many calls revert: that is fine, but only with
one of the contracts' own custom errors. After every step:

* ``JobBoard.balance == Σ reward of unsettled jobs (Open, Claimed, Revealing) + Σ withdrawable``
* ``NodeRegistry.balance == Σ stake + Σ withdrawable``
* a settled job (Finalized, Expired, Cancelled) never changes status again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from registry.clients.jobs import ClaimState, JobStatus, Output
from registry.errors import ContractRevertError
from support.chain import MIN_STAKE, World, output, sha

REQUESTERS = ("user", "buyer")
#: The nodes that work here; node4 stays idle, its stake a constant.
NODES = ("node1", "node2", "node3")
#: Everyone who can ever hold a credit in this machine (the attacker only pokes).
PAYEES = REQUESTERS + NODES
UNSETTLED = {int(JobStatus.OPEN), int(JobStatus.CLAIMED), int(JobStatus.REVEALING)}
SETTLED = {int(JobStatus.FINALIZED), int(JobStatus.EXPIRED), int(JobStatus.CANCELLED)}
#: Operations by weight; the first is what hypothesis shrinks towards.
OPS = ("work",) * 8 + ("create", "meddle", "meddle", "settle", "settle", "advance", "advance")
OPS += ("withdraw", "stake")

nodes = st.sampled_from(NODES)
outputs = st.sampled_from(["a", "b"])


class EscrowMachine(RuleBasedStateMachine):
    """Drives one world; :attr:`world` is set by the test before running."""

    world: ClassVar[World]

    def __init__(self) -> None:
        super().__init__()
        self.env = self.world
        self.start = self.env.snapshot()
        self.idle_stake = self.env.stake("node4")
        self.status: dict[int, int] = {}  # last status read of every job
        self.reward: dict[int, int] = {}
        self.touched: int | None = None  # the job the current step acted on
        self.commits: dict[tuple[int, str], tuple[Output, bytes]] = {}
        self.outcomes: Counter[str] = Counter()
        self.names = {actor.address: name for name, actor in self.env.actors.items()}

    def teardown(self) -> None:
        try:
            # Steps re-read only the job they touched; check no other job moved meanwhile.
            for job_id, status in self.status.items():
                assert self.env.job(job_id)["status"] == status, f"job {job_id} moved untouched"
        finally:
            self.env.restore(self.start)

    # --- the one rule -------------------------------------------------------------------------

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        op = data.draw(st.sampled_from(OPS), label="op")
        if not self.status and op in ("work", "meddle", "settle"):
            op = "create"
        getattr(self, op)(data)

    def send(self, who: str, fn: Any, value: int = 0) -> Any:
        """Send as ``who``; a revert must be one of the contracts' typed errors."""
        job = fn.args[0] if fn.args and fn.fn_name != "createJob" else None
        self.touched = job if isinstance(job, int) else None
        try:
            sent = self.env.actors[who].wallet.transact(fn, value)
        except ContractRevertError as exc:
            assert type(exc) is not ContractRevertError, f"untyped revert: {exc}"
            self.outcomes[f"{fn.fn_name}:{exc.error_name}"] += 1
            return None
        self.outcomes[f"{fn.fn_name}:ok"] += 1
        return sent

    def job(self, data: st.DataObject, unsettled: bool = False) -> int:
        """One of the (up to four) newest jobs; with ``unsettled``, of those still open when
        there are any."""
        ids = sorted(self.status, reverse=True)
        if unsettled:
            ids = [j for j in ids if self.status[j] in UNSETTLED] or ids
        return ids[data.draw(st.integers(0, min(3, len(ids) - 1)), label="age")]

    # --- operations ---------------------------------------------------------------------------

    def create(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(REQUESTERS), label="requester")
        spec = self.env.spec(
            k=data.draw(st.sampled_from([1, 2, 2, 3]), label="k"),
            deadline_in=data.draw(st.sampled_from([1_500, 4_000]), label="deadline_in"),
            lease=data.draw(st.sampled_from([600, 1_200]), label="lease"),
        )
        reward = data.draw(st.sampled_from([10**15, 10**16 + 1, 3 * 10**16]), label="reward")
        if self.send(who, self.env.board.functions.createJob(self.env.request(spec)), reward):
            self.touched = int(self.env.board.functions.lastJobId().call())

    def work(self, data: st.DataObject) -> None:
        """Move a job on by one honest step: a node claims a free slot, submits (k = 1) or
        commits, and once all committed each reveals (honestly or not). On a settled job a node
        withdraws what it earned."""
        job, node = self.job(data, unsettled=True), data.draw(nodes, label="node")
        record = self.env.job(job)
        k = record["redundancy"]
        slots = [self.env.claim_slot(job, i) for i in range(k)]
        holders = {self.names.get(s["node"]): s for s in slots if s["state"] != ClaimState.FREE}
        if record["status"] not in UNSETTLED:
            self.after_settlement(data, job, k, [n for n in holders if n in NODES] or [node])
        elif node not in holders:
            self.send(node, self.env.board.functions.claim(job))
        elif k == 1:
            self.submit(node, job, data.draw(outputs, label="out"))
        elif record["status"] == JobStatus.REVEALING:
            self.reveal(node, job, data.draw(st.booleans(), label="honest"))
        else:  # commit for the first holder still to commit, else let a newcomer claim
            now = self.env.now()
            active = [
                n
                for n, s in holders.items()
                if s["state"] == ClaimState.ACTIVE and s["leaseExpiry"] > now + 1
            ]
            if active:
                self.commit(active[0], job, data.draw(outputs, label="out"))
            elif newcomers := [n for n in NODES if n not in holders]:
                self.send(newcomers[0], self.env.board.functions.claim(job))
            else:  # every node holds a slot and some lease lapsed
                self.send("attacker", self.env.board.functions.reclaimLapsed(job))

    def after_settlement(self, data: st.DataObject, job: int, k: int, holders: list[str]) -> None:
        """A settled job's claimant withdraws, or tries its delivery (or a release) again."""
        node = data.draw(st.sampled_from(holders), label="holder")
        action = data.draw(st.sampled_from(["withdraw", "again", "release"]), label="then")
        if action == "withdraw":
            self.send(node, self.env.board.functions.withdraw())
        elif action == "release":
            self.send(node, self.env.board.functions.releaseClaim(job))
        elif k == 1:
            self.submit(node, job, data.draw(outputs, label="out"))
        else:
            self.reveal(node, job, honest=True)

    def meddle(self, data: st.DataObject) -> None:
        """Any node tries any step on any job: repeats, out of turn, not a claimant."""
        job, node = self.job(data), data.draw(nodes, label="node")
        action = data.draw(st.sampled_from(["claim", "submit", "commit", "reveal", "release"]))
        if action == "claim":
            self.send(node, self.env.board.functions.claim(job))
        elif action == "submit":
            self.submit(node, job, data.draw(outputs, label="out"))
        elif action == "commit":
            self.commit(node, job, data.draw(outputs, label="out"))
        elif action == "reveal":
            self.reveal(node, job, honest=True)
        else:
            self.send(node, self.env.board.functions.releaseClaim(job))

    def settle(self, data: st.DataObject) -> None:
        """Anyone expires, finalizes or reclaims lapsed leases; the requester cancels."""
        job = self.job(data)
        action = data.draw(st.sampled_from(["expire", "finalize", "reclaimLapsed", "cancelJob"]))
        who = self.names[self.env.job(job)["requester"]] if action == "cancelJob" else "attacker"
        self.send(who, getattr(self.env.board.functions, action)(job))

    def advance(self, data: st.DataObject) -> None:
        seconds = data.draw(st.sampled_from([100, 300, 700, 1_300]), label="seconds")
        self.env.warp(self.env.now() + seconds)

    def withdraw(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(PAYEES), label="who")
        on_board = data.draw(st.booleans(), label="on_board")
        contract = self.env.board if on_board else self.env.node_registry
        self.send(who, contract.functions.withdraw())

    def stake(self, data: st.DataObject) -> None:
        """Top up, start leaving, finish leaving, or come back."""
        node = data.draw(nodes, label="node")
        action = data.draw(st.sampled_from(["addStake", "unstake", "withdrawStake", "register"]))
        fns = self.env.node_registry.functions
        if action == "addStake":
            self.send(node, fns.addStake(), 10**17)
        elif action == "unstake":
            self.send(node, fns.requestUnstake())
        elif action == "withdrawStake":
            self.send(node, fns.withdrawStake())
        else:
            self.send(node, fns.register("http://back", b"k"), MIN_STAKE)

    def submit(self, node: str, job: int, out: str) -> None:
        o = output(out)
        fn = self.env.board.functions.submitResult(
            job, o.content.codec, o.content.digest, o.sha256, o.size
        )
        self.send(node, fn)

    def commit(self, node: str, job: int, out: str) -> None:
        o, salt = output(out), sha(f"{job}:{node}")
        commitment = self.env.node1.jobs.commitment(job, self.env.actors[node].address, o, salt)
        if self.send(node, self.env.board.functions.commitResult(job, commitment)):
            self.commits[(job, node)] = (o, salt)

    def reveal(self, node: str, job: int, honest: bool) -> None:
        o, salt = self.commits.get((job, node), (output("a"), sha("guess")))
        if not honest:
            o = output("forged")
        fn = self.env.board.functions.revealResult(
            job, o.content.codec, o.content.digest, o.sha256, o.size, salt
        )
        self.send(node, fn)

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def job_board_holds_escrow_plus_credits(self) -> None:
        env = self.env
        if self.touched is not None:
            job_id, self.touched = self.touched, None
            job = env.job(job_id)
            previous = self.status.get(job_id)
            if previous in SETTLED:
                assert job["status"] == previous, f"settled job {job_id} changed status"
            self.status[job_id], self.reward[job_id] = job["status"], job["reward"]
        escrow = sum(self.reward[j] for j, status in self.status.items() if status in UNSETTLED)
        credits = sum(env.credit(env.board, env.actors[n].address) for n in PAYEES)
        assert env.balance(env.board.address) == escrow + credits

    @invariant()
    def node_registry_holds_stakes_plus_credits(self) -> None:
        env = self.env
        stakes = sum(env.stake(n) for n in NODES) + self.idle_stake
        credits = sum(env.credit(env.node_registry, env.actors[n].address) for n in PAYEES)
        assert env.balance(env.node_registry.address) == stakes + credits


def test_escrow_is_conserved(world: World) -> None:
    EscrowMachine.world = world
    run_state_machine_as_test(
        EscrowMachine,
        settings=settings(
            max_examples=5,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
