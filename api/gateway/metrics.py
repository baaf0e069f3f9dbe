"""Prometheus metrics of the gateway (one registry per app, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from node.serving import LATENCY_BUCKETS, ServingMetrics


class GatewayMetrics:
    """HTTP, routing, access and store counters, plus the in-process runtime's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.serving = ServingMetrics(r)
        self.http_requests = Counter(
            "anchorml_http_requests_total", "Requests by route and status", ["route", "status"],
            registry=r,
        )  # fmt: skip
        self.http_seconds = Histogram(
            "anchorml_http_seconds", "Request latency by route", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference = Counter(
            "anchorml_gateway_inference_total",
            "Inference requests by path (worker, inprocess, onchain)", ["path"], registry=r,
        )  # fmt: skip
        self.denied = Counter(
            "anchorml_gateway_denied_total", "Requests refused by code", ["code"], registry=r
        )
        self.store_reads = Counter(
            "anchorml_gateway_store_blocks_total", "Blocks read from the content store",
            registry=r,
        )  # fmt: skip
        self.worker_inflight = Gauge(
            "anchorml_gateway_worker_inflight", "Requests in flight per worker", ["worker"],
            registry=r,
        )  # fmt: skip
        self.rejected_answers = Counter(
            "anchorml_gateway_rejected_answers_total",
            "Worker answers dropped before relaying, by reason (receipt checks)", ["reason"],
            registry=r,
        )  # fmt: skip
        self.spot_checks = Counter(
            "anchorml_gateway_spot_checks_total",
            "Spot checks of worker answers by outcome (agreed, disagreed, challenged, ...)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.chain_head = Gauge(
            "anchorml_gateway_chain_block", "Last block the gateway's watcher scanned", registry=r
        )
        self.jobs_created = Counter(
            "anchorml_gateway_jobs_created_total", "Jobs the gateway created, by kind", ["kind"],
            registry=r,
        )  # fmt: skip
