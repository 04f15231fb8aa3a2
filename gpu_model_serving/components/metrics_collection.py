"""How the servers' metrics are collected, and how the HPA's request rate is served.

Both runtimes export TensorFlow Serving's `:tensorflow:serving:request_count{model_name,
status}` on the REST port at METRICS_PATH, so the collection and the adapter rule do not change
with the runtime.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, assert_never

MetricsCollector = Literal["none", "prometheus-operator", "gke-managed-prometheus"]
METRICS_COLLECTORS: tuple[MetricsCollector, ...] = (
    "none",
    "prometheus-operator",
    "gke-managed-prometheus",
)
CustomMetricsAdapter = Literal["none", "prometheus-adapter"]
CUSTOM_METRICS_ADAPTERS: tuple[CustomMetricsAdapter, ...] = ("none", "prometheus-adapter")

METRICS_PATH = "/monitoring/prometheus/metrics"  # TF Serving's; the Python runtime serves it too
REQUEST_COUNT_SERIES = ":tensorflow:serving:request_count"
REQUEST_LATENCY_SERIES = ":tensorflow:serving:request_latency"  # a histogram, in microseconds
# The statuses that spend the servers' error budget. A client's INVALID_ARGUMENT or NOT_FOUND
# is the client's error: counting it would page the model's owners for a caller's bug.
SERVER_ERROR_STATUSES = ("INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN", "DATA_LOSS")
# The SLO alerts judge five minutes of traffic and fire when it lasts two more, so one slow
# scrape or a single bad minute does not page anyone.
SLO_WINDOW = "5m"
SLO_FOR = "2m"
SLO_EVALUATION_INTERVAL = "30s"  # a group field both rule CRDs take (managed rules require it)
# The target label that says which Deployment a series comes from while a canary runs
# (`make rollout`): the canary's or stable's.
TRACK_LABEL = "track"
CANARY_TRACK = "canary"
STABLE_TRACK = "stable"
# The APIs a model's latency is judged on: a status or metadata call takes no model time.
MODEL_CALL_APIS = "(?i)(predict|classify|regress|multiinference)"
# Two buckets of TF Serving's latency histogram (a factor 1.8 each): a difference the
# histogram cannot blur.
CANARY_ALERT_LATENCY_RATIO = 3.24
# The window the adapter takes the rate over: four scrapes at the longest usual interval, so a
# missed scrape does not drop the metric.
RATE_WINDOW = "2m"


@dataclass(frozen=True)
class Slo:
    """What the servers promise, judged on their own request series: the alert rules fire on
    it (and a canary is judged by it)."""

    max_error_ratio: float = 0.01
    """Server errors (not a client's bad request) per request, over the alert window."""
    max_p99_latency_ms: int = 500
    """99th percentile of the servers' own request time."""


@dataclass(frozen=True)
class MetricsCollection:
    """Who scrapes the servers' metrics, and what turns them into the HPA's request rate."""

    collector: MetricsCollector = "none"
    """prometheus-operator (a ServiceMonitor) or gke-managed-prometheus (a PodMonitoring)."""
    scrape_namespaces: tuple[str, ...] = ()
    """Namespaces the scraper runs in: the NetworkPolicy lets them reach the metrics port."""
    scrape_interval_seconds: int = 15
    """How often the monitor has the servers scraped."""
    monitor_labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels on the monitor object, for a Prometheus that selects monitors by label."""
    custom_metrics_adapter: CustomMetricsAdapter = "none"
    """What serves the HPA's request-rate metric through the custom metrics API."""
    slo: Slo = field(default_factory=Slo)
    """The bounds the SLO alert rules hold the servers to."""


@dataclass(frozen=True)
class CollectorKind:
    """A custom resource of the collector's: what it discovers scrape targets or alert rules
    by."""

    api_version: str
    kind: str
    crd_name: str
    """The CustomResourceDefinition the collector installs, which must exist."""


@dataclass(frozen=True)
class CollectorKinds:
    monitor: CollectorKind
    rules: CollectorKind


def collector_kinds(collector: MetricsCollector) -> CollectorKinds | None:
    match collector:
        case "none":
            return None
        case "prometheus-operator":
            group = "monitoring.coreos.com"
            return CollectorKinds(
                CollectorKind(f"{group}/v1", "ServiceMonitor", f"servicemonitors.{group}"),
                CollectorKind(f"{group}/v1", "PrometheusRule", f"prometheusrules.{group}"),
            )
        case "gke-managed-prometheus":
            group = "monitoring.googleapis.com"
            return CollectorKinds(
                CollectorKind(f"{group}/v1", "PodMonitoring", f"podmonitorings.{group}"),
                # Namespaced: managed rule evaluation scopes it to the stack's namespace.
                CollectorKind(f"{group}/v1", "Rules", f"rules.{group}"),
            )
        case _:
            assert_never(collector)


# The pod label that tells the two slots' pods apart (a slot's Deployment selector holds it).
SLOT_POD_LABEL = "app.kubernetes.io/instance"
SLOT_TARGET_LABEL = "slot"


def monitor_spec(
    kind: CollectorKind,
    selector: Mapping[str, str],
    port_name: str,
    interval_seconds: int,
    tracks: Mapping[str, str],
) -> dict[str, Any]:
    """Scrape `port_name` at METRICS_PATH on whatever `selector` matches, each series labelled
    with its pod's TRACK_LABEL: `tracks` maps a slot's SLOT_POD_LABEL value to the role it plays
    now. The label comes from the monitor, not the pod, so a promotion relabels without
    restarting a pod."""
    endpoint: dict[str, Any] = {
        "port": port_name,
        "path": METRICS_PATH,
        "interval": f"{interval_seconds}s",
    }
    spec: dict[str, Any] = {"selector": {"matchLabels": dict(selector)}, "endpoints": [endpoint]}

    def relabel(source: str) -> list[dict[str, Any]]:
        return [
            {
                "sourceLabels": [source],
                "regex": instance,  # a DNS label: nothing in it is a regex operator
                "targetLabel": TRACK_LABEL,
                "replacement": track,
                "action": "replace",
            }
            for instance, track in tracks.items()
        ]

    if kind.kind == "ServiceMonitor":
        # Before the scrape, from the service discovery's pod labels.
        pod_label = "__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", SLOT_POD_LABEL)
        endpoint["relabelings"] = relabel(pod_label)
    else:
        # Managed collection takes pod labels only by name, then relabels each series.
        spec["targetLabels"] = {"fromPod": [{"from": SLOT_POD_LABEL, "to": SLOT_TARGET_LABEL}]}
        endpoint["metricRelabeling"] = relabel(SLOT_TARGET_LABEL)
    return spec


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


