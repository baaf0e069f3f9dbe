"""Receipts core: EIP-712 digests equal eth_account's, signatures recover and refuse tampering,
canonical hashes are independent of encoding, the tolerance rule, the verdict file."""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from registry.receipts import (
    FLOAT_TOLERANCE,
    Domain,
    GrantError,
    ReceiptError,
    SignedGrant,
    SignedReceipt,
    Signer,
    Verdict,
    canonical_request,
    is_deterministic,
    outputs_match,
    recover,
    request_hash,
    response_hash,
    verdict_bytes,
    verdict_sha256,
)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
DOMAIN = Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
VERSION = bytes(range(32))


def _typed(primary: str, fields: list[dict[str, str]], message: dict[str, object]) -> bytes:
    signable = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                primary: fields,
            },
            "primaryType": primary,
            "domain": {
                "name": "anchorml",
                "version": "1",
                "chainId": DOMAIN.chain_id,
                "verifyingContract": DOMAIN.verifying_contract,
            },
            "message": message,
        }
    )
    return _eip191_digest(signable)


def _eip191_digest(signable: object) -> bytes:
    from eth_account.messages import _hash_eip191_message

    return bytes(_hash_eip191_message(signable))  # type: ignore[arg-type]


def test_receipt_digest_equals_eth_accounts_typed_data_encoder() -> None:
    signer = Signer(KEY)
    signed = signer.sign_receipt(
        DOMAIN, VERSION, b"\x01" * 32, b"\x02" * 32, True, now=1_700_000_000
    )
    expected = _typed(
        "Receipt",
        [
            {"name": "signer", "type": "address"},
            {"name": "versionId", "type": "bytes32"},
            {"name": "requestHash", "type": "bytes32"},
            {"name": "responseHash", "type": "bytes32"},
            {"name": "issuedAt", "type": "uint64"},
            {"name": "deterministic", "type": "bool"},
        ],
        {
            "signer": signer.address,
            "versionId": VERSION,
            "requestHash": b"\x01" * 32,
            "responseHash": b"\x02" * 32,
            "issuedAt": 1_700_000_000,
            "deterministic": True,
        },
    )
    assert signed.digest == expected
    # eth_account's own signature over the same typed data recovers to the same signer
    assert signer.address == Account.from_key(KEY).address
    assert recover(expected, signed.signature) == signer.address


def test_grant_digest_equals_eth_accounts_typed_data_encoder() -> None:
    signer = Signer(KEY)
    worker = Account.create().address
    signed = signer.sign_grant(DOMAIN, worker, VERSION, b"\x03" * 32, 5, now=100)
    expected = _typed(
        "Grant",
        [
            {"name": "gateway", "type": "address"},
            {"name": "worker", "type": "address"},
            {"name": "versionId", "type": "bytes32"},
            {"name": "requestHash", "type": "bytes32"},
            {"name": "expiresAt", "type": "uint64"},
        ],
        {
            "gateway": signer.address,
            "worker": worker,
            "versionId": VERSION,
            "requestHash": b"\x03" * 32,
            "expiresAt": signed.grant.expires_at,
        },
    )
    assert signed.grant.digest(DOMAIN) == expected
    assert SignedGrant.from_header(signed.to_header()).recover() == signer.address


def test_receipt_round_trips_and_refuses_every_tampered_field() -> None:
    signed = Signer(KEY).sign_receipt(DOMAIN, VERSION, b"\x01" * 32, b"\x02" * 32, True)
    again = SignedReceipt.from_header(signed.to_header())
    assert again == signed
    again.check_signature()
    body = signed.to_json()
    for field, value in [
        ("response_hash", "0x" + "03" * 32),
        ("request_hash", "0x" + "03" * 32),
        ("version_id", "0x" + "03" * 32),
        ("issued_at", body["issued_at"] + 1),
        ("deterministic", False),
        ("chain_id", 1),
        ("signer", Account.create().address),
    ]:
        tampered = SignedReceipt.from_json({**body, field: value})
        with pytest.raises(ReceiptError):
            tampered.check_signature()


def test_high_s_twin_and_bad_v_are_refused() -> None:
    signed = Signer(KEY).sign_receipt(DOMAIN, VERSION, b"\x01" * 32, b"\x02" * 32, True)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r, s, v = (
        signed.signature[:32],
        int.from_bytes(signed.signature[32:64], "big"),
        signed.signature[64],
    )
    twin = r + (n - s).to_bytes(32, "big") + bytes([55 - v])
    with pytest.raises(ReceiptError, match="lower half"):
        recover(signed.digest, twin)
    with pytest.raises(ReceiptError, match="v 27 or 28"):
        recover(signed.digest, signed.signature[:64] + b"\x00")


