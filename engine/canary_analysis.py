"""A canary step judged on its own request series, read from Prometheus' HTTP API.

The queries are the SLO rules' own (components/metrics_collection.py), over the step's window,
for the canary's series and for stable's. The verdict fails safe: no answer from Prometheus, a
query error or too few canary requests is never a pass.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gpu_model_serving.components.metrics_collection import (
    CANARY_TRACK,
    STABLE_TRACK,
    model_matchers,
    p99_latency_ms,
    request_count,
    server_error_ratio,
)
from gpu_model_serving.settings import RolloutSettings

Outcome = Literal["pass", "fail", "no verdict"]
# A p99 under a tenth of the bound is too small for a ratio to mean anything (one scheduling
# hiccup doubles it): the relative check compares with stable's p99 or this, whichever is more.
RATIO_FLOOR_OF_BOUND = 0.1


class PrometheusError(Exception):
    """Prometheus did not answer a query, or answered it with an error; the message says which."""


@dataclass(frozen=True)
class Prometheus:
    """Instant queries against Prometheus' HTTP API (/api/v1/query)."""

    url: str
    timeout_seconds: float = 10.0

    def value(self, query: str) -> float | None:
        """The one sample an aggregating query returns, or None when it selects no series."""
        address = f"{self.url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            with urllib.request.urlopen(address, timeout=self.timeout_seconds) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            # Prometheus answers a bad query with 400 and its reason in the JSON body.
            raise PrometheusError(f"{self.url}: {query}: {_error_of(error)}") from None
        except (OSError, ValueError) as error:
            raise PrometheusError(f"{self.url} did not answer {query}: {error}") from None
        data = body.get("data", {}) if isinstance(body, dict) else {}
        if body.get("status") != "success" or data.get("resultType") != "vector":
            raise PrometheusError(f"{self.url}: {query}: unexpected answer {body!r:.300}")
        samples = data["result"]
        if len(samples) > 1:
            raise PrometheusError(f"{self.url}: {query}: {len(samples)} series, expected one")
        if not samples:
            return None
        number = float(samples[0]["value"][1])
        return None if math.isnan(number) else number


def _error_of(error: urllib.error.HTTPError) -> str:
    try:
        detail = json.load(error)
        return f"HTTP {error.code}: {detail.get('errorType')}: {detail.get('error')}"
    except (OSError, ValueError):
        return f"HTTP {error.code}"


@dataclass(frozen=True)
class Measurement:
    """One track's series over a step's window."""

    requests: float
    error_ratio: float | None
    """None with no requests."""
    p99_latency_ms: float | None
    """None with no successful request (failed ones are not timed)."""


def measure(prometheus: Prometheus, matchers: str, window_seconds: int) -> Measurement:
    window = f"{window_seconds}s"
    return Measurement(
        requests=prometheus.value(request_count(matchers, window)) or 0.0,
        error_ratio=prometheus.value(server_error_ratio(matchers, window)),
        p99_latency_ms=prometheus.value(p99_latency_ms(matchers, window)),
    )


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    findings: list[str] = field(default_factory=list)
    """Each check as measured against its bound, the failed ones first."""
    canary: Measurement | None = None
    stable: Measurement | None = None

    def report(self) -> dict[str, Any]:
        return asdict(self)


def judge(canary: Measurement, stable: Measurement, rollout: RolloutSettings) -> Verdict:
    """Pass only when the canary had enough requests and every bound holds."""
    if canary.requests < rollout.min_requests:
        return Verdict(
            "no verdict",
            [f"canary requests {canary.requests:.0f} < canaryMinRequests {rollout.min_requests}"],
            canary,
            stable,
        )
    failed: list[str] = []
    held: list[str] = []

    def check(ok: bool, text: str) -> None:
        (held if ok else failed).append(text)

    errors = canary.error_ratio or 0.0
    check(
        errors <= rollout.max_error_ratio,
        f"canary error ratio {errors:.4f} {'≤' if errors <= rollout.max_error_ratio else '>'} "
        f"canaryMaxErrorRatio {rollout.max_error_ratio}",
    )
    p99 = canary.p99_latency_ms
    if p99 is None:
        # Every request failed: there is no latency to judge, and the error check says why.
        failed.append("canary p99 latency: no successful request to time")
    else:
        limit = rollout.max_p99_latency_ms
        check(
            p99 <= limit,
            f"canary p99 {p99:.1f} ms {'≤' if p99 <= limit else '>'} canaryMaxP99LatencyMs {limit}",
        )
        if stable.p99_latency_ms is None or stable.requests < rollout.min_requests:
            # At 100 % stable has no traffic left to compare with: the bound alone judges.
            held.append(f"stable: {stable.requests:.0f} requests, too few to compare p99 with")
        else:
            base = max(stable.p99_latency_ms, RATIO_FLOOR_OF_BOUND * limit)
            bound = rollout.max_p99_latency_ratio * base
            check(
                p99 <= bound,
                f"canary p99 {p99:.1f} ms {'≤' if p99 <= bound else '>'} "
                f"{rollout.max_p99_latency_ratio} x {base:.1f} ms (stable p99 "
                f"{stable.p99_latency_ms:.1f} ms, at least a tenth of the bound)",
            )
    return Verdict("fail" if failed else "pass", failed + held, canary, stable)


def analyse(
    prometheus: Prometheus, namespace: str, model_name: str, rollout: RolloutSettings
) -> Verdict:
    """Measure both tracks over the last window and judge the canary; a Prometheus failure is
    a verdict too (no verdict), so a caller cannot promote on it by mistake."""
    try:
        canary, stable = (
            measure(
                prometheus,
                model_matchers(namespace, model_name, track),
                rollout.analysis_window_seconds,
            )
            for track in (CANARY_TRACK, STABLE_TRACK)
        )
    except PrometheusError as error:
        return Verdict("no verdict", [str(error)])
    return judge(canary, stable, rollout)
