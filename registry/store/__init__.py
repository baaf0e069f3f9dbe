"""Content store: IPFS-compatible (UnixFS, CIDv1) storage of model files and directories.

Two backends behind one interface, :class:`ContentStore`:

* :class:`EmbeddedStore`: blocks as files in the data directory, no daemon (the default);
* :class:`KuboStore`: an IPFS daemon (Kubo or js-ipfs) over its RPC API.

Both mint the CIDs ``ipfs add --cid-version=1`` mints (raw leaves, 256 KiB chunks, balanced
DAG of 174 links, dag-pb directories, base32) and verify every block they read.
:func:`open_store` picks one from a path or URL.
"""

from typing import TYPE_CHECKING

from registry.store.base import ContentStore
from registry.store.builder import AddedEntry
from registry.store.cid import CID, DAG_PB, RAW, parse_cid
from registry.store.embedded import EmbeddedStore
from registry.store.factory import default_store_spec, open_store
from registry.store.unixfs import DirEntry, NodeStat

if TYPE_CHECKING:
    from registry.store.kubo import KuboStore


def __getattr__(name: str) -> object:
    # KuboStore pulls in httpx; import it only when asked for (keeps `add --only-hash` fast)
    if name == "KuboStore":
        from registry.store.kubo import KuboStore

        return KuboStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CID",
    "DAG_PB",
    "RAW",
    "AddedEntry",
    "ContentStore",
    "DirEntry",
    "EmbeddedStore",
    "KuboStore",
    "NodeStat",
    "default_store_spec",
    "open_store",
    "parse_cid",
]
