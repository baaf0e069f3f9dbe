"""The gateway's view of the content store: every block read is counted (and verified by the
backend), and the CIDs of gated models' files are known so ``/ipfs`` can refuse them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from registry.store.base import CidLike, ContentStore
from registry.store.builder import BlockSink
from registry.store.cid import CID, DAG_PB, RAW


class CountingStore(ContentStore):
    """Delegates the block primitives to ``inner`` and counts blocks read.

    Args:
        inner: the real store (embedded or Kubo).
        on_read: called once per block read (e.g. a Prometheus counter's ``inc``).
    """

    def __init__(self, inner: ContentStore, on_read: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.on_read = on_read
        self.reads = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CountingStore({self.inner!r})"

    def get_block(self, cid: CidLike) -> bytes:
        with self._lock:
            self.reads += 1
        if self.on_read is not None:
            self.on_read()
        return self.inner.get_block(cid)

    def put_block(self, data: bytes, codec: int = RAW) -> CID:
        return self.inner.put_block(data, codec)

    def has_block(self, cid: CidLike) -> bool:
        return self.inner.has_block(cid)

    def pin(self, cid: CidLike) -> None:
        self.inner.pin(cid)

    def _sink(self) -> BlockSink:
        return self.inner._sink()

    def close(self) -> None:
        self.inner.close()


def tree_cids(store: ContentStore, root: str, *, limit: int = 100_000) -> set[str]:
    """The CIDs of a model directory: the root, sub-directories, and every file's root block.

    Chunk blocks of large files are not listed: their CIDs are only reachable through the file
    root, which is.
    """
    out: set[str] = set()
    pending = [CID.parse(root)]
    while pending and len(out) < limit:
        cid = pending.pop()
        out.add(str(cid.to_v1()))
        if cid.codec != DAG_PB:
            continue
        if store.stat(cid).kind == "directory":
            pending.extend(entry.cid for entry in store.ls(cid))
    return out


def normalize(cids: Iterable[CidLike]) -> set[str]:
    """CIDs in their CIDv1 base32 text form."""
    return {str(CID.parse(c).to_v1()) for c in cids}
