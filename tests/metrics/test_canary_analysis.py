"""The canary analysis on real servers, judged by a real Prometheus.

Model-server processes on 127.0.0.1 stand in for the pods (simulated pods carry no traffic): one
stable, and canaries that are good, fail on part of the inputs, or are slower. Prometheus scrapes
each canary beside stable under a namespace of its own, with the target labels the monitor gives
the pods (namespace, track), a bounded load client drives them, and the analysis reads
Prometheus' HTTP API as `make rollout` does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from engine.canary_analysis import Prometheus, Verdict, analyse
from settings import RolloutSettings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / ".bin" / "prometheus"
MODEL_PYTHON = ROOT / "model" / ".venv" / "bin" / "python"
BUNDLED = ROOT / "model" / "export" / "digits"
MODEL = "digits"
STARTUP_TIMEOUT_SECONDS = 180
SCRAPE_INTERVAL_SECONDS = 1
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    return Process(popen, log)


def wait_for(url: str, process: Process) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(f"{process.log.name} exited:\n{process.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {STARTUP_TIMEOUT_SECONDS}s")


@dataclass
class Server:
    name: str
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def predict(self, first_pixel: float) -> tuple[int, float]:
        image = [[1.0] * 8 for _ in range(8)]
        image[0][0] = first_pixel
        request = urllib.request.Request(
            f"http://{self.target}/v1/models/{MODEL}:predict",
            data=json.dumps({"instances": [image]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        return status, time.perf_counter() - started


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    assert MODEL_PYTHON.is_file(), f"{MODEL_PYTHON} is missing: run `make model-venv`"
    work = tmp_path_factory.mktemp("canary")
    subprocess.run(
        [str(MODEL_PYTHON), str(Path(__file__).with_name("model_variants.py")), str(work)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    repositories = {
        "stable": BUNDLED,
        "good": BUNDLED,
        "idle": BUNDLED,
        "erroring": work / "erroring",
        "slow": work / "slow",
    }
    started: dict[str, tuple[Server, Process]] = {}
    try:
        for name, repository in repositories.items():
            port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT / "model"),
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "GRPC_PORT": str(free_port()),
                "MODEL_NAME": MODEL,
                "MODEL_BASE_PATH": str(repository),
                # The TF Session runs every op of the graph as saved (TFLite drops asserts).
                "INFERENCE_ENGINE": "session",
            }
            log = work / f"{name}.log"
            started[name] = (
                Server(name, port),
                start([str(MODEL_PYTHON), "-m", "serving"], log, env),
            )
        for server, process in started.values():
            wait_for(f"http://{server.target}/v1/models/{MODEL}", process)
        yield {name: server for name, (server, _) in started.items()}
    finally:
        for _, process in started.values():
            process.stop()


def scrape_config(servers: dict[str, Server]) -> dict[str, object]:
    """Stable and one canary per case, each pair under the case's namespace, labelled as the
    monitor labels the pods' series."""
    jobs = []
    for case in CASES:
        for track, server in (("stable", servers["stable"]), ("canary", servers[case])):
            jobs.append(
                {
                    "job_name": f"{case}-{track}",
                    "metrics_path": "/monitoring/prometheus/metrics",
                    "static_configs": [
                        {
                            "targets": [server.target],
                            "labels": {"namespace": case, "track": track, "pod": server.name},
                        }
                    ],
                }
            )
    return {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_SECONDS}s",
        },
        "scrape_configs": jobs,
    }


@pytest.fixture(scope="module")
def prometheus(
    servers: dict[str, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    assert PROMETHEUS.is_file(), f"{PROMETHEUS} is missing: run `make toolchain-metrics`"
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(servers)))
    address = f"127.0.0.1:{free_port()}"
    process = start(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address={address}",
        ],
        work / "prometheus.log",
    )
    try:
        wait_for(f"http://{address}/-/ready", process)
        yield Prometheus(f"http://{address}")
    finally:
        process.stop()


def wait_scraped(prometheus: Prometheus, times: int, since: float | None = None) -> None:
    """Until Prometheus has scraped every target `times` times (since `since`): its first
    scrape comes some seconds after it is ready."""
    jobs = 2 * len(CASES)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        seconds = 60 if since is None else max(1, int(time.time() - since))
        scraped = prometheus.value(f"count(count_over_time(up[{seconds}s]) >= {times})")
        if scraped == jobs:
            return
        time.sleep(SCRAPE_INTERVAL_SECONDS)
    raise AssertionError(f"Prometheus did not scrape all {jobs} targets {times} times")


@pytest.fixture(scope="module")
def verdicts(servers: dict[str, Server], prometheus: Prometheus) -> dict[str, Verdict]:
    """Bounded load on stable and on every canary but the idle one, one server at a time (so
    that the slow canary's work does not slow the others), then each case judged."""
    # The readiness probe's status call, which counts as a request: every server's request
    # series exists before the load, as a pod's does, so no rate misses the first ones.
    for server in servers.values():
        with urllib.request.urlopen(f"http://{server.target}/v1/models/{MODEL}", timeout=10):
            pass
    wait_scraped(prometheus, times=3)
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
    wait_scraped(prometheus, times=3, since=time.time())
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
