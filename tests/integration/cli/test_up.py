"""`anchorml up` as a user runs it: start it, use it with clients this project did not write
(openai, web3 over JSON-RPC) and with the CLI, stop it, and check nothing is left running."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.chain import artifacts
from registry.dev import demo
from registry.dev.procs import free_port
from support.devnet import KEYS, USER

pytestmark = pytest.mark.integration
ANCHORML = Path(sys.executable).with_name("anchorml")


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ANCHORML_")}


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        if stat:
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found


def _alive(pids: list[int]) -> list[str]:
    """The command lines of the processes in ``pids`` that still run (zombies do not)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state not in ("Z", "X"):
            alive.append(f"{pid}: {cmdline}")
    return alive


def _listening(*ports: int) -> list[int]:
    taken = []
    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            taken.append(port)
        except OSError:
            pass
    return taken


def _wait_all_gone(pids: list[int], *ports: int, timeout: float = 30.0) -> list[str]:
    """Wait (bounded) until none of ``pids`` runs and nothing listens on ``ports``; return what
    is left, after killing it (by pid) so a failing test leaves nothing behind."""
    deadline = time.monotonic() + timeout
    while (_alive(pids) or _listening(*ports)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(pids) + [f"port {p} still listening" for p in _listening(*ports)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


def _exports(welcome: str) -> dict[str, str]:
    """The variables of the ``export`` line the welcome text tells the user to run."""
    block = welcome.split("  export ", 1)[1].split("\n  anchorml ", 1)[0]
    return dict(item.split("=", 1) for item in block.replace("\\\n", " ").split())


def _env(data: Path, rpc: str) -> dict[str, str]:
    env = _clean_env()
    env.update(
        ANCHORML_RPC_URL=rpc,
        ANCHORML_STORE=str(data / "store"),
        ANCHORML_DEPLOYMENT=str(data / "deployment.json"),
        ANCHORML_PRIVATE_KEY=KEYS[USER],
        ANCHORML_DATA_DIR=str(data.parent / "client"),
        HF_HUB_OFFLINE="1",
    )
    return env


def _start_up(
    log_path: Path, data: Path | None, port: int, rpc_port: int, *extra: str, **env: str
) -> subprocess.Popen[bytes]:
    """Start ``anchorml up`` in its own process group and wait until it printed its welcome
    (``--data-dir data`` unless None; ``env`` adds variables)."""
    where = ["--data-dir", str(data)] if data is not None else []
    up = subprocess.Popen(
        [str(ANCHORML), "up", *where, "--port", str(port), "--rpc-port", str(rpc_port), *extra],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**_clean_env(), "HF_HUB_OFFLINE": "1", **env},
    )
    deadline = time.monotonic() + 900
    while "Ctrl-C stops every part" not in log_path.read_text():
        if up.poll() is not None or time.monotonic() > deadline:
            os.killpg(up.pid, signal.SIGKILL)
            raise AssertionError("anchorml up never became ready:\n" + log_path.read_text()[-3000:])
        time.sleep(1)
    return up


def _stop_up(up: subprocess.Popen[bytes], log_path: Path, data: Path, *ports: int) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it); check nothing is left."""
    os.killpg(up.pid, signal.SIGINT)
    assert up.wait(timeout=120) == 0
    assert "stopped." in log_path.read_text()
    time.sleep(1)
    assert _processes_mentioning(str(data)) == []
    for p in ports:  # nothing listens any more
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p), timeout=2).close()


def _cli(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    proc = subprocess.run(
        [str(ANCHORML), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_up_serves_real_clients_and_stops_cleanly(tmp_path: Path) -> None:
    from openai import OpenAI
    from web3 import Web3

    data, log = tmp_path / "devnet", tmp_path / "up.log"
    port, rpc_port = free_port(), free_port()
    up = _start_up(log, data, port, rpc_port)
    try:
        gateway, rpc = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{rpc_port}"

        client = OpenAI(base_url=f"{gateway}/v1", api_key="unused", timeout=300)
        emb = client.embeddings.create(model="minilm", input=["provenance", "lineage"])
        assert [len(d.embedding) for d in emb.data] == [384, 384]
        chat = client.chat.completions.create(
            model="smollm2-chat",
            messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=8,
        )
        assert chat.choices[0].message.content
        pieces = [
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="smollm2-chat",
                messages=[{"role": "user", "content": "Count to three."}],
                max_tokens=8,
                stream=True,
            )
            if c.choices
        ]
        assert "".join(pieces)

        w3 = Web3(Web3.HTTPProvider(rpc))
        dep = json.loads((data / "deployment.json").read_text())
        registry = w3.eth.contract(
            address=dep["model_registry"], abi=artifacts.load("ModelRegistry").abi
        )
        owner, access, _price, _period = registry.functions.getModel(
            Web3.keccak(text="minilm")
        ).call()
        assert int(owner, 16) != 0 and access == 0
        assert registry.functions.getModel(Web3.keccak(text="minilm-gated")).call()[1] == 1

        env = _env(data, rpc)
        model = Path(
            shutil.copytree(demo.cached_model("tiny-gpt2", data / "demo-models"), tmp_path / "m")
        )
        pushed = _cli(
            env, "model", "push", str(model), "--name", "mine", "--version", "v1", timeout=300
        )
        assert pushed.splitlines()[0] == "mine@v1"
        (tmp_path / "in.json").write_text(json.dumps({"prompt": "abc"}))
        job = _cli(
            env, "job", "submit", "--kind", "infer", "--model", "mine@v1",
            "--input", str(tmp_path / "in.json"),
            "--params", '{"task": "generate", "max_new_tokens": 4}',
            "--reward", "1000000000000000", "--wait", "--out", str(tmp_path / "result.json"),
            timeout=600,
        )  # fmt: skip
        assert "status finalized" in job
        assert "text" in json.loads((tmp_path / "result.json").read_text())

        # the whole story, as the welcome text suggests (its exports, no --data-dir): every step
        # prints its tx or CID
        story = _cli(env, "demo", "--gateway", gateway, "--rpc", rpc)
        for step in ("HTTP 401 missing_token", "on chain, redundancy 2", "produced by job",
                     "metrics {", "(rolled back)", "revoked story-gpt2@job-",
                     "gateway on the revoked version → HTTP 410 model_revoked"):  # fmt: skip
            assert step in story, story
        assert story.count("tx   0x") >= 8
    finally:
        if up.poll() is None:
            _stop_up(up, log, data, port, rpc_port)


def test_up_on_anvil_keeps_the_chain_across_restarts(tmp_path: Path) -> None:
    data, port, rpc_port = tmp_path / "devnet", free_port(), free_port()
    rpc = f"http://127.0.0.1:{rpc_port}"
    env = _env(data, rpc)
    model = Path(shutil.copytree(demo.cached_model("tiny-gpt2"), tmp_path / "m"))
    first = _start_up(tmp_path / "up1.log", data, port, rpc_port, "--chain", "anvil")
    try:
        pushed = _cli(env, "model", "push", str(model), "--name", "kept", "--version", "v1")
    finally:
        _stop_up(first, tmp_path / "up1.log", data, port, rpc_port)
    cid = pushed.splitlines()[1].split()[1]

    second = _start_up(tmp_path / "up2.log", data, port, rpc_port, "--chain", "anvil")
    try:
        assert "contracts reused (kept chain)" in (tmp_path / "up2.log").read_text()
        shown = json.loads(_cli(env, "model", "show", "kept@v1"))
        assert shown["version"]["tag"] == "v1" and shown["version"]["cid"] == cid
    finally:
        _stop_up(second, tmp_path / "up2.log", data, port, rpc_port)


def test_up_refuses_a_taken_port_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                str(ANCHORML),
                "up",
                "--data-dir",
                str(tmp_path / "d"),
                "--port",
                str(port),
                "--rpc-port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1
    assert f"error: port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _processes_mentioning(str(tmp_path / "d")) == []


def test_up_refuses_an_incompatible_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "old"
    data.mkdir()
    (data / "devnet.json").write_text('{"format": 0}')
    proc = subprocess.run(
        [
            str(ANCHORML),
            "up",
            "--data-dir",
            str(data),
            "--port",
            str(free_port()),
            "--rpc-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "incompatible anchorml version" in proc.stderr and "--data-dir" in proc.stderr


def test_a_killed_up_takes_its_children_along_and_its_data_dir_serves_every_command(
    tmp_path: Path,
) -> None:
    """SIGKILL (as an OOM kill) leaves `anchorml up` no chance to clean up: the kernel must
    stop its workers, gateway and anvil, and free the ports for the next `up`. And
    ``ANCHORML_DATA_DIR`` means the same folder to `up` as to every other command."""
    data, log = tmp_path / "home", tmp_path / "up.log"
    port, rpc_port = free_port(), free_port()
    up = _start_up(
        log, None, port, rpc_port, "--chain", "anvil", "--workers", "1",
        ANCHORML_DATA_DIR=str(data),
    )  # fmt: skip
    children = _descendants(up.pid)
    try:
        rpc = f"http://127.0.0.1:{rpc_port}"
        # what the welcome says to export, and nothing but the data dir (and the chain's URL,
        # on a port of its own here): every command finds the devnet `up` made
        exported = {**_clean_env(), **_exports(log.read_text())}
        bare = {**_clean_env(), "ANCHORML_DATA_DIR": str(data), "ANCHORML_RPC_URL": rpc}
        listed = [
            subprocess.run(
                [str(ANCHORML), "model", "list", "--json"],
                env=env, capture_output=True, text=True, timeout=300,
            )
            for env in (exported, bare)
        ]  # fmt: skip
    finally:
        up.kill()  # SIGKILL: no cleanup code runs in `anchorml up`
        up.wait(timeout=30)
    assert len(children) >= 3, children  # anvil, a worker, the gateway
    assert _wait_all_gone(children, port, rpc_port) == []
    assert _exports(log.read_text())["ANCHORML_DATA_DIR"] == str(data)
    for done in listed:
        assert done.returncode == 0, done.stderr[-2000:]
        assert "minilm-gated" in done.stdout


def _read_until(up: subprocess.Popen[bytes], text: bytes, timeout: float = 900) -> bytes:
    assert up.stdout is not None
    out, deadline = b"", time.monotonic() + timeout
    while text not in out:
        if up.poll() is not None or time.monotonic() > deadline:
            os.killpg(up.pid, signal.SIGKILL)
            raise AssertionError("anchorml up never became ready:\n" + out.decode()[-3000:])
        if select.select([up.stdout], [], [], 1.0)[0]:
            out += os.read(up.stdout.fileno(), 65536)
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "hangup"])
def test_up_stops_its_children_when_its_output_is_gone(tmp_path: Path, sig: int) -> None:
    """`anchorml up | tee log` stopped with Ctrl-C: tee is gone before `up` prints "stopping";
    a closed terminal: SIGHUP, and nowhere to print. Either way every child stops."""
    data, port, rpc_port = tmp_path / "devnet", free_port(), free_port()
    up = subprocess.Popen(
        [str(ANCHORML), "up", "--data-dir", str(data), "--port", str(port),
         "--rpc-port", str(rpc_port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**_clean_env(), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert up.stdout is not None
    _read_until(up, b"Ctrl-C stops every part")
    children = _descendants(up.pid)
    up.stdout.close()  # the reader is gone
    up.send_signal(sig)
    try:
        up.wait(timeout=120)
    finally:
        left = _wait_all_gone(children, port, rpc_port)
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    assert len(children) >= 2, children  # a worker, the gateway
    assert left == []
