"""Reading UnixFS nodes: what a block is, a directory's entries, a file's children.

Pure functions over one block each; :class:`~registry.store.base.ContentStore` fetches the
blocks. Everything a hostile DAG could lie about is checked here: a file node's ``filesize``
must equal its inline data plus its ``blocksizes``, each child must hold what its parent says,
and directory entry names must be safe to create on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from registry.errors import CorruptContentError, StoreError
from registry.store.cid import CID, DAG_PB, RAW
from registry.store.dagpb import PBNode, UnixFSData, UnixFSType, decode_node, decode_unixfs

Kind = Literal["file", "directory", "symlink", "other"]

_KINDS: dict[UnixFSType, Kind] = {
    UnixFSType.FILE: "file",
    UnixFSType.RAW: "file",
    UnixFSType.DIRECTORY: "directory",
    UnixFSType.HAMT_SHARD: "directory",
    UnixFSType.SYMLINK: "symlink",
}


@dataclass(frozen=True, slots=True)
class NodeStat:
    """What a CID names.

    Attributes:
        cid: the CID asked about.
        kind: ``file`` (raw leaf or UnixFS file), ``directory``, ``symlink`` or ``other``.
        size: content bytes of a file; cumulative DAG size of anything else.
        block_size: bytes of the root block itself.
        links: number of links of the root block.
    """

    cid: CID
    kind: Kind
    size: int
    block_size: int
    links: int


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One entry of a UnixFS directory."""

    name: str
    cid: CID
    tsize: int


@dataclass(frozen=True, slots=True)
class Piece:
    """One step of reading a file: inline bytes already verified, or a raw leaf to fetch.

    Attributes:
        cid: raw leaf to fetch, or ``None`` when ``data`` is set.
        data: bytes carried inside an already verified dag-pb node.
        size: expected length of the leaf (``None`` when the file is a bare raw block).
    """

    cid: CID | None
    data: bytes | None
    size: int | None


def decode_unixfs_node(block: bytes) -> tuple[PBNode, UnixFSData]:
    """Decode a dag-pb block and its UnixFS data (``CorruptContentError`` if malformed)."""
    node = decode_node(block)
    return node, decode_unixfs(node.data)


def node_stat(cid: CID, block: bytes) -> NodeStat:
    """Describe the (verified) root block ``block`` of ``cid``."""
    if cid.codec == RAW:
        return NodeStat(cid, "file", len(block), len(block), 0)
    if cid.codec != DAG_PB:
        return NodeStat(cid, "other", len(block), len(block), 0)
    node, meta = decode_unixfs_node(block)
    kind = _KINDS.get(meta.type, "other")
    if kind == "file":
        size = meta.filesize if meta.filesize is not None else len(meta.data)
    else:
        size = len(block) + sum(link.tsize or 0 for link in node.links)
    return NodeStat(cid, kind, size, len(block), len(node.links))


def dir_entries(cid: CID, block: bytes) -> list[DirEntry]:
    """Entries of a plain UnixFS directory, in link order.

    Raises:
        StoreError: not a plain directory (HAMT-sharded ones are not read).
        CorruptContentError: an entry name is unsafe (empty, ``.``, ``..``, ``/`` or NUL).
    """
    if cid.codec != DAG_PB:
        raise StoreError(f"{cid} is not a directory")
    node, meta = decode_unixfs_node(block)
    if meta.type != UnixFSType.DIRECTORY:
        raise StoreError(f"{cid} is not a directory")
    entries: list[DirEntry] = []
    for link in node.links:
        name = link.name or ""
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise CorruptContentError(f"directory {cid} has an unsafe entry name {name!r}")
        entries.append(DirEntry(name, link.cid, link.tsize or 0))
    return entries


def file_children(
    cid: CID, block: bytes, expected: int | None
) -> tuple[bytes, list[tuple[CID, int]]]:
    """Inline data and ``(child, size)`` links of a dag-pb UnixFS file node.

    Args:
        cid: the node's CID (for messages).
        block: its verified bytes.
        expected: content bytes its parent says it holds, if it has a parent.

    Raises:
        StoreError: the node is a directory or another non-file type.
        CorruptContentError: sizes disagree with each other or with the parent.
    """
    node, meta = decode_unixfs_node(block)
    if meta.type in (UnixFSType.DIRECTORY, UnixFSType.HAMT_SHARD):
        raise StoreError(f"{cid} is a directory, not a file")
    if meta.type not in (UnixFSType.FILE, UnixFSType.RAW):
        raise StoreError(f"{cid} is a UnixFS {meta.type.name.lower()}, not a file")
    if len(node.links) != len(meta.blocksizes):
        raise CorruptContentError(f"file node {cid}: {len(node.links)} links, blocksizes differ")
    total = len(meta.data) + sum(meta.blocksizes)
    if meta.filesize is not None and meta.filesize != total:
        raise CorruptContentError(f"file node {cid}: filesize {meta.filesize} != {total}")
    if expected is not None and expected != total:
        raise CorruptContentError(f"file node {cid}: holds {total} bytes, parent says {expected}")
    children = [(link.cid, size) for link, size in zip(node.links, meta.blocksizes, strict=True)]
    return meta.data, children
