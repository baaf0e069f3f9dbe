"""`anchorml up` as a user runs it: start it, use it with clients this project did not write
(openai, web3 over JSON-RPC) and with the CLI, stop it, and check nothing is left running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chainfix import free_port
from devnet import KEYS, USER

from registry.chain import artifacts
from registry.model import demo

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


def _env(data: Path, rpc: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHORML_")}
    env.update(
        ANCHORML_RPC_URL=rpc,
        ANCHORML_STORE=str(data / "store"),
        ANCHORML_DEPLOYMENT=str(data / "deployment.json"),
        ANCHORML_PRIVATE_KEY=KEYS[USER],
        ANCHORML_DATA_DIR=str(data.parent / "client"),
        HF_HUB_OFFLINE="1",
    )
    return env


def test_up_serves_real_clients_and_stops_cleanly(tmp_path: Path) -> None:
    from openai import OpenAI
    from web3 import Web3

    data = tmp_path / "devnet"
    port, rpc_port = free_port(), free_port()
    log = (tmp_path / "up.log").open("w+")
    up = subprocess.Popen(
        [
            str(ANCHORML),
            "up",
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--rpc-port",
            str(rpc_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 900
        while "devnet is up" not in (tmp_path / "up.log").read_text():
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "anchorml up never became ready"
            time.sleep(1)
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
        pushed = subprocess.run(
            [str(ANCHORML), "model", "push", str(model), "--name", "mine", "--version", "v1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.splitlines()[0] == "mine@v1"
        (tmp_path / "in.json").write_text(json.dumps({"prompt": "abc"}))
        job = subprocess.run(
            [
                str(ANCHORML),
                "job",
                "submit",
                "--kind",
                "infer",
                "--model",
                "mine@v1",
                "--input",
                str(tmp_path / "in.json"),
                "--params",
                '{"task": "generate", "max_new_tokens": 4}',
                "--reward",
                "1000000000000000",
                "--wait",
                "--out",
                str(tmp_path / "result.json"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert job.returncode == 0, job.stderr
        assert "status finalized" in job.stdout
        assert "text" in json.loads((tmp_path / "result.json").read_text())
    finally:
        os.killpg(up.pid, signal.SIGINT)
        code = up.wait(timeout=120)
    assert code == 0
    assert "stopped." in (tmp_path / "up.log").read_text()
    time.sleep(1)
    assert _processes_mentioning(str(data)) == []
    for p in (port, rpc_port):  # nothing listens any more
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p), timeout=2).close()


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