@pytest.mark.parametrize(
    "value",
    [None, [], "x", {"signer": "0x1"}],
)
def test_malformed_receipts_raise_a_typed_error(value: object) -> None:
    with pytest.raises(ReceiptError):
        SignedReceipt.from_json(value)
    with pytest.raises(ReceiptError):
        SignedReceipt.from_header("!!!not-base64")


def test_malformed_grant_raises_grant_error() -> None:
    with pytest.raises(GrantError):
        SignedGrant.from_header("e30")  # {}


def _embeddings_answer(matrix: np.ndarray, *, b64: bool) -> dict[str, object]:
    data = []
    for i, row in enumerate(matrix):
        value: object = (
            base64.b64encode(row.astype("<f4").tobytes()).decode()
            if b64
            else [float(x) for x in row.astype(np.float32)]
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": "m@v1",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


@given(st.lists(st.floats(-1, 1, width=32), min_size=4, max_size=4))
def test_embeddings_hash_alike_as_base64_floats_and_the_array(values: list[float]) -> None:
    matrix = np.asarray([values, values[::-1]], dtype=np.float32)
    as_floats = _embeddings_answer(matrix, b64=False)
    as_b64 = _embeddings_answer(matrix, b64=True)
    h = response_hash("embeddings", as_b64)
    assert response_hash("embeddings", as_floats) == h
    assert response_hash("embeddings", as_b64, vectors=matrix) == h
    # shortest float32 text (what orjson prints) parses back to the same float32
    printed = {
        **as_floats,
        "data": [
            {**d, "embedding": [float(str(np.float32(x))) for x in d["embedding"]]}
            for d in as_floats["data"]
        ],
    }  # type: ignore[index, union-attr]
    assert response_hash("embeddings", printed) == h


def test_one_changed_float_changes_the_hash_but_not_the_match_within_tolerance() -> None:
    matrix = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    nudged = matrix.copy()
    nudged[1, 3] += FLOAT_TOLERANCE / 2
    a, b = _embeddings_answer(matrix, b64=True), _embeddings_answer(nudged, b64=True)
    assert response_hash("embeddings", a) != response_hash("embeddings", b)
    assert outputs_match("embeddings", a, b)
    nudged[1, 3] += FLOAT_TOLERANCE * 2
    assert not outputs_match("embeddings", a, _embeddings_answer(nudged, b64=False))


def _chat(content: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 5,
        "model": "m@v1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }


def test_chat_hash_ignores_client_added_nulls_and_sees_the_content() -> None:
    answer = _chat("hello")
    dumped = {**answer, "system_fingerprint": None, "service_tier": None}
    dumped["choices"] = [
        {
            **answer["choices"][0],
            "message": {
                "role": "assistant",
                "content": "hello",
                "refusal": None,
                "tool_calls": None,
            },
        }
    ]  # type: ignore[index]
    assert response_hash("chat", dumped) == response_hash("chat", answer)
    assert response_hash("chat", _chat("hellp")) != response_hash("chat", answer)
    assert outputs_match("chat", answer, dumped)
    assert not outputs_match("chat", answer, _chat("hellp"))


def test_canonical_request_drops_transport_and_normalizes() -> None:
    a = canonical_request(
        "embeddings", {"model": "m", "input": "hi", "encoding_format": "base64"}, VERSION
    )
    b = canonical_request("embeddings", {"model": "m@v1", "input": ["hi"], "user": "u"}, VERSION)
    assert a == b and request_hash(a) == request_hash(b)
    assert a["model"] == "0x" + VERSION.hex()
    greedy = canonical_request("chat", {"messages": [], "stream": True, "stop": "x"}, VERSION)
    assert greedy["stop"] == ["x"] and "stream" not in greedy
    assert is_deterministic("chat", greedy) and is_deterministic("embeddings", a)
    assert not is_deterministic("chat", {**greedy, "temperature": 0.7})
    with pytest.raises(ReceiptError, match="unknown endpoint"):
        canonical_request("images", {}, VERSION)


def test_verdict_file() -> None:
    digest = b"\x07" * 32
    raw = verdict_bytes(digest, Verdict.MISMATCH)
    assert len(raw) == 65 and raw[32:64] == digest and raw[64] == 2
    assert verdict_sha256(digest, Verdict.MISMATCH) == hashlib.sha256(raw).digest()
    assert verdict_sha256(digest, Verdict.MATCH) != verdict_sha256(digest, Verdict.MISMATCH)
