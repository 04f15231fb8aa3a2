"""SIGTERM drains: in-flight predictions finish, new work is refused, the exit code says how."""

from __future__ import annotations

import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from support import metric_samples, sample, start_server
from training.train import Split

PREDICT = "/v1/models/digits:predict"
# A batch window far longer than the test's steps: requests stay in flight until it closes.
SLOW_BATCH_MICROS = 3_000_000


def wait_in_flight(base_url: str, expected: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # The scrape counts itself.
        if sample(metric_samples(base_url), "serving_in_flight_requests") - 1 >= expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw {expected} requests in flight")


def test_sigterm_finishes_in_flight_refuses_new_and_exits_0(tmp_path: Path, split: Split) -> None:
    server = start_server(
        tmp_path / "server.log",
        MAX_BATCH_SIZE="64",
        BATCH_TIMEOUT_MICROS=str(SLOW_BATCH_MICROS),
        DRAIN_TIMEOUT_SECONDS="30",
    )
    in_flight = 6
    images = split.x_test[:in_flight]
    with ThreadPoolExecutor(in_flight) as pool:
        pending: list[Future[httpx2.Response]] = [
            pool.submit(
                httpx2.post,
                server.base_url + PREDICT,
                json={"instances": [image.tolist()]},
                timeout=60,
            )
            for image in images
        ]
        wait_in_flight(server.base_url, in_flight)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)

        assert server.process.poll() is None, "exited before the in-flight requests finished"
        status = httpx2.get(server.base_url + "/v1/models/digits")
        assert status.status_code == 503
        assert "shutting down" in status.json()["error"]
        refused = httpx2.post(server.base_url + PREDICT, json={"instances": [images[0].tolist()]})
        assert refused.status_code == 503
        assert "shutting down" in refused.json()["error"]
        assert refused.headers["connection"] == "close"
        assert httpx2.get(server.base_url + "/healthz").status_code == 200

        responses = [future.result() for future in pending]
    assert [response.status_code for response in responses] == [200] * in_flight
    for response in responses:
        (prediction,) = response.json()["predictions"]
        assert len(prediction["probabilities"]) == 10
    assert server.process.wait(30) == 0, server.log()
    # The batch window, not the drain timeout, decided when it stopped.
    assert time.monotonic() - signalled < 15
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(server.base_url + "/healthz")
    assert "drain complete" in server.log()


def test_drain_timeout_abandons_requests_and_exits_1(tmp_path: Path, split: Split) -> None:
    server = start_server(
        tmp_path / "server.log",
        MAX_BATCH_SIZE="64",
        BATCH_TIMEOUT_MICROS="10000000",
        DRAIN_TIMEOUT_SECONDS="0.5",
    )
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(
            httpx2.post,
            server.base_url + PREDICT,
            json={"instances": [split.x_test[0].tolist()]},
            timeout=30,
        )
        wait_in_flight(server.base_url, 1)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 1, server.log()
        with pytest.raises(httpx2.HTTPError):
            stuck.result().raise_for_status()
    assert "drain timed out with 1 predictions in flight" in server.log()
