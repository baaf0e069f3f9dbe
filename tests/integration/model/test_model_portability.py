"""A model pushed on one machine is pulled and verified on another that only received a CAR
export: two separate stores and data directories sharing nothing but the chain, driven through
the ``anchorml`` CLI as two users would."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from registry.dev import demo
from support.devnet import ANCHORML, OWNER, REQUESTER, Devnet

pytestmark = pytest.mark.integration


def _run(
    net: Devnet, machine: Path, key: int | None, *args: str
) -> subprocess.CompletedProcess[str]:
    env = net.env(
        key, ANCHORML_STORE=str(machine / "store"), ANCHORML_DATA_DIR=str(machine / "data")
    )
    return subprocess.run(
        [str(ANCHORML), *args], env=env, capture_output=True, text=True, timeout=600
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_push_here_export_car_import_there_pull_verified(tmp_path: Path) -> None:
    a, b, c = tmp_path / "machine-a", tmp_path / "machine-b", tmp_path / "machine-c"
    model = Path(shutil.copytree(demo.cached_model("minilm"), tmp_path / "minilm"))
    with Devnet(tmp_path / "net") as net:
        pushed = _ok(
            _run(net, a, OWNER, "model", "push", str(model), "--name", "mini", "--version", "v1")
        )
        cid = next(line.split()[1] for line in pushed if line.startswith("cid "))
        _ok(_run(net, a, None, "store", "export", cid, str(tmp_path / "mini.car")))

        # machine B has the chain but not the blocks: a clear "not found", nothing cached
        missing = _run(net, b, REQUESTER, "model", "pull", "mini@v1")
        assert missing.returncode != 0 and "Traceback" not in missing.stderr
        assert "not found" in missing.stderr.lower(), missing.stderr
        cache = b / "data" / "models"
        assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))

        assert _ok(_run(net, b, None, "store", "import", str(tmp_path / "mini.car"))) == [cid]
        out = tmp_path / "pulled"
        _ok(_run(net, b, REQUESTER, "model", "pull", "mini@v1", str(out)))
        originals = [f for f in model.rglob("*") if f.is_file()]
        assert originals
        for f in originals:
            assert filecmp.cmp(f, out / f.relative_to(model), shallow=False), f
        assert (out / "anchorml.json").is_file()

        # a CAR whose bytes were altered in transit is refused and leaves machine C empty
        car = bytearray((tmp_path / "mini.car").read_bytes())
        car[len(car) // 2] ^= 0xFF
        (tmp_path / "bad.car").write_bytes(bytes(car))
        bad = _run(net, c, None, "store", "import", str(tmp_path / "bad.car"))
        assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
        assert "does not hash to its CID" in bad.stderr, bad.stderr
        assert _run(net, c, None, "store", "cat", cid).returncode != 0
