"""The one content-store interface, and everything that can be built on its block API.

A backend supplies blocks (:meth:`ContentStore.get_block`, :meth:`~ContentStore.put_block`,
:meth:`~ContentStore.has_block`), pinning, and a sink to add into; this class turns that into
UnixFS reads (``cat``, ``get``, ``ls``, ``stat``), DAG walks and CAR export/import. Every block
read through it is re-hashed against its CID, and UnixFS sizes are cross-checked, so a tampered,
truncated or inconsistent DAG raises :class:`~registry.errors.CorruptContentError` instead of
yielding wrong bytes.

Downloads (:meth:`ContentStore.get`) go to a unique temporary name beside the target and are
renamed into place only once every byte is verified; on any failure the temporary file or
directory is removed.
"""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from registry.errors import CorruptContentError, StoreError
from registry.store import car
from registry.store.atomic import atomic_dir, atomic_file
from registry.store.builder import (
    BlockSink,
    DagEntry,
    EntryFn,
    HashOnlyBlockSink,
    ProgressFn,
    build_file,
    build_path,
)
from registry.store.cid import CID, DAG_PB, RAW
from registry.store.dagpb import decode_node
from registry.store.unixfs import (
    DirEntry,
    NodeStat,
    Piece,
    dir_entries,
    file_children,
    node_stat,
)

CidLike = CID | str


def _check_size(info: NodeStat, max_size: int | None) -> None:
    if max_size is not None and info.size > max_size:
        raise StoreError(f"{info.cid} holds {info.size} bytes, more than the {max_size} allowed")


