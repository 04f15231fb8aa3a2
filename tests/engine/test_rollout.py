"""`make rollout` through the real engine, judged by a real Prometheus on real servers.

The stack's pods are simulated and carry no traffic, so model-server processes on 127.0.0.1 play
its stable and canary pods: Prometheus scrapes them with the labels the monitor gives the pods'
series (the stack's namespace, the track), and the rollout's wait between a step's `up` and its
judgement is where a bounded load client drives them. Each case walks one step (50 %) and then
promotes or rolls back through the engine, leaving the stack file saying what is live.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import driver
from engine.canary_analysis import Prometheus
from engine.preview_record import PreviewRecord
from engine.rollout import RolloutReport, rollout
from review import comment
from tests.cluster.conftest import Cluster
from tests.cluster.kube import resource_path
from tests.engine.conftest import PROJECT, EngineStack, report_of, throwaway_stack
from tests.engine.test_model_versions import BUNDLED_MODEL, model_repository  # noqa: F401
from tests.metrics.real_servers import (
    BUNDLED,
    SCRAPE_INTERVAL_SECONDS,
    Server,
    free_port,
    model_servers,
    model_variants,
    paced_load,
    prometheus_scraping,
    scrape_job,
    touch_status,
    wait_scraped,
)

pytestmark = pytest.mark.engine

WINDOW_SECONDS = 20
REQUESTS_PER_SECOND = 10  # per track: 200 in a window, far above canaryMinRequests
ROLLOUT_CONFIG = {
    "canarySteps": [50, 100],
    "canaryAnalysisWindowSeconds": WINDOW_SECONDS,
    "canaryMinRequests": 50,
    "metricsScrapeIntervalSeconds": 5,
}
DEPLOYMENT_A, DEPLOYMENT_B = "digits-server", "digits-server-b"


@pytest.fixture(scope="module")
def rollout_stack(
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
    model_repository: Path,  # noqa: F811
) -> Iterator[EngineStack]:
    root = tmp_path_factory.mktemp("rollout")
    with throwaway_stack(
        cluster, root, modelPath=str(model_repository), modelVersion="1", **ROLLOUT_CONFIG
    ) as stack:
        stack.run("up")
        yield stack


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    work = tmp_path_factory.mktemp("rollout-servers")
    variants = model_variants(work)
    repositories = {"stable": BUNDLED, "good": BUNDLED, "erroring": variants / "erroring"}
    with model_servers(work, repositories) as started:
        touch_status(started)
        yield started


@pytest.fixture(scope="module")
def prometheus(
    servers: dict[str, Server],
    rollout_stack: EngineStack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prometheus]:
    """Both canary servers under the canary's track: the load decides which one the canary is."""
    labels = {"namespace": rollout_stack.namespace}
    jobs = [scrape_job("stable", servers["stable"], {**labels, "track": "stable"})]
    jobs += [
        scrape_job(name, servers[name], {**labels, "track": "canary"})
        for name in ("good", "erroring")
    ]
    with prometheus_scraping(tmp_path_factory.mktemp("rollout-prometheus"), jobs) as running:
        wait_scraped(running, len(jobs), times=2)
        yield running


def serving_load(
    stable: Server, canary: Server, seen: list[set[str]], cluster: Cluster, stack: EngineStack
) -> Callable[[float], None]:
    """The rollout's wait: first the canary slot's pods as they are now (to prove promotion
    keeps them), then paced requests to both tracks (every fifth image has a bright first
    pixel, which the erroring model fails on), then two scrapes so every series holds them."""

    def wait(seconds: float) -> None:
        seen.append(pod_names(cluster, stack, DEPLOYMENT_B))
        load_seconds = seconds - 3 * SCRAPE_INTERVAL_SECONDS
        paced_load([stable, canary], load_seconds, REQUESTS_PER_SECOND, bright_every_fifth)
        time.sleep(3 * SCRAPE_INTERVAL_SECONDS)

    return wait


def bright_every_fifth(sent: int) -> float:
    return 16.0 if sent % 5 == 0 else 0.0


def pod_names(cluster: Cluster, stack: EngineStack, deployment: str) -> set[str]:
    listing = cluster.client.get(
        resource_path("v1", "Pod", stack.namespace),
        labelSelector="app.kubernetes.io/instance="
        + ("digits-b" if deployment == DEPLOYMENT_B else "digits"),
    )
    return {
        p["metadata"]["name"] for p in listing["items"] if "deletionTimestamp" not in p["metadata"]
    }


def declared(stack: EngineStack) -> dict[str, Any]:
    config = yaml.safe_load(stack.config_file.read_text())["config"]
    return {k.removeprefix(f"{PROJECT}:"): v for k, v in config.items()}


def declare(stack: EngineStack, **keys: Any) -> None:
    """Set keys in the stack file as it stands (the rollout writes it too)."""
    config = yaml.safe_load(stack.config_file.read_text())["config"]
    config.update({f"{PROJECT}:{k}": v for k, v in keys.items()})
    stack.config_file.write_text(yaml.safe_dump({"config": config}))
    stack.base_config = config