def model_matchers(namespace: str, model_name: str, track: str | None = None) -> str:
    """PromQL label matchers for one stack's model, or for one track of it."""
    matchers = f'namespace="{namespace}",model_name="{model_name}"'
    return matchers if track is None else f'{matchers},{TRACK_LABEL}="{track}"'


def request_count(matchers: str, window: str) -> str:
    """PromQL: requests to the model that `matchers` selects, over `window`."""
    return f"sum(increase({REQUEST_COUNT_SERIES}{{{matchers}}}[{window}]))"


def server_error_ratio(matchers: str, window: str) -> str:
    """PromQL: server errors (SERVER_ERROR_STATUSES) per request over `window`. A server that
    never failed has no error series at all: that is a ratio of 0, not no data."""
    errors = f'{matchers},status=~"{"|".join(SERVER_ERROR_STATUSES)}"'
    return (
        f"(sum(rate({REQUEST_COUNT_SERIES}{{{errors}}}[{window}])) or vector(0))"
        f" / sum(rate({REQUEST_COUNT_SERIES}{{{matchers}}}[{window}]))"
    )


def p99_latency_ms(matchers: str, window: str) -> str:
    """PromQL: the 99th percentile of model calls' time over `window`, in milliseconds (the
    histogram is in microseconds)."""
    calls = f'{matchers},API=~"{MODEL_CALL_APIS}"'
    return (
        "histogram_quantile(0.99, sum by (le) ("
        f"rate({REQUEST_LATENCY_SERIES}_bucket{{{calls}}}[{window}]))) / 1000"
    )


def slo_alert_rules(namespace: str, model_name: str, deployment: str, slo: Slo) -> dict[str, Any]:
    """A Prometheus rule file (`groups:`, also the spec of a PrometheusRule or a managed Rules)
    with the servers' SLO alerts: the error ratio and the
    p99 latency from the servers' own request series, and no available replica from
    kube-state-metrics. Filtered by namespace and model, as the adapter rule is."""
    model = model_matchers(namespace, model_name)
    canary = model_matchers(namespace, model_name, CANARY_TRACK)
    stable = model_matchers(namespace, model_name, STABLE_TRACK)
    labels = {"severity": "page", "namespace": namespace, "model_name": model_name}

    def alert(name: str, expr: str, summary: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": SLO_FOR,
            "labels": labels,
            "annotations": {"summary": summary},
        }

    return {
        "groups": [
            {
                "name": f"{namespace}-{model_name}-slo",
                "interval": SLO_EVALUATION_INTERVAL,
                "rules": [
                    alert(
                        "ModelServerErrorBudgetBurn",
                        f"{server_error_ratio(model, SLO_WINDOW)} > {slo.max_error_ratio}",
                        f"{model_name} in {namespace}: server errors above "
                        f"{slo.max_error_ratio:.2%} of requests",
                    ),
                    alert(
                        "ModelServerLatencyP99High",
                        f"{p99_latency_ms(model, SLO_WINDOW)} > {slo.max_p99_latency_ms}",
                        f"{model_name} in {namespace}: p99 latency above "
                        f"{slo.max_p99_latency_ms} ms",
                    ),
                    alert(
                        "ModelServerNoAvailableReplica",
                        "kube_deployment_status_replicas_available"
                        f'{{namespace="{namespace}",deployment="{deployment}"}} < 1',
                        f"{model_name} in {namespace}: no replica of {deployment} available",
                    ),
                    # A canary left running (a rollout cut short) pages when it serves
                    # worse than stable: its errors beyond stable's by more than the budget,
                    # or its p99 latency two histogram buckets or more above stable's.
                    alert(
                        "ModelServerCanaryWorseThanStable",
                        f"({server_error_ratio(canary, SLO_WINDOW)})"
                        f" - ({server_error_ratio(stable, SLO_WINDOW)}) > {slo.max_error_ratio}"
                        f" or ({p99_latency_ms(canary, SLO_WINDOW)})"
                        f" > {CANARY_ALERT_LATENCY_RATIO} * ({p99_latency_ms(stable, SLO_WINDOW)})",
                        f"{model_name} in {namespace}: the canary serves worse than stable",
                    ),
                ],
            }
        ]
    }
