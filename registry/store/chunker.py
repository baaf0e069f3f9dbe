"""Fixed-size chunking of a byte stream into hashed raw leaves.

This is the hot loop of every add, so it is written for throughput with bounded memory:

1. A ring of ``workers + 1`` preallocated buffers, each ``batch`` chunks long, is filled with
   ``readinto`` (no per-chunk allocation, no copies).
2. Each filled buffer becomes one task on a thread pool that hashes (and, when a store is
   writing, stores) its chunks; sha256 in :mod:`hashlib` and file writes release the GIL, so
   reading, hashing and writing overlap across cores.
3. Results are yielded strictly in input order; a buffer is refilled only after its task has
   been consumed, so at most ``(workers + 1) * batch * chunk_size`` bytes are ever held.

Inputs that fit in one buffer are handled inline without starting any thread.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Protocol

CHUNK_SIZE = 262_144
"""256 KiB: the ``size-262144`` chunker of ``ipfs add``."""

DEFAULT_BATCH = 16
"""Chunks per buffer (4 MiB): large enough that pool overhead is noise."""

Leaf = tuple[bytes, int]
"""``(sha256 digest, length)`` of one raw leaf."""


class LeafSink(Protocol):
    """Receives each raw chunk; may store it. Must be safe to call from several threads."""

    def put_leaf(self, chunk: memoryview) -> bytes:
        """Store (or not) ``chunk`` and return its sha256 digest."""
        ...


class HashOnlySink:
    """A :class:`LeafSink` that hashes and keeps nothing (``--only-hash``)."""

    def put_leaf(self, chunk: memoryview) -> bytes:
        """Return the sha256 digest of ``chunk``."""
        return hashlib.sha256(chunk).digest()


def default_workers() -> int:
    """Hashing threads: one per core, at most 4 (sha256 is memory-bound beyond that)."""
    return max(1, min(4, os.cpu_count() or 1))


def _fill(stream: BinaryIO, view: memoryview) -> int:
    """Read until ``view`` is full or the stream ends; return the bytes read."""
    readinto = getattr(stream, "readinto", None)
    pos = 0
    size = len(view)
    while pos < size:
        if readinto is not None:
            n = readinto(view[pos:])
        else:
            data = stream.read(size - pos)
            n = len(data)
            view[pos : pos + n] = data
        if not n:
            break
        pos += n
    return pos


def _hash_buffer(sink: LeafSink, view: memoryview, length: int, chunk_size: int) -> list[Leaf]:
    return [
        (sink.put_leaf(view[off : min(off + chunk_size, length)]), min(chunk_size, length - off))
        for off in range(0, length, chunk_size)
    ]


def iter_leaves(
    stream: BinaryIO,
    sink: LeafSink,
    *,
    chunk_size: int = CHUNK_SIZE,
    workers: int | None = None,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Leaf]:
    """Split ``stream`` into fixed-size chunks and yield each leaf's digest and length, in order.

    An empty stream yields exactly one empty leaf, as ``ipfs add`` does.

    Args:
        stream: binary input; read to its end.
        sink: hashes (and possibly stores) each chunk.
        chunk_size: leaf size; the last leaf may be shorter.
        workers: hashing threads (default :func:`default_workers`).
        batch: chunks per buffer.
        progress: called with the number of bytes consumed after each buffer.
    """
    workers = workers or default_workers()
    buf_size = chunk_size * batch
    first = memoryview(bytearray(buf_size))
    n = _fill(stream, first)
    if n < buf_size:  # everything fits in one buffer: no threads
        if progress is not None:
            progress(n)
        if n == 0:
            yield sink.put_leaf(first[:0]), 0
        else:
            yield from _hash_buffer(sink, first, n, chunk_size)
        return

    buffers = [first] + [memoryview(bytearray(buf_size)) for _ in range(workers)]
    pending: deque[tuple[Future[list[Leaf]], int]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store-hash") as pool:
        index = 0
        while n:
            pending.append((pool.submit(_hash_buffer, sink, buffers[index], n, chunk_size), n))
            # the buffer refilled next must be free: drain the oldest task first
            if len(pending) > workers:
                yield from _drain(pending.popleft(), progress)
            if n < buf_size:
                break
            index = (index + 1) % len(buffers)
            n = _fill(stream, buffers[index])
        while pending:
            yield from _drain(pending.popleft(), progress)


def _drain(
    item: tuple[Future[list[Leaf]], int], progress: Callable[[int], None] | None
) -> Iterator[Leaf]:
    future, nbytes = item
    leaves = future.result()
    if progress is not None:
        progress(nbytes)
    yield from leaves
