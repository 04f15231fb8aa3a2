"""SERVING_PROCESSES > 1: one group behind both ports, counted, drained and failed as a whole.

The drain under load with two processes is in test_drain.py; a model every process fails to
load is in test_config.py.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx2
import numpy as np
import pytest
import tensorflow as tf
from serving.metrics import TF_SERVING_REQUEST_COUNT
from support import (
    ServerProcess,
    increase,
    launch_server,
    metric_samples,
    sample,
    wait_ready,
)
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from training.train import Split

PREDICT = "/v1/models/digits:predict"
PROCESSES = 2
REQUEST_COUNT = f"{TF_SERVING_REQUEST_COUNT}_total"  # the parser's name for the counter


def serving_processes(server: ServerProcess) -> list[int]:
    """The supervisor's children that serve (not multiprocessing's resource tracker)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def wait_gone(pid: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running after {timeout_s}s")


def test_every_process_counts_in_every_scrape(
    start: Callable[..., ServerProcess], split: Split
) -> None:
    server = start(SERVING_PROCESSES=str(PROCESSES))
    assert len(serving_processes(server)) == PROCESSES
    before = metric_samples(server.base_url)
    rest_calls, grpc_calls, clients = 120, 40, 8

    def rest_predicts(first: int) -> list[int]:
        # A connection of its own per client, so the kernel spreads them over the processes.
        with httpx2.Client(base_url=server.base_url, timeout=60) as client:
            return [
                client.post(PREDICT, json={"instances": [split.x_test[i].tolist()]}).status_code
                for i in range(first, rest_calls, clients)
            ]

    with ThreadPoolExecutor(clients) as pool:
        codes = [code for batch in pool.map(rest_predicts, range(clients)) for code in batch]
    assert codes == [200] * rest_calls
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(split.x_test[:1].astype(np.float32)))
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(grpc_calls):
            stub.Predict(request, timeout=30)

    # Each scrape is answered by one process and must report the group's sums.
    for _ in range(4):
        after = metric_samples(server.base_url)
        assert increase(before, after, REQUEST_COUNT, model_name="digits", status="OK") == (
            rest_calls + grpc_calls
        )
        assert increase(before, after, "serving_requests_total", api="predict", code="200") == (
            rest_calls
        )
        assert increase(before, after, "serving_batch_size_sum") == rest_calls + grpc_calls
        assert sample(after, "serving_model_ready") == 1
        assert sample(after, "serving_inference_engine", engine="tflite") == 1
        # process_* series would describe whichever process answered: left out.
        assert sample(after, "process_resident_memory_bytes") == 0
    assert server.stop() == 0, server.log()
    assert "leaked" not in server.log()  # the supervisor released its barrier's semaphores


def test_a_process_that_dies_stops_the_group_with_exit_1(
    start: Callable[..., ServerProcess],
) -> None:
    server = start(SERVING_PROCESSES=str(PROCESSES))
    crashed, survivor = serving_processes(server)
    os.kill(crashed, signal.SIGKILL)
    assert server.process.wait(60) == 1, server.log()
    wait_gone(survivor)
    log = server.log()
    assert f"stopped with exit code -{signal.SIGKILL}" in log
    assert "drain complete" in log  # the survivor drained rather than being killed
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(server.base_url + "/healthz")


def test_killing_the_supervisor_frees_the_ports(start: Callable[..., ServerProcess]) -> None:
    server = start(SERVING_PROCESSES=str(PROCESSES))
    children = serving_processes(server)
    server.kill()  # SIGKILL: nothing can be passed on
    for child in children:
        wait_gone(child)
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(server.base_url + "/healthz")
    with (
        grpc.insecure_channel(server.grpc_target) as channel,
        pytest.raises(grpc.FutureTimeoutError),
    ):
        grpc.channel_ready_future(channel).result(timeout=1)


def test_no_process_turns_ready_before_every_one_has_loaded(tmp_path: Path) -> None:
    """A request reaches whichever process accepts it: one ready process must not make the
    group look ready while another is still loading."""
    server = launch_server(tmp_path / "server.log", SERVING_PROCESSES=str(PROCESSES))
    try:
        deadline = time.monotonic() + 30
        while len(children := serving_processes(server)) < PROCESSES:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.01)
        late = children[0]
        os.kill(late, signal.SIGSTOP)  # held before it can load (TensorFlow alone takes seconds)
        while "waiting for the other serving processes" not in server.log():
            assert time.monotonic() < deadline + 90, server.log()
            time.sleep(0.1)
        for _ in range(5):
            status = httpx2.get(server.base_url + "/v1/models/digits", timeout=10)
            assert status.status_code == 503
            assert "loading" in status.json()["error"]
            time.sleep(0.1)
        os.kill(late, signal.SIGCONT)
        wait_ready(server)
        # Both cross the barrier together; the other may take a moment to set its gauge.
        deadline = time.monotonic() + 5
        while sample(metric_samples(server.base_url), "serving_model_ready") != 1:
            assert time.monotonic() < deadline, "the group's ready gauge never read 1"
            time.sleep(0.05)
        assert server.stop() == 0, server.log()
    finally:
        server.kill()
