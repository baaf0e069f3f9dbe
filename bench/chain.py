"""Benchmark the chains a devnet runs on: the embedded eth-tester behind
``registry.dev.devserver``, against anvil as the peer, through the same web3 client.

For each backend (``registry.dev.devnet``: the chain, its 1 s heartbeat and the contracts):

1. **call latency**: the median of ``--calls`` ``eth_blockNumber`` calls and of as many
   one-block ``eth_getLogs`` calls over the contracts (what a node's listener and the gateway's
   watcher send every poll);
2. **sequential transactions**: ``--txs`` value transfers, each signed, sent and waited for
   (receipt polled every 10 ms) before the next, as one account sending one job's transactions
   does.

Usage: ``.venv/bin/python -m bench.chain [--calls 50] [--txs 40]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _median_ms(fn: Any, count: int) -> float:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(backend: str, calls: int, txs: int) -> dict[str, float]:
    """Call latencies (ms) and sequential transactions per second on a fresh ``backend``."""
    from eth_account import Account

    from registry.dev.devnet import KEYS, OWNER, Devnet

    with tempfile.TemporaryDirectory() as tmp, Devnet(Path(tmp), backend) as net:
        sdk = net.sdk(OWNER)
        w3 = sdk.chain.w3
        contracts = [client.contract.address for client in (sdk.models, sdk.nodes, sdk.jobs)]

        def one_block_logs() -> None:
            head = w3.eth.block_number
            w3.eth.get_logs({"fromBlock": head, "toBlock": head, "address": contracts})

        block_ms = _median_ms(lambda: w3.eth.block_number, calls)
        logs_ms = _median_ms(one_block_logs, calls)
        account = Account.from_key(KEYS[0])
        nonce = w3.eth.get_transaction_count(account.address)
        chain_id = w3.eth.chain_id
        start = time.perf_counter()
        for i in range(txs):
            tx = {
                "to": account.address, "value": 1, "gas": 21_000, "nonce": nonce + i,
                "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": chain_id,
            }  # fmt: skip
            sent = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
            w3.eth.wait_for_transaction_receipt(sent, poll_latency=0.01)
        tx_per_s = txs / (time.perf_counter() - start)
    return {"block_ms": block_ms, "logs_ms": logs_ms, "tx_per_s": tx_per_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--txs", type=int, default=40)
    args = parser.parse_args(argv)
    rows = {backend: measure(backend, args.calls, args.txs) for backend in ("embedded", "anvil")}
    print("\n### Chains (`bench/chain.py`, fresh devnets, one web3 client)\n")
    print("| chain | eth_blockNumber ms | one-block eth_getLogs ms | sequential tx/s |")
    print("|---|---:|---:|---:|")
    for backend, row in rows.items():
        name = "embedded (eth-tester, devserver)" if backend == "embedded" else "anvil"
        print(f"| {name} | {row['block_ms']:.1f} | {row['logs_ms']:.1f} | {row['tx_per_s']:.1f} |")


if __name__ == "__main__":
    main()
