"""The deployment file: written and read back whole; a file from before the Challenges contract
is refused with the command that fixes it (its contracts lack the roles challenges need)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from registry.chain import deployment as deployment_file
from registry.chain.deployment import Deployment
from registry.errors import ConfigError

ADDR = "0x" + "11" * 20
DEP = Deployment(
    chain_id=1337,
    model_registry=ADDR,
    node_registry=ADDR,
    job_board=ADDR,
    challenges=ADDR,
    deploy_block=1,
    deployer=ADDR,
    artifacts={"Challenges": "ab"},
)


def test_a_saved_deployment_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    deployment_file.save(DEP, path)
    assert deployment_file.load(path) == DEP


def test_a_file_without_challenges_names_the_fix(tmp_path: Path) -> None:
    old = asdict(DEP)
    del old["challenges"]
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="predates the Challenges contract") as info:
        deployment_file.load(path)
    assert "anchorml contracts deploy --force" in str(info.value)
