"""The dashboard page in headless Debian chromium (playwright-core): it renders the registry
(models, versions, aliases, lineage), jobs with their status and nodes with stake and delivery
record from a live devnet, without script errors. The screenshot lands in
``tests/artifacts/dashboard.png`` (gitignored) for a human to look at."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.clients import ContentRef
from registry.clients.jobs import Output
from registry.model.package import push
from support.devnet import OWNER, USER
from support.gateway import (
    ARTIFACTS,
    MINILM,
    GatewayNet,
    ThreadServer,
    linked_copy,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SCRIPT = Path(__file__).with_name("dashboard_shot.cjs")
NODE = 5


@pytest.fixture(scope="module")
def server(gateway_net: GatewayNet) -> Iterator[ThreadServer]:
    with ThreadServer(gateway_net.app(rate_limit_per_s=0)) as running:
        yield running


def _populate(gateway_net: GatewayNet, url: str) -> int:
    """A derived version, a staked node serving MiniLM, and a job it delivers (plus an open one)."""
    owner = gateway_net.sdk(OWNER)
    if not owner.models.exists("minilm-tuned", "v1"):
        push(
            owner,
            linked_copy("minilm", gateway_net.root / "m-tuned"),
            "minilm-tuned",
            "v1",
            parent=f"{MINILM}@v1",
        )
    node = gateway_net.sdk(NODE)
    node.nodes.register("http://127.0.0.1:9", b"\x02" * 33, stake_wei=node.nodes.min_stake())
    node.nodes.set_serving([node.models.resolve(MINILM).version_id], True)
    auth = {"Authorization": f"Bearer {gateway_net.token(USER)}"}
    job = {
        "kind": "infer", "model": MINILM, "input": {"texts": ["hi"]},
        "params": {"task": "embed"}, "reward_wei": 10**15,
    }  # fmt: skip
    delivered = httpx.post(f"{url}/v1/jobs", json=job, headers=auth, timeout=60).json()["job_id"]
    httpx.post(
        f"{url}/v1/jobs", json=job, headers=auth, timeout=60
    ).raise_for_status()  # stays open
    result = json.dumps({"task": "embed", "embeddings": [[0.0]]}).encode()
    cid = node.store.add_bytes(result)
    node.jobs.claim(delivered)
    node.jobs.submit(
        delivered,
        Output(ContentRef.from_cid(str(cid)), hashlib.sha256(result).digest(), len(result)),
    )
    node.nodes.set_serving([node.models.resolve(MINILM).version_id], False)  # keep routing clean
    return int(delivered)


@pytest.mark.skipif(shutil.which("node") is None, reason="node.js is needed for playwright-core")
def test_dashboard_renders_live_data(
    gateway_net: GatewayNet, server: ThreadServer, tmp_path: Path
) -> None:
    delivered = _populate(gateway_net, server.url)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    proc = subprocess.run(
        ["node", str(SCRIPT), server.url, str(shot), str(tmp_path / "chromium-profile")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = json.loads(proc.stdout)
    assert page["errors"] == []
    assert page["live"] == "live" and "block" in page["chain"]
    assert any(row.startswith(MINILM) and "prod" in row for row in page["models"])
    assert any("minilm@v1" in item and "minilm-tuned@v1" in item for item in page["lineage"])
    job_row = next(r for r in page["jobs"] if r.split("\t")[0] == str(delivered))
    assert "finalized" in job_row and "bafk" in job_row
    assert any("open" in r for r in page["jobs"])
    node_row = next(r for r in page["nodes"] if r.startswith(gateway_net.address(NODE)[:8]))
    assert "\t1\t" in node_row  # one delivery
    assert shot.stat().st_size > 20_000
