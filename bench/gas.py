"""Gas used by every user-facing contract operation, measured on a fresh anvil.

1. Start anvil on a free 127.0.0.1 port (``registry.dev.anvil``) and deploy the contracts with
   the default parameters.
2. Run each operation once through the SDK clients, in an order that gives each its usual
   state (a first version before one with a parent, a reveal that is not the last before one
   that settles, ...), and read ``gasUsed`` from its receipt.
3. Run the redundancy-1 lifecycle (create, claim, submit) twice with the same requester and
   worker: the first submit is the worker's first credit (a zero-to-non-zero ``withdrawable``
   write), the second is steady state (the worker has not withdrawn yet). For k = 1, submit
   finalizes the job at once: there is no separate finalize.
4. Print a markdown table (or JSON with ``--json``), check the goals and exit 1 if one fails:
   registering a version (with or without parent) <= 150k gas, the k = 1 lifecycle <= 300k.

Usage: ``.venv/bin/python -m bench.gas [--json]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass

from eth_account import Account

from registry.chain.connection import Chain, connect, dev_keys
from registry.chain.deployment import DeployParams, deploy
from registry.chain.tx import Wallet
from registry.clients import (
    Access,
    ChallengesClient,
    ContentRef,
    JobBoardClient,
    JobSpec,
    ModelRegistryClient,
    NodeRegistryClient,
    TxResult,
)
from registry.clients.jobs import Output
from registry.clients.models import model_id, version_id
from registry.dev.anvil import Anvil
from registry.jobs import JobKind
from registry.receipts import Signer, Verdict, verdict_sha256

REGISTER_VERSION_GOAL = 150_000
LIFECYCLE_GOAL = 300_000
#: For scale: Infernet SDK's gas snapshot for its callback-delivery test.
INFERNET_CALLBACK = 350_000
REWARD = 10**16


@dataclass
class Row:
    """One measured operation."""

    operation: str
    gas: int
    note: str = ""


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def ref(seed: str) -> ContentRef:
    return ContentRef(0x55, sha(f"content:{seed}"))


def out(seed: str) -> Output:
    return Output(ref(seed), sha(f"output:{seed}"), 1_000)


class Bench:
    """The deployed contracts and one client set per role."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        keys = dev_keys(8)
        wallets = [Wallet(chain, Account.from_key(k)) for k in keys]
        params = DeployParams()
        self.params = params
        d = deploy(wallets[0], params)
        self.owner = ModelRegistryClient(chain, d.model_registry, wallets[1])
        self.buyer = ModelRegistryClient(chain, d.model_registry, wallets[3])
        self.requester = JobBoardClient(chain, d.job_board, wallets[2])
        self.requester_models = ModelRegistryClient(chain, d.model_registry, wallets[2])
        self.node_reg = [NodeRegistryClient(chain, d.node_registry, wallets[i]) for i in (4, 5, 6)]
        self.node = [JobBoardClient(chain, d.job_board, wallets[i]) for i in (4, 5, 6)]
        self.node_keys = [bytes.fromhex(keys[i][2:]) for i in (4, 5, 6)]
        self.challenger = ChallengesClient(chain, d.challenges, wallets[3])
        self.rows: list[Row] = []
        self.seq = 0

    def record(self, operation: str, result: TxResult, note: str = "") -> TxResult:
        self.rows.append(Row(operation, result.gas_used, note))
        return result

    def spec(self, k: int = 1, kind: JobKind = JobKind.INFER, output_model: str = "") -> JobSpec:
        self.seq += 1
        return JobSpec(
            kind=kind,
            version_id=version_id("m", "v1"),
            input=ref(f"in{self.seq}"),
            params_hash=sha(f"params{self.seq}"),
            deadline=self.chain.timestamp() + 3_600,
            lease_seconds=600,
            redundancy=k,
            output_model_id=model_id(output_model) if output_model else bytes(32),
        )

    def run(self) -> dict[str, int]:
        """Measure every operation; returns the lifecycle totals."""
        o = self.owner
        self.record("createModel (public)", o.create_model("m"))
        self.record(
            "registerVersion (no parent)",
            o.register_version("m", "v1", ref("v1"), sha("m1"), None, "Apache-2.0"),
        )
        self.record(
            "registerVersion (with parent)",
            o.register_version(
                "m", "v2", ref("v2"), sha("m2"), version_id("m", "v1"), "Apache-2.0"
            ),
        )
        self.record("setAlias (first promote)", o.set_alias("m", "prod", "v1"))
        self.record("setAlias (promote again)", o.set_alias("m", "prod", "v2"))
        self.record("rollbackAlias", o.rollback_alias("m", "prod"))
        o.create_model("gated", Access.ALLOWLIST)
        self.record("grantAccess (allowlist)", o.grant_access("gated", self.buyer.wallet.address))  # type: ignore[union-attr]
        o.create_model("paid", Access.PAID, 10**15, 86_400)
        self.record(
            "buyAccess (paid, 1 period)", self.buyer.buy_access("paid"), "credits the owner"
        )
        self.record("revokeVersion", o.revoke_version("m", "v2"))
        for i, nodes in enumerate(self.node_reg):
            result = nodes.register(f"http://127.0.0.1:{9001 + i}", bytes([2]) * 33, 10**18)
            if i == 0:
                self.record("register node (with stake)", result)
        self.record("setServing (1 version)", self.node_reg[0].set_serving([version_id("m", "v1")]))

        totals = {}
        worker, req = self.node[0], self.requester
        for phase, note in (
            ("first", "worker's first credit"),
            ("steady", "worker already credited"),
        ):
            create = self.record(f"createJob (k=1, {phase})", req.create_job(self.spec(), REWARD))
            claim = self.record(f"claim ({phase})", worker.claim(create.value))
            submit = self.record(
                f"submitResult (k=1, finalizes, {phase})",
                worker.submit(create.value, out("a")),
                note,
            )
            totals[phase] = create.gas_used + claim.gas_used + submit.gas_used

        # redundancy 2: both reveal, the second reveal settles the job
        job = req.create_job(self.spec(k=2), REWARD).value
        for w in self.node[:2]:
            w.claim(job)
        labels = ("commitResult (not last)", "commitResult (last, opens reveal window)")
        salts = [
            self.record(label, w.commit(job, out("a"))).value
            for label, w in zip(labels, self.node[:2], strict=True)
        ]
        self.record("revealResult (not last)", self.node[0].reveal(job, out("a"), salts[0]))
        self.record(
            "revealResult (last, settles k=2)",
            self.node[1].reveal(job, out("a"), salts[1]),
            "pays 2 nodes",
        )

        # redundancy 3: two reveal, the window passes, anyone finalizes
        job = req.create_job(self.spec(k=3), REWARD).value
        for w in self.node:
            w.claim(job)
        salts = [w.commit(job, out("b")).value for w in self.node]
        for w, salt in zip(self.node[:2], salts[:2], strict=True):
            w.reveal(job, out("b"), salt)
        self.chain.warp(self.chain.timestamp() + self.params.reveal_window_s)
        self.record(
            "finalize (k=3 after reveal window)",
            self.node[2].finalize(job),
            "2 of 3 revealed: pays 2, slashes 1",
        )

        job = req.create_job(self.spec(), REWARD).value
        self.record("cancelJob", req.cancel(job))
        job = req.create_job(self.spec(), REWARD).value
        worker.claim(job)
        self.record("releaseClaim", worker.release(job))
        worker.claim(job)
        self.chain.warp(self.chain.timestamp() + 601)
        self.record("reclaimLapsed", self.node[1].reclaim_lapsed(job), "slashes the holder")
        self.chain.warp(self.chain.timestamp() + 3_600)
        self.record("expire (no live claim)", req.expire(job), "after its lease was reclaimed")

        self.requester_models.create_model("ft")
        job = req.create_job(self.spec(kind=JobKind.FINETUNE, output_model="ft"), REWARD).value
        worker.claim(job)
        self.record(
            "submitResult (FINETUNE)", worker.submit(job, out("w")), "registers version job-<id>"
        )
        self.record("withdraw (job board)", worker.withdraw())

        self.record(
            "setServers (1 node)",
            o.set_servers("m", [self.node[1].wallet.address], True),  # type: ignore[union-attr]
        )
        self.record("setServerRestriction", o.set_server_restriction("m", True))
        self.challenges()
        return totals

    def challenges(self) -> None:
        """A challenge proven (the signer slashed), and one whose job nobody delivers (refund)."""
        c = self.challenger
        accused = Signer(self.node_keys[0])
        proven, undelivered = (
            accused.sign_receipt(
                c.domain(),
                version_id("m", "v1"),
                sha(f"request:{seed}"),
                sha(f"response:{seed}"),
                True,
                now=self.chain.timestamp(),
            )
            for seed in ("proven", "undelivered")
        )
        opened = self.record(
            "challenge",
            c.open_challenge(proven, 0x55, sha("input:proven")),
            "checks the receipt, posts a k=1 job",
        )
        job_id = c.get(opened.value).job_id
        verdict = verdict_sha256(proven.digest, Verdict.MISMATCH)
        self.node[1].claim(job_id)
        self.node[1].submit(job_id, Output(ContentRef(0x55, verdict), verdict, 65))
        self.record("resolve (MISMATCH verdict)", c.resolve(opened.value), "slashes the signer")
        second = c.challenge(undelivered, 0x55, sha("input:undelivered"))
        self.chain.warp(self.chain.timestamp() + self.params.challenge_job_ttl_s)
        self.record(
            "resolve (job undelivered)", c.resolve(second), "expires the job, refunds the fee"
        )


