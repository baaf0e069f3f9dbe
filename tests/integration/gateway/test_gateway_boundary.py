"""The gateway's trust boundary, against real worker processes and real HTTP.

- Endpoints that fail validation (a fragment that swallows the path, private and metadata
  addresses, userinfo, a query, a name resolving to loopback outside dev mode) are never called:
  a listener on each records no connection, the gateway's own HTTP client sends nothing, callers
  get 503 ``no_worker`` and ``/v1/nodes`` says why.
- Three workers serve MiniLM, each behind a small proxy that records what reaches the worker and
  rewrites its answers: an honest one, one that relays forged embeddings with the receipt of the
  real answer (signed with its registered key), and one that signs with a key other than its
  registered one. Over 1,000 requests no forged answer reaches a caller, each one is counted in
  ``/metrics``, and no worker ever receives the caller's ``Authorization`` header — a gated model
  is served on the gateway's grant, which the worker refuses to accept twice.

Until workers sign their answers themselves, the honest proxy (and the forger, for the real
answer) signs with the node's registered key, standing in for an honest worker; an answer that
already carries a receipt passes through unchanged, so the test holds once workers sign.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from node.serving import receipt_domain
from registry.dev.procs import free_port
from registry.receipts import (
    GRANT_HEADER,
    RECEIPT_HEADER,
    Domain,
    SignedReceipt,
    Signer,
    canonical_request,
    is_deterministic,
    request_hash,
    response_hash,
)
from support.devnet import KEYS, USER
from support.gateway import CHAT, GATED, GATEWAY, MINILM, GatewayNet, ThreadServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

HONEST, FORGER, WRONG_KEY = 5, 6, 9
BAD_NODE = 7  # declares the bad endpoints (test_gateway_workers re-registers it later)
PATHS = {"/v1/embeddings": "embeddings", "/v1/chat/completions": "chat"}


# --- a proxy in front of a real worker ----------------------------------------------------------


class WorkerProxy:
    """Forwards to a worker, records the headers the worker receives, rewrites answers."""

    def __init__(self, mode: str, key_index: int, domain: Domain, versions: dict[str, bytes]):
        self.mode = mode
        self.node = Signer(bytes.fromhex(KEYS[key_index].removeprefix("0x")))
        self.impostor = Signer(bytes([0x42]) * 32)
        self.domain = domain
        self.versions = versions
        self.worker_port = free_port()
        self.received: list[dict[str, str]] = []
        self.forged = 0
        self.lock = threading.Lock()
        self.client: httpx.AsyncClient | None = None
        app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])
        self.server = ThreadServer(app)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        with self.lock:
            self.received.append(dict(request.headers))
        if self.client is None:  # one client, made on the server's loop (a client per request
            # costs an SSL context: tens of ms of CPU each)
            self.client = httpx.AsyncClient(timeout=120)
        answer = await self.client.request(
            request.method, f"http://127.0.0.1:{self.worker_port}{request.url.path}",
            content=body, headers=headers,
        )  # fmt: skip
        endpoint = PATHS.get(request.url.path)
        if endpoint is None or answer.status_code != 200 or self.mode == "plain":
            return Response(answer.content, answer.status_code, media_type="application/json")
        return self.rewrite(endpoint, json.loads(body), answer)

    def rewrite(self, endpoint: str, sent: dict[str, Any], answer: httpx.Response) -> Response:
        whole = answer.json()
        extra = whole.pop("anchorml", None)
        if extra is None:  # the worker does not sign yet: sign as the honest node would
            canonical = canonical_request(endpoint, sent, self.versions[sent["model"]])
            receipt = self.node.sign_receipt(
                self.domain, self.versions[sent["model"]], request_hash(canonical),
                response_hash(endpoint, whole), is_deterministic(endpoint, canonical),
            )  # fmt: skip
            extra = {"receipt": receipt.to_json(), "request": canonical}
        receipt = SignedReceipt.from_json(extra["receipt"])
        if self.mode == "forge":  # another answer under the real answer's receipt
            for item in whole["data"]:
                item["embedding"] = [-x for x in item["embedding"]]
        elif self.mode == "wrong-key":  # the same statement, signed by another key
            receipt = SignedReceipt(
                receipt.receipt, receipt.domain, self.impostor.sign(receipt.digest)
            )
            extra = {**extra, "receipt": receipt.to_json()}
        if self.mode != "honest":
            with self.lock:
                self.forged += 1
        content = json.dumps({**whole, "anchorml": extra}).encode()
        return Response(
            content, media_type="application/json", headers={RECEIPT_HEADER: receipt.to_header()}
        )


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(gateway_net: GatewayNet) -> Iterator[dict[str, Any]]:
    chain = gateway_net.sdk(None)
    versions = {
        f"{name}@v1": chain.models.resolve(f"{name}@v1").version_id for name in (MINILM, GATED)
    }
    domain = receipt_domain(chain.deployment)
    proxies = {
        HONEST: WorkerProxy("honest", HONEST, domain, versions),
        FORGER: WorkerProxy("forge", FORGER, domain, versions),
        WRONG_KEY: WorkerProxy("wrong-key", WRONG_KEY, domain, versions),
    }
    for key, proxy in proxies.items():
        proxy.server.__enter__()
        gateway_net.devnet.start_node(
            f"wb-{key}", key, [f"{MINILM}@v1", f"{GATED}@v1"], kinds='["INFER"]',
            endpoint=proxy.server.url, http_port=str(proxy.worker_port),
            trusted_gateways=gateway_net.address(GATEWAY),
            data_dir=str(gateway_net.root / f"wb-{key}-data"),
        )  # fmt: skip
    for key in proxies:
        gateway_net.devnet.wait_log(f"wb-{key}", " up: ", timeout=300)
    url = gateway_net.serve_gateway(
        "gw-boundary", inprocess="false", rate_limit_per_s="0", allow_private_workers="true",
        worker_backoff_s="0",  # bad workers stay in the rotation: each answer of theirs checked
    )  # fmt: skip
    try:
        yield {"url": url, "proxies": proxies, "versions": versions}
    finally:
        gateway_net.stop_gateways()
        gateway_net.devnet.stop_nodes()
        for key, proxy in proxies.items():
            proxy.server.__exit__()
            gateway_net.sdk(key).nodes.set_serving(list(versions.values()), False)


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class Recording(httpx.AsyncHTTPTransport):
    """The gateway's real transport, recording every request it is asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(str(request.url))
        return await super().handle_async_request(request)


