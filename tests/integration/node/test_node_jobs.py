"""Worker nodes as real processes on a devnet: every job kind from creation to payout, the
requester fetching and verifying each result; redundancy with agreement and a slashed liar."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.clients import Access, JobStatus
from registry.clients.jobs import Output
from registry.clients.models import version_id
from registry.dev import demo
from registry.jobs import JobKind, fetch_result, submit, wait_settled
from registry.model.manifest import Manifest
from registry.model.package import push
from support.devnet import NODE_KEYS, OWNER, REQUESTER, Devnet

pytestmark = pytest.mark.integration

REWARD = 10**15
TEXT = "The quick brown fox jumps over the lazy dog. " * 40


def _copy(name: demo.DemoName, dest: Path) -> Path:
    return Path(shutil.copytree(demo.cached_model(name), dest))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    root = tmp_path_factory.mktemp("devnet")
    with Devnet(root) as d:
        owner = d.sdk(OWNER)
        push(owner, _copy("tiny-gpt2", root / "gpt2"), "tiny-gpt2", "v1", license="MIT")
        push(owner, _copy("minilm", root / "minilm"), "minilm", "v1", license="Apache-2.0")
        requester = d.sdk(REQUESTER)
        for out in ("gpt2-trained", "gpt2-tuned", "gpt2-small"):
            requester.models.create_model(out, Access.PUBLIC)
        yield d


def _inputs(root: Path) -> dict[str, Path]:
    files = {
        "chat.json": json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        "embed.json": json.dumps({"texts": ["a cat sat on the mat", "a dog lay on the rug"]}),
        "text.txt": TEXT,
        "tune.jsonl": "\n".join(json.dumps({"text": line}) for line in TEXT.split(". ")[:20]),
    }
    out = {}
    for name, body in files.items():
        (root / name).write_text(body)
        out[name] = root / name
    return out


def test_every_kind_reaches_a_verified_payout(net: Devnet, tmp_path: Path) -> None:
    requester = net.sdk(REQUESTER)
    inputs = _inputs(tmp_path)
    node = net.start_node("w-all", NODE_KEYS[0], ["tiny-gpt2@v1", "minilm@v1"])
    jobs = {
        "chat": submit(
            requester,
            JobKind.INFER,
            "tiny-gpt2@v1",
            inputs["chat.json"],
            params={"task": "chat", "max_new_tokens": 8},
            reward_wei=REWARD,
        ),
        "embed": submit(
            requester,
            JobKind.INFER,
            "minilm@v1",
            inputs["embed.json"],
            params={"task": "embed"},
            reward_wei=REWARD,
        ),
        "train": submit(
            requester,
            JobKind.TRAIN,
            "tiny-gpt2@v1",
            inputs["text.txt"],
            params={"steps": 5, "seq_len": 32, "batch_size": 2},
            reward_wei=REWARD,
            output_model="gpt2-trained",
        ),
        "finetune": submit(
            requester,
            JobKind.FINETUNE,
            "tiny-gpt2@v1",
            inputs["tune.jsonl"],
            params={
                "method": "lora",
                "steps": 3,
                "batch_size": 2,
                "lora": {"r": 4, "alpha": 8, "merge": True},
            },
            reward_wei=REWARD,
            output_model="gpt2-tuned",
        ),
        "eval": submit(
            requester,
            JobKind.EVAL,
            "tiny-gpt2@v1",
            inputs["text.txt"],
            params={"max_length": 32, "max_tokens": 256},
            reward_wei=REWARD,
        ),
        "compress": submit(
            requester,
            JobKind.COMPRESS,
            "tiny-gpt2@v1",
            inputs["text.txt"],
            params={
                "method": "prune",
                "sparsity": 0.5,
                "eval": {"max_length": 32, "max_tokens": 128},
            },
            reward_wei=REWARD,
            output_model="gpt2-small",
        ),
    }
    records = {name: wait_settled(requester, j.job_id, timeout=600) for name, j in jobs.items()}
    assert node.poll() is None, net.node_log("w-all")[-3000:]
    assert {n: r.status for n, r in records.items()} == dict.fromkeys(jobs, JobStatus.FINALIZED)

    embed = json.loads(
        fetch_result(requester.store, records["embed"].result, tmp_path / "e.json").read_text()
    )
    a, b = embed["embeddings"]
    assert len(a) == 384 and abs(sum(x * x for x in a) - 1.0) < 1e-3

    chat = json.loads(
        fetch_result(requester.store, records["chat"].result, tmp_path / "c.json").read_text()
    )
    assert isinstance(chat["text"], str)

    ev = json.loads(
        fetch_result(requester.store, records["eval"].result, tmp_path / "v.json").read_text()
    )
    assert ev["metrics"]["perplexity"] > 1.0

    base = requester.models.version("tiny-gpt2", "v1")
    for name, model in (
        ("train", "gpt2-trained"),
        ("finetune", "gpt2-tuned"),
        ("compress", "gpt2-small"),
    ):
        job = records[name]
        produced = requester.models.version(model, f"job-{job.job_id}")
        assert produced.parent == base.version_id and produced.job_id == job.job_id
        assert produced.cid == job.result.content.to_cid()
        tree = fetch_result(requester.store, job.result, tmp_path / name)
        manifest = Manifest.from_bytes((tree / "anchorml.json").read_bytes())
        assert manifest.parent == base.cid and manifest.job == job.job_id

    worker = net.address(NODE_KEYS[0])
    assert requester.jobs.withdrawable(worker) == REWARD * len(jobs)
    board_balance = requester.chain.w3.eth.get_balance(requester.jobs.address)
    assert board_balance == REWARD * len(jobs)  # everything settled: only the worker's credit


def test_redundancy_three_agree_and_a_liar_is_slashed(net: Devnet, tmp_path: Path) -> None:
    requester = net.sdk(REQUESTER)
    inputs = _inputs(tmp_path)
    names = ["w-a", "w-b", "w-c"]
    for name, key in zip(names, NODE_KEYS[1:4], strict=True):
        net.start_node(name, key, ["minilm@v1"])
    agreed = submit(
        requester,
        JobKind.INFER,
        "minilm@v1",
        inputs["embed.json"],
        params={"task": "embed"},
        reward_wei=3 * REWARD,
        redundancy=3,
    )
    record = wait_settled(requester, agreed.job_id, timeout=300)
    assert record.status == JobStatus.FINALIZED  # A3: three workers, one output hash
    finalized = requester.jobs.contract.events.JobFinalized.get_logs(
        from_block=record.created_block, argument_filters={"jobId": agreed.job_id}
    )
    assert finalized[0]["args"]["agreeing"] == 3

    # a scripted liar takes one of three slots first and reveals a different output
    net.stop_nodes()
    liar = net.sdk(NODE_KEYS[0])
    job = submit(
        requester,
        JobKind.INFER,
        "minilm@v1",
        inputs["embed.json"],
        params={"task": "embed"},
        reward_wei=3 * REWARD,
        redundancy=3,
    )
    liar.jobs.claim(job.job_id)
    wrong = Output(record.result.content, b"\x01" * 32, record.result.size)
    salt = liar.jobs.commit(job.job_id, wrong).value
    stake_before = liar.nodes.get_node(liar.wallet.address).stake_wei
    for name, key in zip(names[:2], NODE_KEYS[1:3], strict=True):
        net.start_node(name + "2", key, ["minilm@v1"])
    deadline_ok = False
    for _ in range(600):
        if requester.jobs.status(job.job_id) == JobStatus.REVEALING:
            deadline_ok = True
            break
        import time

        time.sleep(0.2)
    assert deadline_ok, "honest nodes never committed"
    liar.jobs.reveal(job.job_id, wrong, salt)
    settled = wait_settled(requester, job.job_id, timeout=120)
    assert settled.status == JobStatus.FINALIZED
    assert settled.result.sha256 == record.result.sha256  # the honest majority's output
    assert liar.nodes.get_node(liar.wallet.address).stake_wei < stake_before
    assert version_id("minilm", "v1") == settled.spec.version_id
