"""How the servers' metrics are collected, and how the HPA's request rate is served.

Both runtimes export TensorFlow Serving's `:tensorflow:serving:request_count{model_name,
status}` on the REST port at METRICS_PATH, so the collection and the adapter rule do not change
with the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from settings import MetricsCollector

METRICS_PATH = "/monitoring/prometheus/metrics"  # TF Serving's; the Python runtime serves it too
REQUEST_COUNT_SERIES = ":tensorflow:serving:request_count"
# The window the adapter takes the rate over: four scrapes at the longest usual interval, so a
# missed scrape does not drop the metric.
RATE_WINDOW = "2m"


@dataclass(frozen=True)
class MonitorKind:
    """The custom resource a collector discovers scrape targets by."""

    api_version: str
    kind: str
    crd_name: str
    """The CustomResourceDefinition the collector installs, which must exist."""


def monitor_kind(collector: MetricsCollector) -> MonitorKind | None:
    match collector:
        case "none":
            return None
        case "prometheus-operator":
            return MonitorKind(
                "monitoring.coreos.com/v1",
                "ServiceMonitor",
                "servicemonitors.monitoring.coreos.com",
            )
        case "gke-managed-prometheus":
            return MonitorKind(
                "monitoring.googleapis.com/v1",
                "PodMonitoring",
                "podmonitorings.monitoring.googleapis.com",
            )
        case _:
            assert_never(collector)


def monitor_spec(
    selector: Mapping[str, str], port_name: str, interval_seconds: int
) -> dict[str, Any]:
    """Scrape `port_name` at METRICS_PATH on whatever `selector` matches (the same shape for
    both kinds)."""
    endpoint = {"port": port_name, "path": METRICS_PATH, "interval": f"{interval_seconds}s"}
    return {"selector": {"matchLabels": dict(selector)}, "endpoints": [endpoint]}


def prometheus_adapter_rules(
    namespace: str, model_name: str, metric_name: str
) -> list[dict[str, Any]]:
    """prometheus-adapter `rules:` entries that serve `metric_name` per pod: the per-second rate
    of the model's requests, summed per pod. Filtered by namespace and model, because the
    adapter's queries are global (two stacks with one model name would otherwise share it)."""
    return [
        {
            "seriesQuery": f'{REQUEST_COUNT_SERIES}{{namespace="{namespace}",pod!=""}}',
            "resources": {
                "overrides": {
                    "namespace": {"resource": "namespace"},
                    "pod": {"resource": "pod"},
                }
            },
            "name": {"matches": f"^{REQUEST_COUNT_SERIES}$", "as": metric_name},
            "metricsQuery": (
                f'sum(rate(<<.Series>>{{<<.LabelMatchers>>,model_name="{model_name}"}}'
                f"[{RATE_WINDOW}])) by (<<.GroupBy>>)"
            ),
        }
    ]