@pytest.fixture(scope="module")
def strict(gateway_net: GatewayNet) -> Iterator[tuple[str, Recording]]:
    """An in-process gateway outside dev mode (no private workers), its worker calls recorded."""
    app = gateway_net.app(inprocess=False, rate_limit_per_s=0, watch_interval_s=0.2)
    with ThreadServer(app) as server:
        recording = Recording()
        app.state.gateway.pool.client = httpx.AsyncClient(transport=recording)
        yield server.url, recording
    vid = gateway_net.sdk(None).models.resolve(f"{CHAT}@v1").version_id
    gateway_net.sdk(BAD_NODE).nodes.set_serving([vid], False)


# --- endpoints ----------------------------------------------------------------------------------


BAD_ENDPOINTS = [
    ("http://127.0.0.1:{port}/x#", "fragment"),
    ("http://10.0.0.1:{port}/", "private address"),
    ("http://169.254.169.254/latest#", "fragment"),
    ("https://169.254.169.254/", "metadata"),
    ("http://user@127.0.0.1:{port}/", "userinfo"),
    ("https://localhost:{port}/?q", "query"),
    ("https://localhost:{port}/", "loopback"),  # a name resolving to 127.0.0.1, outside dev mode
]


@pytest.mark.parametrize(("template", "reason"), BAD_ENDPOINTS)
def test_a_bad_endpoint_is_never_called(
    gateway_net: GatewayNet, strict: tuple[str, Recording], template: str, reason: str
) -> None:
    url, recording = strict
    listener = Listener()
    endpoint = template.format(port=listener.port)
    node = gateway_net.sdk(BAD_NODE)
    vid = node.models.resolve(f"{CHAT}@v1").version_id
    node.nodes.register(endpoint, bytes([2]) * 33, node.nodes.min_stake())
    node.nodes.set_serving([vid], True)
    address = gateway_net.address(BAD_NODE)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            row: dict[str, Any] = {}
            for _ in range(100):  # until the gateway's watcher saw the registration
                rows = {n["address"]: n for n in client.get("/v1/nodes").json()["data"]}
                row = rows.get(address, {})
                if row.get("endpoint") == endpoint:
                    break
                threading.Event().wait(0.2)
            assert row["endpoint"] == endpoint
            body = {"model": CHAT, "messages": [{"role": "user", "content": "hi"}]}
            answer = client.post("/v1/chat/completions", json=body)
            assert listener.accepted == 0
            assert recording.sent == []
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "no_worker"
            rows = {n["address"]: n for n in client.get("/v1/nodes").json()["data"]}
            assert reason in (rows[address]["endpoint_error"] or "")
    finally:
        listener.close()


