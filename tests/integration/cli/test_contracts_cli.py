"""`anchorml contracts deploy` against a fresh anvil as a new user runs it, the deployment read by
a client this project did not write (web3 over JSON-RPC with the committed ABIs), and the bad
inputs of the contracts issue: each a one-line error naming the problem, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.chain import artifacts
from registry.dev.anvil import Anvil
from registry.dev.procs import free_port
from support.devnet import KEYS

pytestmark = pytest.mark.integration
ANCHORML = Path(sys.executable).with_name("anchorml")


@pytest.fixture
def anvil() -> Iterator[str]:
    node = Anvil()
    try:
        yield node.start()
    finally:
        node.stop()


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANCHORML_")}
    return subprocess.run(
        [str(ANCHORML), *args], env={**clean, **env}, capture_output=True, text=True, timeout=300
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_deploy_to_a_fresh_anvil_and_read_it_with_web3(anvil: str, tmp_path: Path) -> None:
    from web3 import Web3

    out = tmp_path / "deployment.json"
    key = {"ANCHORML_PRIVATE_KEY": KEYS[0]}
    deployed = _run("contracts", "deploy", "--rpc", anvil, "--out", str(out), **key)
    assert deployed.returncode == 0, deployed.stderr
    dep = json.loads(out.read_text())
    assert dep["chain_id"] == 31337 and dep["deploy_block"] >= 1
    assert set(dep["artifacts"]) >= {"ModelRegistry", "NodeRegistry", "JobBoard"}

    w3 = Web3(Web3.HTTPProvider(anvil))
    board = w3.eth.contract(address=dep["job_board"], abi=artifacts.load("JobBoard").abi)
    assert board.functions.MAX_REDUNDANCY().call() == 15
    registry = w3.eth.contract(
        address=dep["model_registry"], abi=artifacts.load("ModelRegistry").abi
    )
    assert int(registry.functions.getModel(Web3.keccak(text="nothing")).call()[0], 16) == 0

    before = out.read_bytes()
    again = _run("contracts", "deploy", "--rpc", anvil, "--out", str(out), **key)
    _one_line_error(again, str(out), "--force")
    assert out.read_bytes() == before  # refused: nothing overwritten
    forced = _run("contracts", "deploy", "--rpc", anvil, "--out", str(out), "--force", **key)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(out.read_text())["job_board"] != dep["job_board"]

    # a deployment file from another chain: refused before anything is sent
    other = json.loads(out.read_text()) | {"chain_id": 1}
    (tmp_path / "other.json").write_text(json.dumps(other))
    mismatch = _run(
        "model", "list", ANCHORML_RPC_URL=anvil, ANCHORML_DEPLOYMENT=str(tmp_path / "other.json")
    )
    _one_line_error(mismatch, "chain id")


def test_bad_keys_and_an_unreachable_rpc_are_one_line_errors(anvil: str, tmp_path: Path) -> None:
    out = str(tmp_path / "d.json")
    malformed = _run("contracts", "deploy", "--rpc", anvil, "--out", out,
                     ANCHORML_PRIVATE_KEY="0x1234")  # fmt: skip
    _one_line_error(malformed, "ANCHORML_PRIVATE_KEY")
    assert "0x1234" not in malformed.stderr  # a secret, even a broken one, is never echoed
    missing_file = _run("contracts", "deploy", "--rpc", anvil, "--out", out,
                        "--key-file", str(tmp_path / "absent.key"))  # fmt: skip
    _one_line_error(missing_file, "absent.key")
    no_key = _run("contracts", "deploy", "--rpc", anvil, "--out", out)
    _one_line_error(no_key, "ANCHORML_PRIVATE_KEY")
    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = _run("contracts", "deploy", "--rpc", dead, "--out", out,
                       ANCHORML_PRIVATE_KEY=KEYS[0])  # fmt: skip
    _one_line_error(unreachable, dead)
    assert not Path(out).exists()
