"""The worker's check of a gateway's per-request grant: each way a grant can be wrong is
refused with a message naming it, and a good grant is accepted once."""

from __future__ import annotations

import time

import pytest

from node.serving import GrantChecker
from registry.receipts import Domain, GrantError, Signer

DOMAIN = Domain(31337, "0x" + "11" * 20)
GATEWAY = Signer(bytes([7]) * 32)
STRANGER = Signer(bytes([8]) * 32)
WORKER = Signer(bytes([9]) * 32).address
VERSION = bytes([1]) * 32
REQUEST = bytes([2]) * 32


def _checker() -> GrantChecker:
    return GrantChecker(DOMAIN, WORKER, [GATEWAY.address.lower()])


def _grant(signer: Signer = GATEWAY, **kw: object) -> str:
    args: dict[str, object] = {
        "domain": DOMAIN, "worker": WORKER, "version_id": VERSION, "request_hash": REQUEST,
        "ttl_s": 5.0,
    }  # fmt: skip
    args.update(kw)
    return signer.sign_grant(**args).to_header()  # type: ignore[arg-type]


def test_a_grant_is_accepted_once() -> None:
    checker = _checker()
    header = _grant()
    assert checker.check(header, VERSION, REQUEST).grant.gateway == GATEWAY.address
    with pytest.raises(GrantError, match="used before"):
        checker.check(header, VERSION, REQUEST)


@pytest.mark.parametrize(
    ("header", "version", "request_hash", "message"),
    [
        (lambda: _grant(STRANGER), VERSION, REQUEST, "not a trusted gateway"),
        (lambda: _grant(worker=STRANGER.address), VERSION, REQUEST, "another worker"),
        (lambda: _grant(), bytes(32), REQUEST, "another model version"),
        (lambda: _grant(), VERSION, bytes(32), "another request"),
        (lambda: _grant(domain=Domain(1, DOMAIN.verifying_contract)), VERSION, REQUEST,
         "another chain"),
        (lambda: _grant(now=time.time() - 60), VERSION, REQUEST, "expired"),
        (lambda: _grant(ttl_s=3600), VERSION, REQUEST, "too long"),
        (lambda: "bm90IGpzb24", VERSION, REQUEST, "base64url of a JSON object"),
    ],
)  # fmt: skip
def test_a_wrong_grant_is_refused(
    header: object, version: bytes, request_hash: bytes, message: str
) -> None:
    with pytest.raises(GrantError, match=message):
        _checker().check(header(), version, request_hash)  # type: ignore[operator]


def test_a_worker_that_trusts_no_gateway_accepts_no_grant() -> None:
    with pytest.raises(GrantError, match="trusts no gateway"):
        GrantChecker(DOMAIN, WORKER, []).check(_grant(), VERSION, REQUEST)


def test_a_forged_signature_is_refused() -> None:
    signed = GATEWAY.sign_grant(DOMAIN, WORKER, VERSION, REQUEST, 5.0)
    forged = type(signed)(signed.grant, signed.domain, bytes(64) + b"\x1b")
    with pytest.raises(GrantError):
        _checker().check(forged.to_header(), VERSION, REQUEST)
