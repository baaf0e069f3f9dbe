"""Route direct inference to the workers serving a version, and relay their checked answers.

Candidates are the nodes whose ``ServingChanged`` events (folded into the gateway's index by the
chain watcher) declare the version served, kept when NodeRegistry confirms they serve it and are
eligible, the model's owner lets them serve it (``may_serve``), and their declared endpoint
passes :func:`api.gateway.endpoints.check_endpoint` (its resolved address pinned). Chain answers
are cached; the watcher invalidates on node events. No log scan runs on the request path. A
node whose endpoint fails is never called; the reason is logged once and shown in ``/v1/nodes``.

Each request goes to the healthy candidate with the fewest requests in flight from this gateway
(ties broken round robin), skipping workers at their limits (requests, streams in flight). The
worker gets the request with a grant signed by the gateway for that worker, version and request
— never the caller's credentials — at the pinned address. Then:

1. a worker that refuses the connection (or drops it before its answer is whole) is skipped for
   ``backoff_s``; the next one is tried;
2. an error answer (4xx/5xx with an OpenAI error body) is relayed as the gateway's own error;
3. a 200 answer must be JSON (or SSE when streaming) with a receipt that holds
   (:mod:`api.gateway.answers`); otherwise it is dropped, counted
   (``anchorml_gateway_rejected_answers_total{reason}``), the worker backed off (doubling with
   each bad answer in a row) and the next candidate tried;
4. a stream is relayed chunk by chunk (``nosniff``); its last event's receipt is checked
   before it is relayed, and replaced by an error event when it does not hold; a stream longer
   than ``max_stream_s`` is closed with an error event.

When the gateway's client disconnects mid-stream, the upstream response is closed, which the
worker sees as a disconnect and stops generating.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from eth_utils import to_checksum_address
from fastapi import Response
from fastapi.responses import StreamingResponse

from api.gateway.answers import BadAnswerError, Expected, ReceiptCheck, StreamAssembler
from api.gateway.endpoints import EndpointRejectedError, WorkerEndpoint, check_endpoint
from api.gateway.metrics import GatewayMetrics
from node.serving import SSE_HEADERS, AsyncCache, dumps, error_body
from registry.clients import NodeRecord, NodeRegistryClient
from registry.receipts import GRANT_HEADER, RECEIPT_HEADER, Domain, Endpoint, Signer

log = logging.getLogger(__name__)

NOSNIFF = {"X-Content-Type-Options": "nosniff"}
#: Largest non-streamed answer read from a worker (64 embeddings requests' worth many times).
MAX_ANSWER_BYTES = 64 << 20
#: Largest single SSE event from a worker.
MAX_EVENT_BYTES = 1 << 20
#: Longest back-off of a worker that keeps answering badly, in multiples of ``backoff_s``.
MAX_BACKOFF_FACTOR = 32


@dataclass(frozen=True)
class PoolSettings:
    """The worker pool's limits (from :class:`api.gateway.config.GatewayConfig`)."""

    ttl_s: float = 30.0
    timeout_s: float = 300.0
    backoff_s: float = 10.0
    allow_private: bool = False
    max_requests: int = 64
    max_streams: int = 16
    max_stream_s: float = 600.0
    grant_ttl_s: float = 5.0
    receipt_skew_s: float = 30.0


class Failure(enum.Enum):
    """Why no worker answered a request."""

    NONE = "none"  # no candidate, or none reachable
    BUSY = "busy"  # every candidate at its limits
    BAD = "bad"  # every candidate that answered gave a bad answer


@dataclass
class Upstream:
    """A worker as the gateway sees it: its checked endpoint and what it has in flight."""

    address: str
    endpoint: WorkerEndpoint
    inflight: int = 0
    streams: int = 0
    down_until: float = 0.0
    strikes: int = 0  # bad answers in a row
    rejected: int = 0  # bad answers in all

    @property
    def healthy(self) -> bool:
        """Not in back-off after a failed connection or a bad answer."""
        return time.monotonic() >= self.down_until


@dataclass
class _Vetted:
    """The outcome of checking one declared endpoint (cached per URL)."""

    endpoint: WorkerEndpoint | None
    problem: str | None
    checked_at: float = field(default_factory=time.monotonic)


MayServe = Callable[[bytes, str], bool]