def table(rows: list[Row], totals: dict[str, int]) -> str:
    lines = ["| operation | gas | note |", "|---|---:|---|"]
    lines += [f"| {r.operation} | {r.gas:,} | {r.note} |" for r in rows]
    for phase, total in totals.items():
        lines.append(f"| **k=1 lifecycle, {phase}** (create + claim + submit) | **{total:,}** | |")
    return "\n".join(lines)


def goals(rows: list[Row], totals: dict[str, int]) -> list[tuple[str, int, int, bool]]:
    """(goal, measured, limit, met) for each goal."""
    register = max(r.gas for r in rows if r.operation.startswith("registerVersion"))
    lifecycle = max(totals.values())
    return [
        (
            "registerVersion (worst of with/without parent)",
            register,
            REGISTER_VERSION_GOAL,
            register <= REGISTER_VERSION_GOAL,
        ),
        (
            "k=1 lifecycle (worst of first/steady)",
            lifecycle,
            LIFECYCLE_GOAL,
            lifecycle <= LIFECYCLE_GOAL,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    with Anvil() as anvil:
        bench = Bench(connect(anvil.url))
        totals = bench.run()
    checked = goals(bench.rows, totals)
    if args.json:
        print(
            json.dumps(
                {
                    "operations": {r.operation: r.gas for r in bench.rows},
                    "lifecycle_k1": totals,
                    "goals": {g: {"gas": m, "limit": lim, "met": ok} for g, m, lim, ok in checked},
                },
                indent=2,
            )
        )
    else:
        print(table(bench.rows, totals))
        print()
        print("For k = 1, submitResult finalizes the job in the same transaction (no finalize).")
        print(
            f"For scale: Infernet SDK's gas snapshot shows ~{INFERNET_CALLBACK:,} gas for its "
            "callback-delivery test."
        )
        print()
        for goal, measured, limit, ok in checked:
            print(f"- {goal}: {measured:,} <= {limit:,}: {'met' if ok else 'NOT MET'}")
    return 0 if all(ok for *_, ok in checked) else 1


if __name__ == "__main__":
    sys.exit(main())
