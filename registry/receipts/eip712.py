"""The signed statements of direct inference, as EIP-712 typed data.

- A :class:`Receipt` says: *this signer answered this request with this response, on this model
  version, at this time* — and whether the request was deterministic (so challengeable). Nodes sign
  every direct answer with the key they registered on chain; the gateway signs the answers it
  computes itself with its own registered key. The ``Challenges`` contract checks the same digest
  on chain, so the struct string here and in Solidity must stay byte-identical.
- A :class:`Grant` is the gateway's per-request permission to a worker: *this gateway authorized
  this request, for this worker and version, until this time*. It replaces the caller's
  credentials, which never leave the gateway.

Both are hashed under one domain: name ``anchorml``, version ``1``, the chain id and the
Challenges contract (:class:`Domain`). Digests are built here from their parts (a few keccaks
over fixed-width words) rather than through ``eth_account``'s generic encoder: one answer's receipt
then costs microseconds, and a test checks the digests against ``eth_account``'s.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eth_utils import is_hex_address, to_checksum_address

from registry.receipts.canonical import canonical_json
from registry.receipts.errors import GrantError, ReceiptError
from registry.receipts.keccak import keccak
from registry.receipts.keys import recover

if TYPE_CHECKING:
    from registry.chain.deployment import Deployment

DOMAIN_NAME = "anchorml"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
RECEIPT_TYPE = (
    "Receipt(address signer,bytes32 versionId,bytes32 requestHash,bytes32 responseHash,"
    "uint64 issuedAt,bool deterministic)"
)
GRANT_TYPE = (
    "Grant(address gateway,address worker,bytes32 versionId,bytes32 requestHash,uint64 expiresAt)"
)
_DOMAIN_TYPEHASH = keccak(text=DOMAIN_TYPE)
_RECEIPT_TYPEHASH = keccak(text=RECEIPT_TYPE)
_GRANT_TYPEHASH = keccak(text=GRANT_TYPE)

#: The HTTP header of a non-streamed answer's receipt, and of a gateway's grant to a worker.
RECEIPT_HEADER = "anchorml-receipt"
GRANT_HEADER = "anchorml-grant"
#: Longest header value accepted (a receipt is ~600 characters).
MAX_HEADER_CHARS = 4096


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def _digest(domain: Domain, struct_hash: bytes) -> bytes:
    return keccak(b"\x19\x01" + domain.separator + struct_hash)


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain: which chain, and which contract checks the signatures (the address
    is checksummed on construction, so two domains compare equal whatever the letter case)."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "verifying_contract", to_checksum_address(self.verifying_contract))

    @cached_property
    def separator(self) -> bytes:
        """The domain separator (32 bytes)."""
        return keccak(
            _DOMAIN_TYPEHASH
            + keccak(text=DOMAIN_NAME)
            + keccak(text=DOMAIN_VERSION)
            + _word(self.chain_id)
            + _address_word(self.verifying_contract)
        )

    def to_json(self) -> dict[str, Any]:
        """The domain's fields as a signed statement's JSON carries them."""
        return {"chain_id": self.chain_id, "verifying_contract": self.verifying_contract}


@dataclass(frozen=True)
class Receipt:
    """What a signer states about one answer (the fields of the typed struct)."""

    signer: str
    version_id: bytes
    request_hash: bytes
    response_hash: bytes
    issued_at: int
    deterministic: bool

    def digest(self, domain: Domain) -> bytes:
        """The EIP-712 digest signed and checked on chain."""
        return _digest(
            domain,
            keccak(
                _RECEIPT_TYPEHASH
                + _address_word(self.signer)
                + self.version_id
                + self.request_hash
                + self.response_hash
                + _word(self.issued_at)
                + _word(int(self.deterministic))
            ),
        )


@dataclass(frozen=True)
class Grant:
    """What a gateway permits one worker to answer (the fields of the typed struct)."""

    gateway: str
    worker: str
    version_id: bytes
    request_hash: bytes
    expires_at: int

    def digest(self, domain: Domain) -> bytes:
        """The EIP-712 digest the gateway signs."""
        return _digest(
            domain,
            keccak(
                _GRANT_TYPEHASH
                + _address_word(self.gateway)
                + _address_word(self.worker)
                + self.version_id
                + self.request_hash
                + _word(self.expires_at)
            ),
        )


def receipt_domain(deployment: Deployment) -> Domain:
    """The domain of a deployment's receipts and grants: its chain and its Challenges contract
    (the one that checks receipts on chain). The one place this choice is made."""
    return Domain(deployment.chain_id, deployment.challenges)


# --- JSON and header forms -------------------------------------------------------------------


def _hex32(value: Any, name: str, error: type[Exception]) -> bytes:
    if not isinstance(value, str) or len(value) != 66 or not value.startswith("0x"):
        raise error(f"{name} must be 0x and 64 hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise error(f"{name} must be 0x and 64 hex digits") from None


def _address(value: Any, name: str, error: type[Exception]) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise error(f"{name} must be an address")
    return to_checksum_address(value)


def _uint(value: Any, name: str, error: type[Exception], bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise error(f"{name} must be an unsigned {bits}-bit integer")
    return value


def _signature(value: Any, error: type[Exception]) -> bytes:
    if not isinstance(value, str) or len(value) != 132 or not value.startswith("0x"):
        raise error("signature must be 0x and 130 hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise error("signature must be 0x and 130 hex digits") from None


def _domain(data: dict[str, Any], error: type[Exception]) -> Domain:
    return Domain(
        _uint(data.get("chain_id"), "chain_id", error, 256),
        _address(data.get("verifying_contract"), "verifying_contract", error),
    )


def _encode_header(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(canonical_json(data)).rstrip(b"=").decode("ascii")


def _decode_header(value: str, error: type[Exception]) -> dict[str, Any]:
    if not value or len(value) > MAX_HEADER_CHARS:
        raise error("the header is empty or too long")
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise error("the header is not base64url of a JSON object") from None
    if not isinstance(data, dict):
        raise error("the header is not base64url of a JSON object")
    return data


@dataclass(frozen=True)
class SignedReceipt:
    """A receipt, the domain it was signed under, and the signature."""

    receipt: Receipt
    domain: Domain
    signature: bytes

    @property
    def digest(self) -> bytes:
        """The signed digest."""
        return self.receipt.digest(self.domain)

    def recover(self) -> str:
        """The address that signed (raises :class:`ReceiptError` for a bad signature)."""
        return recover(self.digest, self.signature)

    def check_signature(self) -> None:
        """Raise :class:`ReceiptError` unless the receipt's own signer signed it."""
        if self.recover() != self.receipt.signer:
            raise ReceiptError(f"the receipt is not signed by its signer {self.receipt.signer}")

    def to_json(self) -> dict[str, Any]:
        """The receipt as an answer's ``anchorml.receipt`` carries it."""
        r = self.receipt
        return {
            "signer": r.signer,
            "version_id": "0x" + r.version_id.hex(),
            "request_hash": "0x" + r.request_hash.hex(),
            "response_hash": "0x" + r.response_hash.hex(),
            "issued_at": r.issued_at,
            "deterministic": r.deterministic,
            **self.domain.to_json(),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Any) -> SignedReceipt:
        """Parse :meth:`to_json`'s form (raises :class:`ReceiptError` naming the bad field)."""
        if not isinstance(data, dict):
            raise ReceiptError("a receipt is a JSON object")
        deterministic = data.get("deterministic")
        if not isinstance(deterministic, bool):
            raise ReceiptError("deterministic must be true or false")
        receipt = Receipt(
            signer=_address(data.get("signer"), "signer", ReceiptError),
            version_id=_hex32(data.get("version_id"), "version_id", ReceiptError),
            request_hash=_hex32(data.get("request_hash"), "request_hash", ReceiptError),
            response_hash=_hex32(data.get("response_hash"), "response_hash", ReceiptError),
            issued_at=_uint(data.get("issued_at"), "issued_at", ReceiptError, 64),
            deterministic=deterministic,
        )
        return cls(
            receipt, _domain(data, ReceiptError), _signature(data.get("signature"), ReceiptError)
        )

    def to_header(self) -> str:
        """The ``anchorml-receipt`` header value (base64url of the JSON form)."""
        return _encode_header(self.to_json())

    @classmethod
    def from_header(cls, value: str) -> SignedReceipt:
        """Parse an ``anchorml-receipt`` header value."""
        return cls.from_json(_decode_header(value, ReceiptError))


