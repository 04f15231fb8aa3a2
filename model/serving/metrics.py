"""Prometheus metrics, in a registry of their own so each app instance counts separately."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Request latency from sub-millisecond (one image, batch of one) to the drain timeout scale.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Everything the server exports at /metrics and /monitoring/prometheus/metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "serving_requests",
            "HTTP requests handled, by API and HTTP status code.",
            ["api", "code"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "serving_request_duration_seconds",
            "Time from request received to response sent, by API.",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "serving_in_flight_requests",
            "HTTP requests currently being handled.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "serving_batch_size",
            "Rows (images) per model call made by the dynamic batcher.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.inference_latency = Histogram(
            "serving_inference_duration_seconds",
            "Time of one model call on one batch.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ready = Gauge(
            "serving_model_ready",
            "1 while the model is loaded, warmed up and not draining; 0 otherwise.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
