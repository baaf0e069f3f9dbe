"""Route direct inference to the workers serving a version, and relay their answers.

Candidates are the nodes whose ``ServingChanged`` events (folded into the gateway's index by the
chain watcher) declare the version served, kept when NodeRegistry confirms they serve it and are
eligible (contract calls, cached; the watcher invalidates on node events). No log scan runs on
the request path: a scan from the deployment block grows with the chain (on the embedded chain
684 ms at block 1,000). A version no node declared costs no call.

Each request goes to the healthy candidate with the fewest requests in flight from this gateway
(ties broken round robin). A worker that refuses the connection is skipped for ``backoff_s``
and the next candidate is tried; once a worker answered, its answer — JSON, an error, or an SSE
stream relayed chunk by chunk — is final.
When the gateway's client disconnects mid-stream, the upstream response is closed, which the
worker sees as a disconnect and stops generating.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from eth_utils import to_checksum_address
from fastapi import Response
from fastapi.responses import StreamingResponse

from api.gateway.metrics import GatewayMetrics
from node.serving import SSE_HEADERS, AsyncCache, dumps
from registry.clients import NodeRegistryClient

log = logging.getLogger(__name__)

#: Headers relayed from a worker's response.
_RELAYED = ("content-type", "retry-after")


@dataclass
class Upstream:
    """A worker endpoint as the gateway sees it."""

    address: str
    endpoint: str
    inflight: int = 0
    down_until: float = 0.0

    @property
    def healthy(self) -> bool:
        """Not in back-off after a failed connection."""
        return time.monotonic() >= self.down_until


class WorkerPool:
    """Picks workers for a version and proxies requests to them.

    Args:
        nodes: the NodeRegistry client.
        metrics: the gateway's metrics (in-flight gauge per worker).
        declared: addresses whose events declare a version served (the gateway's index;
            called on the event loop).
        ttl_s: how long the serving set of a version stays cached.
        timeout_s: read timeout of a proxied request.
        backoff_s: how long an unreachable worker is skipped.
    """

    def __init__(
        self,
        nodes: NodeRegistryClient,
        metrics: GatewayMetrics,
        declared: Callable[[bytes], list[str]],
        *,
        ttl_s: float = 30.0,
        timeout_s: float = 300.0,
        backoff_s: float = 10.0,
    ) -> None:
        self.nodes = nodes
        self.metrics = metrics
        self.declared = declared
        self.backoff_s = backoff_s
        self._serving: AsyncCache[bytes, list[Upstream]] = AsyncCache(ttl_s)
        self._upstreams: dict[str, Upstream] = {}
        self._excluded: dict[str, str] = {}  # node address -> why it is not routed to any more
        self._turn = itertools.count()
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    def inflight(self) -> dict[str, int]:
        """Requests in flight from this gateway, by worker address."""
        return {u.address: u.inflight for u in self._upstreams.values()}

    def exclude(self, address: str, reason: str) -> None:
        """Stop routing to the node ``address`` (a spot check caught it answering wrongly)."""
        address = to_checksum_address(address)
        if address not in self._excluded:
            log.warning("not routing to node %s any more: %s", address, reason)
        self._excluded[address] = reason

    def excluded(self) -> dict[str, str]:
        """The nodes excluded from routing, by address, with the reason."""
        return dict(self._excluded)

    def invalidate(self) -> None:
        """Forget which nodes serve what (node events arrived)."""
        self._serving.clear()

    def refresh_expiring(self, within_s: float) -> int:
        """Reload the serving sets in use that expire within ``within_s``, in the background."""
        return self._serving.refresh_expiring(within_s)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    async def candidates(self, version_id: bytes) -> list[Upstream]:
        """The workers serving ``version_id`` (cached)."""

        async def load() -> list[Upstream]:
            addresses = self.declared(version_id)
            if not addresses:
                return []
            records = await asyncio.to_thread(self.nodes.eligible_serving, version_id, addresses)
            found = []
            for record in records:
                endpoint = record.endpoint.rstrip("/")
                if endpoint.startswith(("http://", "https://")):
                    found.append(
                        self._upstreams.setdefault(endpoint, Upstream(record.address, endpoint))
                    )
            return found

        return await self._serving.get(version_id, load)

    def pick(self, candidates: list[Upstream], tried: set[str]) -> Upstream | None:
        """The healthy, untried candidate with the fewest requests in flight."""
        live = [u for u in candidates if u.healthy and u.endpoint not in tried]
        if not live:
            return None
        turn = next(self._turn)
        least = min(u.inflight for u in live)
        tied = [u for u in live if u.inflight == least]
        return tied[turn % len(tied)]

    async def proxy(
        self,
        version_id: bytes,
        path: str,
        body: bytes,
        authorization: str | None,
        stream: bool,
        *,
        avoid: Collection[str] = (),
    ) -> Response | None:
        """Send the request to a worker serving ``version_id`` (none of ``avoid``, no excluded
        node); None when none could be reached."""
        skip = {*self._excluded, *avoid}
        candidates = [u for u in await self.candidates(version_id) if u.address not in skip]
        tried: set[str] = set()
        headers = {"content-type": "application/json"}
        if authorization:
            headers["authorization"] = authorization
        while (upstream := self.pick(candidates, tried)) is not None:
            tried.add(upstream.endpoint)
            request = self.client.build_request(
                "POST", upstream.endpoint + path, content=body, headers=headers
            )
            self._enter(upstream)
            try:
                response = await self.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._leave(upstream)
                upstream.down_until = time.monotonic() + self.backoff_s
                log.warning("worker %s unreachable (%s)", upstream.endpoint, type(exc).__name__)
                continue
            except BaseException:
                self._leave(upstream)
                raise
            return await self._relay(upstream, response, stream)
        return None

    async def _relay(self, upstream: Upstream, response: httpx.Response, stream: bool) -> Response:
        headers = {k: v for k, v in response.headers.items() if k.lower() in _RELAYED}
        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        if not (stream and is_sse and response.status_code == 200):
            try:
                content = await response.aread()
            finally:
                await response.aclose()
                self._leave(upstream)
            return Response(content, status_code=response.status_code, headers=headers)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                with anyio.CancelScope(shield=True):  # close even when cancelled (client gone)
                    await response.aclose()
                self._leave(upstream)

        return StreamingResponse(
            chunks(), media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
        )

    async def resend(
        self,
        endpoint: str,
        version_id: bytes,
        path: str,
        payload: dict[str, Any],
        *,
        avoid: Collection[str],
    ) -> Response | None:
        """A request answered once sent again, to a worker other than ``avoid`` (spot checks);
        None when no other worker answered."""
        del endpoint  # what the answer's receipt is checked against (with receipt checks)
        return await self.proxy(version_id, path, dumps(payload), None, False, avoid=avoid)

    def _enter(self, upstream: Upstream) -> None:
        upstream.inflight += 1
        self.metrics.worker_inflight.labels(worker=upstream.address).set(upstream.inflight)

    def _leave(self, upstream: Upstream) -> None:
        upstream.inflight -= 1
        self.metrics.worker_inflight.labels(worker=upstream.address).set(upstream.inflight)
