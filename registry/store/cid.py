"""Content identifiers: varints, multibase, multihash and CIDs.

Only what the store needs, written out so the byte layout is plain to read and to test:

* unsigned LEB128 varints (multiformats ``unsigned-varint``: at most 9 bytes, minimal form);
* multibase ``b`` (base32, lower case, no padding) for output; ``b``/``B`` and ``z`` (base58btc)
  for input, plus CIDv0 (a bare base58btc sha2-256 multihash, ``Qm...``);
* multihash sha2-256 (``0x12``), the only hash the store mints and verifies;
* CID versions 0 and 1 with the codecs raw (``0x55``) and dag-pb (``0x70``) the store builds;
  other codecs parse (a CAR may carry them) but cannot be walked.

Every malformed input raises :class:`~registry.errors.InvalidCIDError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Final

from registry.errors import CorruptContentError, InvalidCIDError

RAW: Final = 0x55
DAG_PB: Final = 0x70
DAG_CBOR: Final = 0x71
SHA2_256: Final = 0x12
SHA2_256_LEN: Final = 32

CODEC_NAMES: Final = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor"}

_MAX_VARINT_BYTES: Final = 9
_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}


# --- varint ------------------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as an unsigned LEB128 varint."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varint at ``offset``.

    Returns:
        ``(value, next_offset)``.

    Raises:
        ValueError: truncated, longer than 9 bytes, or not minimally encoded.
    """
    value = 0
    shift = 0
    pos = offset
    end = len(data)
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and pos - offset > 1:
                raise ValueError("varint not minimally encoded")
            return value, pos
        shift += 7
        if pos - offset >= _MAX_VARINT_BYTES:
            raise ValueError("varint longer than 9 bytes")


# --- multibase ---------------------------------------------------------------------------------


def b32_encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, without padding (multibase ``b`` without the prefix)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32_decode(text: str) -> bytes:
    """Inverse of :func:`b32_encode`; accepts either case."""
    padded = text.upper() + "=" * (-len(text) % 8)
    return base64.b32decode(padded)


