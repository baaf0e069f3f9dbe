"""Benchmark the worker node.

Part (a), chain overhead: trivial INFER jobs through the whole on-chain lifecycle on a real anvil.
    1. For each worker count in ``--workers``, start a fresh anvil on a free 127.0.0.1 port
       (``registry.dev.devnet``: anvil + the 1 s chain heartbeat + the contracts), push tiny-gpt2,
       fund ``--requesters`` fresh accounts. Anvil slows as its chain grows (about 250 tx/s at
       block 700, 100 at block 3,000, 36 at block 7,400 on this machine, with no worker
       running), so each worker count starts from the same chain length.
    2. Start that many ``anchorml node run`` processes,
       run ``--warmup`` untimed jobs (model fetch and first load), then ``--repeat`` timed runs
       of ``--jobs`` jobs. Inputs and params are uploaded before the clock starts; requester
       threads then create the jobs as fast as the chain takes them, a watcher polls
       ``JobFinalized`` logs every 50 ms, and a run is timed from the first create to the last
       finalization the watcher saw. Every job is checked FINALIZED at the end and one result
       is fetched and verified against its on-chain sha256.
    3. Right before each timed run, measure anvil's own ceiling (the machine may be shared, so
       each run is compared with the chain's speed at that moment): the requester accounts
       each send value transfers one after another (send, then poll the receipt), all at once,
       for ``--ceiling-s`` seconds; the transfers are signed before the clock starts and sent
       as raw JSON-RPC, so the Python client adds little. A job needs 3 transactions (create,
       claim, submit), so the ceiling in jobs/s is ceiling tx/s / 3.
    4. Print a markdown table per run: how long creating the jobs took, jobs/s, p50/p95 latency
       (create sent → finalization seen), transactions per job counted from the blocks, CPU per
       job of the workers and of anvil, the adjacent ceiling, the ratio of jobs/s to it, the
       1-minute load average and the chain's block number at the start; then the median and
       range per worker count.

Part (b), dynamic batching through the worker HTTP endpoint: see ``bench/embedload.py``.

Usage: ``.venv/bin/python -m bench.node [--part a|b|all] [--jobs 60] [--workers 1,2] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a file, bench/node.py would stand in for the `node` package
    sys.exit(f"run it from the repository root as a module: python -m bench.{Path(__file__).stem}")

# =============================================================================================
# Part (a): chain overhead
# =============================================================================================

REWARD = 10**15
TX_PER_JOB = 3  # create, claim, submit
FUNDING = 100 * 10**18
GAS_PRICE_TIP = 10**9


@dataclass
class Ceiling:
    """Anvil's own throughput for sequential value transfers from several accounts."""

    accounts: int
    txs: int
    seconds: float

    @property
    def tx_per_s(self) -> float:
        return self.txs / self.seconds


@dataclass
class Run:
    """One timed batch of jobs."""

    workers: int
    jobs: int
    seconds: float
    latencies: list[float]
    txs: int
    worker_cpu_s: float
    anvil_cpu_s: float
    finalized: int
    create_seconds: float = 0.0  # first create sent → last create mined
    note: str = ""
    ceiling: Ceiling | None = None  # measured right before the run
    load: float = 0.0  # 1-minute load average when the run started
    height: int = 0  # the chain's block number when the run started

    @property
    def ceiling_jobs_per_s(self) -> float:
        return self.ceiling.tx_per_s / TX_PER_JOB if self.ceiling else float("nan")

    @property
    def ratio(self) -> float:
        return self.jobs_per_s / self.ceiling_jobs_per_s

    @property
    def jobs_per_s(self) -> float:
        return self.finalized / self.seconds

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    @property
    def tx_per_job(self) -> float:
        return self.txs / max(1, self.finalized)


