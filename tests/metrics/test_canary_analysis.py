"""The canary analysis on real servers, judged by a real Prometheus.

Model-server processes on 127.0.0.1 stand in for the pods (simulated pods carry no traffic): one
stable, and canaries that are good, fail on part of the inputs, or are slower. Prometheus scrapes
each canary beside stable under a namespace of its own, with the target labels the monitor gives
the pods (namespace, track), a bounded load client drives them, and the analysis reads
Prometheus' HTTP API as `make rollout` does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from engine.canary_analysis import Prometheus, Verdict, analyse
from gpu_model_serving.settings import RolloutSettings
from tests.metrics.real_servers import (
    BUNDLED,
    MODEL,
    Server,
    free_port,
    model_servers,
    model_variants,
    prometheus_scraping,
    scrape_job,
    touch_status,
    wait_scraped,
)

# Requests per track and case: enough for canaryMinRequests, few enough for a loaded machine.
REQUESTS = 80
REQUESTS_PER_SECOND = 20
ROLLOUT = RolloutSettings(
    steps=(10, 50, 100),
    analysis_window_seconds=120,
    min_requests=50,
    max_error_ratio=0.01,
    max_p99_latency_ms=1000,
    max_p99_latency_ratio=2.0,
)
# Each canary case under its own namespace; "erroring" fails on every fifth request's input.
CASES = ("good", "erroring", "slow", "idle")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    work = tmp_path_factory.mktemp("canary")
    variants = model_variants(work)
    repositories = {
        "stable": BUNDLED,
        "good": BUNDLED,
        "idle": BUNDLED,
        "erroring": variants / "erroring",
        "slow": variants / "slow",
    }
    with model_servers(work, repositories) as started:
        yield started


def scrape_jobs(servers: dict[str, Server]) -> list[dict[str, Any]]:
    """Stable and one canary per case, each pair under the case's namespace, labelled as the
    monitor labels the pods' series."""
    return [
        scrape_job(f"{case}-{track}", server, {"namespace": case, "track": track})
        for case in CASES
        for track, server in (("stable", servers["stable"]), ("canary", servers[case]))
    ]


@pytest.fixture(scope="module")
def prometheus(
    servers: dict[str, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    with prometheus_scraping(tmp_path_factory.mktemp("prometheus"), scrape_jobs(servers)) as p:
        yield p


@pytest.fixture(scope="module")
def verdicts(servers: dict[str, Server], prometheus: Prometheus) -> dict[str, Verdict]:
    """Bounded load on stable and on every canary but the idle one, one server at a time (so
    that the slow canary's work does not slow the others), then each case judged."""
    touch_status(servers)
    jobs = 2 * len(CASES)
    wait_scraped(prometheus, jobs, times=3)
    statuses: dict[str, list[int]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name in ("stable", "good", "erroring", "slow"):
            # Every fifth image has a bright first pixel, which the erroring model fails on.
            # Paced, so that the load spans scrapes as a service's traffic does.
            answers = []
            for i in range(REQUESTS):
                answers.append(pool.submit(servers[name].predict, 16.0 if i % 5 == 0 else 0.0))
                time.sleep(1 / REQUESTS_PER_SECOND)
            statuses[name] = [answer.result()[0] for answer in answers]
    assert statuses["erroring"].count(500) == REQUESTS // 5, statuses["erroring"]
    assert set(statuses["stable"]) == set(statuses["good"]) == set(statuses["slow"]) == {200}
    # Scrapes past the last request, so every series holds it.
    wait_scraped(prometheus, jobs, times=3, since=time.time())
    return {case: analyse(prometheus, case, MODEL, ROLLOUT) for case in CASES}


def test_a_good_canary_passes_with_its_figures(verdicts: dict[str, Verdict]) -> None:
    verdict = verdicts["good"]
    assert verdict.outcome == "pass", verdict
    assert verdict.canary is not None and verdict.stable is not None
    assert verdict.canary.requests >= ROLLOUT.min_requests
    assert verdict.canary.error_ratio == 0
    assert verdict.canary.p99_latency_ms is not None and verdict.canary.p99_latency_ms > 0


def test_a_canary_that_fails_on_some_inputs_fails_on_its_error_ratio(
    verdicts: dict[str, Verdict],
) -> None:
    verdict = verdicts["erroring"]
    assert verdict.outcome == "fail", verdict
    assert verdict.canary is not None and verdict.canary.error_ratio is not None
    assert 0.1 < verdict.canary.error_ratio < 0.3  # one request in five, as sent
    assert verdict.findings[0].startswith("canary error ratio 0."), verdict.findings
    assert "> canaryMaxErrorRatio 0.01" in verdict.findings[0]


def test_a_slower_canary_fails_on_its_latency_against_stable(
    verdicts: dict[str, Verdict],
) -> None:
    verdict = verdicts["slow"]
    assert verdict.outcome == "fail", verdict
    assert verdict.canary is not None and verdict.stable is not None
    assert verdict.canary.error_ratio == 0
    assert verdict.canary.p99_latency_ms is not None and verdict.stable.p99_latency_ms is not None
    assert verdict.canary.p99_latency_ms > 2 * verdict.stable.p99_latency_ms
    relative = [f for f in verdict.findings if "stable p99" in f]
    assert len(relative) == 1 and " > 2.0 x " in relative[0], verdict.findings


def test_a_canary_without_traffic_gets_no_verdict(verdicts: dict[str, Verdict]) -> None:
    verdict = verdicts["idle"]
    assert verdict.outcome == "no verdict", verdict
    assert verdict.findings == ["canary requests 0 < canaryMinRequests 50"]


def test_prometheus_unreachable_gets_no_verdict() -> None:
    down = Prometheus(f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    verdict = analyse(down, "good", MODEL, ROLLOUT)
    assert verdict.outcome == "no verdict"
    assert "did not answer" in verdict.findings[0], verdict.findings


def test_a_query_prometheus_rejects_gets_no_verdict(prometheus: Prometheus) -> None:
    broken = RolloutSettings(**{**ROLLOUT.__dict__, "analysis_window_seconds": 0})
    verdict = analyse(prometheus, "good", MODEL, broken)
    assert verdict.outcome == "no verdict"
    assert "HTTP 400: bad_data" in verdict.findings[0], verdict.findings
