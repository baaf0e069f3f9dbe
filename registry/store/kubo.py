"""The Kubo RPC backend: a content store that is an IPFS daemon's HTTP API.

Speaks the ``/api/v0`` RPC of Kubo (go-ipfs) and of js-ipfs over :mod:`httpx`. The official
Python client, ``ipfshttpclient``, is unmaintained and refuses current daemons with a
``VersionMismatch``, hence this thin client of our own.

* ``add`` passes every layout parameter explicitly (``cid-version=1``, ``raw-leaves=true``,
  ``chunker=size-262144``, ``trickle=false``, ``hash=sha2-256``, ``cid-base=base32``) so the
  daemon mints the same CIDs as the embedded store whatever its defaults. Uploads stream a
  multipart body built here, with URL-encoded file names as both daemons expect.
* Reads are verified here, not trusted to the daemon: ``block/get`` results are re-hashed;
  ``cat`` fetches the file's interior nodes with ``block/get``, then streams ``/api/v0/cat`` and
  hashes each leaf-sized slice against the leaf CID named by its (verified) parent.
* ``export_car`` streams ``dag/export`` and verifies the CAR before renaming it into place;
  ``import_car`` verifies the CAR locally before ``dag/import`` (js-ipfs does not check hashes).
* Errors are translated once, in :func:`registry.store.rpc.raise_for`: unreachable daemon →
  ``StoreUnavailableError``; missing content or timeout → ``ContentNotFoundError``; other API
  errors → ``StoreError``.

js-ipfs quirks handled (found against js-ipfs 0.66 / core 0.18): a multipart upload may not
start with a directory part, so non-empty directories are left implicit in the file paths;
``block/put`` ignores ``cid-codec`` and wants ``format``; ``offline=true`` is ignored, so local
existence checks use a short ``timeout``.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from registry.errors import (
    ContentNotFoundError,
    CorruptContentError,
    StoreError,
    StoreUnavailableError,
)
from registry.store import car
from registry.store.atomic import atomic_file
from registry.store.base import CidLike, ContentStore
from registry.store.builder import (
    AddedEntry,
    BlockSink,
    EntryFn,
    HashOnlyBlockSink,
    ProgressFn,
    build_path,
    iter_tree,
)
from registry.store.chunker import CHUNK_SIZE
from registry.store.cid import CID, CODEC_NAMES, RAW
from registry.store.rpc import ExactReader, RpcClient, Upload, seconds

MAX_RAW_ROOT = 4 << 20
"""Most bytes read for a file that is one bare raw block (IPFS blocks are at most 2 MiB)."""

ADD_PARAMS: dict[str, str] = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "trickle": "false",
    "hash": "sha2-256",
    "cid-base": "base32",
    "wrap-with-directory": "false",
    "progress": "false",
}
"""The ``/api/v0/add`` parameters that make a daemon's CIDs equal the embedded store's."""


class KuboStore(ContentStore):
    """Content store backed by an IPFS daemon (Kubo or js-ipfs) over its RPC API.

    Args:
        url: API base, e.g. ``http://127.0.0.1:5001`` (``/api/v0`` is appended).
        timeout: seconds for connecting and between bytes of a response (raised to
            ``fetch_timeout`` + 5 if lower, so the daemon's own timeout fires first).
        fetch_timeout: how long the daemon may spend on one block, ``cat``, ``dag/export`` or
            ``pin/add`` of content it must look for (the API's ``timeout``); after that the
            content counts as not found. Raise it to pin large DAGs from the network.
        local_timeout: the same for local existence checks (``has``).
        client: an :class:`httpx.Client` to use instead of a new one (tests, proxies).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 60.0,
        fetch_timeout: float = 30.0,
        local_timeout: float = 1.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._rpc = RpcClient(url, timeout=max(timeout, fetch_timeout + 5), client=client)
        self.url = self._rpc.url
        self.fetch_timeout = fetch_timeout
        self.local_timeout = local_timeout
        self._flavour: str | None = None

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._rpc.close()

    # --- daemon -------------------------------------------------------------------------------

    @property
    def flavour(self) -> str:
        """``"js-ipfs"`` or ``"kubo"``, from the daemon's agent version (cached)."""
        if self._flavour is None:
            agent = str(self._rpc.json_lines("id", {})[0].get("AgentVersion", ""))
            self._flavour = "js-ipfs" if agent.startswith("js-ipfs") else "kubo"
        return self._flavour

    def version(self) -> dict[str, Any]:
        """The daemon's ``/api/v0/version`` answer."""
        return self._rpc.json_lines("version", {})[0]

    # --- blocks --------------------------------------------------------------------------------

    def get_block(self, cid: CidLike) -> bytes:
        """Fetch one block (``block/get``) and verify it against ``cid``."""
        parsed = CID.parse(cid)
        data = self._rpc.call(
            "block/get", {"arg": str(parsed), "timeout": seconds(self.fetch_timeout)}
        )
        parsed.verify(data)
        return data

    def has_block(self, cid: CidLike) -> bool:
        """``block/stat`` offline (Kubo) or with a short timeout (js-ipfs)."""
        params = {
            "arg": str(CID.parse(cid)),
            "offline": "true",
            "timeout": seconds(self.local_timeout),
        }
        try:
            self._rpc.call("block/stat", params)
        except ContentNotFoundError:
            return False
        return True

    def put_block(self, data: bytes, codec: int = RAW) -> CID:
        """``block/put`` one block; the daemon's answer is checked against the local hash."""
        expected = CID.for_block(codec, data)
        name = CODEC_NAMES.get(codec)
        if name is None:
            raise StoreError(f"cannot put a block of codec 0x{codec:x}")
        params = {"mhtype": "sha2-256", "pin": "false"}
        if self.flavour == "js-ipfs":
            params |= {"format": name, "version": "1"}
        else:
            params |= {"cid-codec": name}
        upload = Upload()
        upload.parts.append(("block", io.BytesIO(data)))
        answer = self._rpc.json_lines(
            "block/put", params, content=iter(upload), headers={"Content-Type": upload.content_type}
        )
        got = CID.parse(str(answer[-1]["Key"]))
        if got.multihash != expected.multihash:
            raise CorruptContentError(f"daemon stored block as {got}, expected {expected}")
        return expected

    def pin(self, cid: CidLike) -> None:
        """``pin/add`` recursively (the daemon checks the DAG is complete)."""
        self._rpc.call(
            "pin/add",
            {
                "arg": str(CID.parse(cid)),
                "recursive": "true",
                "timeout": seconds(self.fetch_timeout),
            },
        )

    def _sink(self) -> BlockSink:
        return _PutSink(self)

    # --- adding --------------------------------------------------------------------------------

    def add_stream(
        self, stream: BinaryIO, *, only_hash: bool = False, progress: ProgressFn | None = None
    ) -> CID:
        """``add`` one stream as a file (``only_hash`` computes the CID locally instead)."""
        if only_hash:
            return super().add_stream(stream, only_hash=True, progress=progress)
        upload = Upload(progress)
        upload.parts.append(("file", stream))
        return self._add(upload, "file", {})

    def add_path(
        self,
        path: str | os.PathLike[str],
        *,
        only_hash: bool = False,
        include_hidden: bool = False,
        on_entry: EntryFn | None = None,
        progress: ProgressFn | None = None,
    ) -> CID:
        """``add`` a file or directory tree; see :meth:`ContentStore.add_dir`.

        ``only_hash`` computes CIDs locally (same result, no upload).
        """
        root = Path(path)
        if only_hash:
            return build_path(
                root,
                HashOnlyBlockSink(),
                include_hidden=include_hidden,
                on_entry=on_entry,
                progress=progress,
            ).cid
        if not root.exists():
            raise StoreError(f"no such file or directory: {root}")
        name = root.name or "root"
        upload = Upload(progress)
        if not root.is_dir():
            upload.parts.append((name, root))
            return self._add(upload, name, {name: (False, root.stat().st_size)}, on_entry)
        entries = list(iter_tree(root, include_hidden=include_hidden))
        if all(e.is_dir for e in entries):
            # js-ipfs rejects a body that starts with a directory part: build locally instead
            sink = self._sink()
            return build_path(root, sink, include_hidden=include_hidden, on_entry=on_entry).cid
        # Kubo wants each directory declared before its children; js-ipfs fails on a leading
        # directory part, so there only empty directories are sent (others are implied).
        explicit_dirs = self.flavour != "js-ipfs"
        if explicit_dirs:
            upload.parts.append((name, None))
        parents = {e.relpath.rpartition("/")[0] for e in entries}
        for entry in entries:
            part = f"{name}/{entry.relpath}"
            if not entry.is_dir:
                upload.parts.append((part, entry.path))
            elif explicit_dirs or entry.relpath not in parents:
                upload.parts.append((part, None))
        kinds = {f"{name}/{e.relpath}": (e.is_dir, e.size) for e in entries}
        kinds[name] = (True, 0)
        return self._add(upload, name, kinds, on_entry)

    def _add(
        self,
        upload: Upload,
        root_name: str,
        kinds: dict[str, tuple[bool, int]],
        on_entry: EntryFn | None = None,
    ) -> CID:
        """POST ``add`` and return the CID the daemon reports for ``root_name``.

        ``kinds`` maps each uploaded path to ``(is_dir, file size)`` for ``on_entry``, which is
        called in the daemon's order (children before their directory).
        """
        lines = self._rpc.json_lines(
            "add",
            ADD_PARAMS | {"pin": "true"},
            content=iter(upload),
            headers={"Content-Type": upload.content_type},
        )
        root: CID | None = None
        for line in lines:
            if "Hash" not in line:
                continue  # progress lines
            cid = CID.parse(str(line["Hash"]))
            entry_name = str(line.get("Name", ""))
            if on_entry is not None:
                is_dir, size = kinds.get(entry_name, (False, 0))
                on_entry(AddedEntry(entry_name, cid, int(line["Size"]) if is_dir else size, is_dir))
            if entry_name == root_name:
                root = cid
        if root is None:
            raise StoreError(f"add: the daemon reported no CID for {root_name!r}")
        return root

    # --- reading -------------------------------------------------------------------------------

    def cat(self, cid: CidLike) -> Iterator[bytes]:
        """Stream a file via ``/api/v0/cat``, hashing each leaf slice against its CID."""
        root = CID.parse(cid)
        plan = self.file_plan(root)
        first = next(plan, None)  # fetches the root node: a missing root fails before cat
        if first is None:
            return  # an empty dag-pb file
        response = self._rpc.stream(
            "cat", {"arg": str(root), "timeout": seconds(self.fetch_timeout)}
        )
        try:
            body = ExactReader(response.iter_bytes())
            for piece in itertools.chain([first], plan):
                if piece.data is not None:
                    if body.read(len(piece.data)) != piece.data:
                        raise CorruptContentError(f"daemon's cat of {root} differs from its DAG")
                    yield piece.data
                    continue
                assert piece.cid is not None
                size = piece.size if piece.size is not None else MAX_RAW_ROOT
                data = body.read(size)
                if piece.size is not None and len(data) != piece.size:
                    raise CorruptContentError(f"cat of {root} ended early (leaf {piece.cid})")
                piece.cid.verify(data)
                yield data
            if not body.at_end():
                raise CorruptContentError(f"daemon's cat of {root} is longer than its DAG")
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"IPFS API at {self.url} failed mid-cat: {exc}") from exc
        finally:
            response.close()

    def export_car(self, cid: CidLike, out: str | os.PathLike[str]) -> Path:
        """``dag/export`` to ``out``, verifying every block as it streams in.

        The CAR is renamed into place only if its root is ``cid`` and every block matches its
        CID; otherwise nothing is left behind.
        """
        root = CID.parse(cid)
        target = Path(out)
        params = {"arg": str(root), "timeout": seconds(self.fetch_timeout)}
        with atomic_file(target) as handle:
            response = self._rpc.stream("dag/export", params)
            try:
                reader = car.CarReader(_Tee(ExactReader(response.iter_bytes()), handle))
                if [r.multihash for r in reader.roots] != [root.multihash]:
                    raise CorruptContentError(f"dag/export of {root} has roots {reader.roots}")
                for _block in reader:
                    pass
            except httpx.TransportError as exc:
                raise StoreUnavailableError(f"IPFS API at {self.url} failed mid-export") from exc
            finally:
                response.close()
        return target

    def import_car(self, path: str | os.PathLike[str], *, pin: bool = True) -> list[CID]:
        """Verify the CAR locally, then ``dag/import`` it (pinning its roots if ``pin``)."""
        with open(path, "rb") as handle:
            reader = car.CarReader(handle)
            for _block in reader:
                pass
            roots = reader.roots
        with open(path, "rb") as handle:
            upload = Upload()
            upload.parts.append(("car", handle))
            answer = self._rpc.json_lines(
                "dag/import",
                {"pin-roots": "true" if pin else "false"},
                content=iter(upload),
                headers={"Content-Type": upload.content_type},
            )
        for line in answer:
            error = (line.get("Root") or {}).get("PinErrorMsg")
            if error:
                raise StoreError(f"dag/import: pinning a root failed: {error}")
        return roots


class _Tee:
    """A readable that copies everything read from ``source`` into ``sink``."""

    def __init__(self, source: ExactReader, sink: BinaryIO) -> None:
        self._source = source
        self._sink = sink

    def read(self, size: int) -> bytes:
        data = self._source.read(size)
        self._sink.write(data)
        return data


class _PutSink:
    """Builds a DAG locally and uploads each block with ``block/put`` (rarely used)."""

    def __init__(self, store: KuboStore) -> None:
        self._store = store

    def put_leaf(self, chunk: memoryview) -> bytes:
        return self._store.put_block(bytes(chunk), RAW).digest

    def put_node(self, cid: CID, data: bytes) -> None:
        self._store.put_block(data, cid.codec)
