"""Prometheus metrics of a worker node (one registry per node, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NodeMetrics:
    """Counters and histograms the node updates as it works."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "anchorml_jobs_total",
            "Jobs handled, by kind and outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "anchorml_job_seconds",
            "Wall time from claim to delivery, by kind",
            ["kind"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
            registry=self.registry,
        )
        self.gas = Counter(
            "anchorml_gas_used_total",
            "Gas spent by this node's transactions",
            registry=self.registry,
        )
        self.txs = Counter(
            "anchorml_transactions_total",
            "Transactions sent, by action",
            ["action"],
            registry=self.registry,
        )
        self.tx_retries = Counter(
            "anchorml_tx_retries_total", "Transaction rebroadcasts", registry=self.registry
        )
        self.store_bytes = Counter(
            "anchorml_store_bytes_total",
            "Bytes moved through the store",
            ["direction"],
            registry=self.registry,
        )
        self.requests = Histogram(
            "anchorml_inference_seconds",
            "Direct inference latency, by endpoint",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "anchorml_batch_size",
            "Requests per dynamic batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.reorgs = Gauge(
            "anchorml_reorgs", "Reorgs detected by the listener", registry=self.registry
        )
        self.cursor = Gauge(
            "anchorml_cursor_block", "Last block the listener processed", registry=self.registry
        )
