"""`anchorml model servers` as a model owner types it, on an embedded devnet: allow nodes,
restrict serving to them, deny one, open again; a stranger's change is a one-line typed error.
And the SDK built from the devnet's deployment file reaches its Challenges contract."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.chain.deployment import DeployParams
from registry.clients import ContentRef
from registry.clients.models import version_id
from registry.dev.devnet import OWNER, Devnet
from support.devnet import NODE_KEYS, REQUESTER

ANCHORML = Path(sys.executable).with_name("anchorml")
MODEL = "served-model"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with Devnet(tmp_path_factory.mktemp("servers-devnet")) as built:
        sdk = built.sdk(OWNER)
        sdk.models.create_model(MODEL)
        sdk.models.register_version(MODEL, "v1", ContentRef(0x55, b"\x02" * 32), b"\x01" * 32)
        yield built


def _servers(net: Devnet, key: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANCHORML), "model", "servers", MODEL, *args],
        env=net.env(key),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_owner_restricts_allows_and_denies(net: Devnet) -> None:
    a, b = Devnet.address(NODE_KEYS[0]), Devnet.address(NODE_KEYS[1])
    proc = _servers(net, OWNER, "--allow", a, "--allow", b.lower(), "--restrict", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"model": MODEL, "restricted": True, "servers": [a, b]}
    models = net.sdk(None).models
    vid = version_id(MODEL, "v1")
    assert models.may_serve(vid, a) and models.may_serve(vid, b)
    assert not models.may_serve(vid, Devnet.address(NODE_KEYS[2]))

    proc = _servers(net, OWNER, "--deny", b)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{MODEL}: restricted to its allowed nodes", f"  {a}"]
    assert not models.may_serve(vid, b)

    proc = _servers(net, OWNER, "--open", "--json")
    assert json.loads(proc.stdout)["restricted"] is False
    assert models.may_serve(vid, b)


def test_bad_address_and_non_owner_are_one_line_errors(net: Devnet) -> None:
    bad = _servers(net, OWNER, "--allow", "0x1234")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == ["error: --allow takes a 0x address, not '0x1234'"]
    stranger = _servers(net, REQUESTER, "--restrict")
    assert stranger.returncode == 1, stranger.stdout
    lines = stranger.stderr.strip().splitlines()
    assert len(lines) == 1 and "NotModelOwner" in lines[0], stranger.stderr


def test_the_sdk_reaches_the_deployed_challenges_contract(net: Devnet) -> None:
    sdk = net.sdk(None)
    assert sdk.challenges.address == sdk.deployment.challenges
    assert sdk.challenges.fee_wei() == DeployParams().challenge_fee_wei
    assert sdk.challenges.window_s() == DeployParams().challenge_window_s
    assert sdk.challenges.domain().verifying_contract == sdk.deployment.challenges
