"""dag-pb nodes and UnixFS ``Data`` messages, encoded by hand.

The byte layout follows the dag-pb spec exactly as go-ipfs/Kubo and js-ipfs write it, so the
CIDs this store mints are the ones an IPFS node mints for the same content:

* ``PBNode``: every ``Links`` entry (field 2) first, then ``Data`` (field 1);
* ``PBLink``: ``Hash`` (1), ``Name`` (2, written even when empty), ``Tsize`` (3);
* UnixFS ``Data``: ``Type`` (1), ``Data`` (2, omitted when empty), ``filesize`` (3, files
  only), ``blocksizes`` (4, one unpacked varint each), then the optional fields 5-8.

Schemas (proto2)::

    message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
    message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }
    message Data { required DataType Type = 1; optional bytes Data = 2;
                   optional uint64 filesize = 3; repeated uint64 blocksizes = 4;
                   optional uint64 hashType = 5; optional uint64 fanout = 6;
                   optional uint32 mode = 7; optional UnixTime mtime = 8; }
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from registry.errors import CorruptContentError, InvalidCIDError
from registry.store.cid import CID, decode_varint, encode_varint

_T = TypeVar("_T")
_VARINT = 0
_LEN = 2


class UnixFSType(IntEnum):
    """UnixFS ``Data.Type``."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class PBLink:
    """A named, sized link of a dag-pb node.

    Attributes:
        cid: target block.
        name: entry name in a directory; ``""`` for file chunks; ``None`` when absent.
        tsize: cumulative size of the target DAG (encoded bytes), when known.
    """

    cid: CID
    name: str | None = ""
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class PBNode:
    """A dag-pb node: ordered links plus opaque ``data`` (a UnixFS message in practice)."""

    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """A decoded UnixFS ``Data`` message (the fields the store uses, plus raw extras)."""

    type: UnixFSType
    data: bytes = b""
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    mtime: bytes | None = None
    extra: tuple[tuple[int, int, bytes | int], ...] = field(default=())


# --- protobuf wire helpers ---------------------------------------------------------------------


def _key(field_no: int, wire: int) -> bytes:
    return encode_varint(field_no << 3 | wire)


