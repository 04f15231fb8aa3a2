"""Helpers for the tests: the serving runtime as a real subprocess, and metric scrapes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

MODEL_DIR = Path(__file__).resolve().parent.parent
COMMITTED_MODEL = MODEL_DIR / "export" / "digits"
STARTUP_TIMEOUT_S = 120.0
# Limits of the shared server (conftest.py), small enough to test without big payloads.
MAX_BATCH_SIZE = 16
MAX_REQUEST_BYTES = 64 * 1024


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    grpc_target: str
    """host:port of TensorFlow Serving's gRPC API."""
    model_name: str = "digits"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Ends the process if a failed test left it running (tests stop it with SIGTERM)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"server ignored SIGTERM for {timeout_s}s:\n{self.log()}"
            ) from None


class HeldBody:
    """A request body sent in two parts, the second only after `release()`: until then the
    request is admitted and in flight (its body being read), as a slow upload would be."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    def __iter__(self) -> Iterator[bytes]:
        half = len(self.body) // 2
        yield self.body[:half]
        self.released.wait(60)
        yield self.body[half:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def launch_server(log_path: Path, **env: str) -> ServerProcess:
    """Start ``python -m serving`` on 127.0.0.1 with the committed model; do not wait."""
    port, grpc_port = free_port(), free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": str(MODEL_DIR),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GRPC_PORT": str(grpc_port),
        "MODEL_NAME": "digits",
        "MODEL_BASE_PATH": str(COMMITTED_MODEL),
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(
        process,
        f"http://127.0.0.1:{port}",
        log_path,
        f"127.0.0.1:{environment['GRPC_PORT']}",
        environment["MODEL_NAME"],
    )


def wait_ready(server: ServerProcess) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            status = httpx2.get(f"{server.base_url}/v1/models/{server.model_name}", timeout=2)
            if status.status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server not ready after {STARTUP_TIMEOUT_S}s:\n{server.log()}")


def start_server(log_path: Path, **env: str) -> ServerProcess:
    server = launch_server(log_path, **env)
    wait_ready(server)
    return server


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metric_samples(base_url: str, path: str = "/metrics") -> Samples:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    response = httpx2.get(base_url + path)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def increase(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)


def accuracy(classes: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(classes == labels))


def wait_in_flight(base_url: str, expected: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # The scrape counts itself.
        if sample(metric_samples(base_url), "serving_in_flight_requests") - 1 >= expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw {expected} requests in flight")
