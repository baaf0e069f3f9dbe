"""Signing and recovering secp256k1 signatures over 32-byte digests, with libsecp256k1.

Receipts and grants are signed on every direct answer, so the signature must be cheap: coincurve
(libsecp256k1) signs in ~50 µs and recovers in ~60 µs where pure Python takes milliseconds.
Signatures are Ethereum's 65 bytes ``r ‖ s ‖ v`` (``v`` 27 or 28), with ``s`` in the lower half
of the curve order as OpenZeppelin's ``ECDSA.recover`` requires — libsecp256k1 only produces
such signatures, and :func:`recover` refuses the malleable upper-half twin.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from coincurve import PrivateKey, PublicKey
from eth_utils import to_checksum_address

from registry.receipts.errors import ReceiptError
from registry.receipts.keccak import keccak

if TYPE_CHECKING:
    from registry.receipts.eip712 import Domain, SignedGrant, SignedReceipt

#: Order of the secp256k1 group; a signature's ``s`` must be at most half of it.
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def address_of(public_key: PublicKey) -> str:
    """The checksummed Ethereum address of a public key."""
    return to_checksum_address(keccak(public_key.format(compressed=False)[1:])[-20:])


class Signer:
    """A private key that signs digests (the node's or the gateway's own key).

    Args:
        private_key: the 32-byte secret (e.g. ``LocalAccount.key``).
    """

    def __init__(self, private_key: bytes) -> None:
        self._key = PrivateKey(bytes(private_key))
        self.address = address_of(self._key.public_key)
        #: The compressed public key, as nodes register it on chain.
        self.public_key = self._key.public_key.format(compressed=True)

    def sign(self, digest: bytes) -> bytes:
        """The 65-byte ``r ‖ s ‖ v`` signature of a 32-byte digest."""
        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        raw = self._key.sign_recoverable(digest, hasher=None)
        return raw[:64] + bytes([27 + raw[64]])

    def sign_receipt(
        self,
        domain: Domain,
        version_id: bytes,
        request_hash: bytes,
        response_hash: bytes,
        deterministic: bool,
        *,
        now: float | None = None,
    ) -> SignedReceipt:
        """A receipt for one answer, signed with this key, issued ``now`` (default: the clock)."""
        from registry.receipts.eip712 import Receipt, SignedReceipt

        issued = int(time.time() if now is None else now)
        receipt = Receipt(
            self.address, version_id, request_hash, response_hash, issued, deterministic
        )
        return SignedReceipt(receipt, domain, self.sign(receipt.digest(domain)))

    def sign_grant(
        self,
        domain: Domain,
        worker: str,
        version_id: bytes,
        request_hash: bytes,
        ttl_s: float,
        *,
        now: float | None = None,
    ) -> SignedGrant:
        """A grant for ``worker`` to answer one request, valid ``ttl_s`` seconds from ``now``,
        signed with this (the gateway's) key."""
        from registry.receipts.eip712 import Grant, SignedGrant

        expires = int((time.time() if now is None else now) + ttl_s) + 1
        grant = Grant(self.address, to_checksum_address(worker), version_id, request_hash, expires)
        return SignedGrant(grant, domain, self.sign(grant.digest(domain)))

    def __repr__(self) -> str:  # never show the key
        return f"Signer({self.address})"


def recover(digest: bytes, signature: bytes) -> str:
    """The address whose key made ``signature`` over ``digest``.

    Raises:
        ReceiptError: not a 65-byte signature with ``v`` 27/28 and a low ``s``, or no key
            recovers from it.
    """
    if len(digest) != 32 or len(signature) != 65 or signature[64] not in (27, 28):
        raise ReceiptError("a signature is 65 bytes r|s|v with v 27 or 28")
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s > _N // 2:
        raise ReceiptError("a signature's s must be in the lower half of the curve order")
    try:
        key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest, hasher=None
        )
    except Exception:  # libsecp256k1 refuses signatures no key recovers from
        raise ReceiptError("no public key recovers from this signature") from None
    return address_of(key)
