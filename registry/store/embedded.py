"""The embedded content store: IPFS blocks as files in a data directory, no daemon.

Layout under the store root::

    blocks/<xy>/<key>     one file per block; <key> = base32 (lower case) of the block's
                          multihash, <xy> = its next-to-last two characters (flatfs-style
                          sharding; a CID's own first characters are always "bafy"/"bafk")
    pins/<cid>            an empty file per pinned root (CIDv1, base32)

Blocks are keyed by multihash, as IPFS blockstores are, so a CIDv0 and the CIDv1 of the same
bytes find the same file. Each write goes to a unique temporary file in the shard directory and
is renamed over the final name, so readers never see a partial block and concurrent writers of
the same block are harmless. Each read re-hashes the block against the CID asked for.

Without ``durable=True`` blocks are not fsync'ed: after a crash a block may be empty or short,
which reads detect (``CorruptContentError``) and the next add of the same content repairs,
because a block whose file has the wrong size is rewritten.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from registry.errors import ContentNotFoundError, StoreError, StoreUnavailableError
from registry.store.base import CidLike, ContentStore
from registry.store.builder import BlockSink
from registry.store.cid import CID, RAW, b32_encode


class EmbeddedStore(ContentStore):
    """Content store in a local directory; thread-safe, no background process.

    Args:
        root: the store directory (created if missing).
        durable: fsync every block before renaming it into place.
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.durable = durable
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        try:
            self._blocks.mkdir(parents=True, exist_ok=True)
            self._pins.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot use store directory {self.root}: {exc.strerror or exc}"
            ) from exc
        self._shards: set[str] = set()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    # --- paths ---------------------------------------------------------------------------------

    def block_path(self, cid: CidLike) -> Path:
        """Where the block of ``cid`` lives (whether or not it exists)."""
        return self._path_for(CID.parse(cid).multihash)

    def _path_for(self, multihash: bytes) -> Path:
        key = b32_encode(multihash)
        return self._blocks / key[-3:-1] / key

    # --- blocks --------------------------------------------------------------------------------

    def get_block(self, cid: CidLike) -> bytes:
        """Read one block and verify it against ``cid``; see :meth:`ContentStore.get_block`."""
        parsed = CID.parse(cid)
        try:
            data = self._path_for(parsed.multihash).read_bytes()
        except FileNotFoundError:
            raise ContentNotFoundError(f"block {parsed} not found in {self.root}") from None
        except OSError as exc:
            raise StoreError(f"cannot read block {parsed}: {exc.strerror or exc}") from exc
        parsed.verify(data)
        return data

    def has_block(self, cid: CidLike) -> bool:
        """Whether a file for the block exists (its content is checked only on read)."""
        return self._path_for(CID.parse(cid).multihash).is_file()

    def put_block(self, data: bytes, codec: int = RAW) -> CID:
        """Store one block; returns its CIDv1."""
        digest = hashlib.sha256(data).digest()
        self._write(b"\x12\x20" + digest, memoryview(data))
        return CID.from_digest(codec, digest)

    def _write(self, multihash: bytes, data: memoryview) -> None:
        path = self._path_for(multihash)
        try:
            if path.stat().st_size == len(data):
                return  # already stored (content is verified on every read)
        except FileNotFoundError:
            pass
        shard = path.parent
        if shard.name not in self._shards:
            shard.mkdir(exist_ok=True)
            self._shards.add(shard.name)
        tmp = shard / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = data
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            if isinstance(exc, OSError):
                raise StoreError(f"cannot write block to {path}: {exc.strerror or exc}") from exc
            raise

    def _sink(self) -> BlockSink:
        return _EmbeddedSink(self)

    # --- pins ----------------------------------------------------------------------------------

    def pin(self, cid: CidLike) -> None:
        """Verify every block under ``cid`` is present and intact, then record the pin."""
        root = CID.parse(cid).to_v1()
        for _block in self.walk(root):
            pass
        (self._pins / str(root)).touch()

    def unpin(self, cid: CidLike) -> None:
        """Forget a pin (blocks stay until a future garbage collection)."""
        (self._pins / str(CID.parse(cid).to_v1())).unlink(missing_ok=True)

    def pins(self) -> list[CID]:
        """Pinned roots, sorted by their text form."""
        return [
            CID.parse(p.name) for p in sorted(self._pins.iterdir()) if not p.name.startswith(".")
        ]


class _EmbeddedSink:
    """Writes the blocks of an add straight into an :class:`EmbeddedStore`."""

    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store

    def put_leaf(self, chunk: memoryview) -> bytes:
        digest = hashlib.sha256(chunk).digest()
        self._store._write(b"\x12\x20" + digest, chunk)
        return digest

    def put_node(self, cid: CID, data: bytes) -> None:
        self._store._write(cid.multihash, memoryview(data))
