"""The canary verdict at its bounds: what passes, what fails, and what gets no verdict."""

from __future__ import annotations

import pytest

from engine.canary_analysis import Measurement, judge
from gpu_model_serving.settings import RolloutSettings

ROLLOUT = RolloutSettings(
    steps=(10, 50, 100),
    analysis_window_seconds=60,
    min_requests=100,
    max_error_ratio=0.01,
    max_p99_latency_ms=500,
    max_p99_latency_ratio=2.0,
)
STABLE = Measurement(requests=1000, error_ratio=0.0, p99_latency_ms=100.0)


def canary(
    requests: float = 200, errors: float | None = 0.0, p99: float | None = 100.0
) -> Measurement:
    return Measurement(requests=requests, error_ratio=errors, p99_latency_ms=p99)


@pytest.mark.parametrize(
    ("measured", "stable", "outcome", "first_finding"),
    [
        (canary(), STABLE, "pass", "canary error ratio 0.0000 ≤ canaryMaxErrorRatio 0.01"),
        (canary(errors=0.01), STABLE, "pass", "canary error ratio 0.0100 ≤"),
        (canary(errors=0.0101), STABLE, "fail", "canary error ratio 0.0101 > canaryMaxErrorRatio"),
        (canary(p99=501), STABLE, "fail", "canary p99 501.0 ms > canaryMaxP99LatencyMs 500"),
        (canary(p99=200), STABLE, "pass", "canary error ratio"),
        (canary(p99=201), STABLE, "fail", "canary p99 201.0 ms > 2.0 x 100.0 ms (stable p99 100.0"),
        # Under a tenth of the bound (50 ms) a ratio is noise: 3 ms against 1 ms passes.
        (canary(p99=3), Measurement(1000, 0.0, 1.0), "pass", "canary error ratio"),
        (
            canary(p99=101),
            Measurement(1000, 0.0, 1.0),
            "fail",
            "canary p99 101.0 ms > 2.0 x 50.0 ms",
        ),
        # At 100 % stable has no traffic: the absolute bound alone judges.
        (canary(p99=400), Measurement(0, None, None), "pass", "canary error ratio"),
        (canary(errors=1.0, p99=None), STABLE, "fail", "canary error ratio 1.0000 >"),
        (canary(requests=99), STABLE, "no verdict", "canary requests 99 < canaryMinRequests 100"),
    ],
)
def test_the_verdict_at_each_bound(
    measured: Measurement, stable: Measurement, outcome: str, first_finding: str
) -> None:
    verdict = judge(measured, stable, ROLLOUT)
    assert verdict.outcome == outcome, verdict
    assert verdict.findings[0].startswith(first_finding), verdict.findings


def test_a_canary_with_no_timed_request_fails_on_latency_too() -> None:
    verdict = judge(canary(errors=1.0, p99=None), STABLE, ROLLOUT)
    assert "canary p99 latency: no successful request to time" in verdict.findings