@dataclass
class Bench:
    """Shared state of part (a): the devnet, the requester accounts and the pre-built specs."""

    net: Any  # registry.dev.devnet.Devnet
    nodes: Any  # api.up.Supervisor: the worker processes
    requesters: list[Any]  # LocalAccount
    version_id: bytes
    params_hash: bytes
    task: str
    store: Any
    ids: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of every live process in process group ``pgid`` (anvil's launcher script
    runs the real binary as a child)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _presigned_transfers(url: str, key: Any, count: int) -> list[str]:
    """``count`` value transfers from ``key`` to itself, signed ahead (0x-hex raw txs)."""
    from registry.chain.connection import connect

    chain = connect(url)
    w3 = chain.w3
    nonce = int(w3.eth.get_transaction_count(key.address, "pending"))
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    fees = {"maxFeePerGas": 4 * base + GAS_PRICE_TIP, "maxPriorityFeePerGas": GAS_PRICE_TIP}
    raws = []
    for i in range(count):
        tx = {"to": key.address, "value": 1, "gas": 21_000, "nonce": nonce + i}
        tx.update(chainId=chain.chain_id, **fees)
        raws.append(key.sign_transaction(tx).raw_transaction.to_0x_hex())
    return raws


def _send_sequentially(
    url: str, raws: list[str], go: threading.Barrier, done: threading.Event, sent: list[int]
) -> None:
    """Send ``raws`` one after another (each one's receipt before the next) until ``done``."""
    from registry.chain.connection import connect

    chain = connect(url)
    go.wait()
    for raw in raws:
        if done.is_set():
            break
        tx_hash = chain.rpc("eth_sendRawTransaction", [raw])
        while chain.rpc("eth_getTransactionReceipt", [tx_hash]) is None:
            time.sleep(0.001)
        sent.append(1)
    done.set()  # out of pre-signed txs: stop the clock for everyone


def measure_ceiling(
    url: str, accounts: list[Any], seconds: float, max_rate: float = 300.0
) -> Ceiling:
    """Anvil's own pace: every account sends pre-signed value transfers one after another
    (send, then poll the receipt), all accounts at once, for ``seconds`` (signing happens
    before the clock starts; the calls are raw JSON-RPC, so the client adds little)."""
    per_account = int(seconds * max_rate / len(accounts)) + 1
    batches = [_presigned_transfers(url, key, per_account) for key in accounts]
    go, done = threading.Barrier(len(accounts) + 1), threading.Event()
    sent: list[int] = []
    threads = [
        threading.Thread(target=_send_sequentially, args=(url, raws, go, done, sent))
        for raws in batches
    ]
    for t in threads:
        t.start()
    go.wait()
    start = time.perf_counter()
    done.wait(seconds)
    done.set()
    for t in threads:
        t.join()
    return Ceiling(len(accounts), len(sent), time.perf_counter() - start)


def _wait_receipt(w3: Any, tx_hash: Any) -> Any:
    from web3.exceptions import TransactionNotFound

    while True:
        try:
            return w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            time.sleep(0.002)


def _fund(net: Any, accounts: list[Any]) -> None:
    from eth_account import Account

    from registry.chain.connection import connect
    from registry.dev.devnet import ADMIN, KEYS

    w3 = connect(net.url).w3
    admin = Account.from_key(KEYS[ADMIN])
    nonce = int(w3.eth.get_transaction_count(admin.address, "pending"))
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    hashes = []
    for i, acct in enumerate(accounts):
        tx = {
            "to": acct.address,
            "value": FUNDING,
            "gas": 21_000,
            "nonce": nonce + i,
            "chainId": int(w3.eth.chain_id),
            "maxFeePerGas": 4 * base + GAS_PRICE_TIP,
            "maxPriorityFeePerGas": GAS_PRICE_TIP,
        }
        hashes.append(w3.eth.send_raw_transaction(admin.sign_transaction(tx).raw_transaction))
    for h in hashes:
        _wait_receipt(w3, h)


def _job_input(bench: Bench, i: int) -> Any:
    """Upload a distinct small input (untimed); return its content reference."""
    from registry.clients import ContentRef

    if bench.task == "embed":
        doc: dict[str, Any] = {"texts": [f"benchmark sentence number {i}"]}
    else:
        doc = {"prompt": f"job {i}:"}
    cid = bench.store.add_bytes(json.dumps(doc).encode())
    return ContentRef.from_cid(str(cid))


