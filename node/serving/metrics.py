"""Prometheus metrics of the inference runtime (shared by the worker and the gateway)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServingMetrics:
    """What the runtime counts.

    Args:
        registry: where to register the metrics.
        requests: an existing request-latency histogram (label ``endpoint``) to reuse.
        batch_size: an existing batch-size histogram to reuse.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        requests: Histogram | None = None,
        batch_size: Histogram | None = None,
    ) -> None:
        self.registry = registry
        self.requests = requests or Histogram(
            "anchorml_inference_seconds", "Direct inference latency, by endpoint", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.batch_size = batch_size or Histogram(
            "anchorml_batch_size", "Requests per dynamic batch", buckets=BATCH_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self.inferences = Counter(
            "anchorml_inferences_total", "Inference calls run by this process, by task", ["task"],
            registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "anchorml_generated_tokens_total", "Tokens generated", registry=registry
        )
        self.active_generations = Gauge(
            "anchorml_active_generations", "Generations holding a slot", registry=registry
        )
        self.model_loads = Counter(
            "anchorml_model_loads_total", "Models loaded into memory", registry=registry
        )
        self.loaded_models = Gauge(
            "anchorml_loaded_models", "Models held in memory", registry=registry
        )

    @classmethod
    def for_node(cls, metrics: NodeMetrics) -> ServingMetrics:
        """Reuse a worker node's registry and its request and batch histograms."""
        return cls(metrics.registry, requests=metrics.requests, batch_size=metrics.batch_size)
