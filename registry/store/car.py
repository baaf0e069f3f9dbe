"""CARv1 archives: write and read, verifying every block.

Layout (https://ipld.io/specs/transport/car/carv1/)::

    varint(len(header)) | header | { varint(len(cid) + len(data)) | cid | data }*

The header is the dag-cbor map ``{"roots": [CID, ...], "version": 1}``. dag-cbor sorts map keys
by length then bytes, so ``roots`` comes first; a CID is CBOR tag 42 over a byte string holding
``0x00`` (the identity multibase) and the binary CID. That is all the CBOR this module needs, so
it is encoded by hand; the reader decodes the small subset of CBOR a header may use.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO, Protocol

from registry.errors import CorruptContentError, InvalidCIDError, StoreError
from registry.store.cid import CID, decode_varint, encode_varint

MAX_SECTION = 8 << 20
"""Largest block section accepted (IPFS blocks are at most 2 MiB in practice)."""

MAX_HEADER = 1 << 20


class Readable(Protocol):
    """Anything with ``read(size) -> bytes`` (a file, a streamed HTTP body)."""

    def read(self, size: int, /) -> bytes: ...


# --- CBOR (the subset a CAR header uses) -------------------------------------------------------


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    if value < 1 << 8:
        return bytes([major << 5 | 24, value])
    if value < 1 << 16:
        return bytes([major << 5 | 25]) + struct.pack(">H", value)
    if value < 1 << 32:
        return bytes([major << 5 | 26]) + struct.pack(">I", value)
    return bytes([major << 5 | 27]) + struct.pack(">Q", value)


def _cbor_text(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _cbor_head(3, len(raw)) + raw


def _cbor_cid(cid: CID) -> bytes:
    raw = b"\x00" + cid.to_bytes()
    return _cbor_head(6, 42) + _cbor_head(2, len(raw)) + raw


def encode_header(roots: Sequence[CID]) -> bytes:
    """The dag-cbor CARv1 header (without its length prefix)."""
    out = _cbor_head(5, 2) + _cbor_text("roots") + _cbor_head(4, len(roots))
    out += b"".join(_cbor_cid(root) for root in roots)
    return out + _cbor_text("version") + _cbor_head(0, 1)


class _Cbor:
    """Decoder for uints, byte/text strings, arrays, maps, tag 42, booleans and null."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated CBOR")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        sizes = {24: 1, 25: 2, 26: 4, 27: 8}
        if info not in sizes:
            raise ValueError("indefinite-length CBOR is not dag-cbor")
        return int.from_bytes(self._take(sizes[info]), "big")

    def item(self, depth: int = 0) -> object:
        if depth > 16:
            raise ValueError("CBOR nested too deeply")
        initial = self._take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            simple = {20: False, 21: True, 22: None}
            if info not in simple:
                raise ValueError(f"unsupported CBOR simple value {info}")
            return simple[info]
        value = self._arg(info)
        if major == 0:
            return value
        if major == 1:
            return -1 - value
        if major == 2:
            return self._take(value)
        if major == 3:
            return self._take(value).decode("utf-8")
        if major == 4:
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            out: dict[object, object] = {}
            for _ in range(value):
                key = self.item(depth + 1)
                if not isinstance(key, str):
                    raise ValueError("dag-cbor map keys must be strings")
                out[key] = self.item(depth + 1)
            return out
        if value != 42:
            raise ValueError(f"unsupported CBOR tag {value}")
        raw = self.item(depth + 1)
        if not isinstance(raw, bytes) or not raw.startswith(b"\x00"):
            raise ValueError("tag 42 must wrap 0x00 + binary CID")
        return CID.decode(raw[1:])


def decode_header(data: bytes) -> list[CID]:
    """Parse a CARv1 header and return its roots.

    Raises:
        CorruptContentError: malformed header.
        StoreError: a CAR version other than 1.
    """
    try:
        decoder = _Cbor(data)
        header = decoder.item()
        if decoder.pos != len(data):
            raise ValueError("trailing bytes after the header")
    except (ValueError, UnicodeDecodeError, InvalidCIDError) as exc:
        raise CorruptContentError(f"malformed CAR header: {exc}") from exc
    if not isinstance(header, dict):
        raise CorruptContentError("malformed CAR header: not a map")
    if header.get("version") != 1:
        raise StoreError(f"unsupported CAR version {header.get('version')!r} (only CARv1)")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise CorruptContentError("malformed CAR header: roots must be a list of CIDs")
    return [r for r in roots if isinstance(r, CID)]


# --- writing -----------------------------------------------------------------------------------


def write_car(out: BinaryIO, roots: Sequence[CID], blocks: Iterable[tuple[CID, bytes]]) -> int:
    """Write a CARv1 stream; returns the number of bytes written."""
    header = encode_header(roots)
    written = out.write(encode_varint(len(header)) + header)
    for cid, data in blocks:
        raw = cid.to_bytes()
        written += out.write(encode_varint(len(raw) + len(data)) + raw)
        written += out.write(data)
    return written


# --- reading -----------------------------------------------------------------------------------


def _read_varint(stream: Readable) -> int | None:
    """Read one varint; ``None`` at a clean end of stream."""
    buf = bytearray()
    while True:
        byte = stream.read(1)
        if not byte:
            if buf:
                raise CorruptContentError("truncated CAR: cut inside a length prefix")
            return None
        buf += byte
        if byte[0] < 0x80:
            try:
                return decode_varint(bytes(buf))[0]
            except ValueError as exc:
                raise CorruptContentError(f"malformed CAR length: {exc}") from exc
        if len(buf) >= 9:
            raise CorruptContentError("malformed CAR length: varint too long")


def _read_exact(stream: Readable, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise CorruptContentError(f"truncated CAR: expected {size} bytes, got {len(data)}")
    return data


class CarReader:
    """Iterate the blocks of a CARv1 stream as verified ``(cid, data)`` pairs.

    The header is read on construction (``roots``). Iteration re-hashes each block against its
    CID and raises :class:`~registry.errors.CorruptContentError` on a mismatch, a truncated
    stream or a section larger than :data:`MAX_SECTION`.
    """

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        size = _read_varint(stream)
        if size is None:
            raise CorruptContentError("empty CAR file")
        if size == 0 or size > MAX_HEADER:
            raise CorruptContentError(f"malformed CAR: header length {size}")
        self.roots: list[CID] = decode_header(_read_exact(stream, size))

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        while True:
            size = _read_varint(self._stream)
            if size is None:
                return
            if size > MAX_SECTION:
                raise CorruptContentError(f"CAR section of {size} bytes exceeds {MAX_SECTION}")
            section = _read_exact(self._stream, size)
            try:
                cid, offset = CID.decode_prefix(section)
            except InvalidCIDError as exc:
                raise CorruptContentError(f"malformed CID in CAR: {exc}") from exc
            data = section[offset:]
            cid.verify(data)
            yield cid, data


def read_car(stream: Readable) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    """Read a whole (small) CAR into memory: ``(roots, blocks)``, every block verified."""
    reader = CarReader(stream)
    return reader.roots, list(reader)
