"""``verify_answer`` against the deployed contracts (eth-tester and anvil): who signed, which
weights, the signer's record *at the time* (historical calls), and each typed failure."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from registry.chain.connection import dev_keys
from registry.clients.models import version_id
from registry.config import Settings
from registry.receipts import (
    Domain,
    Signer,
    canonical_request,
    is_deterministic,
    receipt_domain,
    request_hash,
    response_hash,
)
from registry.receipts.verify import (
    MalformedReceiptError,
    ReceiptDomainError,
    RequestMismatchError,
    ResponseMismatchError,
    SignatureMismatchError,
    SignerNotAccountableError,
    UnknownVersionError,
    block_at,
    verify_answer,
)
from registry.sdk import Anchorml
from support.chain import ACTORS, PUBLIC, V1, World, content, sha

VERSION = version_id(PUBLIC, V1)
BODY = {"model": f"{PUBLIC}@{V1}", "input": ["hello", "world"]}


def _signer(name: str) -> Signer:
    return Signer(bytes.fromhex(dev_keys(len(ACTORS))[ACTORS.index(name)][2:]))


def _sdk(env: World) -> Anchorml:
    return Anchorml(chain=env.chain, deployment=env.deployment, wallet=None, settings=Settings())


def _answer(
    env: World, signer: str, issued_at: int, domain: Domain | None = None, **receipt: Any
) -> dict[str, Any]:
    """An embeddings answer as the gateway sends it, signed by actor ``signer``."""
    answer: dict[str, Any] = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.25 * i, -0.5, 0.125]}
            for i in range(2)
        ],
        "model": f"{PUBLIC}@{V1}",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    request = canonical_request("embeddings", BODY, VERSION)
    fields = {
        "version_id": VERSION,
        "request_hash": request_hash(request),
        "response_hash": response_hash("embeddings", answer),
        "deterministic": is_deterministic("embeddings", request),
        **receipt,
    }
    signed = _signer(signer).sign_receipt(
        domain or receipt_domain(env.deployment), now=issued_at, **fields
    )
    return {**answer, "anchorml": {"receipt": signed.to_json(), "request": request}}


@pytest.fixture
def serving(env: World) -> tuple[int, int]:
    """node1 serves the public version from T1 and stops at T2; (T1, T2)."""
    env.node1.nodes.set_serving([VERSION])
    start = env.now()
    env.warp(start + 100)
    env.node1.nodes.set_serving([VERSION], False)
    return start, env.now()


def test_an_answer_verifies_with_signer_weights_and_the_record_at_the_time(
    env: World, serving: tuple[int, int]
) -> None:
    start, stop = serving
    report = verify_answer(_sdk(env), _answer(env, "node1", start + 50))
    assert report.ok, report.problems
    assert report.signer == env.node1.address
    assert report.endpoint == "embeddings"
    assert report.weights is not None
    assert report.weights.ref == f"{PUBLIC}@{V1}"
    assert report.weights.cid == content(PUBLIC).to_cid()
    assert report.weights.manifest_sha256 == sha(f"manifest:{PUBLIC}")
    node = report.node
    assert node.historical and node.registered and node.eligible and node.serving
    assert node.timestamp is not None and start <= node.timestamp <= start + 50
    assert report.request_matches is True and report.response_matches and report.deterministic
    # After it stopped serving, its answers still verify (it is staked), and the report says so.
    later = verify_answer(_sdk(env), _answer(env, "node1", stop + 1))
    assert later.ok and not later.node.serving and later.node.eligible
    assert any("not declared it serves" in note for note in later.notes)
    # A signer that was never a staked node is not accountable.
    stranger = verify_answer(_sdk(env), _answer(env, "attacker", start + 50))
    assert [type(p) for p in stranger.problems] == [SignerNotAccountableError]
    assert "was not a registered node" in stranger.problems[0].message


def test_block_at_finds_the_latest_block_at_or_before_a_time(env: World) -> None:
    start = env.now()
    # steps far apart: eth-tester's clock follows the wall clock, and a warp must stay ahead of
    # it however slowly this machine runs
    for step in (1_000, 2_000, 3_000):
        env.warp(start + step)
    stamps = {n: env.w3.eth.get_block(n)["timestamp"] for n in range(env.chain.head() + 1)}
    times = {t for stamp in stamps.values() for t in range(stamp - 2, stamp + 3)}
    for t in sorted(times | {start - 2, start + 500, start + 2_500}):
        expected = max((n for n, stamp in stamps.items() if stamp <= t), default=None)
        assert block_at(env.chain, t) == expected, t
    assert block_at(env.chain, start + 100_000) == env.chain.head()
    assert block_at(env.chain, 1) is None


def test_a_changed_float_does_not_verify(env: World, serving: tuple[int, int]) -> None:
    answer = _answer(env, "node1", serving[0] + 50)
    answer["data"][1]["embedding"][2] = 0.126
    report = verify_answer(_sdk(env), answer)
    assert [type(p) for p in report.problems] == [ResponseMismatchError]
    assert not report.response_matches
    with pytest.raises(ResponseMismatchError) as info:
        report.raise_for_problems()
    assert info.value.code == "response_mismatch"


def test_a_changed_request_does_not_verify(env: World, serving: tuple[int, int]) -> None:
    answer = _answer(env, "node1", serving[0] + 50)
    answer["anchorml"]["request"]["input"] = ["hello", "w0rld"]
    report = verify_answer(_sdk(env), answer)
    assert [type(p) for p in report.problems] == [RequestMismatchError]


def test_a_receipt_signed_by_another_key_does_not_verify(
    env: World, serving: tuple[int, int]
) -> None:
    from dataclasses import replace

    from registry.receipts import SignedReceipt

    answer = _answer(env, "node1", serving[0] + 50)
    honest = SignedReceipt.from_json(answer["anchorml"]["receipt"])
    # node2 signs a receipt in node1's name
    signature = _signer("node2").sign(honest.digest)
    forged = {**answer, "anchorml": {**answer["anchorml"]}}
    forged["anchorml"]["receipt"] = replace(honest, signature=signature).to_json()
    report = verify_answer(_sdk(env), forged)
    assert type(report.problems[0]) is SignatureMismatchError
    assert env.node2.address in report.problems[0].message


def test_a_receipt_for_another_chain_or_an_unknown_version(
    env: World, serving: tuple[int, int]
) -> None:
    other = Domain(chain_id=1, verifying_contract=env.deployment.node_registry)
    report = verify_answer(_sdk(env), _answer(env, "node1", serving[0] + 50, domain=other))
    assert type(report.problems[0]) is ReceiptDomainError
    unknown = _answer(env, "node1", serving[0] + 50, version_id=b"\x07" * 32)
    assert UnknownVersionError in [type(p) for p in verify_answer(_sdk(env), unknown).problems]


def test_a_receipt_from_the_header_and_malformed_receipts(
    env: World, serving: tuple[int, int]
) -> None:
    from registry.receipts import SignedReceipt

    answer = _answer(env, "node1", serving[0] + 50)
    header = SignedReceipt.from_json(answer["anchorml"]["receipt"]).to_header()
    bare = {k: v for k, v in answer.items() if k != "anchorml"}
    report = verify_answer(_sdk(env), bare, header)
    assert report.ok and report.request_matches is None
    assert any("no canonical request" in note for note in report.notes)
    with pytest.raises(MalformedReceiptError, match="no receipt"):
        verify_answer(_sdk(env), bare)
    broken = copy.deepcopy(answer)
    broken["anchorml"]["receipt"]["signature"] = "0x1234"
    with pytest.raises(MalformedReceiptError, match="signature"):
        verify_answer(_sdk(env), broken)
    other = _answer(env, "node1", serving[0] + 51)
    other_header = SignedReceipt.from_json(other["anchorml"]["receipt"]).to_header()
    with pytest.raises(MalformedReceiptError, match="differs"):
        verify_answer(_sdk(env), answer, other_header)