class WorkerPool:
    """Picks workers for a version and proxies requests to them.

    Args:
        nodes: the NodeRegistry client.
        metrics: the gateway's metrics (in-flight gauge per worker, rejected answers).
        declared: addresses whose events declare a version served (the gateway's index;
            called on the event loop).
        domain: the deployment's receipt domain (grants and receipts).
        settings: limits and timeouts.
        signer: the gateway's key for grants (None: requests go without one, so workers serve
            them as anonymous: public models only).
        may_serve: whether a model's owner lets a node serve a version (called in a thread).
    """

    def __init__(
        self,
        nodes: NodeRegistryClient,
        metrics: GatewayMetrics,
        declared: Callable[[bytes], list[str]],
        domain: Domain,
        settings: PoolSettings | None = None,
        *,
        signer: Signer | None = None,
        may_serve: MayServe | None = None,
    ) -> None:
        self.nodes = nodes
        self.metrics = metrics
        self.declared = declared
        self.domain = domain
        self.settings = settings or PoolSettings()
        self.signer = signer
        self.may_serve = may_serve
        self.receipts = ReceiptCheck(domain, self.settings.receipt_skew_s)
        self._serving: AsyncCache[bytes, list[Upstream]] = AsyncCache(self.settings.ttl_s)
        self._upstreams: dict[tuple[str, str], Upstream] = {}
        self._vetted: dict[str, _Vetted] = {}
        self._problems: dict[str, str] = {}  # node address -> why its endpoint is refused
        self._excluded: dict[str, str] = {}  # node address -> why it is not routed to any more
        self._turn = itertools.count()
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            follow_redirects=False,
        )

    def inflight(self) -> dict[str, int]:
        """Requests in flight from this gateway, by worker address."""
        return {u.address: u.inflight for u in self._upstreams.values()}

    def rejected(self) -> dict[str, int]:
        """Answers dropped as bad, by worker address."""
        counts: dict[str, int] = {}
        for u in self._upstreams.values():
            counts[u.address] = counts.get(u.address, 0) + u.rejected
        return counts

    def endpoint_problems(self) -> dict[str, str]:
        """Why the endpoints of nodes the gateway refuses to call are refused, by address."""
        return dict(self._problems)

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
        """Forget which nodes serve what and what their endpoints resolve to (node events)."""
        self._serving.clear()
        self._vetted.clear()

    def refresh_expiring(self, within_s: float) -> int:
        """Reload the serving sets in use that expire within ``within_s``, in the background."""
        return self._serving.refresh_expiring(within_s)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    # --- candidates ------------------------------------------------------------------------------

    async def vet(self, address: str, url: str) -> WorkerEndpoint | None:
        """``url`` checked (cached per URL for the serving TTL); a refusal is logged once per
        node and reason, and remembered for ``/v1/nodes``."""
        vetted = self._vetted.get(url)
        if vetted is None or time.monotonic() - vetted.checked_at > self.settings.ttl_s:
            try:
                endpoint = await check_endpoint(url, allow_private=self.settings.allow_private)
                vetted = _Vetted(endpoint, None)
            except EndpointRejectedError as exc:
                vetted = _Vetted(None, exc.message)
            self._vetted[url] = vetted
        if vetted.problem is None:
            self._problems.pop(address, None)
        elif self._problems.get(address) != vetted.problem:
            self._problems[address] = vetted.problem
            log.warning("not routing to node %s: endpoint %r: %s", address, url, vetted.problem)
        return vetted.endpoint

    async def candidates(self, version_id: bytes) -> list[Upstream]:
        """The workers serving ``version_id`` that the gateway may call (cached)."""

        async def load() -> list[Upstream]:
            addresses = self.declared(version_id)
            if not addresses:
                return []
            records = await asyncio.to_thread(self._allowed, version_id, addresses)
            vetted = await asyncio.gather(*(self.vet(r.address, r.endpoint) for r in records))
            found = []
            for record, endpoint in zip(records, vetted, strict=True):
                if endpoint is not None:
                    key = (record.address, endpoint.base + endpoint.host_header)
                    found.append(
                        self._upstreams.setdefault(key, Upstream(record.address, endpoint))
                    )
            return found

        return await self._serving.get(version_id, load)

    def _allowed(self, version_id: bytes, addresses: list[str]) -> list[NodeRecord]:
        records = self.nodes.eligible_serving(version_id, addresses)
        if self.may_serve is None:
            return records
        return [r for r in records if self.may_serve(version_id, r.address)]

    def pick(self, candidates: list[Upstream], tried: set[int], stream: bool) -> Upstream | None:
        """The healthy, untried candidate below its limits with the fewest requests in flight."""
        s = self.settings
        live = [
            u
            for u in candidates
            if u.healthy
            and id(u) not in tried
            and u.inflight < s.max_requests
            and (not stream or u.streams < s.max_streams)
        ]
        if not live:
            return None
        turn = next(self._turn)
        least = min(u.inflight for u in live)
        tied = [u for u in live if u.inflight == least]
        return tied[turn % len(tied)]

    # --- proxying ------------------------------------------------------------------------------

    async def proxy(
        self,
        expected: Expected,
        path: str,
        payload: dict[str, Any],
        stream: bool,
        *,
        avoid: Collection[str] = (),
    ) -> Response | Failure:
        """Send the request to a worker serving the version (none of ``avoid``, no excluded
        node); a :class:`Failure` when none gave an answer that may be relayed."""
        skip = {*self._excluded, *avoid}
        candidates = [
            u for u in await self.candidates(expected.version_id) if u.address not in skip
        ]
        body = dumps(payload)
        tried: set[int] = set()
        failure = Failure.NONE
        while True:
            upstream = self.pick(candidates, tried, stream)
            if upstream is None:
                if failure is Failure.NONE and self._busy(candidates, tried):
                    return Failure.BUSY
                return failure
            tried.add(id(upstream))
            request = self._request(upstream, expected, path, body)
            self._enter(upstream, stream)
            try:
                response = await self.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._leave(upstream, stream)
                upstream.down_until = time.monotonic() + self.settings.backoff_s
                log.warning("worker %s unreachable (%s)", upstream.address, type(exc).__name__)
                continue
            except BaseException:
                self._leave(upstream, stream)
                raise
            try:
                return await self._relay(upstream, expected, response, stream)
            except BadAnswerError as exc:
                self._reject(upstream, exc)
                failure = Failure.BAD
            except httpx.TransportError as exc:  # it went away before its answer was whole
                upstream.down_until = time.monotonic() + self.settings.backoff_s
                reason = type(exc).__name__
                log.warning("worker %s failed mid-answer (%s)", upstream.address, reason)

    async def resend(
        self,
        endpoint: Endpoint,
        version_id: bytes,
        path: str,
        payload: dict[str, Any],
        *,
        avoid: Collection[str],
    ) -> Response | None:
        """A request answered once sent again, to a worker other than ``avoid`` (spot checks);
        None when no other worker gave an answer that may be relayed."""
        expected = Expected.of(endpoint, payload, version_id)
        answer = await self.proxy(expected, path, payload, False, avoid=avoid)
        return None if isinstance(answer, Failure) else answer

    @staticmethod
    def _busy(candidates: list[Upstream], tried: set[int]) -> bool:
        """Whether healthy candidates remain that only their limits keep from being picked."""
        return any(u.healthy and id(u) not in tried for u in candidates)

    def _request(
        self, upstream: Upstream, expected: Expected, path: str, body: bytes
    ) -> httpx.Request:
        endpoint = upstream.endpoint
        headers = {"content-type": "application/json", "host": endpoint.host_header}
        if self.signer is not None:
            grant = self.signer.sign_grant(
                self.domain,
                to_checksum_address(upstream.address),
                expected.version_id,
                expected.request_hash,
                self.settings.grant_ttl_s,
            )
            headers[GRANT_HEADER] = grant.to_header()
        return self.client.build_request(
            "POST",
            endpoint.base + path,
            content=body,
            headers=headers,
            extensions=endpoint.extensions,
        )

    def _reject(self, upstream: Upstream, exc: BadAnswerError) -> None:
        """Count a bad answer and back the worker off (doubling while it keeps failing)."""
        upstream.rejected += 1
        upstream.strikes += 1
        factor = min(2 ** (upstream.strikes - 1), MAX_BACKOFF_FACTOR)
        upstream.down_until = time.monotonic() + self.settings.backoff_s * factor
        self.metrics.rejected_answers.labels(reason=exc.reason).inc()
        # the first of a streak is news; the rest are counted (metrics, /v1/nodes)
        level = logging.WARNING if upstream.strikes == 1 else logging.DEBUG
        log.log(level, "dropped an answer of worker %s (%s): %s", upstream.address, exc.reason, exc)

    async def _relay(
        self, upstream: Upstream, expected: Expected, response: httpx.Response, stream: bool
    ) -> Response:
        content_type = response.headers.get("content-type", "")
        is_sse = content_type.split(";", 1)[0].strip().lower() == "text/event-stream"
        if stream and is_sse and response.status_code == 200:
            return self._stream(upstream, expected, response)
        try:
            content = await _read_capped(response, MAX_ANSWER_BYTES)
        finally:
            await response.aclose()
            self._leave(upstream, stream)
        if response.status_code != 200:
            return _error(response, content)
        if stream:
            raise BadAnswerError("content_type", "a JSON answer to a streamed request")
        receipt = self.receipts.check_json(
            expected,
            upstream.address,
            content,
            content_type,
            response.headers.get(RECEIPT_HEADER),
        )
        upstream.strikes = 0
        headers = {**NOSNIFF, RECEIPT_HEADER: receipt.to_header()}
        return Response(content, media_type="application/json", headers=headers)

    def _stream(
        self, upstream: Upstream, expected: Expected, response: httpx.Response
    ) -> StreamingResponse:
        deadline = time.monotonic() + self.settings.max_stream_s

        async def events() -> AsyncIterator[bytes]:
            assembler = StreamAssembler(expected.endpoint)
            source = _sse_events(response)
            try:
                while True:
                    # the deadline covers the reads only: never a yield (the caller's send)
                    async with asyncio.timeout(deadline - time.monotonic()):
                        event = await anext(source, None)
                    if event is None:
                        break
                    yield self._stream_event(upstream, expected, assembler, event)
                if not assembler.done:
                    yield self._stream_error(
                        upstream, BadAnswerError("no_receipt", "the stream ended without receipt")
                    )
            except TimeoutError:
                yield _event(error_body(504, "stream_timeout", "the stream took too long"))
            except BadAnswerError as exc:
                yield self._stream_error(upstream, exc)
            finally:
                with anyio.CancelScope(shield=True):  # close even when cancelled (client gone)
                    await source.aclose()
                    await response.aclose()
                self._leave(upstream, True)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={**SSE_HEADERS, **NOSNIFF}
        )

    def _stream_event(
        self, upstream: Upstream, expected: Expected, assembler: StreamAssembler, event: bytes
    ) -> bytes:
        """``event`` as it may be relayed: checked when it carries the receipt."""
        data = _data(event)
        if data is None:
            return event  # a comment or keep-alive
        if data == b"[DONE]":
            if not assembler.done:
                raise BadAnswerError("no_receipt", "the stream ended without a receipt")
            return event
        if assembler.done:
            raise BadAnswerError("malformed", "events after the receipt")
        try:
            chunk = json.loads(data)
        except ValueError:
            raise BadAnswerError("malformed", "a stream event is not JSON") from None
        if not isinstance(chunk, dict):
            raise BadAnswerError("malformed", "a stream event is not a JSON object")
        if "error" in chunk:
            assembler.done = True  # the worker's own error: the stream ends without an answer
            return event
        assembler.add(chunk)
        if "anchorml" in chunk:
            self._check_stream_receipt(upstream, expected, assembler, chunk)
            assembler.done = True
            upstream.strikes = 0
        return event

    def _check_stream_receipt(
        self,
        upstream: Upstream,
        expected: Expected,
        assembler: StreamAssembler,
        chunk: dict[str, Any],
    ) -> None:
        whole = {**assembler.body(), "anchorml": chunk["anchorml"]}
        self.receipts.check_body(expected, upstream.address, whole)

    def _stream_error(self, upstream: Upstream, exc: BadAnswerError) -> bytes:
        self._reject(upstream, exc)
        return _event(error_body(502, "bad_worker_answer", "the worker's answer did not verify"))

    def _enter(self, upstream: Upstream, stream: bool) -> None:
        upstream.inflight += 1
        upstream.streams += stream
        self.metrics.worker_inflight.labels(worker=upstream.address).set(upstream.inflight)

    def _leave(self, upstream: Upstream, stream: bool) -> None:
        upstream.inflight -= 1
        upstream.streams -= stream
        self.metrics.worker_inflight.labels(worker=upstream.address).set(upstream.inflight)


