"""Worker failure cases W1–W8 of RELIABILITY.md, with real node processes where the case is
about processes (kills, restarts, RPC faults, IPFS outages) and in-process where it is about
one component (wallet nonces and rebroadcasts, simulation before sending)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from registry.chain import revert_errors as rv
from registry.chain.connection import connect, dev_keys
from registry.chain.tx import Wallet
from registry.clients import JobStatus, ModelRegistryClient
from registry.dev import demo
from registry.dev.anvil import Anvil
from registry.errors import TransactionError
from registry.jobs import JobKind, submit, wait_settled
from registry.model.package import push
from support.devnet import NODE_KEYS, OWNER, REQUESTER, Devnet
from support.faults import FaultProxy

pytestmark = pytest.mark.integration

REWARD = 10**15
EMBED = {"task": "embed"}


def _texts(path: Path, *texts: str) -> Path:
    path.write_text(json.dumps({"texts": list(texts)}))
    return path


def _push_models(d: Devnet) -> None:
    owner = d.sdk(OWNER)
    push(
        owner, Path(shutil.copytree(demo.cached_model("minilm"), d.root / "minilm")), "minilm", "v1"
    )
    push(
        owner, Path(shutil.copytree(demo.cached_model("tiny-gpt2"), d.root / "gpt2")), "gpt2", "v1"
    )


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Devnet]:
    with Devnet(tmp_path) as d:
        _push_models(d)
        yield d


def _board_txs_from(d: Devnet, address: str, from_block: int) -> int:
    sdk = d.sdk(None)
    w3 = sdk.chain.w3
    count = 0
    for n in range(from_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]:
            if tx["from"] == address and tx["to"] == sdk.jobs.address:
                count += 1
    return count


def test_w1_killed_worker_is_replaced_and_paid_once(net: Devnet, tmp_path: Path) -> None:
    requester = net.sdk(REQUESTER)
    (tmp_path / "text.txt").write_text("to be or not to be, that is the question. " * 50)
    requester.models.create_model("gpt2-w1")
    a = net.start_node("w1-a", NODE_KEYS[0], ["gpt2@v1"])
    job = submit(
        requester,
        JobKind.TRAIN,
        "gpt2@v1",
        tmp_path / "text.txt",
        params={"steps": 80, "seq_len": 32, "batch_size": 4},
        reward_wei=REWARD,
        output_model="gpt2-w1",
        lease_s=60,
        deadline_s=900,
    )
    net.wait_log("w1-a", f"job {job.job_id} claimed")
    a.send_signal(signal.SIGKILL)
    a.wait()
    net.forget_node(a)
    net.start_node("w1-b", NODE_KEYS[1], ["gpt2@v1"])
    record = wait_settled(requester, job.job_id, timeout=600)
    assert record.status == JobStatus.FINALIZED
    finals = requester.jobs.contract.events.JobFinalized.get_logs(
        from_block=record.created_block, argument_filters={"jobId": job.job_id}
    )
    assert len(finals) == 1
    a_addr, b_addr = net.address(NODE_KEYS[0]), net.address(NODE_KEYS[1])
    assert requester.jobs.withdrawable(b_addr) == REWARD
    assert requester.jobs.withdrawable(a_addr) == 0
    assert requester.nodes.get_node(a_addr).slash_count == 1  # the lapsed claimant
    restart_block = requester.chain.w3.eth.block_number
    net.start_node("w1-a", NODE_KEYS[0], ["gpt2@v1"])
    net.wait_log("w1-a", f"job {job.job_id} skipped")
    net.stop_nodes()
    assert _board_txs_from(net, a_addr, restart_block + 1) == 0


def test_w2_restart_processes_every_job_once(net: Devnet, tmp_path: Path) -> None:
    requester = net.sdk(REQUESTER)
    inp = _texts(tmp_path / "in.json", "one", "two")
    net.start_node("w2", NODE_KEYS[2], ["minilm@v1"])
    first = [
        submit(requester, JobKind.INFER, "minilm@v1", inp, params=EMBED, reward_wei=REWARD)
        for _ in range(2)
    ]
    for j in first:
        assert wait_settled(requester, j.job_id, timeout=300).status == JobStatus.FINALIZED
    assert net.stop_nodes() == [0]  # SIGTERM: clean exit after the cursor was saved
    gap = [
        submit(requester, JobKind.INFER, "minilm@v1", inp, params=EMBED, reward_wei=REWARD)
        for _ in range(3)
    ]
    net.start_node("w2", NODE_KEYS[2], ["minilm@v1"])
    for j in gap:
        assert wait_settled(requester, j.job_id, timeout=300).status == JobStatus.FINALIZED
    assert net.stop_nodes() == [0]
    log = net.node_log("w2")
    created = {j.job_id for j in first + gap}
    delivered = [
        int(line.split("job ")[1].split()[0]) for line in log.splitlines() if " delivered " in line
    ]
    assert sorted(delivered) == sorted(created)  # every job once, none twice
    assert requester.jobs.withdrawable(net.address(NODE_KEYS[2])) == REWARD * len(created)


def test_w3_reorg_vanished_job_never_computed_moved_job_once(net: Devnet, tmp_path: Path) -> None:
    requester = net.sdk(REQUESTER)
    chain = requester.chain
    net.start_node("w3", NODE_KEYS[3], ["minilm@v1"], confirmations="2")
    net.wait_log("w3", "processor ready")
    snap = chain.snapshot()
    vanished = submit(
        requester,
        JobKind.INFER,
        "minilm@v1",
        _texts(tmp_path / "a.json", "vanished"),
        params=EMBED,
        reward_wei=REWARD,
    )
    chain.revert(snap)  # depth-2 reorg: the block with the job (and the params upload tx) is gone
    chain.mine(2)
    moved = submit(
        requester,
        JobKind.INFER,
        "minilm@v1",
        _texts(tmp_path / "b.json", "moved"),
        params=EMBED,
        reward_wei=REWARD,
    )
    assert moved.job_id == vanished.job_id  # same id, different job
    chain.mine(2)
    record = wait_settled(requester, moved.job_id, timeout=300)
    assert record.status == JobStatus.FINALIZED
    assert record.spec.input.to_cid() == moved.input_cid
    log = net.node_log("w3")
    assert log.count(f"job {moved.job_id} claimed") == 1
    # a reorg under blocks the listener already recorded is detected and rescanned
    snap = chain.snapshot()
    chain.mine(4)
    time.sleep(2)
    chain.revert(snap)
    requester.models.create_model("w3-fork")  # the new branch differs from the old one
    chain.mine(6)
    net.wait_log("w3", "reorg of depth")


def test_w4_dropped_tx_is_rebroadcast_with_same_nonce_and_higher_fee() -> None:
    with Anvil() as anvil:
        chain = connect(anvil.url)
        account = Account.from_key(dev_keys()[4])
        wallet = Wallet(chain, account, timeout=2.0, max_retries=2)
        from registry.chain import deployment as deployment_file

        dep = deployment_file.deploy(Wallet(chain, Account.from_key(dev_keys()[0])))
        registry = ModelRegistryClient(chain, dep.model_registry, wallet)
        chain.rpc("evm_setAutomine", [False])
        chain.rpc("evm_setIntervalMining", [1])
        original = chain.w3.eth.send_raw_transaction
        sent: list[str] = []

        def dropping(raw: bytes) -> object:
            tx_hash = original(raw)
            sent.append(tx_hash.to_0x_hex())
            if len(sent) == 1:
                chain.rpc("anvil_dropTransaction", [tx_hash.to_0x_hex()])
            return tx_hash

        chain.w3.eth.send_raw_transaction = dropping  # type: ignore[method-assign]
        nonce = chain.w3.eth.get_transaction_count(account.address)
        result = registry.create_model("w4-model")
        assert wallet.retries == 1 and len(sent) == 2
        assert result.tx_hash == sent[1]
        mined = chain.w3.eth.get_transaction(result.tx_hash)
        assert mined["nonce"] == nonce
        dropped_fee = chain.w3.eth.get_block("latest")  # noqa: F841 - keep the chain busy
        assert chain.w3.eth.get_transaction_count(account.address) == nonce + 1

        def always_drop(raw: bytes) -> object:
            tx_hash = original(raw)
            chain.rpc("anvil_dropTransaction", [tx_hash.to_0x_hex()])
            return tx_hash

        chain.w3.eth.send_raw_transaction = always_drop  # type: ignore[method-assign]
        with pytest.raises(TransactionError):
            registry.create_model("w4-never")
        assert chain.w3.eth.get_transaction_count(account.address) == nonce + 1


@pytest.mark.parametrize("backend", ["embedded", "anvil"])
def test_w5_fifty_concurrent_sends_from_one_key_all_mine(tmp_path: Path, backend: str) -> None:
    with Devnet(tmp_path, backend) as d:
        sdk = d.sdk(OWNER)
        start = sdk.chain.w3.eth.get_transaction_count(sdk.wallet.address)
        results: list[str] = []
        errors: list[BaseException] = []

        def send(i: int) -> None:
            try:
                results.append(sdk.models.create_model(f"w5-{i}").tx_hash)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        nonces = sorted(sdk.chain.w3.eth.get_transaction(h)["nonce"] for h in results)
        assert nonces == list(range(start, start + 50))


def test_w6_job_taken_by_someone_else_costs_no_gas(
    net: Devnet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from node.metrics import NodeMetrics
    from node.policy import JobPolicy
    from node.processor import Processor, Served
    from node.state import NodeState
    from registry.chain.events import ChainEvent
    from registry.model.package import ModelCache

    requester = net.sdk(REQUESTER)
    winner = net.sdk(NODE_KEYS[0])
    loser = net.sdk(NODE_KEYS[1])
    for sdk in (winner, loser):
        sdk.nodes.register("http://127.0.0.1:1", b"\x02" * 33, sdk.nodes.min_stake())
    job = submit(
        requester,
        JobKind.INFER,
        "minilm@v1",
        _texts(tmp_path / "in.json", "x"),
        params=EMBED,
        reward_wei=REWARD,
    )
    winner.jobs.claim(job.job_id)
    version = loser.models.version("minilm", "v1")
    served = Served({version.version_id: version})
    queue: asyncio.Queue[ChainEvent] = asyncio.Queue()
    processor = Processor(
        loser,
        NodeState(tmp_path / "state.sqlite"),
        queue,
        ModelCache(tmp_path / "cache", loser.store),
        served,
        NodeMetrics(),
        kinds=[JobKind.INFER],
        work_dir=tmp_path / "work",
        policy=JobPolicy(min_reward_wei=1, margin=1.5, min_lease_s=10, release_margin_s=5),
    )
    nonce = loser.chain.w3.eth.get_transaction_count(loser.wallet.address)
    balance = loser.chain.w3.eth.get_balance(loser.wallet.address)
    asyncio.run(processor.setup())
    with caplog.at_level(logging.INFO, logger="node.processor"):
        asyncio.run(processor._handle(job.job_id))
    assert loser.chain.w3.eth.get_transaction_count(loser.wallet.address) == nonce
    assert loser.chain.w3.eth.get_balance(loser.wallet.address) == balance
    race = [r for r in caplog.records if "taken or settled by someone else" in r.message]
    assert race and race[0].levelno == logging.INFO and "LeaseActive" in race[0].message
    assert rv.LeaseActive.error_name == "LeaseActive"


def test_lease_trap_and_dust_rewards_find_no_taker(net: Devnet, tmp_path: Path) -> None:
    """Economics: a requester posting a 1-second lease (the lapse would slash the node to the
    requester) or a 1-wei reward gets no claim: the node sends no transaction at all."""
    from node.metrics import NodeMetrics
    from node.policy import JobPolicy
    from node.processor import Processor, Served
    from node.state import NodeState
    from registry.chain.events import ChainEvent
    from registry.model.package import ModelCache

    requester = net.sdk(REQUESTER)
    node = net.sdk(NODE_KEYS[1])
    node.nodes.register("http://127.0.0.1:1", b"\x02" * 33, node.nodes.min_stake())
    trap = submit(
        requester, JobKind.INFER, "minilm@v1", _texts(tmp_path / "a.json", "x"),
        params=EMBED, reward_wei=REWARD, lease_s=1,
    )  # fmt: skip
    dust = submit(
        requester, JobKind.INFER, "minilm@v1", _texts(tmp_path / "b.json", "y"),
        params=EMBED, reward_wei=1,
    )  # fmt: skip
    version = node.models.version("minilm", "v1")
    metrics = NodeMetrics()
    queue: asyncio.Queue[ChainEvent] = asyncio.Queue()
    processor = Processor(
        node, NodeState(tmp_path / "state.sqlite"), queue,
        ModelCache(tmp_path / "cache", node.store), Served({version.version_id: version}),
        metrics, kinds=[JobKind.INFER], work_dir=tmp_path / "work",
        policy=JobPolicy(min_reward_wei=10**9, margin=1.5, min_lease_s=10, release_margin_s=5),
    )  # fmt: skip
    nonce = node.chain.w3.eth.get_transaction_count(node.wallet.address)
    asyncio.run(processor.setup())
    for job in (trap, dust):
        asyncio.run(processor._handle(job.job_id))
        assert node.jobs.status(job.job_id) == JobStatus.OPEN
    assert node.chain.w3.eth.get_transaction_count(node.wallet.address) == nonce
    assert metrics.jobs.labels("INFER", "refused")._value.get() == 2


def test_w7_rpc_faults_are_ridden_out_and_an_outage_stops_the_node(
    net: Devnet, tmp_path: Path
) -> None:
    proxy = FaultProxy(net.url, fault_rate=0.0)
    try:
        requester = net.sdk(REQUESTER)
        node = net.start_node(
            "w7", NODE_KEYS[0], ["minilm@v1"], rpc_url=proxy.url, rpc_outage_s="8"
        )
        net.wait_log("w7", "processor ready")
        proxy.fault_rate = 0.3
        jobs = [
            submit(
                requester,
                JobKind.INFER,
                "minilm@v1",
                _texts(tmp_path / f"{i}.json", str(i)),
                params=EMBED,
                reward_wei=REWARD,
            )
            for i in range(4)
        ]
        for j in jobs:
            assert wait_settled(requester, j.job_id, timeout=300).status == JobStatus.FINALIZED
        assert proxy.failed > 0
        proxy.fault_rate = 1.0
        started = time.monotonic()
        code = node.wait(timeout=120)
        assert code != 0
        assert time.monotonic() - started < 120
        assert "stopped on error" in net.node_log("w7")
        net.forget_node(node)
    finally:
        proxy.close()


def test_w8_ipfs_outage_mid_job_releases_instead_of_submitting(tmp_path: Path) -> None:
    from registry.dev.ipfs import JsIpfsDaemon

    with JsIpfsDaemon() as daemon, Devnet(tmp_path, store=daemon.url) as d:
        _push_models(d)
        requester = d.sdk(REQUESTER)
        (tmp_path / "text.txt").write_text("ipfs outage " * 200)
        requester.models.create_model("gpt2-w8")
        d.start_node("w8", NODE_KEYS[0], ["gpt2@v1"])
        job = submit(
            requester,
            JobKind.TRAIN,
            "gpt2@v1",
            tmp_path / "text.txt",
            params={"steps": 400, "seq_len": 32, "batch_size": 2},
            reward_wei=REWARD,
            output_model="gpt2-w8",
        )
        d.wait_log("w8", f"job {job.job_id} claimed")
        daemon.stop()
        d.wait_log("w8", f"releasing job {job.job_id}", timeout=300)
        for _ in range(300):  # the release tx follows the log line
            if requester.jobs.status(job.job_id) != JobStatus.CLAIMED:
                break
            time.sleep(0.1)
        assert requester.jobs.status(job.job_id) == JobStatus.OPEN  # reopened, nothing submitted
        released = requester.jobs.contract.events.ClaimReleased.get_logs(
            from_block=0, argument_filters={"jobId": job.job_id}
        )
        assert [e["args"]["lapsed"] for e in released] == [False]
        assert d.nodes[0].poll() is None  # the node lives on
