"""Registry, jobs, nodes, IPFS and ops endpoints of the gateway, in process, against the chain:
models with versions, aliases and lineage; sponsored job creation with its status stream; node
records; verified IPFS reads (gated files refused); health and metrics."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from registry.clients import JobStatus
from registry.jobs import fetch_params
from registry.model.package import push
from support.devnet import OWNER, REQUESTER, USER
from support.gateway import (
    CHAT,
    GATED,
    GATEWAY,
    MINILM,
    GatewayNet,
    linked_copy,
)

pytestmark = pytest.mark.timeout(600)

NODE = 6


@pytest.fixture(scope="module")
def client(gateway_net: GatewayNet) -> Iterator[TestClient]:
    with TestClient(gateway_net.app(rate_limit_per_s=0)) as c:
        yield c


def _auth(gateway_net: GatewayNet, key: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway_net.token(key)}"}


def test_models_with_versions_aliases_and_access(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/registry/models").json()["data"]}
    assert {MINILM, CHAT, GATED} <= set(models)
    minilm = models[MINILM]
    assert minilm["access"] == "public" and minilm["aliases"] == {"prod": f"{MINILM}@v1"}
    assert [v["tag"] for v in minilm["versions"]][:1] == ["v1"]
    assert minilm["versions"][0]["cid"].startswith("bafy")
    assert models[GATED]["access"] == "allowlist"
    one = client.get(f"/v1/registry/models/{CHAT}").json()
    assert one["latest"] == f"{CHAT}@v1" and one["versions"][0]["license"] == "Apache-2.0"
    assert client.get(f"/v1/registry/models/{MINILM}/aliases").json() == {"prod": f"{MINILM}@v1"}
    version = client.get(f"/v1/registry/models/{MINILM}/versions/v1").json()
    assert version["ref"] == f"{MINILM}@v1" and version["parent"] is None


def test_lineage_shows_a_derived_version(gateway_net: GatewayNet, client: TestClient) -> None:
    owner = gateway_net.sdk(OWNER)
    push(
        owner,
        linked_copy("minilm", gateway_net.root / "m-child"),
        "minilm-child",
        "v1",
        parent=f"{MINILM}@v1",
    )
    graph = client.get("/v1/registry/lineage", params={"model": "minilm-child"}).json()
    refs = {n["id"]: n["ref"] for n in graph["nodes"]}
    edges = {(refs[e["parent"]], refs[e["child"]]) for e in graph["edges"]}
    assert (f"{MINILM}@v1", "minilm-child@v1") in edges
    child = client.get("/v1/registry/models/minilm-child/versions/v1").json()
    assert child["parent_ref"] == f"{MINILM}@v1"


def test_sponsored_job_lifecycle_and_status_stream(
    gateway_net: GatewayNet, client: TestClient
) -> None:
    request = {
        "kind": "infer", "model": f"{MINILM}@prod", "input": {"texts": ["hello"]},
        "params": {"task": "embed"}, "reward_wei": 10**15, "deadline_s": 3600,
    }  # fmt: skip
    assert client.post("/v1/jobs", json=request).json()["error"]["code"] == "missing_token"
    bad = client.post(
        "/v1/jobs",
        json={**request, "params": {"task": "embed", "oops": 1}},
        headers=_auth(gateway_net, USER),
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_job_params"
    created = client.post("/v1/jobs", json=request, headers=_auth(gateway_net, USER))
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["requester"] == gateway_net.address(GATEWAY) and job[
        "on_behalf_of"
    ] == gateway_net.address(USER)
    stored = b"".join(gateway_net.sdk(None).store.cat(job["input_cid"]))
    assert json.loads(stored) == {"texts": ["hello"]}
    seen = client.get(f"/v1/jobs/{job['job_id']}").json()
    assert seen["status"] == "open" and seen["model"] == f"{MINILM}@v1" and seen["kind"] == "infer"
    listed = client.get("/v1/jobs", params={"limit": 5}).json()["data"]
    assert listed[0]["job_id"] == job["job_id"]
    gateway_net.sdk(GATEWAY).jobs.cancel(job["job_id"])  # the requester (the gateway) takes it back
    events = []
    with client.stream("GET", f"/v1/jobs/{job['job_id']}/events") as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "cancelled"
    assert gateway_net.sdk(None).jobs.status(job["job_id"]) == JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("model", "params", "doc", "code"),
    [
        (CHAT, None, {"texts": ["x"]}, "invalid_job_params"),  # chat or generate?
        (MINILM, {"task": "embed"}, {"prompt": "x"}, "invalid_job_input"),
        (MINILM, {"task": "chat"}, {"texts": ["x"]}, "invalid_job_input"),
        (MINILM, {"task": "embed", "oops": 1}, {"texts": ["x"]}, "invalid_job_params"),
    ],
)
def test_sponsored_job_params_and_input_are_checked_before_anything_is_posted(
    gateway_net: GatewayNet,
    client: TestClient,
    model: str,
    params: dict[str, object] | None,
    doc: object,
    code: str,
) -> None:
    request: dict[str, object] = {"kind": "infer", "model": model, "input": doc, "reward_wei": 10}
    if params is not None:
        request["params"] = params
    before = gateway_net.sdk(None).jobs.last_job_id()
    response = client.post("/v1/jobs", json=request, headers=_auth(gateway_net, USER))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert gateway_net.sdk(None).jobs.last_job_id() == before


def test_sponsored_job_without_params_takes_the_task_from_the_manifest(
    gateway_net: GatewayNet, client: TestClient
) -> None:
    request = {"kind": "infer", "model": MINILM, "input": {"texts": ["x"]}, "reward_wei": 10}
    created = client.post("/v1/jobs", json=request, headers=_auth(gateway_net, USER))
    assert created.status_code == 201, created.text
    sdk = gateway_net.sdk(None)
    stored = fetch_params(sdk.store, bytes.fromhex(created.json()["params_hash"][2:]))
    assert json.loads(stored) == {"task": "embed"}
    gateway_net.sdk(GATEWAY).jobs.cancel(created.json()["job_id"])


def test_nodes_show_stake_serving_and_record(gateway_net: GatewayNet, client: TestClient) -> None:
    node = gateway_net.sdk(NODE)
    node.nodes.register("http://127.0.0.1:9", b"\x02" * 33, stake_wei=node.nodes.min_stake())
    version = node.models.resolve(f"{CHAT}@v1")
    node.nodes.set_serving([version.version_id], True)
    nodes = {n["address"]: n for n in client.get("/v1/nodes").json()["data"]}
    mine = nodes[gateway_net.address(NODE)]
    assert mine["stake_wei"] == node.nodes.min_stake() and mine["eligible"] is True
    assert mine["serving"] == [f"{CHAT}@v1"] and mine["delivered"] == 0 and mine["slashes"] == 0
    node.nodes.set_serving([version.version_id], False)  # do not attract other tests' traffic


def test_ipfs_serves_verified_public_files_and_refuses_gated_ones(
    gateway_net: GatewayNet, client: TestClient
) -> None:
    store = gateway_net.sdk(None).store
    public = gateway_net.sdk(None).models.resolve(f"{MINILM}@v1")
    entries = {e.name: e for e in store.ls(public.cid)}
    config = client.get(f"/ipfs/{entries['config.json'].cid}")
    assert config.status_code == 200
    assert config.content == b"".join(store.cat(entries["config.json"].cid))
    assert config.headers["etag"].strip('"') == str(entries["config.json"].cid)
    listing = client.get(f"/ipfs/{public.cid}").json()
    assert {e["name"] for e in listing["entries"]} >= {"config.json", "model.safetensors"}
    too_big = client.get(f"/ipfs/{entries['model.safetensors'].cid}")  # 90 MB > 64 MiB
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "content_too_large"
    chat = gateway_net.sdk(None).models.resolve(f"{CHAT}@v1")
    tokenizer = {e.name: e for e in store.ls(chat.cid)}["tokenizer.json"].cid  # > 1 MiB: streamed
    streamed = client.get(f"/ipfs/{tokenizer}")
    assert streamed.status_code == 200 and len(streamed.content) > 1 << 20
    expected = hashlib.sha256(b"".join(store.cat(tokenizer))).hexdigest()
    assert hashlib.sha256(streamed.content).hexdigest() == expected
    gated = gateway_net.sdk(None).models.resolve(f"{GATED}@v1")  # a MiniLM copy with its own card
    card = {e.name: e for e in store.ls(gated.cid)}["README.md"].cid
    for cid in (gated.cid, card):
        assert client.get(f"/ipfs/{cid}").status_code == 401
        denied = client.get(f"/ipfs/{cid}", headers=_auth(gateway_net, REQUESTER))
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "no_access"
        assert client.get(f"/ipfs/{cid}", headers=_auth(gateway_net, USER)).status_code == 200
    shared = {e.name: e for e in store.ls(gated.cid)}["config.json"].cid
    assert client.get(f"/ipfs/{shared}").status_code == 200  # same bytes as the public model's


def test_the_watcher_tick_refreshes_answers_in_use_before_they_expire(
    gateway_net: GatewayNet,
) -> None:
    """A resolution the gateway served is reloaded on a chain-watcher tick shortly before its time
    to live runs out, with no request asking: the refresh does not run inside a request."""
    app = gateway_net.app(rate_limit_per_s=0, cache_ttl_s=1.5, watch_interval_s=0.2)
    with TestClient(app) as c:
        catalog = app.state.gateway.catalog
        assert c.get(f"/v1/models/{MINILM}").status_code == 200  # a request used the answer
        before = catalog.resolution_loads
        time.sleep(2.0)
        assert catalog.resolution_loads > before


def test_health_and_metrics(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["block"] >= health["indexed_block"] > 0
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "anchorml_http_requests_total" in metrics.text


def test_dashboard_page_and_openapi_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "anchorml" in page.text
    assert client.get("/static/app.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/embeddings", "/v1/jobs", "/ipfs/{cid}"} <= set(
        spec["paths"]
    )