def _len_field(field_no: int, payload: bytes) -> bytes:
    return _key(field_no, _LEN) + encode_varint(len(payload)) + payload


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, bytes | int]]:
    """Yield ``(field, wire_type, value)`` for each field; value is bytes or int."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = decode_varint(buf, pos)
        field_no, wire = key >> 3, key & 7
        if field_no == 0:
            raise ValueError("protobuf field number 0")
        if wire == _VARINT:
            value, pos = decode_varint(buf, pos)
            yield field_no, wire, value
        elif wire == _LEN:
            length, pos = decode_varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated protobuf field")
            yield field_no, wire, bytes(buf[pos : pos + length])
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


# --- dag-pb ------------------------------------------------------------------------------------


def encode_link(link: PBLink) -> bytes:
    """Encode one ``PBLink`` message (without its outer key/length)."""
    out = _len_field(1, link.cid.to_bytes())
    if link.name is not None:
        out += _len_field(2, link.name.encode("utf-8"))
    if link.tsize is not None:
        out += _key(3, _VARINT) + encode_varint(link.tsize)
    return out


def encode_node(node: PBNode) -> bytes:
    """Encode a ``PBNode``: links in the given order, then data."""
    parts = [_len_field(2, encode_link(link)) for link in node.links]
    if node.data is not None:
        parts.append(_len_field(1, node.data))
    return b"".join(parts)


def decode_node(block: bytes | memoryview) -> PBNode:
    """Decode a dag-pb block.

    Raises:
        CorruptContentError: the bytes are not a valid dag-pb node.
    """
    links: list[PBLink] = []
    data: bytes | None = None
    try:
        for field_no, wire, value in _fields(block):
            if field_no == 2 and wire == _LEN and isinstance(value, bytes):
                if data is not None:
                    raise ValueError("dag-pb Links after Data")
                links.append(_decode_link(value))
            elif field_no == 1 and wire == _LEN and isinstance(value, bytes):
                if data is not None:
                    raise ValueError("duplicate dag-pb Data")
                data = value
            else:
                raise ValueError(f"unexpected dag-pb field {field_no}")
    except (ValueError, InvalidCIDError) as exc:
        raise CorruptContentError(f"malformed dag-pb node: {exc}") from exc
    return PBNode(tuple(links), data)


def _decode_link(buf: bytes) -> PBLink:
    cid: CID | None = None
    name: str | None = None
    tsize: int | None = None
    for field_no, wire, value in _fields(buf):
        if field_no == 1 and wire == _LEN and isinstance(value, bytes):
            cid = CID.decode(value)
        elif field_no == 2 and wire == _LEN and isinstance(value, bytes):
            name = value.decode("utf-8")
        elif field_no == 3 and wire == _VARINT and isinstance(value, int):
            tsize = value
        else:
            raise ValueError(f"unexpected dag-pb link field {field_no}")
    if cid is None:
        raise ValueError("dag-pb link without Hash")
    return PBLink(cid, name, tsize)


# --- UnixFS ------------------------------------------------------------------------------------


def encode_unixfs(
    kind: UnixFSType,
    *,
    data: bytes = b"",
    filesize: int | None = None,
    blocksizes: Sequence[int] = (),
) -> bytes:
    """Encode a UnixFS ``Data`` message as the importers do (no mode/mtime)."""
    out = bytearray(_key(1, _VARINT) + encode_varint(int(kind)))
    if data:
        out += _len_field(2, data)
    if filesize is not None:
        out += _key(3, _VARINT) + encode_varint(filesize)
    key4 = _key(4, _VARINT)
    for size in blocksizes:
        out += key4 + encode_varint(size)
    return bytes(out)


def decode_unixfs(buf: bytes | None) -> UnixFSData:
    """Decode a UnixFS ``Data`` message.

    Raises:
        CorruptContentError: malformed message or unknown type.
    """
    if buf is None:
        raise CorruptContentError("dag-pb node has no UnixFS data")
    kind: int | None = None
    values: dict[str, object] = {}
    blocksizes: list[int] = []
    extra: list[tuple[int, int, bytes | int]] = []
    try:
        for field_no, wire, value in _fields(buf):
            if field_no == 1 and isinstance(value, int):
                kind = value
            elif field_no == 2 and isinstance(value, bytes):
                values["data"] = value
            elif field_no == 3 and isinstance(value, int):
                values["filesize"] = value
            elif field_no == 4 and isinstance(value, int):
                blocksizes.append(value)
            elif field_no == 4 and isinstance(value, bytes):  # packed encoding
                pos = 0
                while pos < len(value):
                    size, pos = decode_varint(value, pos)
                    blocksizes.append(size)
            elif field_no == 5 and isinstance(value, int):
                values["hash_type"] = value
            elif field_no == 6 and isinstance(value, int):
                values["fanout"] = value
            elif field_no == 7 and isinstance(value, int):
                values["mode"] = value
            elif field_no == 8 and isinstance(value, bytes):
                values["mtime"] = value
            else:
                extra.append((field_no, wire, value))
        if kind is None:
            raise ValueError("UnixFS Data without Type")
        utype = UnixFSType(kind)
    except ValueError as exc:
        raise CorruptContentError(f"malformed UnixFS data: {exc}") from exc
    return UnixFSData(
        type=utype,
        data=_opt(values, "data", bytes) or b"",
        filesize=_opt(values, "filesize", int),
        blocksizes=tuple(blocksizes),
        hash_type=_opt(values, "hash_type", int),
        fanout=_opt(values, "fanout", int),
        mode=_opt(values, "mode", int),
        mtime=_opt(values, "mtime", bytes),
        extra=tuple(extra),
    )


def _opt(values: dict[str, object], key: str, kind: type[_T]) -> _T | None:
    value = values.get(key)
    return value if isinstance(value, kind) else None


# --- the nodes the importer builds -------------------------------------------------------------

DIRECTORY_DATA = encode_unixfs(UnixFSType.DIRECTORY)


def file_node(links: Sequence[PBLink], blocksizes: Sequence[int]) -> bytes:
    """Encode an interior UnixFS file node over ``links`` (chunks or sub-trees)."""
    data = encode_unixfs(UnixFSType.FILE, filesize=sum(blocksizes), blocksizes=blocksizes)
    return encode_node(PBNode(tuple(links), data))


def directory_node(links: Sequence[PBLink]) -> bytes:
    """Encode a UnixFS directory over ``links``, sorted by name bytes as dag-pb requires."""
    ordered = sorted(links, key=lambda link: (link.name or "").encode("utf-8"))
    return encode_node(PBNode(tuple(ordered), DIRECTORY_DATA))