# --- answers and credentials --------------------------------------------------------------------


def _metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


TEXTS = ["anchored", "a forged answer never reaches a caller", "third", "fourth text"]


def test_no_forged_answer_reaches_a_caller_and_each_is_counted(
    gateway_net: GatewayNet, net: dict[str, Any]
) -> None:
    url, proxies = net["url"], net["proxies"]
    honest = gateway_net.address(HONEST)
    token = gateway_net.token(USER)
    reference = {}
    for text in TEXTS:  # straight from the honest worker, around the gateway and the proxies
        direct = httpx.post(
            f"http://127.0.0.1:{proxies[HONEST].worker_port}/v1/embeddings",
            json={"model": f"{MINILM}@v1", "input": text}, timeout=120,
        )  # fmt: skip
        reference[text] = direct.json()["data"][0]["embedding"]

    async def run() -> list[tuple[str, httpx.Response]]:
        gate = asyncio.Semaphore(16)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as client:

            async def one(i: int) -> tuple[str, httpx.Response]:
                text = TEXTS[i % len(TEXTS)]
                async with gate:
                    body = {"model": MINILM, "input": text}
                    return text, await client.post("/v1/embeddings", json=body)

            return await asyncio.gather(*(one(i) for i in range(1000)))

    answers = asyncio.run(run())
    for text, response in answers:
        assert response.status_code == 200, response.text
        got = response.json()["data"][0]["embedding"]
        assert max(abs(a - b) for a, b in zip(got, reference[text], strict=True)) <= 1e-4
        receipt = SignedReceipt.from_header(response.headers[RECEIPT_HEADER])
        assert receipt.recover() == honest
        assert response.headers["x-content-type-options"] == "nosniff"
    metrics = httpx.get(f"{url}/metrics", timeout=60).text
    name = "anchorml_gateway_rejected_answers_total"
    forged, wrong = proxies[FORGER].forged, proxies[WRONG_KEY].forged
    assert forged >= 100 and wrong >= 100, (forged, wrong)
    assert _metric(metrics, name, '{reason="response_hash"}') == forged
    assert _metric(metrics, name, '{reason="signature"}') == wrong
    for proxy in proxies.values():  # what each real worker received
        assert proxy.received and not any("authorization" in h for h in proxy.received)
    nodes = {n["address"]: n for n in httpx.get(f"{url}/v1/nodes", timeout=60).json()["data"]}
    assert nodes[gateway_net.address(FORGER)]["rejected_answers"] == forged
    assert nodes[honest]["rejected_answers"] == 0


def test_a_gated_model_is_served_on_the_gateway_grant_once(
    gateway_net: GatewayNet, net: dict[str, Any]
) -> None:
    url, proxies = net["url"], net["proxies"]
    token = gateway_net.token(USER)
    for proxy in proxies.values():
        proxy.received.clear()
    body = {"model": GATED, "input": "gated text"}
    response = httpx.post(
        f"{url}/v1/embeddings", json=body, headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    seen = [h for p in proxies.values() for h in p.received]
    assert seen and all(GRANT_HEADER in h and "authorization" not in h for h in seen)
    honest = proxies[HONEST]
    grant = next(h[GRANT_HEADER] for h in honest.received)
    worker = f"http://127.0.0.1:{honest.worker_port}/v1/embeddings"
    sent = {"model": f"{GATED}@v1", "input": "gated text"}
    replayed = httpx.post(worker, json=sent, headers={GRANT_HEADER: grant}, timeout=60)
    assert replayed.status_code == 401, replayed.text
    assert replayed.json()["error"]["code"] == "missing_token"
    other = httpx.post(
        worker, json={**sent, "input": "another text"}, headers={GRANT_HEADER: grant}, timeout=60
    )
    assert other.status_code == 401
    own = httpx.post(worker, json=sent, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert own.status_code == 200, own.text
