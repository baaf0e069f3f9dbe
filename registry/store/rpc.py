"""A minimal client of the IPFS RPC API (``/api/v0``) shared by Kubo and js-ipfs.

Every command is a ``POST``; answers are raw bytes or newline-delimited JSON. This module owns
the one translation of transport and API failures into the store's typed errors:

* connection refused, reset or timed out → :class:`StoreUnavailableError`;
* "not found", "timed out", "deadline exceeded" and kin → :class:`ContentNotFoundError`
  (a daemon that cannot find a block within ``timeout`` reports it this way);
* an invalid CID → :class:`InvalidCIDError`; anything else → :class:`StoreError`.

It also builds streaming ``multipart/form-data`` uploads (:class:`Upload`) and reads exact byte
counts from a streamed answer (:class:`ExactReader`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from urllib.parse import quote

import httpx

from registry.errors import (
    ContentNotFoundError,
    InvalidCIDError,
    StoreError,
    StoreUnavailableError,
)
from registry.store.builder import ProgressFn

_NOT_FOUND_HINTS = (
    "not found",
    "timed out",
    "deadline exceeded",
    "no link named",
    "could not find",
    "no such",
)


def raise_for(response: httpx.Response, what: str) -> NoReturn:
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


def seconds(value: float) -> str:
    """A duration as the API's ``timeout`` parameter wants it (``"30s"``, ``"0.5s"``)."""
    return f"{value:g}s"


class Upload:
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


class ExactReader:
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


class RpcClient:
    """POSTs commands to ``<url>/api/v0/`` and maps failures to typed errors.

    Args:
        url: API base, e.g. ``http://127.0.0.1:5001``.
        timeout: seconds for connecting and between bytes of an answer.
        client: an :class:`httpx.Client` to use instead of a new one.
    """

    def __init__(self, url: str, *, timeout: float, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._api = self.url + "/api/v0/"
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def stream(self, command: str, params: dict[str, str], **kwargs: Any) -> httpx.Response:
        """POST ``command`` and return the open, successful streamed response."""
        request = self._client.build_request("POST", self._api + command, params=params, **kwargs)
        try:
            response = self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"IPFS API at {self.url} unreachable: {exc}") from exc
        if response.status_code != 200:
            try:
                raise_for(response, f"{command} {params.get('arg', '')}".strip())
            finally:
                response.close()
        return response

    def call(self, command: str, params: dict[str, str], **kwargs: Any) -> bytes:
        """POST ``command`` and return the whole answer."""
        response = self.stream(command, params, **kwargs)
        try:
            return response.read()
        except httpx.TransportError as exc:
            raise StoreUnavailableError(
                f"IPFS API at {self.url} failed mid-response: {exc}"
            ) from exc
        finally:
            response.close()

    def json_lines(
        self, command: str, params: dict[str, str], **kwargs: Any
    ) -> list[dict[str, Any]]:
        """POST ``command`` and parse its newline-delimited JSON answer.

        Raises:
            StoreError: the answer is not JSON objects, or carries an error object mid-stream
                (daemons report late failures that way, after a ``200``).
        """
        lines: list[dict[str, Any]] = []
        for line in self.call(command, params, **kwargs).splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise StoreError(f"{command}: unreadable answer {line[:80]!r}") from exc
            if not isinstance(item, dict):
                raise StoreError(f"{command}: unexpected answer {line[:80]!r}")
            if item.get("Type") == "error":
                raise StoreError(f"{command}: {item.get('Message', 'IPFS API error')}")
            lines.append(item)
        return lines
