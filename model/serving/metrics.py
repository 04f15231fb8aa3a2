"""Prometheus metrics, in a registry of their own so each app instance counts separately."""

from __future__ import annotations

import collections

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

# TensorFlow Serving's own request series (tensorflow_serving/servables/tensorflow/util.cc),
# with its names, labels, units and buckets, so that one dashboard and one request-rate HPA
# metric serve both runtimes.
TF_SERVING_REQUEST_COUNT = ":tensorflow:serving:request_count"
TF_SERVING_REQUEST_LATENCY = ":tensorflow:serving:request_latency"
# Buckets::Exponential(10, 1.8, 33), in microseconds.
TF_SERVING_LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(33))
# The gRPC status name TF Serving labels a request with, from the HTTP status it maps that
# status to (tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode).
GRPC_STATUS_OF_HTTP = {
    200: "OK",
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class _RequestCount:
    """TF Serving's request counter as its exporter writes it (util/prometheus_exporter.cc):
    a counter sample named without the `_total` that prometheus_client would append."""

    def __init__(self) -> None:
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def inc(self, model_name: str, status: str) -> None:
        self._counts[model_name, status] += 1

    def render(self) -> bytes:
        lines = [
            f"# HELP {TF_SERVING_REQUEST_COUNT} The total number of requests.",
            f"# TYPE {TF_SERVING_REQUEST_COUNT} counter",
            *(
                f'{TF_SERVING_REQUEST_COUNT}{{model_name="{model}",status="{status}"}} {count}'
                for (model, status), count in sorted(self._counts.items())
            ),
        ]
        return ("\n".join(lines) + "\n").encode()


class Metrics:
    """Everything the server exports at /metrics and /monitoring/prometheus/metrics: its own
    series, and TensorFlow Serving's request series under TF Serving's names."""

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
        self.tf_serving_request_count = _RequestCount()
        self.tf_serving_request_latency = Histogram(
            TF_SERVING_REQUEST_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=TF_SERVING_LATENCY_BUCKETS_US,
            registry=self.registry,
        )
        self.ready = Gauge(
            "serving_model_ready",
            "1 while the model is loaded, warmed up and not draining; 0 otherwise.",
            registry=self.registry,
        )

    def record_request(
        self, model_name: str, api: str, entrypoint: str, status: str, seconds: float
    ) -> None:
        """A call to a model's API (REST or GRPC) in TF Serving's series: counted by its gRPC
        status name, and timed when it succeeded (as TF Serving does)."""
        self.tf_serving_request_count.inc(model_name, status)
        if status == "OK":
            self.tf_serving_request_latency.labels(model_name, api, entrypoint).observe(
                seconds * 1e6
            )

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.tf_serving_request_count.render()
