"""A three-step rollout's cost, measured in one run (see bench/README.md, "Rollout").

`make rollout`'s own code path (engine.rollout.rollout) walks a good canary through 10 → 50 →
100 % with a 30 s analysis window on the local cluster, through the real engine, judged by a real
Prometheus scraping real model servers on 127.0.0.1 (the simulated pods carry no traffic, so the
servers play stable's and the canary's pods, as in tests/engine/test_rollout.py). It reports:

- the engine's share of the rollout (each step's `up`, and the promotion's) against the waiting
  (the analysis windows), side by side;
- the PromQL queries' time on Prometheus: every query the rollout made, then the whole analysis
  (both tracks' three queries) repeated on the rollout's own series, against the window.

Needs what `make up` needs running (cluster, registry, BuildKit), the model venv and Prometheus.
The stack lives in a temporary backend and is destroyed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import driver  # noqa: E402
from engine.canary_analysis import Prometheus, analyse  # noqa: E402
from engine.environment import private_backend_environment  # noqa: E402
from engine.rollout import RolloutReport, rollout  # noqa: E402
from engine.scratch import copy_project  # noqa: E402
from engine.stack_file import declared_settings, write_config  # noqa: E402
from model_contract.repository import versions  # noqa: E402
from tests.metrics.real_servers import (  # noqa: E402
    BUNDLED,
    SCRAPE_INTERVAL_SECONDS,
    model_servers,
    paced_load,
    prometheus_scraping,
    scrape_job,
    touch_status,
    wait_scraped,
)

PROJECT = "gpu-model-serving"
NAMESPACE = "rollout-bench"
WINDOW_SECONDS = 30
REQUESTS_PER_SECOND = 10  # per track: about 270 in a window, above canaryMinRequests
ROLLOUT_CONFIG = {
    "namespace": NAMESPACE,
    "imageTag": NAMESPACE,
    "modelVersion": "1",
    "canarySteps": [10, 50, 100],
    "canaryAnalysisWindowSeconds": WINDOW_SECONDS,
    "canaryMinRequests": 50,
    "metricsScrapeIntervalSeconds": 5,
}


@dataclass(frozen=True)
class TimedPrometheus(Prometheus):
    """Prometheus whose every instant query's wall time is kept."""

    seconds: list[float] = field(default_factory=list)

    def value(self, query: str) -> float | None:
        started = time.perf_counter()
        try:
            return super().value(query)
        finally:
            self.seconds.append(time.perf_counter() - started)


def dark(_round: int) -> float:
    """Every request's first pixel: an ordinary digit, which both versions answer."""
    return 0.0


def two_version_repository(root: Path) -> Path:
    """Versions 1 and 2 of the bundled model: the canary is a good one, same contract."""
    found = versions(BUNDLED)
    newest = found[max(found)]
    repository = root / "model-repository" / "digits"
    for version in ("1", "2"):
        shutil.copytree(newest, repository / version)
    return repository