@dataclass(frozen=True)
class SignedGrant:
    """A grant, the domain it was signed under, and the gateway's signature."""

    grant: Grant
    domain: Domain
    signature: bytes

    def recover(self) -> str:
        """The address that signed (raises :class:`GrantError` for a bad signature)."""
        try:
            return recover(self.grant.digest(self.domain), self.signature)
        except ReceiptError as exc:
            raise GrantError(exc.message) from None

    def to_json(self) -> dict[str, Any]:
        """The grant's JSON form."""
        g = self.grant
        return {
            "gateway": g.gateway,
            "worker": g.worker,
            "version_id": "0x" + g.version_id.hex(),
            "request_hash": "0x" + g.request_hash.hex(),
            "expires_at": g.expires_at,
            **self.domain.to_json(),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Any) -> SignedGrant:
        """Parse :meth:`to_json`'s form (raises :class:`GrantError`)."""
        if not isinstance(data, dict):
            raise GrantError("a grant is a JSON object")
        grant = Grant(
            gateway=_address(data.get("gateway"), "gateway", GrantError),
            worker=_address(data.get("worker"), "worker", GrantError),
            version_id=_hex32(data.get("version_id"), "version_id", GrantError),
            request_hash=_hex32(data.get("request_hash"), "request_hash", GrantError),
            expires_at=_uint(data.get("expires_at"), "expires_at", GrantError, 64),
        )
        return cls(grant, _domain(data, GrantError), _signature(data.get("signature"), GrantError))

    def to_header(self) -> str:
        """The ``anchorml-grant`` header value."""
        return _encode_header(self.to_json())

    @classmethod
    def from_header(cls, value: str) -> SignedGrant:
        """Parse an ``anchorml-grant`` header value."""
        return cls.from_json(_decode_header(value, GrantError))