class ContentStore(ABC):
    """A content-addressed store of IPFS blocks holding UnixFS files and directories.

    Backends: :class:`~registry.store.embedded.EmbeddedStore` (blocks in a local directory)
    and :class:`~registry.store.kubo.KuboStore` (an IPFS daemon's RPC API). Both mint the same
    CIDs as ``ipfs add --cid-version=1`` and both verify every block they return.
    """

    # --- backend primitives --------------------------------------------------------------------

    @abstractmethod
    def get_block(self, cid: CidLike) -> bytes:
        """Return the bytes of one block, verified against ``cid``.

        Raises:
            ContentNotFoundError: the block is not available.
            CorruptContentError: the stored bytes do not hash to ``cid``.
            InvalidCIDError: ``cid`` is malformed.
        """

    @abstractmethod
    def put_block(self, data: bytes, codec: int = RAW) -> CID:
        """Store one block and return its CIDv1 (sha2-256)."""

    @abstractmethod
    def has_block(self, cid: CidLike) -> bool:
        """Whether the block is stored locally (no network lookup)."""

    @abstractmethod
    def pin(self, cid: CidLike) -> None:
        """Keep the whole DAG under ``cid``; every block must be present (and is verified).

        Raises:
            ContentNotFoundError: a block of the DAG is missing.
        """

    @abstractmethod
    def _sink(self) -> BlockSink:
        """A sink that writes added blocks into this store."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (HTTP connections); the store is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- adding --------------------------------------------------------------------------------

    def add_stream(
        self, stream: BinaryIO, *, only_hash: bool = False, progress: ProgressFn | None = None
    ) -> CID:
        """Add the bytes of ``stream`` as a UnixFS file; streaming, bounded memory.

        Args:
            stream: binary input, read to its end.
            only_hash: compute the CID without storing anything.
            progress: called with the number of bytes consumed, as they are consumed.
        """
        sink: BlockSink = HashOnlyBlockSink() if only_hash else self._sink()
        return build_file(stream, sink, progress=progress).cid

    def add_bytes(self, data: bytes, *, only_hash: bool = False) -> CID:
        """Add ``data`` as a UnixFS file and return its CID."""
        return self.add_stream(io.BytesIO(data), only_hash=only_hash)

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        only_hash: bool = False,
        progress: ProgressFn | None = None,
    ) -> CID:
        """Add one regular file.

        Raises:
            StoreError: ``path`` is not a readable regular file.
        """
        file = Path(path)
        if not file.is_file():
            raise StoreError(f"not a regular file: {file}")
        return self.add_path(file, only_hash=only_hash, progress=progress)

    def add_dir(
        self,
        path: str | os.PathLike[str],
        *,
        only_hash: bool = False,
        include_hidden: bool = False,
        on_entry: EntryFn | None = None,
        progress: ProgressFn | None = None,
    ) -> CID:
        """Add a directory tree (as ``ipfs add -r``): the CID of the directory itself.

        Args:
            path: the directory; its own name is not part of its CID.
            only_hash: compute the CIDs without storing anything.
            include_hidden: also add names starting with ``.`` (``ipfs add -r`` skips them).
            on_entry: called for each file and directory once added, the root last.
            progress: called with content bytes consumed.

        Raises:
            StoreError: not a directory, unreadable or special files, symlink loops.
        """
        directory = Path(path)
        if not directory.is_dir():
            raise StoreError(f"not a directory: {directory}")
        return self.add_path(
            directory,
            only_hash=only_hash,
            include_hidden=include_hidden,
            on_entry=on_entry,
            progress=progress,
        )

    def add_path(
        self,
        path: str | os.PathLike[str],
        *,
        only_hash: bool = False,
        include_hidden: bool = False,
        on_entry: EntryFn | None = None,
        progress: ProgressFn | None = None,
    ) -> CID:
        """Add a file or a directory tree, whichever ``path`` is; see :meth:`add_dir`."""
        sink: BlockSink = HashOnlyBlockSink() if only_hash else self._sink()
        entry: DagEntry = build_path(
            Path(path),
            sink,
            include_hidden=include_hidden,
            on_entry=on_entry,
            progress=progress,
        )
        return entry.cid

    # --- reading -------------------------------------------------------------------------------

    def has(self, cid: CidLike) -> bool:
        """Whether the root block of ``cid`` is stored locally."""
        return self.has_block(cid)

    def stat(self, cid: CidLike) -> NodeStat:
        """Describe what ``cid`` names, from its root block alone."""
        root = CID.parse(cid)
        return node_stat(root, self.get_block(root))

    def ls(self, cid: CidLike) -> list[DirEntry]:
        """Entries of a UnixFS directory, in link order.

        Raises:
            StoreError: ``cid`` is not a plain directory (HAMT-sharded ones are not read).
            CorruptContentError: an entry name is unsafe (empty, ``.``, ``..``, has ``/``).
        """
        root = CID.parse(cid)
        return dir_entries(root, self.get_block(root))

    def file_plan(self, cid: CidLike) -> Iterator[Piece]:
        """The leaves of a UnixFS file in order, fetching (and verifying) interior nodes only.

        Sizes are cross-checked on the way: a node's ``filesize`` must equal its inline data
        plus its ``blocksizes``, and each child must hold exactly the size its parent declares.

        Raises:
            StoreError: ``cid`` is not a file.
            CorruptContentError: inconsistent sizes or malformed nodes.
        """
        yield from self._plan(CID.parse(cid), None)

    def _plan(self, cid: CID, expected: int | None) -> Iterator[Piece]:
        if cid.codec == RAW:
            yield Piece(cid, None, expected)
            return
        if cid.codec != DAG_PB:
            raise StoreError(f"{cid} is not a UnixFS file (codec 0x{cid.codec:x})")
        data, children = file_children(cid, self.get_block(cid), expected)
        if data:
            yield Piece(None, data, len(data))
        for child, size in children:
            yield from self._plan(child, size)

    def cat(self, cid: CidLike) -> Iterator[bytes]:
        """Stream the content of a UnixFS file, every block verified.

        Raises:
            ContentNotFoundError: a block is missing.
            CorruptContentError: a block does not match its CID, or sizes are inconsistent.
            StoreError: ``cid`` is a directory.
        """
        for piece in self.file_plan(cid):
            if piece.data is not None:
                yield piece.data
                continue
            assert piece.cid is not None
            block = self.get_block(piece.cid)
            if piece.size is not None and len(block) != piece.size:
                raise CorruptContentError(
                    f"leaf {piece.cid} has {len(block)} bytes, its parent says {piece.size}"
                )
            yield block

    def read(self, cid: CidLike, *, max_size: int | None = None) -> bytes:
        """Read a whole UnixFS file into memory.

        Raises:
            StoreError: the file is larger than ``max_size`` (checked before reading content).
        """
        if max_size is not None:
            _check_size(self.stat(cid), max_size)
        return b"".join(self.cat(cid))

    def get(
        self,
        cid: CidLike,
        out: str | os.PathLike[str],
        *,
        max_size: int | None = None,
        progress: ProgressFn | None = None,
    ) -> Path:
        """Download a file or directory tree to ``out``, atomically.

        Content is written under a unique temporary name beside ``out`` and renamed into place
        after every block has been verified. A file replaces an existing ``out``; a directory
        refuses to (``StoreError``). On any failure nothing is left behind.

        Args:
            cid: root of a UnixFS file or directory.
            out: destination path.
            max_size: refuse (``StoreError``) a file or tree larger than this, before download.
            progress: called with the number of content bytes written, as they are written.

        Returns:
            ``out`` as a :class:`~pathlib.Path`.
        """
        root = CID.parse(cid)
        target = Path(out)
        info = self.stat(root)
        _check_size(info, max_size)
        if info.kind == "directory":
            with atomic_dir(target) as tmp:
                self._get_dir(root, tmp, progress)
        elif info.kind == "file":
            with atomic_file(target) as handle:
                self._write_file(root, handle, progress)
        else:
            raise StoreError(f"cannot get {root}: a UnixFS {info.kind} is not a file or directory")
        return target

    def _write_file(self, cid: CID, handle: BinaryIO, progress: ProgressFn | None) -> None:
        for piece in self.cat(cid):
            handle.write(piece)
            if progress is not None:
                progress(len(piece))

    def _get_dir(self, cid: CID, target: Path, progress: ProgressFn | None) -> None:
        for entry in self.ls(cid):
            path = target / entry.name
            if entry.cid.codec != RAW and self.stat(entry.cid).kind == "directory":
                path.mkdir()
                self._get_dir(entry.cid, path, progress)
            else:
                with open(path, "xb") as handle:
                    self._write_file(entry.cid, handle, progress)

    # --- DAGs and CAR files --------------------------------------------------------------------

    def walk(self, cid: CidLike) -> Iterator[tuple[CID, bytes]]:
        """Every block of the DAG under ``cid``, depth-first pre-order, each once, verified.

        Raises:
            StoreError: a block uses a codec whose links cannot be read (not raw/dag-pb).
        """
        stack = [CID.parse(cid)]
        seen: set[tuple[int, bytes]] = set()
        while stack:
            current = stack.pop()
            key = (current.codec, current.multihash)
            if key in seen:
                continue
            seen.add(key)
            block = self.get_block(current)
            yield current, block
            if current.codec == DAG_PB:
                stack.extend(link.cid for link in reversed(decode_node(block).links))
            elif current.codec != RAW:
                raise StoreError(f"cannot walk {current}: codec 0x{current.codec:x}")

    def export_car(self, cid: CidLike, out: str | os.PathLike[str]) -> Path:
        """Write the DAG under ``cid`` as a CARv1 file (atomically) and return its path."""
        root = CID.parse(cid)
        target = Path(out)
        with atomic_file(target) as handle:
            car.write_car(handle, [root], self.walk(root))
        return target

    def import_car(self, path: str | os.PathLike[str], *, pin: bool = True) -> list[CID]:
        """Import a CARv1 file; every block is verified before it is stored.

        Args:
            path: the CAR file.
            pin: pin each root afterwards (which requires its DAG to be complete).

        Returns:
            The roots named in the CAR header.
        """
        with open(path, "rb") as handle:
            reader = car.CarReader(handle)
            self.put_blocks(reader)
            roots = reader.roots
        if pin:
            for root in roots:
                self.pin(root)
        return roots

    def put_blocks(self, blocks: Iterable[tuple[CID, bytes]]) -> None:
        """Store already verified ``(cid, data)`` pairs."""
        for cid, data in blocks:
            self.put_block(data, cid.codec)