def _create_jobs(bench: Bench, count: int) -> tuple[dict[int, float], float]:
    """Create ``count`` jobs from every requester in parallel; return ``{job id: time the create
    was sent}`` and the time the first create was sent."""
    from registry.chain.connection import connect
    from registry.chain.tx import Wallet
    from registry.clients import JobBoardClient, JobSpec
    from registry.jobs import JobKind

    net = bench.net
    deployment = json.loads(net.deployment_path.read_text())
    now = connect(net.url).timestamp()
    specs = [
        JobSpec(
            kind=JobKind.INFER,
            version_id=bench.version_id,
            input=_job_input(bench, next(bench.ids)),
            params_hash=bench.params_hash,
            deadline=now + 3600,
            lease_seconds=600,
        )
        for _ in range(count)
    ]
    clients = []
    for acct in bench.requesters:
        chain = connect(net.url)
        clients.append(
            JobBoardClient(
                chain,
                deployment["job_board"],
                Wallet(chain, acct),
                from_block=int(deployment["deploy_block"]),
            )
        )
    sent_at: dict[int, float] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def create(client: Any, mine: list[Any]) -> None:
        try:
            for spec in mine:
                t = time.perf_counter()
                job_id = int(client.create_job(spec, REWARD).value)
                with lock:
                    sent_at[job_id] = t
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    n = len(clients)
    threads = [
        threading.Thread(target=create, args=(c, specs[k::n])) for k, c in enumerate(clients)
    ]
    first = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sent_at, first


