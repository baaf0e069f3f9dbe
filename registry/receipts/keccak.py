"""keccak-256 with the least overhead per call, for the hashes taken on every signed answer.

A receipt costs four to five keccaks (request, response, struct, digest). Through
``eth_utils.keccak`` each costs ~17 µs of Python wrappers around pycryptodome; pysha3's C
function costs ~2 µs, and pycryptodome called directly ~12 µs. This module picks the fastest one
installed; every choice gives the same digest (a test checks it against ``eth_utils``).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["keccak"]


def _backend() -> Callable[[bytes], bytes]:
    try:
        from sha3 import keccak_256  # safe-pysha3: C, one call

        return lambda data: keccak_256(data).digest()
    except ImportError:
        from Crypto.Hash import keccak as _keccak  # pycryptodome (eth-account depends on it)

        return lambda data: _keccak.new(data=data, digest_bits=256).digest()


_keccak256 = _backend()


def keccak(primitive: bytes = b"", *, text: str | None = None) -> bytes:
    """keccak-256 of ``primitive`` (or of ``text`` UTF-8 encoded), as ``eth_utils.keccak``."""
    return _keccak256(text.encode() if text is not None else bytes(primitive))