def b58_encode(data: bytes) -> str:
    """Bitcoin base58 (multibase ``z`` without the prefix)."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    num = int.from_bytes(data, "big")
    chars: list[str] = []
    while num:
        num, rem = divmod(num, 58)
        chars.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(chars))


def b58_decode(text: str) -> bytes:
    """Inverse of :func:`b58_encode`.

    Raises:
        ValueError: a character outside the base58btc alphabet.
    """
    num = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"invalid base58 character {char!r}")
        num = num * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


# --- CID ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CID:
    """A content identifier.

    Attributes:
        version: 0 or 1. A CIDv0 is always dag-pb + sha2-256.
        codec: multicodec of the block (``RAW``, ``DAG_PB``, ...).
        multihash: the full multihash (code, length, digest).
    """

    version: int
    codec: int
    multihash: bytes

    # construction -------------------------------------------------------------------------

    @classmethod
    def from_digest(cls, codec: int, digest: bytes) -> CID:
        """A CIDv1 for a sha2-256 ``digest``."""
        return cls(1, codec, b"\x12\x20" + digest)

    @classmethod
    def for_block(cls, codec: int, data: bytes | memoryview) -> CID:
        """Hash ``data`` with sha2-256 and return its CIDv1."""
        return cls.from_digest(codec, hashlib.sha256(data).digest())

    @classmethod
    def parse(cls, text: str | CID) -> CID:
        """Parse the text form of a CID.

        Accepts CIDv1 in multibase ``b``/``B`` (base32) or ``z`` (base58btc), and CIDv0
        (``Qm...``). A ``/ipfs/`` prefix is allowed.

        Raises:
            InvalidCIDError: the text is not a well-formed CID.
        """
        if isinstance(text, CID):
            return text
        if not isinstance(text, str):
            raise InvalidCIDError(f"invalid CID: expected a string, got {type(text).__name__}")
        raw = text.strip()
        if raw.startswith("/ipfs/"):
            raw = raw[len("/ipfs/") :]
        if not raw:
            raise InvalidCIDError("invalid CID: empty string")
        try:
            if len(raw) == 46 and raw.startswith("Qm"):
                return cls._from_multihash_v0(b58_decode(raw))
            prefix, body = raw[0], raw[1:]
            if prefix in "bB":
                data = b32_decode(body)
            elif prefix == "z":
                data = b58_decode(body)
            else:
                raise ValueError(f"unsupported multibase prefix {prefix!r}")
            return cls.decode(data)
        except (ValueError, binascii.Error) as exc:
            raise InvalidCIDError(f"invalid CID {text!r}: {exc}") from exc

    @classmethod
    def decode(cls, data: bytes | memoryview) -> CID:
        """Parse the binary form of a CID (the whole of ``data``)."""
        cid, end = cls.decode_prefix(data)
        if end != len(data):
            raise InvalidCIDError("invalid CID: trailing bytes")
        return cid

    @classmethod
    def decode_prefix(cls, data: bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
        """Parse a binary CID at the start of ``data[offset:]``.

        Returns:
            ``(cid, next_offset)``. A leading ``0x12 0x20`` is a CIDv0 (bare multihash), as in
            CAR files.

        Raises:
            InvalidCIDError: malformed bytes.
        """
        try:
            if len(data) - offset >= 2 and data[offset] == SHA2_256 and data[offset + 1] == 0x20:
                end = offset + 34
                return cls._from_multihash_v0(bytes(data[offset:end])), end
            version, pos = decode_varint(data, offset)
            if version != 1:
                raise ValueError(f"unsupported CID version {version}")
            codec, pos = decode_varint(data, pos)
            mh_start = pos
            _code, pos = decode_varint(data, pos)
            length, pos = decode_varint(data, pos)
            end = pos + length
            if end > len(data):
                raise ValueError("truncated multihash")
            return cls(1, codec, bytes(data[mh_start:end])), end
        except ValueError as exc:
            raise InvalidCIDError(f"invalid CID bytes: {exc}") from exc

    @classmethod
    def _from_multihash_v0(cls, multihash: bytes) -> CID:
        if len(multihash) != 34 or multihash[0] != SHA2_256 or multihash[1] != 0x20:
            raise ValueError("a CIDv0 must be a 34-byte sha2-256 multihash")
        return cls(0, DAG_PB, multihash)

    # views ------------------------------------------------------------------------------------

    @property
    def hash_code(self) -> int:
        """Multihash function code (``0x12`` for sha2-256)."""
        return decode_varint(self.multihash)[0]

    @property
    def digest(self) -> bytes:
        """The digest part of the multihash."""
        _code, pos = decode_varint(self.multihash)
        _length, pos = decode_varint(self.multihash, pos)
        return self.multihash[pos:]

    def to_bytes(self) -> bytes:
        """Binary form (a CIDv0 is its bare multihash)."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + encode_varint(self.codec) + self.multihash

    def to_v1(self) -> CID:
        """The same block as a CIDv1."""
        return self if self.version == 1 else CID(1, self.codec, self.multihash)

    def encode(self, base: str = "base32") -> str:
        """Text form: ``base32`` (default, ``b...``) or ``base58btc`` (``z...``).

        A CIDv0 always prints as ``Qm...`` whatever ``base`` says.
        """
        if self.version == 0:
            return b58_encode(self.multihash)
        if base == "base32":
            return "b" + b32_encode(self.to_bytes())
        if base == "base58btc":
            return "z" + b58_encode(self.to_bytes())
        raise ValueError(f"unsupported multibase {base!r}")

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"CID({self.encode()!r})"

    # verification -----------------------------------------------------------------------------

    def verify(self, data: bytes | memoryview) -> None:
        """Check that ``data`` hashes to this CID.

        Raises:
            CorruptContentError: the digest differs.
            InvalidCIDError: the CID uses a hash the store cannot compute.
        """
        if self.multihash[:2] != b"\x12\x20":
            raise InvalidCIDError(f"unsupported multihash in {self}: only sha2-256 is verified")
        if hashlib.sha256(data).digest() != self.multihash[2:]:
            raise CorruptContentError(f"block {self} does not hash to its CID")


def parse_cid(text: str | CID) -> CID:
    """Shorthand for :meth:`CID.parse`."""
    return CID.parse(text)
