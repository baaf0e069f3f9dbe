"""The worker issue's acceptance run: two nodes started from the CLI on a real anvil work through
a queue of mixed jobs while one of them is killed mid-job. Every job must end finalized or
refunded, nobody is paid twice, and the job board's escrow is conserved to the wei."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.clients import Access, JobStatus
from registry.dev import demo
from registry.jobs import JobKind, Submitted, fetch_result, submit, wait_settled
from registry.model.package import push
from support.devnet import NODE_KEYS, OWNER, REQUESTER, Devnet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

REWARD = 10**15
TEXT = "The quick brown fox jumps over the lazy dog. " * 40
SERVES = ["tiny-gpt2@v1", "minilm@v1"]


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Devnet]:
    with Devnet(tmp_path / "net", backend="anvil") as d:
        owner = d.sdk(OWNER)
        for name, demo_name in (("tiny-gpt2", "tiny-gpt2"), ("minilm", "minilm")):
            copy = Path(shutil.copytree(demo.cached_model(demo_name), d.root / demo_name))
            push(owner, copy, name, "v1")
        # a second MiniLM version that no node serves: its job can only expire
        push(
            owner, Path(shutil.copytree(demo.cached_model("minilm"), d.root / "m2")), "minilm", "v2"
        )
        requester = d.sdk(REQUESTER)
        for out in ("q-trained", "q-tuned", "q-int8"):
            requester.models.create_model(out, Access.PUBLIC)
        yield d


def _inputs(root: Path) -> dict[str, Path]:
    files = {
        "chat.json": json.dumps({"messages": [{"role": "user", "content": "hello"}]}),
        "embed.json": json.dumps({"texts": ["a cat sat on the mat", "a dog lay on the rug"]}),
        "text.txt": TEXT,
        "tune.jsonl": "\n".join(json.dumps({"text": line}) for line in TEXT.split(". ")[:20]),
    }
    for name, body in files.items():
        (root / name).write_text(body)
    return {name: root / name for name in files}


def _claimer(net: Devnet, names: list[str], job_id: int, timeout: float = 300) -> str:
    """The node that logged claiming ``job_id`` first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in names:
            if f"job {job_id} claimed" in net.node_log(name):
                return name
        time.sleep(0.2)
    raise AssertionError(f"nobody claimed job {job_id}")


def test_two_cli_nodes_on_anvil_finish_a_mixed_queue_with_one_killed(
    net: Devnet, tmp_path: Path
) -> None:
    requester = net.sdk(REQUESTER)
    inp = _inputs(tmp_path)
    names = ["q-a", "q-b"]
    procs = {
        name: net.start_node(name, key, SERVES) for name, key in zip(names, NODE_KEYS, strict=False)
    }
    keys = dict(zip(names, NODE_KEYS, strict=False))

    # the long job first: whoever claims it is killed while it trains
    jobs: dict[str, Submitted] = {
        "train": submit(
            requester, JobKind.TRAIN, "tiny-gpt2@v1", inp["text.txt"],
            params={"steps": 120, "seq_len": 32, "batch_size": 4}, reward_wei=REWARD,
            output_model="q-trained", lease_s=45, deadline_s=1200,
        ),
    }  # fmt: skip
    victim = _claimer(net, names, jobs["train"].job_id)
    survivor = next(n for n in names if n != victim)
    procs[victim].send_signal(signal.SIGKILL)  # holding the lease, before it could deliver
    procs[victim].wait()
    assert "delivered" not in net.node_log(victim).split(f"job {jobs['train'].job_id} claimed")[1]
    jobs.update(
        {
            f"embed-{i}": submit(
                requester, JobKind.INFER, "minilm@v1", inp["embed.json"],
                params={"task": "embed"}, reward_wei=REWARD,
            )
            for i in range(3)
        }
    )  # fmt: skip
    jobs["chat"] = submit(
        requester, JobKind.INFER, "tiny-gpt2@v1", inp["chat.json"],
        params={"task": "chat", "max_new_tokens": 8}, reward_wei=REWARD,
    )  # fmt: skip
    jobs["eval"] = submit(
        requester, JobKind.EVAL, "tiny-gpt2@v1", inp["text.txt"],
        params={"max_length": 32, "max_tokens": 256}, reward_wei=REWARD,
    )  # fmt: skip
    jobs["int8"] = submit(
        requester, JobKind.COMPRESS, "tiny-gpt2@v1", inp["text.txt"],
        params={"method": "int8", "eval": {"max_length": 32, "max_tokens": 128}},
        reward_wei=REWARD, output_model="q-int8",
    )  # fmt: skip
    jobs["lora"] = submit(
        requester, JobKind.FINETUNE, "tiny-gpt2@v1", inp["tune.jsonl"],
        params={"method": "lora", "steps": 3, "batch_size": 2,
                "lora": {"r": 4, "alpha": 8, "merge": True}},
        reward_wei=REWARD, output_model="q-tuned",
    )  # fmt: skip
    jobs["unserved"] = submit(
        requester, JobKind.INFER, "minilm@v2", inp["embed.json"],
        params={"task": "embed"}, reward_wei=REWARD, deadline_s=40,
    )  # fmt: skip

    records = {name: wait_settled(requester, j.job_id, timeout=900) for name, j in jobs.items()}
    assert procs[survivor].poll() is None, net.node_log(survivor)[-3000:]
    expected = dict.fromkeys(jobs, JobStatus.FINALIZED)
    expected["unserved"] = JobStatus.EXPIRED
    assert {n: r.status for n, r in records.items()} == expected

    # exactly one payout per finalized job, none for the refunded one
    board = requester.jobs.contract.events
    first = min(r.created_block for r in records.values())
    finals = board.JobFinalized.get_logs(from_block=first)
    paid = sorted(int(e["args"]["jobId"]) for e in finals)
    assert paid == sorted(r.job_id for n, r in records.items() if n != "unserved")
    assert [int(e["args"]["jobId"]) for e in board.JobExpired.get_logs(from_block=first)] == [
        jobs["unserved"].job_id
    ]

    # the killed claimant lost its lease (slashed once) and earned nothing for the train job
    me = net.address(REQUESTER)
    v_addr, s_addr = net.address(keys[victim]), net.address(keys[survivor])
    assert requester.nodes.get_node(v_addr).slash_count == 1
    credits = {a: requester.jobs.withdrawable(a) for a in (v_addr, s_addr, me)}
    assert credits[v_addr] + credits[s_addr] == REWARD * (len(jobs) - 1)
    assert credits[me] == REWARD  # the refund
    balance = requester.chain.w3.eth.get_balance(requester.jobs.address)
    assert balance == sum(credits.values())  # escrow conserved: every wei is someone's credit

    # the requester fetches and verifies a result of each shape
    embed = json.loads(
        fetch_result(requester.store, records["embed-0"].result, tmp_path / "e.json").read_text()
    )
    assert len(embed["embeddings"]) == 2 and len(embed["embeddings"][0]) == 384
    trained = requester.models.version("q-trained", f"job-{jobs['train'].job_id}")
    assert trained.cid == records["train"].result.content.to_cid()
    net.stop_nodes()
