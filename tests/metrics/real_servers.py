"""Real model servers and a real Prometheus on 127.0.0.1, for the tests that judge a canary on
real request series (the simulated pods carry no traffic)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.canary_analysis import Prometheus

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / ".bin" / "prometheus"
MODEL_PYTHON = ROOT / "model" / ".venv" / "bin" / "python"
BUNDLED = ROOT / "model" / "export" / "digits"
MODEL = "digits"
STARTUP_TIMEOUT_SECONDS = 180
SCRAPE_INTERVAL_SECONDS = 1


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


@contextlib.contextmanager
def model_servers(work: Path, repositories: Mapping[str, Path]) -> Iterator[dict[str, Server]]:
    """One Python model server per named model repository, each on its own port, ready."""
    assert MODEL_PYTHON.is_file(), f"{MODEL_PYTHON} is missing: run `make model-venv`"
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
            started[name] = (
                Server(name, port),
                start([str(MODEL_PYTHON), "-m", "serving"], work / f"{name}.log", env),
            )
        for server, process in started.values():
            wait_for(f"http://{server.target}/v1/models/{MODEL}", process)
        yield {name: server for name, (server, _) in started.items()}
    finally:
        for _, process in started.values():
            process.stop()


def model_variants(work: Path) -> Path:
    """Builds the bad versions (tests/metrics/model_variants.py) under `work`."""
    subprocess.run(
        [str(MODEL_PYTHON), str(Path(__file__).with_name("model_variants.py")), str(work)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return work


def scrape_job(name: str, server: Server, labels: Mapping[str, str]) -> dict[str, Any]:
    """A job scraping `server` with the target labels the monitor gives a pod's series."""
    return {
        "job_name": name,
        "metrics_path": "/monitoring/prometheus/metrics",
        "static_configs": [{"targets": [server.target], "labels": {**labels, "pod": server.name}}],
    }


@contextlib.contextmanager
def prometheus_scraping(work: Path, jobs: list[dict[str, Any]]) -> Iterator[Prometheus]:
    assert PROMETHEUS.is_file(), f"{PROMETHEUS} is missing: run `make toolchain-metrics`"
    config = work / "prometheus.yml"
    interval = f"{SCRAPE_INTERVAL_SECONDS}s"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": interval, "scrape_timeout": interval},
                "scrape_configs": jobs,
            }
        )
    )
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


def wait_scraped(prometheus: Prometheus, jobs: int, times: int, since: float | None = None) -> None:
    """Until Prometheus has scraped every target `times` times (since `since`): its first
    scrape comes some seconds after it is ready."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        seconds = 60 if since is None else max(1, int(time.time() - since))
        scraped = prometheus.value(f"count(count_over_time(up[{seconds}s]) >= {times})")
        if scraped == jobs:
            return
        time.sleep(SCRAPE_INTERVAL_SECONDS)
    raise AssertionError(f"Prometheus did not scrape all {jobs} targets {times} times")


def touch_status(servers: Mapping[str, Server]) -> None:
    """The readiness probe's status call, which counts as a request: every server's request
    series exists before the load, as a pod's does, so no rate misses the first ones."""
    for server in servers.values():
        with urllib.request.urlopen(f"http://{server.target}/v1/models/{MODEL}", timeout=10):
            pass


def paced_load(
    servers: list[Server], seconds: float, per_second: int, first_pixel: Callable[[int], float]
) -> int:
    """Requests to every server in turn, `per_second` rounds a second for `seconds` (bounded in
    count and time); round n sends first_pixel(n). Returns the rounds sent."""
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        for server in servers:
            server.predict(first_pixel(sent))
        sent += 1
        time.sleep(1 / per_second)
    return sent
