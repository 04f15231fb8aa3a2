"""Prometheus metrics, in a registry of their own so each app instance counts separately.

With SERVING_PROCESSES > 1 every process writes its values to files under
PROMETHEUS_MULTIPROC_DIR (set by the supervisor before the processes start, which is when
prometheus_client reads it), and a scrape, whichever process answers it, reports the sums over
all of them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

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


# Read when prometheus_client reads it, at import: values go to files under it if it is set.
SHARED_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
# Counted as an ordinary counter (so it adds up across processes), printed under TF Serving's
# name by render_tf_serving_request_count.
_REQUEST_COUNT = "serving_tf_serving_requests"


def render_tf_serving_request_count(family: Metric | None) -> bytes:
    """TF Serving's request counter as its exporter writes it (util/prometheus_exporter.cc):
    a counter sample named without the `_total` that prometheus_client would append."""
    counts = sorted(
        (sample.labels["model_name"], sample.labels["status"], int(sample.value))
        for sample in (family.samples if family is not None else ())
        if sample.name.endswith("_total")
    )
    lines = [
        f"# HELP {TF_SERVING_REQUEST_COUNT} The total number of requests.",
        f"# TYPE {TF_SERVING_REQUEST_COUNT} counter",
        *(
            f'{TF_SERVING_REQUEST_COUNT}{{model_name="{model}",status="{status}"}} {count}'
            for model, status, count in counts
        ),
    ]
    return ("\n".join(lines) + "\n").encode()


class _Families:
    """Already collected metric families, in the shape generate_latest reads."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


class Metrics:
    """Everything the server exports at /metrics and /monitoring/prometheus/metrics: its own
    series, and TensorFlow Serving's request series under TF Serving's names."""

    def __init__(self, shared_dir: str | None = SHARED_DIR) -> None:
        self.registry = CollectorRegistry()
        if shared_dir is None:
            ProcessCollector(registry=self.registry)
            self._scraped: CollectorRegistry = self.registry
        else:
            # Every process's files; process_* series describe one process only, so none.
            self._scraped = CollectorRegistry()
            MultiProcessCollector(self._scraped, path=shared_dir)  # type: ignore[no-untyped-call]
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
            multiprocess_mode="livesum",
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
        self.tf_serving_request_count = Counter(
            _REQUEST_COUNT,
            "Model API calls, by gRPC status name (exported as TF Serving's request_count).",
            ["model_name", "status"],
            registry=self.registry,
        )
        self.tf_serving_request_latency = Histogram(
            TF_SERVING_REQUEST_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=TF_SERVING_LATENCY_BUCKETS_US,
            registry=self.registry,
        )
        self.inference_engine = Gauge(
            "serving_inference_engine",
            "1 for what runs the model's signature: tflite, session or eager (a fallback).",
            ["engine"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.ready = Gauge(
            "serving_model_ready",
            "1 while the model is loaded, warmed up and not draining; 0 otherwise.",
            registry=self.registry,
            # Ready only if every serving process is.
            multiprocess_mode="livemin",
        )

        # Each series' child for a set of label values, looked up once: prometheus_client's
        # labels() checks and locks on every call (2.9 µs against 1.1 µs for a cached child's
        # inc(), four per REST predict). The label values are few (APIs, status codes, one
        # model name), so the caches stay small.
        self._requests_of = functools.cache(self.requests.labels)
        self._request_latency_of = functools.cache(self.request_latency.labels)
        self._tf_serving_count_of = functools.cache(self.tf_serving_request_count.labels)
        self._tf_serving_latency_of = functools.cache(self.tf_serving_request_latency.labels)

    def record_http(self, api: str, code: str, seconds: float) -> None:
        """An HTTP request answered: counted by API and status code, and timed by API."""
        self._requests_of(api, code).inc()
        self._request_latency_of(api).observe(seconds)

    def record_request(
        self, model_name: str, api: str, entrypoint: str, status: str, seconds: float
    ) -> None:
        """A call to a model's API (REST or GRPC) in TF Serving's series: counted by its gRPC
        status name, and timed when it succeeded (as TF Serving does)."""
        self._tf_serving_count_of(model_name, status).inc()
        if status == "OK":
            self._tf_serving_latency_of(model_name, api, entrypoint).observe(seconds * 1e6)

    def render(self) -> bytes:
        families = list(self._scraped.collect())
        # Absent from the shared files until the first request.
        request_count = next((family for family in families if family.name == _REQUEST_COUNT), None)
        others = (family for family in families if family is not request_count)
        return generate_latest(_Families(others)) + render_tf_serving_request_count(request_count)
