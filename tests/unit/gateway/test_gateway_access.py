"""G1 — on-chain access control at the gateway, and the bearer tokens that prove who calls.

A gated model without access: 403 ``no_access`` with no inference and no store read (counters
unchanged); the same job created on chain reverts with ``NoAccess``. Missing token: 401
``missing_token``; expired: 401 ``token_expired``; forged or tampered: 401 ``invalid_token``.
Access granted or revoked on chain reaches the gateway through events, without a restart.
Past the per-address rate limit: 429 ``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from registry.auth import TokenExpiredError, mint_token, parse_ttl, verify_token
from registry.chain import revert_errors as rv
from registry.errors import AuthError, ConfigError
from registry.jobs import JobKind, submit
from support.devnet import KEYS, OWNER, REQUESTER, USER
from support.gateway import GATED, MINILM, GatewayNet

pytestmark = pytest.mark.timeout(600)

OUTSIDER = 9  # a dev account no test grants anything but the invalidation test


@pytest.fixture(scope="module")
def client(gateway_net: GatewayNet) -> Iterator[TestClient]:
    with TestClient(gateway_net.app(rate_limit_per_s=0, watch_interval_s=0.2)) as c:
        yield c


def _embed(client: TestClient, model: str, token: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post("/v1/embeddings", json={"model": model, "input": "hi"}, headers=headers)
    return response.status_code, response.json()


def _counters(client: TestClient) -> tuple[float, float, int]:
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    inferences = sum(
        s.value
        for m in gateway.metrics.serving.inferences.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )
    loads = gateway.metrics.serving.model_loads._value.get()
    return inferences, loads, gateway.store.reads


# --- tokens ------------------------------------------------------------------------------------


def test_token_round_trip_and_refusals() -> None:
    account = Account.from_key(KEYS[USER])
    token = mint_token(account, 60, now=1_000_000)
    claims = verify_token(token, now=1_000_030)
    assert claims.address == account.address and claims.expires_at == 1_000_060
    with pytest.raises(TokenExpiredError):
        verify_token(token, now=1_000_060)
    with pytest.raises(TokenExpiredError):
        verify_token(token, now=1_000_000, max_ttl_s=30)
    prefix, payload, sig = token.split(".")
    claimed = json.loads(base64.urlsafe_b64decode(payload + "=="))
    other = Account.from_key(KEYS[OWNER]).address
    forged = base64.urlsafe_b64encode(json.dumps({**claimed, "addr": other}).encode()).rstrip(b"=")
    with pytest.raises(AuthError) as excinfo:
        verify_token(f"{prefix}.{forged.decode()}.{sig}", now=1_000_000)
    assert excinfo.value.code == "invalid_token"
    for bad in ("", "amlt1", "amlt1.x.y", token + "00", "amlt2." + payload + "." + sig):
        with pytest.raises(AuthError):
            verify_token(bad, now=1_000_000)


def test_ttl_parsing() -> None:
    assert [parse_ttl(t) for t in ("90", "45s", "30m", "12h", "1d", "2w")] == [
        90, 45, 1800, 43_200, 86_400, 1_209_600,
    ]  # fmt: skip
    for bad in ("", "0", "-1d", "1y", "d"):
        with pytest.raises(ConfigError):
            parse_ttl(bad)


# --- G1 ----------------------------------------------------------------------------------------


def test_gated_model_without_access_is_403_with_no_inference_and_no_store_read(
    gateway_net: GatewayNet, client: TestClient
) -> None:
    before = _counters(client)
    status, body = _embed(client, GATED, gateway_net.token(REQUESTER))
    assert status == 403
    assert body["error"]["code"] == "no_access"  # type: ignore[index]
    assert body["error"]["type"] == "permission_error"  # type: ignore[index]
    for path in ("/v1/chat/completions", "/v1/completions"):
        payload = {"model": GATED, "messages": [{"role": "user", "content": "x"}], "prompt": "x"}
        response = client.post(
            path, json=payload, headers={"Authorization": f"Bearer {gateway_net.token(REQUESTER)}"}
        )
        assert response.status_code == 403 and response.json()["error"]["code"] == "no_access"
    assert _counters(client) == before


def test_the_same_job_on_chain_reverts_with_no_access(gateway_net: GatewayNet) -> None:
    requester = gateway_net.sdk(REQUESTER)
    before = requester.jobs.last_job_id()
    with pytest.raises(rv.NoAccess):
        submit(
            requester, JobKind.INFER, GATED, input_bytes=b'{"texts": ["hi"]}',
            params={"task": "embed"}, reward_wei=10**15,
        )  # fmt: skip
    assert requester.jobs.last_job_id() == before


def test_sponsored_job_for_a_caller_without_access_is_refused_before_the_chain(
    gateway_net: GatewayNet, client: TestClient
) -> None:
    before = gateway_net.sdk(None).jobs.last_job_id()
    response = client.post(
        "/v1/jobs",
        json={"kind": "infer", "model": GATED, "input": {"texts": ["x"]},
              "params": {"task": "embed"}, "reward_wei": 10**15},
        headers={"Authorization": f"Bearer {gateway_net.token(REQUESTER)}"},
    )  # fmt: skip
    assert response.status_code == 403 and response.json()["error"]["code"] == "no_access"
    assert gateway_net.sdk(None).jobs.last_job_id() == before


def test_gated_model_with_access_works(gateway_net: GatewayNet, client: TestClient) -> None:
    status, body = _embed(client, GATED, gateway_net.token(USER))
    assert status == 200, body
    assert body["model"] == f"{GATED}@v1"


@pytest.mark.parametrize("case", ["missing", "expired", "forged", "not-a-bearer"])
def test_bad_credentials_are_401(gateway_net: GatewayNet, client: TestClient, case: str) -> None:
    good = gateway_net.token(USER)
    token = {
        "missing": None,
        "expired": gateway_net.token(USER, ttl_s=60, now=time.time() - 120),
        "forged": good[:-4] + ("0000" if not good.endswith("0000") else "1111"),
        "not-a-bearer": None,
    }[case]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if case == "not-a-bearer":
        headers = {"Authorization": f"Basic {base64.b64encode(b'u:p').decode()}"}
    response = client.post("/v1/embeddings", json={"model": GATED, "input": "hi"}, headers=headers)
    assert response.status_code == 401
    expected = {"missing": "missing_token", "expired": "token_expired", "forged": "invalid_token",
                "not-a-bearer": "missing_token"}[case]  # fmt: skip
    assert response.json()["error"]["code"] == expected
    assert response.json()["error"]["type"] == "authentication_error"


def test_an_anchorml_token_is_checked_even_on_public_models(
    gateway_net: GatewayNet, client: TestClient
) -> None:
    expired = gateway_net.token(USER, ttl_s=60, now=time.time() - 120)
    status, body = _embed(client, MINILM, expired)
    assert status == 401 and body["error"]["code"] == "token_expired"  # type: ignore[index]
    status, _ = _embed(client, MINILM, "sk-any-openai-style-key")  # not ours: anonymous
    assert status == 200


def test_access_changes_on_chain_reach_the_gateway_through_events(
    gateway_net: GatewayNet, client: TestClient
) -> None:
    token = gateway_net.token(OUTSIDER)
    assert _embed(client, GATED, token)[0] == 403
    owner = gateway_net.sdk(OWNER)
    owner.models.grant_access(GATED, gateway_net.address(OUTSIDER))
    assert _eventually(lambda: _embed(client, GATED, token)[0] == 200)
    owner.models.revoke_access(GATED, gateway_net.address(OUTSIDER))
    assert _eventually(lambda: _embed(client, GATED, token)[0] == 403)


def _eventually(check: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_rate_limit_is_per_address_with_retry_after(gateway_net: GatewayNet) -> None:
    with TestClient(gateway_net.app(rate_limit_per_s=0.01, rate_limit_burst=2)) as limited:
        token = gateway_net.token(USER)
        codes = [_embed(limited, MINILM, token)[0] for _ in range(3)]
        assert codes == [200, 200, 429]
        response = limited.post(
            "/v1/embeddings", json={"model": MINILM, "input": "x"},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) >= 1
        assert (
            _embed(limited, MINILM, gateway_net.token(OWNER))[0] == 200
        )  # another address: own bucket
