"""Self-certifying bearer tokens: an Ethereum address, an expiry and an EIP-191 signature.

Format::

    amlt1.<base64url(canonical JSON {"addr": "0x<checksummed>", "exp": <unix seconds>})>.<sig hex>

The signature is an EIP-191 ``personal_sign`` (``eth_account.messages.encode_defunct``) over the
text ``amlt1.<payload>`` — the version prefix and the payload, so both the address and the
expiry are signed. Verifying needs no server state: recover the signer from the signature and
compare it with the address the payload claims. Whoever holds the key mints tokens for its
address; the gateway then asks the chain what that address may use.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address

from registry.errors import AuthError, ConfigError

PREFIX = "amlt1"
#: Longest token accepted (a 42-char address, a 10-digit expiry, 65-byte signature, slack).
MAX_TOKEN_CHARS = 512
_TTL = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class MissingTokenError(AuthError):
    """The request carries no bearer token but the resource needs one."""

    code = "missing_token"


class TokenExpiredError(AuthError):
    """The token's expiry has passed (or it lives longer than the verifier allows)."""

    code = "token_expired"


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token proves: ``address`` signed it and it is valid until ``expires_at``."""

    address: str
    expires_at: int


def parse_ttl(text: str) -> int:
    """Seconds in a TTL such as ``90``, ``45s``, ``30m``, ``12h``, ``1d`` or ``2w``.

    Raises:
        ConfigError: not a positive duration.
    """
    match = _TTL.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise ConfigError(f"--ttl {text!r} is not a duration like 3600, 30m, 12h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(account: LocalAccount, ttl_s: int, *, now: float | None = None) -> str:
    """A token for ``account``'s address, valid for ``ttl_s`` seconds from ``now``."""
    if ttl_s <= 0:
        raise ConfigError("a token's lifetime must be positive")
    issued = int(time.time() if now is None else now)
    claims = {"addr": to_checksum_address(account.address), "exp": issued + int(ttl_s)}
    payload = _b64url(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    signed = f"{PREFIX}.{payload}"
    signature = account.sign_message(encode_defunct(text=signed)).signature
    return f"{signed}.{bytes(signature).hex()}"


def verify_token(
    token: str, *, now: float | None = None, max_ttl_s: int | None = None
) -> TokenClaims:
    """Check a token's form, signature and expiry; return what it proves.

    Args:
        token: the token text (without ``Bearer``).
        now: the time to check the expiry against (default: the wall clock).
        max_ttl_s: refuse tokens that stay valid longer than this from ``now``.

    Raises:
        AuthError: malformed, or the signature was not made by the claimed address
            (code ``invalid_token``).
        TokenExpiredError: expired, or valid for longer than ``max_ttl_s``.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthError("malformed bearer token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise AuthError(f"malformed bearer token: expected {PREFIX}.<payload>.<signature>")
    _, payload, sig_hex = parts
    try:
        claims = json.loads(_unb64url(payload))
        signature = bytes.fromhex(sig_hex.removeprefix("0x"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise AuthError("malformed bearer token") from None
    if (
        not isinstance(claims, dict)
        or set(claims) != {"addr", "exp"}
        or not isinstance(claims["addr"], str)
        or not is_hex_address(claims["addr"])
        or not isinstance(claims["exp"], int)
        or isinstance(claims["exp"], bool)
        or len(signature) != 65
    ):
        raise AuthError("malformed bearer token")
    try:
        signer = Account.recover_message(
            encode_defunct(text=f"{PREFIX}.{payload}"), signature=signature
        )
    except Exception:  # eth-keys raises several types for invalid signatures
        raise AuthError("bearer token signature is invalid") from None
    address = to_checksum_address(claims["addr"])
    if signer != address:
        raise AuthError("bearer token signature does not match its address")
    current = time.time() if now is None else now
    if claims["exp"] <= current:
        raise TokenExpiredError("bearer token has expired: mint a new one (`anchorml auth token`)")
    if max_ttl_s is not None and claims["exp"] - current > max_ttl_s:
        raise TokenExpiredError(f"bearer token lives longer than the allowed {max_ttl_s} s")
    return TokenClaims(address=address, expires_at=int(claims["exp"]))


def bearer(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` header (None when absent).

    Raises:
        AuthError: the header is present but not a bearer credential.
    """
    if header is None or not header.strip():
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'")
    return value.strip()
