"""Readiness across the lifecycle, in process: 503 while loading, ready, 503 while draining."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from serving.app import create_app
from serving.config import load_settings
from serving.metrics import Metrics
from serving.runtime import Phase, Runtime, warm_up_sizes
from starlette.testclient import TestClient
from support import COMMITTED_MODEL

STATUS = "/v1/models/digits"
PREDICT = "/v1/models/digits:predict"
IMAGE = [[0.0] * 8] * 8


def make_runtime() -> Runtime:
    settings = load_settings({"MODEL_BASE_PATH": str(COMMITTED_MODEL), "MAX_BATCH_SIZE": "8"})
    return Runtime(settings, Metrics())


def wait_until_loaded(runtime: Runtime) -> None:
    """The lifespan loads the model in the background; at most a minute."""
    deadline = time.monotonic() + 60
    while runtime.phase is Phase.LOADING and time.monotonic() < deadline:
        time.sleep(0.05)


def test_not_ready_until_loaded_but_alive() -> None:
    runtime = make_runtime()
    # Without the context manager TestClient skips the lifespan, so the model never loads.
    client = TestClient(create_app(runtime))
    status = client.get(STATUS)
    assert status.status_code == 503
    assert status.json() == {"error": "model digits is loading and warming up"}
    predict = client.post(PREDICT, json={"instances": [IMAGE]})
    assert predict.status_code == 503
    assert "loading" in predict.json()["error"]
    assert client.get("/v1/models/digits/metadata").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_ready_after_warm_up_then_refuses_while_draining() -> None:
    runtime = make_runtime()
    with TestClient(create_app(runtime)) as client:
        wait_until_loaded(runtime)
        assert runtime.phase is Phase.READY
        # The model's objects are out of the garbage collector's reach: frozen, so full
        # collections stop walking TensorFlow's heap while requests wait.
        assert not any(obj is runtime.model for obj in gc.get_objects())
        assert client.get(STATUS).status_code == 200
        assert client.post(PREDICT, json={"instances": [IMAGE]}).status_code == 200

        runtime.begin_drain()
        status = client.get(STATUS)
        assert status.status_code == 503
        assert "shutting down" in status.json()["error"]
        predict = client.post(PREDICT, json={"instances": [IMAGE]})
        assert predict.status_code == 503
        assert predict.headers["connection"] == "close"
        # Metadata and liveness still answer: the process is alive, only not taking work.
        assert client.get("/v1/models/digits/metadata").status_code == 200
        assert client.get("/healthz").status_code == 200
        assert runtime.drained


def test_warm_up_covers_powers_of_two_and_the_limit() -> None:
    assert warm_up_sizes(1) == (1,)
    assert warm_up_sizes(32) == (1, 2, 4, 8, 16, 32)
    assert warm_up_sizes(48) == (1, 2, 4, 8, 16, 32, 48)


def test_a_lone_rest_prediction_runs_on_the_event_loop() -> None:
    """REST asks the batcher to skip the thread hand-offs when nothing else is in flight."""
    runtime = make_runtime()
    with TestClient(create_app(runtime)) as client:
        wait_until_loaded(runtime)
        assert runtime.ready and runtime._batcher is not None
        threads: list[str] = []
        run_batch = runtime._batcher._run_batch

        def recording(inputs: dict[str, Any]) -> dict[str, Any]:
            threads.append(threading.current_thread().name)
            return run_batch(inputs)

        runtime._batcher._run_batch = recording
        assert client.post(PREDICT, json={"instances": [IMAGE]}).status_code == 200
    assert len(threads) == 1 and not threads[0].startswith("inference")
