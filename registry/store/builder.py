"""UnixFS DAG builders: files as balanced trees of raw leaves, directories as dag-pb nodes.

The layout is the one ``ipfs add --cid-version=1`` produces (Kubo and js-ipfs agree):

1. the file is cut into 256 KiB raw leaves (:mod:`registry.store.chunker`);
2. leaves are grouped in order, 174 per parent; each parent is a dag-pb node whose UnixFS
   ``File`` data lists ``blocksizes`` (content bytes under each link) and ``filesize``;
3. parents are grouped the same way, level by level, until one node is left: the root;
4. a file of a single chunk is just that raw leaf; an empty file is the empty raw leaf;
5. a directory is a dag-pb node with UnixFS ``Directory`` data and one link per entry,
   sorted by name bytes, each carrying the entry's cumulative DAG size (``Tsize``).

The tree is built while streaming: a parent is emitted as soon as 174 children are ready, so
memory stays at one pending list per level whatever the file size.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from registry.errors import StoreError
from registry.store.chunker import HashOnlySink, LeafSink, iter_leaves
from registry.store.cid import CID, DAG_PB, RAW
from registry.store.dagpb import PBLink, directory_node, file_node

MAX_LINKS = 174
"""Children per interior file node (the balanced layout's default)."""

MAX_DIR_ENTRIES = 1000
"""Above this, importers shard directories (HAMT), which this store does not build."""

ProgressFn = Callable[[int], None]


class BlockSink(LeafSink, Protocol):
    """Where a builder sends blocks: raw leaves via ``put_leaf``, dag-pb nodes via ``put_node``."""

    def put_node(self, cid: CID, data: bytes) -> None:
        """Store (or not) a dag-pb block whose CID the builder already computed."""
        ...


@dataclass(frozen=True, slots=True)
class DagEntry:
    """A built sub-DAG.

    Attributes:
        cid: its root.
        tsize: cumulative encoded size of every block under it (the link ``Tsize``).
        filesize: content bytes (0 for a directory).
    """

    cid: CID
    tsize: int
    filesize: int


@dataclass(frozen=True, slots=True)
class AddedEntry:
    """One file or directory reported while adding a tree.

    Attributes:
        path: ``/``-separated path, starting with the name of the added file or directory.
        cid: the entry's CID.
        size: content bytes for a file; cumulative DAG size for a directory.
        is_dir: whether the entry is a directory.
    """

    path: str
    cid: CID
    size: int
    is_dir: bool


EntryFn = Callable[[AddedEntry], None]


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """A file or directory found under a root by :func:`iter_tree`."""

    relpath: str
    path: Path
    is_dir: bool
    size: int


class HashOnlyBlockSink(HashOnlySink):
    """A :class:`BlockSink` that stores nothing (``--only-hash``)."""

    def put_node(self, cid: CID, data: bytes) -> None:
        """Discard the node."""


# --- files -------------------------------------------------------------------------------------


class _Balanced:
    """Streaming balanced-layout reducer: one pending list of children per level."""

    def __init__(self, sink: BlockSink) -> None:
        self._sink = sink
        self._levels: list[list[DagEntry]] = [[]]
        self._produced: list[int] = [0]

    def push(self, level: int, entry: DagEntry) -> None:
        if level == len(self._levels):
            self._levels.append([])
            self._produced.append(0)
        self._levels[level].append(entry)
        self._produced[level] += 1
        if len(self._levels[level]) == MAX_LINKS:
            self._flush(level)

    def _flush(self, level: int) -> None:
        children = self._levels[level]
        self._levels[level] = []
        links = [PBLink(child.cid, "", child.tsize) for child in children if child.filesize]
        sizes = [child.filesize for child in children if child.filesize]
        data = file_node(links, sizes)
        cid = CID.for_block(DAG_PB, data)
        self._sink.put_node(cid, data)
        tsize = len(data) + sum(link.tsize or 0 for link in links)
        self.push(level + 1, DagEntry(cid, tsize, sum(sizes)))

    def finish(self) -> DagEntry:
        """Reduce what is pending, level by level, to the root."""
        level = 0
        while True:
            if self._produced[level] == 1:
                return self._levels[level][0]
            if self._levels[level]:
                self._flush(level)
            level += 1


def build_file(
    stream: BinaryIO,
    sink: BlockSink,
    *,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> DagEntry:
    """Chunk ``stream`` and build its UnixFS file DAG into ``sink``.

    Returns:
        The root entry; its CID equals ``ipfs add --cid-version=1 --raw-leaves``.
    """
    tree = _Balanced(sink)
    for digest, length in iter_leaves(stream, sink, workers=workers, progress=progress):
        tree.push(0, DagEntry(CID.from_digest(RAW, digest), length, length))
    return tree.finish()


def build_file_at(
    path: Path, sink: BlockSink, *, workers: int | None = None, progress: ProgressFn | None = None
) -> DagEntry:
    """:func:`build_file` over the file at ``path`` (unbuffered reads straight into buffers)."""
    try:
        with open(path, "rb", buffering=0) as stream:
            return build_file(stream, sink, workers=workers, progress=progress)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc


# --- directories -------------------------------------------------------------------------------


def _children(path: Path, include_hidden: bool) -> list[tuple[str, Path, bool]]:
    """Entries of a directory as ``(name, path, is_dir)``, sorted by name bytes.

    Symlinks are followed; other special files are refused.
    """
    out: list[tuple[str, Path, bool]] = []
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise StoreError(f"cannot list {path}: {exc.strerror or exc}") from exc
    for name in names:
        if not include_hidden and name.startswith("."):
            continue
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise StoreError(f"file name is not UTF-8: {os.path.join(path, name)!r}") from exc
        child = path / name
        try:
            mode = child.stat().st_mode
        except OSError as exc:
            raise StoreError(f"cannot stat {child}: {exc.strerror or exc}") from exc
        if stat_mod.S_ISDIR(mode):
            out.append((name, child, True))
        elif stat_mod.S_ISREG(mode):
            out.append((name, child, False))
        else:
            raise StoreError(f"unsupported file type (not a regular file or directory): {child}")
    out.sort(key=lambda item: item[0].encode("utf-8"))
    if len(out) > MAX_DIR_ENTRIES:
        raise StoreError(
            f"{path} has {len(out)} entries; directories over {MAX_DIR_ENTRIES} entries would be "
            "HAMT-sharded by IPFS, which this store does not build"
        )
    return out


def _enter(path: Path, ancestors: frozenset[tuple[int, int]]) -> frozenset[tuple[int, int]]:
    """Add ``path`` to the set of directories being walked; refuse a symlink loop."""
    st = path.stat()
    ident = (st.st_dev, st.st_ino)
    if ident in ancestors:
        raise StoreError(f"symlink loop at {path}")
    return ancestors | {ident}


def iter_tree(root: Path, *, include_hidden: bool = False) -> Iterator[TreeEntry]:
    """Walk ``root`` depth-first (parents before children, names in byte order).

    The root itself is not yielded. ``relpath`` is ``/``-separated and relative to ``root``.

    Raises:
        StoreError: unreadable entries, special files, symlink loops, oversized directories.
    """
    yield from _walk(root, "", include_hidden, frozenset())


def _walk(
    path: Path, prefix: str, include_hidden: bool, ancestors: frozenset[tuple[int, int]]
) -> Iterator[TreeEntry]:
    inside = _enter(path, ancestors)
    for name, child, is_dir in _children(path, include_hidden):
        rel = f"{prefix}{name}"
        if is_dir:
            yield TreeEntry(rel, child, True, 0)
            yield from _walk(child, rel + "/", include_hidden, inside)
        else:
            yield TreeEntry(rel, child, False, child.stat().st_size)


def build_dir(
    root: Path,
    sink: BlockSink,
    *,
    include_hidden: bool = False,
    workers: int | None = None,
    on_entry: EntryFn | None = None,
    progress: ProgressFn | None = None,
) -> DagEntry:
    """Build the UnixFS DAG of the directory ``root`` into ``sink``.

    ``on_entry`` is called for every file and directory once its CID is known (children before
    their directory, the root last), with paths starting at ``root``'s own name. Hidden entries
    (names starting with ``.``) are skipped unless ``include_hidden``, as ``ipfs add -r`` does.
    """
    return _build_dir(
        root, root.name or "root", sink, include_hidden, workers, on_entry, progress, frozenset()
    )


def _build_dir(
    path: Path,
    display: str,
    sink: BlockSink,
    include_hidden: bool,
    workers: int | None,
    on_entry: EntryFn | None,
    progress: ProgressFn | None,
    ancestors: frozenset[tuple[int, int]],
) -> DagEntry:
    inside = _enter(path, ancestors)
    links: list[PBLink] = []
    for name, child, is_dir in _children(path, include_hidden):
        shown = f"{display}/{name}"
        if is_dir:
            entry = _build_dir(
                child,
                shown,
                sink,
                include_hidden,
                workers,
                on_entry,
                progress,
                inside,
            )
        else:
            entry = build_file_at(child, sink, workers=workers, progress=progress)
            if on_entry is not None:
                on_entry(AddedEntry(shown, entry.cid, entry.filesize, False))
        links.append(PBLink(entry.cid, name, entry.tsize))
    data = directory_node(links)
    cid = CID.for_block(DAG_PB, data)
    sink.put_node(cid, data)
    tsize = len(data) + sum(link.tsize or 0 for link in links)
    if on_entry is not None:
        on_entry(AddedEntry(display, cid, tsize, True))
    return DagEntry(cid, tsize, 0)


def build_path(
    path: Path,
    sink: BlockSink,
    *,
    include_hidden: bool = False,
    workers: int | None = None,
    on_entry: EntryFn | None = None,
    progress: ProgressFn | None = None,
) -> DagEntry:
    """Build a file or a directory tree, whichever ``path`` is."""
    if path.is_dir():
        return build_dir(
            path,
            sink,
            include_hidden=include_hidden,
            workers=workers,
            on_entry=on_entry,
            progress=progress,
        )
    if not path.exists():
        raise StoreError(f"no such file or directory: {path}")
    entry = build_file_at(path, sink, workers=workers, progress=progress)
    if on_entry is not None:
        on_entry(AddedEntry(path.name, entry.cid, entry.filesize, False))
    return entry


def tree_size(path: Path, *, include_hidden: bool = False) -> int:
    """Content bytes an add of ``path`` will read (for progress bars)."""
    if path.is_dir():
        return sum(e.size for e in iter_tree(path, include_hidden=include_hidden))
    if not path.exists():
        raise StoreError(f"no such file or directory: {path}")
    return path.stat().st_size