class FinalizedWatcher:
    """Polls ``JobFinalized`` events every ``interval_s`` through the SDK's one event scanner
    (the head, then the new blocks) and records when each job's finalization was first seen."""

    def __init__(self, url: str, job_board: str, from_block: int, interval_s: float = 0.05) -> None:
        from registry.chain.connection import connect
        from registry.chain.events import EventScanner
        from registry.clients import JobBoardClient

        self.chain = connect(url)
        board = JobBoardClient(self.chain, job_board)
        self.scanner = EventScanner(self.chain, [board], ["JobFinalized"])
        self.next_block = from_block
        self.interval_s = interval_s
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FinalizedWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            head = self.chain.head()
            if head >= self.next_block:
                events = self.scanner.fetch(self.next_block, head)
                now = time.perf_counter()
                for event in events:
                    self.seen.setdefault(int(event.args["jobId"]), now)
                self.next_block = head + 1
            self._stop.wait(self.interval_s)

    def wait_for(self, job_ids: set[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not job_ids <= self.seen.keys() and time.monotonic() < deadline:
            time.sleep(0.01)


def run_batch(bench: Bench, workers: int, jobs: int, timeout: float) -> Run:
    """Create ``jobs`` jobs and wait until the watcher saw each finalized (or ``timeout``)."""
    from registry.chain.connection import connect
    from registry.clients import JobStatus
    from registry.jobs import fetch_result
    from registry.sdk import Anchorml

    net = bench.net
    sdk: Anchorml = net.sdk(None)
    w3 = connect(net.url).w3
    start_block = int(w3.eth.block_number)
    pids = [p.pid for _name, p in bench.nodes.children]
    anvil_pid = net.anvil.proc.pid  # leader of its own process group
    cpu_before = sum(_cpu_seconds(pid) for pid in pids)
    anvil_before = _group_cpu_seconds(anvil_pid)
    with FinalizedWatcher(net.url, sdk.jobs.address, start_block + 1) as watcher:
        sent_at, first = _create_jobs(bench, jobs)
        created = time.perf_counter()
        watcher.wait_for(set(sent_at), timeout)
    cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu_before
    anvil_cpu = _group_cpu_seconds(anvil_pid) - anvil_before
    done = {j: t for j, t in watcher.seen.items() if j in sent_at}
    end_block = int(w3.eth.block_number)
    txs = sum(
        len(w3.eth.get_block(n)["transactions"]) for n in range(start_block + 1, end_block + 1)
    )
    last = max(done.values()) if done else time.perf_counter()
    note = ""
    statuses = [sdk.jobs.status(j) for j in sent_at]
    if any(s != JobStatus.FINALIZED for s in statuses) or len(done) < len(sent_at):
        note = f"{len(sent_at) - len(done)} of {len(sent_at)} not finalized within {timeout:.0f} s"
    if done:  # one result end to end, as a requester would: record → store → sha256 check
        record = sdk.jobs.get_job(min(done))
        scratch = Path(tempfile.mkdtemp(dir=net.root))
        fetch_result(sdk.store, record.result, scratch / "result.json")
    return Run(
        workers=workers,
        jobs=jobs,
        seconds=last - first,
        create_seconds=created - first,
        latencies=[done[j] - sent_at[j] for j in done],
        txs=txs,
        worker_cpu_s=cpu,
        anvil_cpu_s=anvil_cpu,
        finalized=len(done),
        note=note,
    )


def _start_workers(bench: Bench, count: int, tag: str, torch_threads: int) -> None:
    from registry.dev.devnet import WORKER_KEYS

    names = [f"{tag}-w{i}" for i in range(count)]
    for i, name in enumerate(names):
        bench.nodes.start_worker(
            name,
            WORKER_KEYS[i],
            ["tiny-gpt2@v1" if bench.task == "generate" else "minilm@v1"],
            kinds='["INFER"]',
            torch_threads=str(torch_threads),
        )
    for name in names:
        bench.nodes.wait_log(name, f"node {name} up", timeout=180)


@contextmanager
def _devnet(keep: bool) -> Iterator[Any]:
    from registry.dev.devnet import Devnet

    root = Path(tempfile.mkdtemp(prefix="anchorml-bench-node-"))
    try:
        with Devnet(root, "anvil") as net:
            yield net
    finally:
        if keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def part_a(args: argparse.Namespace) -> None:
    """Chain overhead: trivial INFER jobs per second with 1 and 2 workers vs anvil's ceiling."""
    from eth_account import Account
    from eth_utils import keccak

    from api.up import Supervisor
    from registry.clients import Access
    from registry.clients.models import version_id
    from registry.dev import demo
    from registry.dev.devnet import OWNER
    from registry.jobs import publish_params
    from registry.model.package import push

    model: demo.DemoName = "tiny-gpt2" if args.task == "generate" else "minilm"
    params: dict[str, Any] = {"task": "embed"}
    if args.task == "generate":
        params = {"task": "generate", "max_new_tokens": 1}
    worker_counts = [int(w) for w in args.workers.split(",")]
    runs: list[Run] = []
    for workers in worker_counts:
        # A fresh anvil per worker count: anvil's own speed falls as its chain grows (each
        # ceiling measurement alone adds hundreds of blocks), so a later worker count would
        # otherwise run on a slower chain than an earlier one.
        with _devnet(args.keep) as net:
            owner = net.sdk(OWNER)
            source = Path(shutil.copytree(demo.cached_model(model), net.root / model))
            push(owner, source, model, "v1", access=Access.PUBLIC, license="MIT")
            requesters = [
                Account.from_key(keccak(f"anchorml bench requester {i}".encode()))
                for i in range(args.requesters)
            ]
            _fund(net, requesters)
            bench = Bench(
                net=net,
                nodes=Supervisor(net),
                requesters=requesters,
                version_id=version_id(model, "v1"),
                params_hash=publish_params(owner.store, params),
                task=args.task,
                store=owner.store,
            )
            _start_workers(bench, workers, f"n{workers}", args.torch_threads)
            warm = run_batch(bench, workers, max(args.warmup, workers), args.timeout)
            if warm.note:
                raise SystemExit(f"warm-up with {workers} worker(s) failed: {warm.note}")
            for r in range(args.repeat):
                load = os.getloadavg()[0]
                ceiling = measure_ceiling(net.url, requesters, args.ceiling_s)
                height = int(owner.chain.w3.eth.block_number)
                run = run_batch(bench, workers, args.jobs, args.timeout)
                run.ceiling, run.load, run.height = ceiling, load, height
                runs.append(run)
                print(
                    f"  {workers} worker(s), run {r + 1}: {run.jobs_per_s:.2f} jobs/s "
                    f"({run.finalized}/{run.jobs} in {run.seconds:.1f} s; ceiling "
                    f"{ceiling.tx_per_s:.0f} tx/s; chain at block {height}) {run.note}",
                    file=sys.stderr,
                )
            bench.nodes.stop()
    _report_a(args, runs)


def _report_a(args: argparse.Namespace, runs: list[Run]) -> None:
    accounts = runs[0].ceiling.accounts if runs and runs[0].ceiling else args.requesters
    print(f"\n### Part (a): chain overhead ({args.task} INFER jobs, anvil)\n")
    print(
        f"Ceiling: anvil's own speed measured right before each run — {accounts} accounts at "
        f"once, each sending pre-signed value transfers one after another (raw "
        f"eth_sendRawTransaction, then poll the receipt) for {args.ceiling_s:.0f} s — in jobs/s "
        f"at {TX_PER_JOB} transactions a job "
        f"(create, claim, submit). Latency: create sent → finalization seen by the requester. "
        f"'created in': first create sent → last create mined ({args.requesters} requester "
        f"threads).\n"
    )
    print(
        "| workers | run | jobs | s | created in s | jobs/s | p50 s | p95 s | tx/job "
        "| CPU ms/job: workers | anvil | ceiling jobs/s | vs ceiling | load 1m | block |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for workers in sorted({r.workers for r in runs}):
        mine = [r for r in runs if r.workers == workers]
        for i, r in enumerate(mine, 1):
            print(
                f"| {workers} | {i} | {r.finalized}/{r.jobs} | {r.seconds:.1f} "
                f"| {r.create_seconds:.1f} | {r.jobs_per_s:.2f} "
                f"| {r.latency(0.5):.2f} | {r.latency(0.95):.2f} "
                f"| {r.tx_per_job:.2f} | {1000 * r.worker_cpu_s / max(1, r.finalized):.0f} "
                f"| {1000 * r.anvil_cpu_s / max(1, r.finalized):.0f} "
                f"| {r.ceiling_jobs_per_s:.1f} | {r.ratio:.0%} | {r.load:.1f} | {r.height} |"
                f"{' ' + r.note if r.note else ''}"
            )
        rates = [r.jobs_per_s for r in mine]
        p50 = statistics.median(r.latency(0.5) for r in mine)
        p95 = statistics.median(r.latency(0.95) for r in mine)
        ceil = statistics.median(r.ceiling_jobs_per_s for r in mine)
        print(
            f"| **{workers}** | **median** | | | | **{statistics.median(rates):.2f}** "
            f"({min(rates):.2f}–{max(rates):.2f}) | {p50:.2f} | {p95:.2f} | | | | {ceil:.1f} "
            f"| **{statistics.median(r.ratio for r in mine):.0%}** | | |"
        )


# =============================================================================================
# Part (b): dynamic batching through the worker HTTP endpoint
# =============================================================================================


def part_b(args: argparse.Namespace) -> None:
    """Dynamic batching through the worker HTTP endpoint: embeddings/s at 32 concurrent clients
    vs the in-process batched forward (ceiling) and a naive one-forward-per-request server
    (``bench/embedload.py``; goals ≥ 0.85× ceiling, ≥ 3× naive)."""
    from bench.embedload import worker_comparison

    print(
        worker_comparison(
            requests=args.b_requests,
            concurrency=args.b_concurrency,
            repeat=args.b_repeat,
            ceiling_s=args.b_ceiling_s,
        )
    )


# =============================================================================================

PARTS: dict[str, Callable[[argparse.Namespace], None]] = {"a": part_a, "b": part_b}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    a = parser.add_argument_group("part (a): chain overhead")
    a.add_argument("--jobs", type=int, default=60, help="jobs per timed run")
    a.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    a.add_argument("--repeat", type=int, default=3, help="timed runs per worker count")
    a.add_argument("--warmup", type=int, default=4, help="untimed jobs before the timed runs")
    a.add_argument("--requesters", type=int, default=4, help="requester accounts (threads)")
    a.add_argument(
        "--task",
        choices=["generate", "embed"],
        default="generate",
        help="generate: tiny-gpt2, 1 new token; embed: MiniLM, 1 sentence",
    )
    a.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="ANCHORML_TORCH_THREADS of each worker (intra-op threads)",
    )
    a.add_argument("--ceiling-s", type=float, default=3.0, help="seconds per ceiling measurement")
    a.add_argument("--timeout", type=float, default=180.0, help="seconds per run at most")
    a.add_argument("--keep", action="store_true", help="keep the devnet directory (logs)")
    b = parser.add_argument_group("part (b): dynamic batching")
    b.add_argument("--b-requests", type=int, default=1024, help="requests per measured load")
    b.add_argument("--b-concurrency", type=int, default=32, help="concurrent clients")
    b.add_argument("--b-repeat", type=int, default=5, help="interleaved rounds")
    b.add_argument("--b-ceiling-s", type=float, default=4.0, help="seconds per in-process way")
    args = parser.parse_args(argv)
    for name, part in PARTS.items():
        if args.part in (name, "all"):
            part(args)


if __name__ == "__main__":
    main()
