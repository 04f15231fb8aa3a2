"""The SLO alert rules, checked and evaluated by Prometheus' own promtool.

Each case feeds promtool series shaped as the servers export them and asserts which alert fires
after the rules' window and `for`, and that none fires where the SLO holds: a client's bad
requests, another namespace's errors, a latency under the bound.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_model_serving.components.metrics_collection import Slo, slo_alert_rules

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = ROOT / ".bin" / "promtool"
NAMESPACE, MODEL, DEPLOYMENT = "serving", "digits", "digits-server"
SLO = Slo(max_error_ratio=0.01, max_p99_latency_ms=500)
PAGE = {"severity": "page", "namespace": NAMESPACE, "model_name": MODEL}
SUMMARIES = {
    "ModelServerErrorBudgetBurn": "digits in serving: server errors above 1.00% of requests",
    "ModelServerLatencyP99High": "digits in serving: p99 latency above 500 ms",
    "ModelServerNoAvailableReplica": "digits in serving: no replica of digits-server available",
    "ModelServerCanaryWorseThanStable": "digits in serving: the canary serves worse than stable",
}


def requests(
    status: str, per_minute: int, namespace: str = NAMESPACE, track: str = "stable"
) -> dict[str, str]:
    return {
        "series": f':tensorflow:serving:request_count{{namespace="{namespace}",'
        f'model_name="{MODEL}",status="{status}",track="{track}"}}',
        "values": f"0+{per_minute}x20",
    }


def latency(
    le: str, per_minute: int, track: str = "stable", api: str = "predict"
) -> dict[str, str]:
    return {
        "series": f':tensorflow:serving:request_latency_bucket{{namespace="{NAMESPACE}",'
        f'model_name="{MODEL}",API="{api}",entrypoint="REST",le="{le}",track="{track}"}}',
        "values": f"0+{per_minute}x20",
    }


def available(replicas: int) -> dict[str, str]:
    return {
        "series": f'kube_deployment_status_replicas_available{{namespace="{NAMESPACE}",'
        f'deployment="{DEPLOYMENT}"}}',
        "values": f"{replicas}x20",
    }


def fast(
    track: str = "stable", api: str = "predict", per_minute: int = 100
) -> list[dict[str, str]]:
    """Every request under 100 ms (the buckets in microseconds)."""
    return [latency(le, per_minute, track, api) for le in ("100000", "1e+06", "+Inf")]


def slow(track: str = "stable") -> list[dict[str, str]]:
    """Every request between 100 ms and 1 s."""
    return [latency("100000", 0, track), latency("1e+06", 100, track), latency("+Inf", 100, track)]


FAST, SLOW = fast(), slow()
CANARY_ERRORS = [requests("OK", 950, track="canary"), requests("INTERNAL", 50, track="canary")]

CASES: list[tuple[str, list[dict[str, str]], str, dict[str, str] | None]] = [
    ("5% INTERNAL burns the budget", [requests("OK", 950), requests("INTERNAL", 50)],
     "ModelServerErrorBudgetBurn", PAGE),
    ("UNAVAILABLE counts too", [requests("OK", 900), requests("UNAVAILABLE", 100)],
     "ModelServerErrorBudgetBurn", PAGE),
    ("0.5% INTERNAL is within it", [requests("OK", 995), requests("INTERNAL", 5)],
     "ModelServerErrorBudgetBurn", None),
    ("a client's bad requests are not the servers'",
     [requests("OK", 500), requests("INVALID_ARGUMENT", 500)], "ModelServerErrorBudgetBurn", None),
    ("another namespace's errors are not this stack's",
     [requests("OK", 1000), requests("INTERNAL", 1000, namespace="other")],
     "ModelServerErrorBudgetBurn", None),
    ("p99 near 1 s breaks 500 ms", SLOW, "ModelServerLatencyP99High", PAGE),
    ("p99 under 100 ms holds", FAST, "ModelServerLatencyP99High", None),
    ("no available replica", [available(0)], "ModelServerNoAvailableReplica",
     {**PAGE, "deployment": DEPLOYMENT}),
    ("one available replica", [available(1)], "ModelServerNoAvailableReplica", None),
    ("status calls are not the model's latency", [*SLOW, *fast(api="status", per_minute=100_000)],
     "ModelServerLatencyP99High", PAGE),
    ("a canary with 5% errors beside a clean stable",
     [*CANARY_ERRORS, requests("OK", 1000)], "ModelServerCanaryWorseThanStable", PAGE),
    ("errors on both tracks are not the canary's",
     [*CANARY_ERRORS, requests("OK", 950), requests("INTERNAL", 50)],
     "ModelServerCanaryWorseThanStable", None),
    ("a canary ten times slower than stable", [*slow("canary"), *fast("stable")],
     "ModelServerCanaryWorseThanStable", PAGE),
    ("a canary as fast as stable", [*fast("canary"), *fast("stable")],
     "ModelServerCanaryWorseThanStable", None),
]  # fmt: skip


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert PROMTOOL.is_file(), f"{PROMTOOL} is missing: run `make toolchain-metrics`"
    path = tmp_path_factory.mktemp("rules") / "slo.rules.yaml"
    path.write_text(yaml.safe_dump(slo_alert_rules(NAMESPACE, MODEL, DEPLOYMENT, SLO)))
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_rule_file_is_valid_prometheus(rule_file: Path) -> None:
    checked = promtool("check", "rules", str(rule_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    declared = sum(len(g["rules"]) for g in yaml.safe_load(rule_file.read_text())["groups"])
    assert declared == len(SUMMARIES)
    assert f"SUCCESS: {declared} rules found" in checked.stdout, checked.stdout


@pytest.mark.parametrize(
    ("series", "alert", "fires"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_an_alert_fires_exactly_when_its_slo_is_broken(
    rule_file: Path,
    tmp_path: Path,
    series: list[dict[str, str]],
    alert: str,
    fires: dict[str, str] | None,
) -> None:
    summary = SUMMARIES[alert]
    expected = [{"exp_labels": fires, "exp_annotations": {"summary": summary}}] if fires else []
    case: dict[str, Any] = {
        "rule_files": [str(rule_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    # Broken from the first minute, pending for `for` (2m), firing by minute 8.
                    {"eval_time": "1m", "alertname": alert, "exp_alerts": []},
                    {"eval_time": "8m", "alertname": alert, "exp_alerts": expected},
                ],
            }
        ],
    }
    tests = tmp_path / "slo.test.yaml"
    tests.write_text(yaml.safe_dump(case))
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