# --- HTTP helpers ----------------------------------------------------------------------------


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise BadAnswerError("too_large", f"the answer exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(response: httpx.Response, content: bytes) -> Response:
    """A worker's error answer, re-encoded as the gateway's own (code and message only)."""
    try:
        error = json.loads(content)["error"]
        code, message = str(error["code"])[:64], str(error["message"])[:500]
        status = response.status_code
        if not 400 <= status <= 599:
            raise ValueError(status)
    except (ValueError, KeyError, TypeError):
        raise BadAnswerError("malformed", "an error answer of the wrong shape") from None
    headers = {**NOSNIFF}
    retry = response.headers.get("retry-after", "")
    if retry.isdigit():
        headers["Retry-After"] = retry
    param = error.get("param") if isinstance(error.get("param"), str) else None
    body = error_body(status, code, message, param)
    return Response(dumps(body), status, media_type="application/json", headers=headers)


async def _sse_events(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The worker's stream split into whole events (``...\\n\\n``), each at most
    :data:`MAX_EVENT_BYTES`."""
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk.replace(b"\r\n", b"\n")
        while (end := buffer.find(b"\n\n")) >= 0:
            yield buffer[: end + 2]
            buffer = buffer[end + 2 :]
        if len(buffer) > MAX_EVENT_BYTES:
            raise BadAnswerError("too_large", "a stream event is too large")
    if buffer.strip():
        raise BadAnswerError("malformed", "the stream ended inside an event")


def _data(event: bytes) -> bytes | None:
    """The ``data`` of an SSE event (None for a comment)."""
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + dumps(body) + b"\n\n"
