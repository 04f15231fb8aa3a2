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

from components.metrics_collection import slo_alert_rules
from settings import SloSettings

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = ROOT / ".bin" / "promtool"
NAMESPACE, MODEL, DEPLOYMENT = "serving", "digits", "digits-server"
SLO = SloSettings(max_error_ratio=0.01, max_p99_latency_ms=500)
PAGE = {"severity": "page", "namespace": NAMESPACE, "model_name": MODEL}
SUMMARIES = {
    "ModelServerErrorBudgetBurn": "digits in serving: server errors above 1.00% of requests",
    "ModelServerLatencyP99High": "digits in serving: p99 latency above 500 ms",
    "ModelServerNoAvailableReplica": "digits in serving: no replica of digits-server available",
}


def requests(status: str, per_minute: int, namespace: str = NAMESPACE) -> dict[str, str]:
    return {
        "series": f':tensorflow:serving:request_count{{namespace="{namespace}",'
        f'model_name="{MODEL}",status="{status}"}}',
        "values": f"0+{per_minute}x20",
    }


def latency(le: str, per_minute: int) -> dict[str, str]:
    return {
        "series": f':tensorflow:serving:request_latency_bucket{{namespace="{NAMESPACE}",'
        f'model_name="{MODEL}",API="predict",entrypoint="REST",le="{le}"}}',
        "values": f"0+{per_minute}x20",
    }


def available(replicas: int) -> dict[str, str]:
    return {
        "series": f'kube_deployment_status_replicas_available{{namespace="{NAMESPACE}",'
        f'deployment="{DEPLOYMENT}"}}',
        "values": f"{replicas}x20",
    }


# Microseconds: every request under 100 ms, or every one between 100 ms and 1 s.
FAST = [latency("100000", 100), latency("1e+06", 100), latency("+Inf", 100)]
SLOW = [latency("100000", 0), latency("1e+06", 100), latency("+Inf", 100)]

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
    assert "SUCCESS: 3 rules found" in checked.stdout, checked.stdout


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
