"""SIGTERM drains: in-flight predictions finish, new work is refused, the exit code says how."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import httpx2
import pytest
from support import HeldBody, ServerProcess, wait_in_flight
from training.train import Split

PREDICT = "/v1/models/digits:predict"


@pytest.mark.parametrize("processes", ["1", "2"])
def test_sigterm_finishes_in_flight_refuses_new_and_exits_0(
    start: Callable[..., ServerProcess], split: Split, processes: str
) -> None:
    """With several processes the in-flight requests are spread over them (the metrics sum
    them), and every one drains before the group exits."""
    server = start(MAX_BATCH_SIZE="64", DRAIN_TIMEOUT_SECONDS="30", SERVING_PROCESSES=processes)
    in_flight = 6
    images = split.x_test[:in_flight]
    bodies = [HeldBody(json.dumps({"instances": [image.tolist()]}).encode()) for image in images]
    with ThreadPoolExecutor(in_flight) as pool:
        pending: list[Future[httpx2.Response]] = [
            pool.submit(httpx2.post, server.base_url + PREDICT, content=body, timeout=60)
            for body in bodies
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

        for body in bodies:
            body.release()
        responses = [future.result() for future in pending]
    assert [response.status_code for response in responses] == [200] * in_flight
    for response in responses:
        (prediction,) = response.json()["predictions"]
        assert len(prediction["probabilities"]) == 10
    assert server.process.wait(30) == 0, server.log()
    # The uploads finishing, not the drain timeout, decided when it stopped.
    assert time.monotonic() - signalled < 15
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(server.base_url + "/healthz")
    assert "drain complete" in server.log()


def test_drain_timeout_abandons_requests_and_exits_1(
    start: Callable[..., ServerProcess], split: Split
) -> None:
    server = start(DRAIN_TIMEOUT_SECONDS="0.5")
    body = HeldBody(json.dumps({"instances": [split.x_test[0].tolist()]}).encode())
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(httpx2.post, server.base_url + PREDICT, content=body, timeout=30)
        wait_in_flight(server.base_url, 1)
        server.process.send_signal(signal.SIGTERM)
        try:
            assert server.process.wait(15) == 1, server.log()
        finally:
            body.release()
        with pytest.raises(httpx2.HTTPError):
            stuck.result().raise_for_status()
    assert "drain timed out with 1 predictions in flight" in server.log()
