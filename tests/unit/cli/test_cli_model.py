"""`anchorml model push` checks its local input before it touches the network: with no chain
running, a directory holding pickle weights (or remote code, or no config) is refused with a line
naming the file, not "cannot reach the chain"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ANCHORML = Path(sys.executable).with_name("anchorml")


def _dead_rpc() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again: nobody listens


def _push(directory: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHORML_")}
    env.update(
        ANCHORML_RPC_URL=_dead_rpc(),
        ANCHORML_DATA_DIR=str(tmp_path / "data"),
        ANCHORML_PRIVATE_KEY="0x" + "11" * 32,
    )
    return subprocess.run(
        [str(ANCHORML), "model", "push", str(directory), "--name", "m", "--version", "v1", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _model_dir(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    for name, body in files.items():
        (root / name).write_bytes(body)
    return root


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"config.json": b"{}", "pytorch_model.bin": b"\x80\x04K\x01."}, ("pytorch_model.bin",)),
        ({"config.json": b"{}", "weights.dat": b"\x80\x04K\x01."}, ("weights.dat", "pickle")),
        ({"config.json": b"{}", "modeling.py": b"import os\n"}, ("modeling.py",)),
        ({"config.json": b'{"auto_map": {"AutoModel": "m.M"}}'}, ("config.json",)),
        ({"README.md": b"# no config"}, ("config.json",)),
    ],
)
def test_unsafe_or_incomplete_directories_are_named_with_no_chain_running(
    tmp_path: Path, files: dict[str, bytes], words: tuple[str, ...]
) -> None:
    proc = _push(_model_dir(tmp_path, files), tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "reach" not in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert not (tmp_path / "model" / "anchorml.json").exists()  # nothing written either


def test_a_missing_directory_and_a_long_licence_are_local_errors(tmp_path: Path) -> None:
    missing = _push(tmp_path / "absent", tmp_path)
    assert missing.returncode == 1 and "absent" in missing.stderr and "reach" not in missing.stderr
    model = _model_dir(tmp_path, {"config.json": b"{}"})
    licence = _push(model, tmp_path, "--license", "x" * 40)
    assert licence.returncode == 1 and "licence" in licence.stderr
    assert "reach" not in licence.stderr
