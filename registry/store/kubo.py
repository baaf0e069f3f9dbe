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
* Errors are translated once, in :func:`_raise_for`: unreachable daemon →
  ``StoreUnavailableError``; missing content or timeout → ``ContentNotFoundError``; other API
  errors → ``StoreError``.

js-ipfs quirks handled (found against js-ipfs 0.66 / core 0.18): a multipart upload may not
start with a directory part, so non-empty directories are left implicit in the file paths;
``block/put`` ignores ``cid-codec`` and wants ``format``; ``offline=true`` is ignored, so local
existence checks use a short ``timeout``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from urllib.parse import quote

import httpx

from registry.errors import (
    ContentNotFoundError,
    CorruptContentError,
    InvalidCIDError,
    StoreError,
    StoreUnavailableError,
)
from registry.store import car
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

_NOT_FOUND_HINTS = (
    "not found",
    "timed out",
    "deadline exceeded",
    "no link named",
    "could not find",
    "no such",
)
_MAX_RAW_ROOT = 4 << 20


def _raise_for(response: httpx.Response, what: str) -> NoReturn:
    """Translate an RPC error response into the store's typed errors."""
    try:
        response.read()
        body = response.json()
        message = str(body.get("Message", "")) if isinstance(body, dict) else ""
    except (ValueError, httpx.HTTPError):
        message = ""
    message = message or response.text[:200] or response.reason_phrase
    lowered = message.lower()
    if any(hint in lowered for hint in _NOT_FOUND_HINTS):
        raise ContentNotFoundError(f"{what}: {message}")
    if "invalid" in lowered and "cid" in lowered:
        raise InvalidCIDError(f"{what}: {message}")
    raise StoreError(f"{what}: IPFS API error {response.status_code}: {message}")


def _seconds(value: float) -> str:
    """A duration as the API's ``timeout`` parameter wants it (``"30s"``, ``"0.5s"``)."""
    return f"{value:g}s"


class _Upload:
    """A streaming ``multipart/form-data`` body.

    Each part is ``(name, source)``: a path or open stream for a file, ``None`` for a
    directory. Names are URL-encoded, as Kubo and js-ipfs decode them.
    """

    def __init__(self, progress: ProgressFn | None = None) -> None:
        self.boundary = uuid.uuid4().hex
        self.parts: list[tuple[str, Path | BinaryIO | None]] = []
        self.progress = progress

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self, name: str, ctype: str) -> bytes:
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{quote(name, safe="")}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()

    def __iter__(self) -> Iterator[bytes]:
        for name, source in self.parts:
            if source is None:
                yield self._head(name, "application/x-directory") + b"\r\n"
                continue
            yield self._head(name, "application/octet-stream")
            handle = open(source, "rb") if isinstance(source, Path) else source
            try:
                while chunk := handle.read(1 << 20):
                    if self.progress is not None:
                        self.progress(len(chunk))
                    yield chunk
            finally:
                if isinstance(source, Path):
                    handle.close()
            yield b"\r\n"
        yield f"--{self.boundary}--\r\n".encode()


