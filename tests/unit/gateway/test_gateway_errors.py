"""G2 — bad input gets a 4xx with a stable code in OpenAI's error shape, never a 500 and never
exception text: oversized bodies, malformed JSON, schema violations, unknown and revoked
models, bad CIDs, absurd ``max_tokens``, unsupported parameters, unknown routes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from registry.model.package import push
from support.devnet import OWNER
from support.gateway import CHAT, MINILM, GatewayNet, linked_copy

pytestmark = pytest.mark.timeout(600)

LIMIT = 16_384


@pytest.fixture(scope="module")
def client(gateway_net: GatewayNet) -> Iterator[TestClient]:
    app = gateway_net.app(rate_limit_per_s=0, max_body_bytes=LIMIT, max_tokens_cap=256)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _error(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "code", "param"}
    assert "Traceback" not in error["message"] and "/tmp" not in error["message"]
    return dict(error)


CHAT_OK = {"model": CHAT, "messages": [{"role": "user", "content": "hi"}]}


def test_oversized_body_is_413_whether_declared_or_streamed(client: TestClient) -> None:
    big = {"model": MINILM, "input": "x" * (LIMIT + 10)}
    _error(client.post("/v1/embeddings", json=big), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"model": "minilm", "input": "'
        for _ in range(LIMIT // 1000 + 2):
            yield b"y" * 1000
        yield b'"}'

    response = client.post(
        "/v1/embeddings", content=chunks(), headers={"content-type": "application/json"}
    )
    _error(response, 413, "body_too_large")


@pytest.mark.parametrize(
    "body", [b"{", b"not json", b'{"model": "minilm", "input": }', b"\xff\xfe", b""]
)
def test_malformed_json_is_400_invalid_json(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/v1/embeddings", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        {"input": "x"},
        {"model": MINILM},
        {"model": MINILM, "input": [1, 2, 3]},
        {"model": MINILM, "input": []},
        {"model": MINILM, "input": "x", "encoding_format": "int8"},
        {"model": 7, "input": "x"},
        [1, 2],
        "string",
    ],
)
def test_schema_violations_are_400_invalid_request(client: TestClient, body: object) -> None:
    error = _error(client.post("/v1/embeddings", json=body), 400, "invalid_request")
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["no-such-model", f"{MINILM}@v999", f"{MINILM}@a@b", "@v1"])
def test_unknown_models_are_404_model_not_found(client: TestClient, model: str) -> None:
    error = _error(
        client.post("/v1/embeddings", json={"model": model, "input": "x"}), 404, "model_not_found"
    )
    assert error["type"] == "not_found_error"
    _error(
        client.post("/v1/chat/completions", json={**CHAT_OK, "model": model}),
        404,
        "model_not_found",
    )


def test_revoked_version_is_410_model_revoked(gateway_net: GatewayNet, client: TestClient) -> None:
    owner = gateway_net.sdk(OWNER)
    push(owner, linked_copy("minilm", gateway_net.root / "m-revoked"), "minilm-revoked", "v1")
    assert (
        client.post("/v1/embeddings", json={"model": "minilm-revoked@v1", "input": "x"}).status_code
        == 200
    )
    owner.models.revoke_version("minilm-revoked", "v1")
    client.app.state.gateway.catalog.invalidate()  # type: ignore[attr-defined] # (events do it within a second)
    _error(
        client.post("/v1/embeddings", json={"model": "minilm-revoked@v1", "input": "x"}),
        410, "model_revoked",
    )  # fmt: skip


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [257, 10**6, 2**63, 10**40])
def test_absurd_max_tokens_is_400(client: TestClient, field: str, value: int) -> None:
    response = client.post("/v1/chat/completions", json={**CHAT_OK, field: value})
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("max_tokens_too_large", "invalid_request")
    if value < 2**63:
        assert response.json()["error"]["code"] == "max_tokens_too_large"


def test_context_overflow_is_400(gateway_net: GatewayNet, client: TestClient) -> None:
    push(
        gateway_net.sdk(OWNER),
        linked_copy("tiny-gpt2", gateway_net.root / "m-tiny"),
        "tiny-gpt2",
        "v1",
    )
    ok = client.post(
        "/v1/completions", json={"model": "tiny-gpt2", "prompt": "ab", "max_tokens": 4}
    )
    assert ok.status_code == 200, ok.text  # a 256-token context, one token per byte
    over = {"model": "tiny-gpt2", "prompt": "x" * 250, "max_tokens": 10}
    error = _error(client.post("/v1/completions", json=over), 400, "context_length_exceeded")
    assert error["param"] == "max_tokens"
    chat = {"model": "tiny-gpt2", "messages": [{"role": "user", "content": "y" * 300}]}
    _error(client.post("/v1/chat/completions", json=chat), 400, "context_length_exceeded")


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"n": 2}, "unsupported_parameter"),
        ({"logprobs": True}, "unsupported_parameter"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "unsupported_parameter"),
        ({"presence_penalty": 1.0}, "unsupported_parameter"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "invalid_request"),
        ({"temperature": 5}, "invalid_request"),
        ({"messages": []}, "invalid_request"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "invalid_request"),
        ({"anchorml": {"mode": "sideways"}}, "invalid_request"),
        ({"anchorml": {"mode": "onchain", "reward_wei": 10**25}}, "invalid_request"),
        ({"anchorml": {"mode": "onchain"}, "stream": True}, "unsupported_parameter"),
    ],
)
def test_invalid_generation_parameters_are_400(
    client: TestClient, extra: dict[str, object], code: str
) -> None:
    _error(client.post("/v1/chat/completions", json={**CHAT_OK, **extra}), 400, code)


@pytest.mark.parametrize(
    ("cid", "status", "code"),
    [
        ("not-a-cid", 400, "invalid_cid"),
        ("bafy", 400, "invalid_cid"),
        ("Qm" + "1" * 44, 400, "invalid_cid"),
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 404, "content_not_found"),
    ],
)
def test_bad_or_absent_cids(client: TestClient, cid: str, status: int, code: str) -> None:
    _error(client.get(f"/ipfs/{cid}"), status, code)


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    _error(client.get("/v1/nope"), 404, "not_found")
    _error(client.get("/v1/embeddings"), 405, "method_not_allowed")


def test_job_ids_and_queries_are_validated(client: TestClient) -> None:
    _error(client.get("/v1/jobs/0"), 400, "invalid_request")
    _error(client.get("/v1/jobs/99999999"), 404, "job_not_found")
    _error(client.get("/v1/jobs?limit=100000"), 400, "invalid_request")
    _error(client.get("/v1/registry/models/nope"), 404, "model_not_found")
