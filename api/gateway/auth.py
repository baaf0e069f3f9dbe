"""Who is calling, and how often they may: bearer-token callers and per-caller rate limits.

A caller is identified by the address its anchorml bearer token proves (see
:mod:`registry.auth`), or — anonymous callers of public models — by the client IP. Each caller
has a token bucket: ``burst`` requests at once, refilled at ``rate`` per second; past it the
request is refused with 429 ``rate_limited``, whose ``retry_after_s`` becomes the
``Retry-After`` header.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from node.serving import Catalog
from registry.auth import MissingTokenError, TokenClaims
from registry.errors import AccessError


class RateLimitedError(AccessError):
    """The caller exceeded its request rate; retry after ``retry_after_s``."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Caller:
    """A verified caller (``claims``) or an anonymous one; ``key`` names its rate bucket."""

    claims: TokenClaims | None
    key: str

    @property
    def address(self) -> str | None:
        """The caller's address when it sent a valid token."""
        return self.claims.address if self.claims else None

    def require_address(self) -> str:
        """The caller's address.

        Raises:
            MissingTokenError: the caller sent no anchorml token.
        """
        if self.claims is None:
            raise MissingTokenError(
                "this endpoint needs 'Authorization: Bearer <token>' (`anchorml auth token`)"
            )
        return self.claims.address


def identify(catalog: Catalog, request: Request) -> Caller:
    """The caller of ``request``.

    Raises:
        AuthError, TokenExpiredError: an anchorml token that is malformed, forged or expired.
    """
    claims = catalog.caller(request.headers.get("authorization"))
    if claims is not None:
        return Caller(claims, f"addr:{claims.address}")
    host = request.client.host if request.client else "unknown"
    return Caller(None, f"ip:{host}")


class RateLimiter:
    """Token buckets per key (least recently seen keys are forgotten beyond ``max_keys``).

    Args:
        rate: tokens added per second (0 disables limiting).
        burst: bucket size.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket.

        Raises:
            RateLimitedError: the bucket is empty.
        """
        if self.rate <= 0:
            return
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self.refused += 1
            wait = (1.0 - tokens) / self.rate
            raise RateLimitedError(
                f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded", wait
            )
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
