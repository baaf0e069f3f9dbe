"""Benchmark the content store on one large file.

1. Write a file of random bytes (512 MB by default) into a temporary directory and read it
   once, so every mode reads from the page cache.
2. Time each mode in its own child process, best of ``--repeat`` runs, and take the child's
   peak RSS from ``wait4``:
   ``--only-hash`` through the API and through the CLI, ``openssl dgst -sha256``, Debian's
   ``ipfs_cid`` (package ipfs-cid), a full embedded add, and reading the file back verified.
3. Add the same file to a js-ipfs daemon (node_modules) through :class:`KuboStore`; its RSS
   row is the daemon's own peak (VmHWM).
4. Print seconds, MB/s and the throughput ratio to openssl, check every mode produced the
   same CID, and delete the temporary directory.

Usage: ``.venv/bin/python -m bench.store [--size-mb 512] [--repeat 3] [--no-daemon]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass
class Row:
    mode: str
    seconds: float | None
    rss_mb: float | None
    cid: str = ""
    note: str = ""


def child(mode: str, path: str, store_dir: str) -> None:
    """Run one mode in this (child) process and print ``{"seconds", "cid"}`` as JSON."""
    from registry.store import EmbeddedStore
    from registry.store.builder import HashOnlyBlockSink, build_file_at

    if mode == "api-only-hash":
        start = time.perf_counter()
        cid = build_file_at(Path(path), HashOnlyBlockSink()).cid
    elif mode == "embedded-add":  # into an empty store each run, so every block is written
        fresh = tempfile.mkdtemp(dir=store_dir)
        store = EmbeddedStore(fresh)
        start = time.perf_counter()
        cid = store.add_file(path)
        elapsed = time.perf_counter() - start
        shutil.rmtree(fresh)
        print(json.dumps({"seconds": elapsed, "cid": str(cid)}))
        return
    elif mode == "embedded-get":
        store = EmbeddedStore(store_dir)
        cid = store.add_file(path)  # untimed; a no-op after the first run
        out = Path(store_dir).parent / "readback.bin"
        start = time.perf_counter()
        store.get(cid, out)
        elapsed = time.perf_counter() - start
        os.unlink(out)
        print(json.dumps({"seconds": elapsed, "cid": str(cid)}))
        return
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps({"seconds": time.perf_counter() - start, "cid": str(cid)}))


def run(argv: list[str]) -> tuple[float, float, str]:
    """Run a child; return ``(wall seconds, peak RSS MB, stdout)``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} failed: {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def best(argv: list[str], repeat: int, internal: bool) -> Row:
    """Best of ``repeat`` runs; ``internal`` takes the time the child reports."""
    times: list[float] = []
    rss = 0.0
    cid = ""
    for _ in range(repeat):
        wall, peak, out = run(argv)
        if internal:
            answer = json.loads(out.strip().splitlines()[-1])
            times.append(float(answer["seconds"]))
            cid = str(answer["cid"])
        else:
            times.append(wall)
            cid = out.strip().splitlines()[-1] if out.strip() else ""
        rss = max(rss, peak)
    return Row("", min(times), rss, cid)


def ipfs_cid_tool() -> str | None:
    """Debian's ``ipfs-cid`` package installs ``/usr/bin/ipfs_cid``."""
    return shutil.which("ipfs-cid") or shutil.which("ipfs_cid")


def daemon_row(path: Path, repeat: int) -> Row:
    """Add the file to a fresh js-ipfs daemon through KuboStore."""
    from registry.dev import ipfs as helper

    if not helper.available():
        return Row("js-ipfs daemon add", None, None, note="js-ipfs not installed (make npm)")
    from registry.store import KuboStore

    with helper.JsIpfsDaemon() as daemon, KuboStore(daemon.url, timeout=600) as store:
        times = []
        cid = ""
        for _ in range(repeat):
            start = time.perf_counter()
            cid = str(store.add_file(path))
            times.append(time.perf_counter() - start)
        status = Path(f"/proc/{daemon.process.pid}/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        rss = int(hwm.split()[1]) / 1024
    return Row("js-ipfs daemon add", min(times), rss, cid, "daemon VmHWM; upload via KuboStore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-daemon", action="store_true")
    parser.add_argument(
        "--child", nargs=3, metavar=("MODE", "PATH", "STORE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    tmp = Path(tempfile.mkdtemp(prefix="anchorml-bench-"))
    try:
        path = tmp / "big.bin"
        with open(path, "wb") as handle:
            for _ in range(args.size_mb):
                handle.write(os.urandom(1 << 20))
        with open(path, "rb") as reader:  # warm the page cache
            while reader.read(8 << 20):
                pass
        me = [PYTHON, str(Path(__file__).resolve()), "--child"]
        cli = [PYTHON, "-c", "import sys; from api.cli.store import app; app(sys.argv[1:])"]
        rows: list[Row] = []

        def add(mode: str, argv: list[str], internal: bool, note: str = "") -> None:
            row = best(argv, args.repeat, internal)
            row.mode, row.note = mode, note
            rows.append(row)

        add("openssl dgst -sha256", ["openssl", "dgst", "-sha256", str(path)], False)
        add("API only-hash", [*me, "api-only-hash", str(path), "-"], True, "in-process time")
        add(
            "CLI store add --only-hash",
            [*cli, "add", "--only-hash", str(path), "--store", str(tmp / "unused")],
            False,
            "whole process",
        )
        tool = ipfs_cid_tool()
        if tool:
            add("Debian ipfs_cid", [tool, str(path)], False, "dag-pb leaves: another CID")
        else:
            print("ipfs-cid not found (apt-get install ipfs-cid): skipping its row")
        runs = tmp / "runs"
        runs.mkdir()
        add("embedded add", [*me, "embedded-add", str(path), str(runs)], True, "fresh store")
        add(
            "embedded get (verify)",
            [*me, "embedded-get", str(path), str(tmp / "store")],
            True,
            "re-hash every block",
        )
        if not args.no_daemon:
            try:
                rows.append(daemon_row(path, args.repeat))
            except Exception as exc:  # noqa: BLE001 - a bench reports, it does not fail
                print(f"js-ipfs daemon row skipped: {exc}")
        report(rows, args.size_mb, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(rows: list[Row], size_mb: int, repeat: int) -> None:
    """Print the table and the CID agreement check."""
    base = next(r.seconds for r in rows if r.mode.startswith("openssl"))
    print(f"\n{size_mb} MiB file, best of {repeat}, {os.cpu_count()} CPUs\n")
    header = f"{'mode':<28}{'seconds':>9}{'MB/s':>9}{'vs openssl':>12}{'peak RSS MB':>13}  note"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.seconds is None:
            print(f"{row.mode:<28}{'-':>9}{'-':>9}{'-':>12}{'-':>13}  {row.note}")
            continue
        mbps = size_mb * 1.048576 / row.seconds
        ratio = base / row.seconds if base else 0.0
        rss = f"{row.rss_mb:.0f}" if row.rss_mb is not None else "-"
        print(f"{row.mode:<28}{row.seconds:>9.3f}{mbps:>9.0f}{ratio:>11.2f}x{rss:>13}  {row.note}")
    cids = {r.mode: r.cid for r in rows if r.cid.startswith("baf")}
    print("\nCIDs:")
    for mode, cid in cids.items():
        print(f"  {mode:<28}{cid}")
    print("all equal" if len(set(cids.values())) == 1 else "CIDs DIFFER")


if __name__ == "__main__":
    main()