class _Exact:
    """Read exact byte counts from an iterator of chunks (a streamed HTTP body)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()

    def read(self, size: int) -> bytes:
        while len(self._buf) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def at_end(self) -> bool:
        return not self.read(1)


class KuboStore(ContentStore):
    """Content store backed by an IPFS daemon (Kubo or js-ipfs) over its RPC API.

    Args:
        url: API base, e.g. ``http://127.0.0.1:5001`` (``/api/v0`` is appended).
        timeout: seconds for connecting and between bytes of a response.
        fetch_timeout: how long the daemon may look for a block it lacks (passed to the API
            as ``timeout``); after that the content counts as not found.
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
        self.url = url.rstrip("/")
        self._api = self.url + "/api/v0/"
        self.fetch_timeout = fetch_timeout
        self.local_timeout = local_timeout
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout))
        self._flavour: str | None = None

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    # --- transport -----------------------------------------------------------------------------

    def _stream(self, command: str, params: dict[str, str], **kwargs: Any) -> httpx.Response:
        """POST ``command`` and return the open, successful streamed response."""
        request = self._client.build_request("POST", self._api + command, params=params, **kwargs)
        try:
            response = self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"IPFS API at {self.url} unreachable: {exc}") from exc
        if response.status_code != 200:
            try:
                _raise_for(response, f"{command} {params.get('arg', '')}".strip())
            finally:
                response.close()
        return response

    def _call(self, command: str, params: dict[str, str], **kwargs: Any) -> bytes:
        response = self._stream(command, params, **kwargs)
        try:
            return response.read()
        except httpx.TransportError as exc:
            raise StoreUnavailableError(
                f"IPFS API at {self.url} failed mid-response: {exc}"
            ) from exc
        finally:
            response.close()

    def _json_lines(
        self, command: str, params: dict[str, str], **kwargs: Any
    ) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        for line in self._call(command, params, **kwargs).splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if isinstance(item, dict) and item.get("Type") == "error":
                raise StoreError(f"{command}: {item.get('Message', 'IPFS API error')}")
            lines.append(item)
        return lines

    @property
    def flavour(self) -> str:
        """``"js-ipfs"`` or ``"kubo"``, from the daemon's agent version (cached)."""
        if self._flavour is None:
            agent = str(self._json_lines("id", {})[0].get("AgentVersion", ""))
            self._flavour = "js-ipfs" if agent.startswith("js-ipfs") else "kubo"
        return self._flavour

    def version(self) -> dict[str, Any]:
        """The daemon's ``/api/v0/version`` answer."""
        return self._json_lines("version", {})[0]

    # --- blocks --------------------------------------------------------------------------------

    def get_block(self, cid: CidLike) -> bytes:
        """Fetch one block (``block/get``) and verify it against ``cid``."""
        parsed = CID.parse(cid)
        data = self._call(
            "block/get", {"arg": str(parsed), "timeout": _seconds(self.fetch_timeout)}
        )
        parsed.verify(data)
        return data

    def has_block(self, cid: CidLike) -> bool:
        """``block/stat`` offline (Kubo) or with a short timeout (js-ipfs)."""
        params = {
            "arg": str(CID.parse(cid)),
            "offline": "true",
            "timeout": _seconds(self.local_timeout),
        }
        try:
            self._call("block/stat", params)
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
        upload = _Upload()
        upload.parts.append(("block", io.BytesIO(data)))
        answer = self._json_lines(
            "block/put", params, content=iter(upload), headers={"Content-Type": upload.content_type}
        )
        got = CID.parse(str(answer[-1]["Key"]))
        if got.multihash != expected.multihash:
            raise CorruptContentError(f"daemon stored block as {got}, expected {expected}")
        return expected

    def pin(self, cid: CidLike) -> None:
        """``pin/add`` recursively (the daemon checks the DAG is complete)."""
        self._call(
            "pin/add",
            {
                "arg": str(CID.parse(cid)),
                "recursive": "true",
                "timeout": _seconds(self.fetch_timeout),
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
        upload = _Upload(progress)
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
        upload = _Upload(progress)
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
        upload: _Upload,
        root_name: str,
        kinds: dict[str, tuple[bool, int]],
        on_entry: EntryFn | None = None,
    ) -> CID:
        """POST ``add`` and return the CID the daemon reports for ``root_name``.

        ``kinds`` maps each uploaded path to ``(is_dir, file size)`` for ``on_entry``, which is
        called in the daemon's order (children before their directory).
        """
        lines = self._json_lines(
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
        response = self._stream("cat", {"arg": str(root), "timeout": _seconds(self.fetch_timeout)})
        try:
            body = _Exact(response.iter_raw())
            for piece in plan:
                if piece.data is not None:
                    if body.read(len(piece.data)) != piece.data:
                        raise CorruptContentError(f"daemon's cat of {root} differs from its DAG")
                    yield piece.data
                    continue
                assert piece.cid is not None
                size = piece.size if piece.size is not None else _MAX_RAW_ROOT
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
        """``dag/export`` to ``out``; the CAR is verified before it is renamed into place."""
        root = CID.parse(cid)
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                response = self._stream(
                    "dag/export", {"arg": str(root), "timeout": _seconds(self.fetch_timeout)}
                )
                try:
                    for chunk in response.iter_raw():
                        handle.write(chunk)
                finally:
                    response.close()
            with open(tmp, "rb") as handle:
                reader = car.CarReader(handle)
                if [r.multihash for r in reader.roots] != [root.multihash]:
                    raise CorruptContentError(f"dag/export of {root} has roots {reader.roots}")
                for _block in reader:
                    pass
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return target

    def import_car(self, path: str | os.PathLike[str], *, pin: bool = True) -> list[CID]:
        """Verify the CAR locally, then ``dag/import`` it (pinning its roots if ``pin``)."""
        with open(path, "rb") as handle:
            reader = car.CarReader(handle)
            for _block in reader:
                pass
            roots = reader.roots
        with open(path, "rb") as handle:
            upload = _Upload()
            upload.parts.append(("car", handle))
            answer = self._json_lines(
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


class _PutSink:
    """Builds a DAG locally and uploads each block with ``block/put`` (rarely used)."""

    def __init__(self, store: KuboStore) -> None:
        self._store = store

    def put_leaf(self, chunk: memoryview) -> bytes:
        return self._store.put_block(bytes(chunk), RAW).digest

    def put_node(self, cid: CID, data: bytes) -> None:
        self._store.put_block(data, cid.codec)