def deployment_exists(cluster: Cluster, stack: EngineStack, name: str) -> bool:
    listing = cluster.client.get(resource_path("apps/v1", "Deployment", stack.namespace))
    return name in {d["metadata"]["name"] for d in listing["items"]}


def run_rollout(
    stack: EngineStack, prometheus: Prometheus, wait: Callable[[float], None]
) -> RolloutReport:
    engine = driver.open_stack(stack.target, stack.env)
    return rollout(engine, stack.target, stack.log.append, prometheus, sleep=wait)


def assert_no_drift(stack: EngineStack) -> None:
    drift = stack.cli("drift")
    assert drift.returncode == 0, drift.stdout[-3000:] + drift.stderr[-3000:]


def test_a_good_canary_is_planned_in_review_then_promoted_in_place_and_the_stack_file_says_so(
    cluster: Cluster,
    rollout_stack: EngineStack,
    servers: dict[str, Server],
    prometheus: Prometheus,
    tmp_path: Path,
) -> None:
    declare(rollout_stack, canaryModelVersion="2")
    # What the reviewer sees first: the plan in the preview record and the PR comment.
    record_file = tmp_path / "preview.json"
    previewed = rollout_stack.cli("preview", "--record", str(record_file))
    assert previewed.returncode == 0, previewed.stdout[-3000:] + previewed.stderr[-3000:]
    record = PreviewRecord.from_json(report_of(record_file))
    assert record.rollout_plan is not None and record.rollout_plan["canaryVersion"] == 2
    body = comment.render(record)
    assert "### Rollout plan: canary version 2" in body
    assert "- canary contract against stable version 1: **unchanged**" in body
    seen: list[set[str]] = []
    wait = serving_load(servers["stable"], servers["good"], seen, cluster, rollout_stack)
    report = run_rollout(rollout_stack, prometheus, wait)
    assert report.outcome == "promoted", report
    (step,) = report.steps
    assert (step.weight, step.outcome) == (50, "pass")
    assert step.verdict["canary"]["requests"] >= 50
    assert step.verdict["canary"]["error_ratio"] == 0
    config = declared(rollout_stack)
    assert (config["modelVersion"], config["stableSlot"]) == ("2", "b")
    assert "canaryModelVersion" not in config and "canaryWeight" not in config
    # The canary's pods now serve as stable: the same pods, not restarted; slot a is gone.
    (canary_pods,) = seen
    assert canary_pods and pod_names(cluster, rollout_stack, DEPLOYMENT_B) == canary_pods
    assert not deployment_exists(cluster, rollout_stack, DEPLOYMENT_A)
    assert_no_drift(rollout_stack)


def test_a_canary_that_fails_on_some_inputs_is_rolled_back_with_its_figures(
    cluster: Cluster,
    rollout_stack: EngineStack,
    servers: dict[str, Server],
    prometheus: Prometheus,
) -> None:
    declare(rollout_stack, canaryModelVersion="1")  # into slot a, beside stable 2 in b
    seen: list[set[str]] = []
    wait = serving_load(servers["stable"], servers["erroring"], seen, cluster, rollout_stack)
    report = run_rollout(rollout_stack, prometheus, wait)
    assert report.outcome == "rolled back", report
    (step,) = report.steps
    assert step.outcome == "fail"
    assert 0.1 < step.verdict["canary"]["error_ratio"] < 0.3  # one request in five
    assert any("> canaryMaxErrorRatio 0.01" in f for f in step.verdict["findings"])
    config = declared(rollout_stack)
    assert (config["modelVersion"], config["stableSlot"]) == ("2", "b")
    assert "canaryModelVersion" not in config
    assert not deployment_exists(cluster, rollout_stack, DEPLOYMENT_A)
    assert deployment_exists(cluster, rollout_stack, DEPLOYMENT_B)
    assert_no_drift(rollout_stack)


def test_prometheus_down_rolls_back_with_no_verdict_and_its_own_exit_code(
    cluster: Cluster, rollout_stack: EngineStack, tmp_path: Path
) -> None:
    declare(rollout_stack, canaryModelVersion="1")
    report_file = tmp_path / "rollout.json"
    down = f"http://127.0.0.1:{free_port()}"
    ran = rollout_stack.cli("rollout", "--prometheus", down, "--report", str(report_file))
    assert ran.returncode == 4, ran.stdout[-3000:] + ran.stderr[-3000:]
    report = report_of(report_file)
    assert report["outcome"] == "no verdict"
    assert "did not answer" in report["steps"][0]["verdict"]["findings"][0]
    assert "rollout: no verdict" in ran.stdout
    config = declared(rollout_stack)
    assert (config["modelVersion"], config["stableSlot"]) == ("2", "b")
    assert not deployment_exists(cluster, rollout_stack, DEPLOYMENT_A)