def milliseconds(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "median_ms": 1000 * statistics.median(ordered),
        "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
        "max_ms": 1000 * ordered[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--analyses", type=int, default=20, help="analyses timed after the rollout")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "rollout.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as scratch:
        root = Path(scratch)
        env = private_backend_environment(root / "state")
        config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
        keys = {**ROLLOUT_CONFIG, "modelPath": str(two_version_repository(root))}
        config.update({f"{PROJECT}:{key}": value for key, value in keys.items()})
        config_file = root / "stack.yaml"
        config_file.write_text(yaml.safe_dump({"config": config}))
        target = driver.StackTarget("rollout-bench", config_file, copy_project(root / "project"))
        stack = driver.open_stack(target, env)
        log: list[str] = []
        with model_servers(root, {"stable": BUNDLED, "canary": BUNDLED}) as servers:
            touch_status(servers)
            labels = {"namespace": NAMESPACE}
            jobs = [
                scrape_job(track, server, {**labels, "track": track})
                for track, server in servers.items()
            ]
            with prometheus_scraping(root, jobs) as plain:
                wait_scraped(plain, len(jobs), times=2)
                prometheus = TimedPrometheus(plain.url)

                def serve_window(seconds: float) -> None:
                    # Load for the window less three scrapes, then the scrapes that hold it.
                    load_seconds = seconds - 3 * SCRAPE_INTERVAL_SECONDS
                    paced_load(list(servers.values()), load_seconds, REQUESTS_PER_SECOND, dark)
                    time.sleep(3 * SCRAPE_INTERVAL_SECONDS)

                try:
                    first_up = time.perf_counter()
                    driver.up(stack, target, log.append)
                    first_up = time.perf_counter() - first_up
                    # As a merged pull request declares it: the first step's up builds it.
                    write_config(stack, config_file, PROJECT, {"canaryModelVersion": "2"})
                    started = time.perf_counter()
                    report = rollout(stack, target, log.append, prometheus, sleep=serve_window)
                    rollout_seconds = time.perf_counter() - started
                    rollout_queries = list(prometheus.seconds)
                    settings = declared_settings(target.work_dir, config_file, PROJECT)
                    analyses = []
                    for _ in range(args.analyses):
                        began = time.perf_counter()
                        analyse(prometheus, NAMESPACE, settings.server.model_name, settings.rollout)
                        analyses.append(time.perf_counter() - began)
                finally:
                    driver.destroy(stack, target, lambda _line: None)

    result = summary(report, first_up, rollout_seconds, rollout_queries, analyses)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(line for line in log if line.startswith("rollout:")))
    print_summary(result)
    return 0 if report.outcome == "promoted" else 1


def summary(
    report: RolloutReport,
    first_up: float,
    rollout_seconds: float,
    queries: list[float],
    analyses: list[float],
) -> dict[str, Any]:
    ups = sum(step.up_seconds for step in report.steps) + report.final_up_seconds
    waits = sum(step.wait_seconds for step in report.steps)
    analysis = milliseconds(analyses)
    return {
        "outcome": report.outcome,
        "window_s": WINDOW_SECONDS,
        "first_up_s": first_up,
        "rollout_s": rollout_seconds,
        "engine_s": ups,
        "waiting_s": waits,
        "engine_share": ups / rollout_seconds,
        "engine_to_waiting": ups / waits,
        "steps": [
            {"weight": s.weight, "up_s": s.up_seconds, "wait_s": s.wait_seconds}
            for s in report.steps
        ],
        "promotion_up_s": report.final_up_seconds,
        "rollout_queries": milliseconds(queries),
        "analysis": analysis,
        "analysis_to_window": analysis["median_ms"] / (1000 * WINDOW_SECONDS),
    }


def print_summary(result: dict[str, Any]) -> None:
    for step in result["steps"]:
        print(f"step {step['weight']:3d} %: up {step['up_s']:6.2f}s, window {step['wait_s']:6.2f}s")
    queries, analysis = result["rollout_queries"], result["analysis"]
    print(
        f"promotion up {result['promotion_up_s']:.2f}s; first up (stable only, not counted)"
        f" {result['first_up_s']:.2f}s\n"
        f"rollout {result['rollout_s']:.1f}s: engine {result['engine_s']:.1f}s vs waiting"
        f" {result['waiting_s']:.1f}s = {result['engine_to_waiting']:.2f}x"
        f" (engine {100 * result['engine_share']:.0f} % of the rollout)\n"
        f"PromQL: {queries['count']} queries in the rollout, median {queries['median_ms']:.1f} ms,"
        f" max {queries['max_ms']:.1f} ms; one analysis (6 queries) median"
        f" {analysis['median_ms']:.1f} ms, p90 {analysis['p90_ms']:.1f} ms over"
        f" {analysis['count']} = {result['analysis_to_window']:.5f}x the"
        f" {result['window_s']} s window"
    )


if __name__ == "__main__":
    sys.exit(main())
