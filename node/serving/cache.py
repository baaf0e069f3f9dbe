"""Caches for answers that come from the chain.

- :class:`TtlCache`: a bounded mapping whose entries expire (plain, synchronous).
- :class:`AsyncCache`: the same for values loaded by a coroutine, with two properties the
  request path needs under load: **single flight** (concurrent misses of one key share one
  load, instead of each sending its own RPC calls) and **refresh ahead** (an entry past its time
  to live but younger than twice that is answered at once while one background load refreshes
  it, so no request waits on the chain just because a timer ran out). :meth:`AsyncCache.clear`
  (an invalidating event) drops entries outright: the next request waits for a fresh answer.

A process with a clock of its own (the gateway's chain watcher, the worker's serving tick) can
also call :meth:`AsyncCache.refresh_expiring` on every tick: entries a request used since they
were stored (loaded for it, or read) are reloaded shortly *before* they expire, so the refresh
no longer starts inside the request that finds the entry stale. An entry stored by such a
refresh and not read since is left to expire: the work stays bounded by what requests use.
That matters because a refresh is Python (web3.py) work holding the GIL: started beside a
request's eager prefill it delayed the first token by 100–750 ms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A bounded mapping whose entries expire ``ttl_s`` after they were set."""

    def __init__(
        self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The live value for ``key``, or None."""
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._data[key]
            return None
        return hit[1]

    def set(self, key: K, value: V, ttl_s: float | None = None) -> None:
        """Store ``value`` (evicting the oldest entry beyond ``max_entries``)."""
        self._data[key] = (self._clock() + (self.ttl_s if ttl_s is None else ttl_s), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class _Entry(Generic[V]):
    stored: float
    ttl: float
    value: V
    load: Callable[[], Awaitable[V]]
    ttl_fn: Callable[[V], float] | None
    read: bool = False  # used by a request since stored: worth refreshing ahead of expiry


class AsyncCache(Generic[K, V]):
    """Values loaded by coroutines, with single flight and refresh ahead (see module doc).

    Args:
        ttl_s: how long an entry is fresh.
        max_entries: entries kept (least recently stored dropped first).
        clock: time source (tests pass a fake one).
    """

    def __init__(
        self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._flights: dict[K, asyncio.Future[V]] = {}
        self._wanted: set[K] = set()  # keys whose load in flight a request waits for
        self._generation = 0
        self._background: set[asyncio.Task[None]] = set()
        self.loads = 0

    async def get(
        self, key: K, load: Callable[[], Awaitable[V]], ttl_s: Callable[[V], float] | None = None
    ) -> V:
        """The value for ``key``, loading it (once, however many callers) when needed.

        Args:
            key: the cache key.
            load: produces the value (its exceptions propagate to every waiting caller).
            ttl_s: time to live per value (default: the cache's).
        """
        hit = self._data.get(key)
        if hit is not None:
            hit.read = True
            age = self._clock() - hit.stored
            if age < hit.ttl:
                return hit.value
            if age < 2 * hit.ttl:
                self._refresh_soon(key, load, ttl_s)
                return hit.value
        self._wanted.add(key)
        return await self._load(key, load, ttl_s)

    def refresh_expiring(self, within_s: float) -> int:
        """Start a background reload of every entry a request used since it was stored (loaded
        for it, or read) whose time to live ends within ``within_s`` (or has ended); returns how
        many started. The rest are left to expire, so the work stays bounded by what requests
        use."""
        now = self._clock()
        due = [
            (key, entry)
            for key, entry in self._data.items()
            if entry.read and entry.ttl > 0 and now - entry.stored >= entry.ttl - within_s
        ]
        for key, entry in due:
            self._refresh_soon(key, entry.load, entry.ttl_fn)
        return len(due)

    def _refresh_soon(
        self, key: K, load: Callable[[], Awaitable[V]], ttl_s: Callable[[V], float] | None
    ) -> None:
        if key not in self._flights:
            task = asyncio.get_running_loop().create_task(self._refresh(key, load, ttl_s))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _load(
        self, key: K, load: Callable[[], Awaitable[V]], ttl_s: Callable[[V], float] | None
    ) -> V:
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        generation = self._generation
        try:
            self.loads += 1
            value = await load()
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved: the waiters re-raise it themselves
            else:
                future.cancel()
            raise
        finally:
            if self._flights.get(key) is future:
                del self._flights[key]
            wanted = key in self._wanted
            self._wanted.discard(key)
        if generation == self._generation:  # not invalidated while loading
            self._store(key, _Entry(self._clock(), ttl_s(value) if ttl_s else self.ttl_s, value,
                                    load, ttl_s, read=wanted))  # fmt: skip
        future.set_result(value)
        return value

    async def _refresh(
        self, key: K, load: Callable[[], Awaitable[V]], ttl_s: Callable[[V], float] | None
    ) -> None:
        try:
            await self._load(key, load, ttl_s)
        except Exception as exc:  # noqa: BLE001 - the stale value stays; the next miss retries
            log.info("background refresh failed (%s)", type(exc).__name__)

    def _store(self, key: K, entry: _Entry[V]) -> None:
        self._data[key] = entry
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry. Loads in flight neither store their (possibly stale) answer nor
        serve later callers, who start a fresh load."""
        self._data.clear()
        self._flights.clear()
        self._wanted.clear()
        self._generation += 1

    def __len__(self) -> int:
        return len(self._data)
