"""The serving runtime over real HTTP on 127.0.0.1: TensorFlow Serving's REST contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import numpy as np
import pytest
from serving.metrics import TF_SERVING_REQUEST_COUNT as TF_COUNT
from serving.metrics import TF_SERVING_REQUEST_LATENCY as TF_LATENCY
from support import (
    MAX_BATCH_SIZE,
    MAX_REQUEST_BYTES,
    HeldBody,
    ServerProcess,
    accuracy,
    increase,
    metric_samples,
    sample,
    wait_in_flight,
)
from training.train import Split

MODEL_NAME = "digits"
PREDICT = f"/v1/models/{MODEL_NAME}:predict"


def predict(server: ServerProcess, body: Any) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(server.base_url + PREDICT, content=content, timeout=30)


def nested(depth: int) -> Any:
    """A single number inside `depth` one-element lists."""
    value: Any = 1.0
    for _ in range(depth):
        value = [value]
    return value


def assert_serves_good_request(server: ServerProcess, image: list[list[float]], label: int) -> None:
    response = predict(server, {"instances": [image]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["classes"] == label


def test_row_format_matches_tf_serving_shape_and_is_accurate(
    server: ServerProcess, split: Split
) -> None:
    images = split.x_test[:MAX_BATCH_SIZE]
    response = predict(server, {"instances": images.tolist()})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    predictions = response.json()["predictions"]
    assert len(predictions) == len(images)
    # Two named outputs: one object per instance, keyed by output name.
    assert all(set(row) == {"classes", "probabilities"} for row in predictions)
    probabilities = np.array([row["probabilities"] for row in predictions])
    assert probabilities.shape == (len(images), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    classes = np.array([row["classes"] for row in predictions])
    np.testing.assert_array_equal(classes, probabilities.argmax(axis=1))


def test_both_inference_engines_serve_the_same_answers(
    server: ServerProcess, start: Callable[..., ServerProcess], split: Split
) -> None:
    """The default server runs TensorFlow Lite; one with INFERENCE_ENGINE=session runs the TF
    Session (each says so in its metrics); over HTTP their answers agree to float rounding."""
    session_server = start(INFERENCE_ENGINE="session")
    body = {"instances": split.x_test[:MAX_BATCH_SIZE].tolist()}
    lite, session = (predict(each, body).json()["predictions"] for each in (server, session_server))
    for each, engine, other in (
        (server, "tflite", "session"),
        (session_server, "session", "tflite"),
    ):
        samples = metric_samples(each.base_url)
        assert sample(samples, "serving_inference_engine", engine=engine) == 1
        assert ("serving_inference_engine", frozenset({("engine", other)})) not in samples
    assert [row["classes"] for row in lite] == [row["classes"] for row in session]
    np.testing.assert_allclose(
        [row["probabilities"] for row in lite],
        [row["probabilities"] for row in session],
        rtol=0,
        atol=1e-5,
    )


def test_whole_held_out_set_is_at_least_97_percent_accurate(
    server: ServerProcess, split: Split
) -> None:
    classes: list[int] = []
    with httpx2.Client(base_url=server.base_url, timeout=30) as client:
        for start in range(0, len(split.x_test), MAX_BATCH_SIZE):
            batch = split.x_test[start : start + MAX_BATCH_SIZE].tolist()
            response = client.post(PREDICT, json={"instances": batch})
            assert response.status_code == 200, response.text
            classes += [row["classes"] for row in response.json()["predictions"]]
    assert accuracy(np.array(classes), split.y_test) >= 0.97


def test_named_instances_equal_bare_instances(server: ServerProcess, split: Split) -> None:
    images = split.x_test[:3].tolist()
    bare = predict(server, {"instances": images})
    named = predict(server, {"instances": [{"images": image} for image in images]})
    assert bare.status_code == named.status_code == 200
    assert bare.json() == named.json()


def test_columnar_format_returns_outputs_by_name(server: ServerProcess, split: Split) -> None:
    images = split.x_test[:4].tolist()
    rows = predict(server, {"instances": images}).json()["predictions"]
    for body in ({"inputs": {"images": images}}, {"inputs": images}):
        response = predict(server, body)
        assert response.status_code == 200, response.text
        outputs = response.json()["outputs"]
        assert set(outputs) == {"classes", "probabilities"}
        assert outputs["classes"] == [row["classes"] for row in rows]
        assert outputs["probabilities"] == [row["probabilities"] for row in rows]


def test_explicit_version_and_signature_name(
    server: ServerProcess, image: list[list[float]]
) -> None:
    response = httpx2.post(
        server.base_url + "/v1/models/digits/versions/1:predict",
        json={"signature_name": "serving_default", "instances": [image]},
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_model_status_like_tf_serving(server: ServerProcess) -> None:
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    for path in ("/v1/models/digits", "/v1/models/digits/versions/1"):
        response = httpx2.get(server.base_url + path)
        assert response.status_code == 200
        assert response.json() == expected


def test_metadata_describes_the_signature(server: ServerProcess) -> None:
    response = httpx2.get(server.base_url + "/v1/models/digits/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    images = signature["inputs"]["images"]
    assert images["dtype"] == "DT_FLOAT"
    assert [dim["size"] for dim in images["tensor_shape"]["dim"]] == ["-1", "8", "8"]
    assert signature["outputs"]["classes"]["dtype"] == "DT_INT64"
    assert signature["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["outputs"]["probabilities"]["tensor_shape"]["dim"]] == [
        "-1",
        "10",
    ]


def test_liveness(server: ServerProcess) -> None:
    response = httpx2.get(server.base_url + "/healthz")
    assert response.status_code == 200
    assert response.text == "ok"


def test_metrics_count_requests_at_both_paths(
    server: ServerProcess, image: list[list[float]]
) -> None:
    before = metric_samples(server.base_url)
    for _ in range(2):
        assert predict(server, {"instances": [image]}).status_code == 200
    # The versioned path is routed; the latest one is not: both are counted alike.
    versioned = server.base_url + "/v1/models/digits/versions/1:predict"
    assert httpx2.post(versioned, json={"instances": [image]}).status_code == 200
    assert predict(server, b"{").status_code == 400
    for path in ("/metrics", "/monitoring/prometheus/metrics"):
        after = metric_samples(server.base_url, path)
        assert increase(before, after, "serving_requests_total", api="predict", code="200") == 3
        assert increase(before, after, "serving_requests_total", api="predict", code="400") == 1
        assert increase(before, after, "serving_request_duration_seconds_count", api="predict") == 4
        assert increase(before, after, "serving_batch_size_count") == 3
        # TF Serving's series, as its tensorflow_model_server exports them (one dashboard and
        # one HPA metric for both runtimes).
        # (The parser reads TF Serving's counter, written without `_total`, as `..._total`.)
        tf_serving = {"model_name": MODEL_NAME}
        count = f"{TF_COUNT}_total"
        assert increase(before, after, count, **tf_serving, status="OK") == 3
        assert increase(before, after, count, **tf_serving, status="INVALID_ARGUMENT") == 1
        rest_predict = {**tf_serving, "API": "predict", "entrypoint": "REST"}
        assert increase(before, after, f"{TF_LATENCY}_count", **rest_predict) == 3
        # The scrape itself is in flight while the gauge is read.
        assert sample(after, "serving_in_flight_requests") == 1
        assert sample(after, "serving_model_ready") == 1
        assert sample(after, "process_resident_memory_bytes") > 0
    exposition = httpx2.get(server.base_url + "/monitoring/prometheus/metrics").text.splitlines()
    assert f"# TYPE {TF_COUNT} counter" in exposition
    assert f'{TF_COUNT}{{model_name="{MODEL_NAME}",status="OK"}}' in {
        line.rsplit(" ", 1)[0] for line in exposition
    }


def test_concurrent_requests_share_batches(server: ServerProcess, split: Split) -> None:
    """Every request is in flight at once (its body half sent until all are), so they overlap
    whatever the machine's load: unsynchronised threads on a busy machine could arrive one by
    one, and a request alone in the server rightly runs alone."""
    requests = 32
    images = split.x_test[:requests]
    before = metric_samples(server.base_url)
    bodies = [HeldBody(json.dumps({"instances": [image.tolist()]}).encode()) for image in images]
    with ThreadPoolExecutor(requests) as pool:
        pending = [
            pool.submit(httpx2.post, server.base_url + PREDICT, content=body, timeout=60)
            for body in bodies
        ]
        try:
            wait_in_flight(server.base_url, requests)
        finally:
            for body in bodies:
                body.release()
        responses = [future.result() for future in pending]
    for response in responses:
        assert response.status_code == 200, response.text
    classes = [response.json()["predictions"][0]["classes"] for response in responses]
    after = metric_samples(server.base_url)
    batches = increase(before, after, "serving_batch_size_count")
    rows = increase(before, after, "serving_batch_size_sum")
    assert rows == requests
    assert batches < requests, "every request ran in a batch of its own"
    single = increase(before, after, "serving_batch_size_bucket", le="1.0")
    assert single < batches, "no batch held more than one row"
    # Each request got its own row back, not a neighbour's.
    reference = predict(server, {"instances": images.tolist()[:MAX_BATCH_SIZE]}).json()
    assert classes[:MAX_BATCH_SIZE] == [row["classes"] for row in reference["predictions"]]


IMAGE = [[0.0] * 8] * 8
BAD_REQUESTS: list[tuple[str, bytes | dict[str, Any], int, str]] = [
    ("malformed JSON", b'{"instances": [', 400, "malformed JSON"),
    ("not an object", b"[1, 2, 3]", 400, "must be a JSON object"),
    ("no instances or inputs", {"images": [IMAGE]}, 400, "missing 'instances' or 'inputs'"),
    ("both formats", {"instances": [IMAGE], "inputs": [IMAGE]}, 400, "not both"),
    ("instances not a list", {"instances": 3}, 400, "'instances' must be a list"),
    ("empty instances", {"instances": []}, 400, "empty"),
    ("empty inputs", {"inputs": {"images": []}}, 400, "empty"),
    ("wrong shape", {"instances": [[[0.0] * 8] * 7]}, 400, "has shape [1, 7, 8]"),
    ("flat image", {"instances": [[0.0] * 64]}, 400, "expects [-1, 8, 8]"),
    ("ragged rows", {"instances": [IMAGE, IMAGE[:4]]}, 400, "not a rectangular array"),
    ("strings", {"instances": [[["a"] * 8] * 8]}, 400, "got strings"),
    ("booleans", {"instances": [[[True] * 8] * 8]}, 400, "got booleans"),
    ("nulls", {"instances": [[[None] * 8] * 8]}, 400, "must hold numbers (DT_FLOAT)"),
    ("unknown input", {"instances": [{"pixels": IMAGE}]}, 400, "unknown input 'pixels'"),
    ("missing input", {"inputs": {}}, 400, "missing input 'images'"),
    (
        "too many instances",
        {"instances": [IMAGE] * (MAX_BATCH_SIZE + 1)},
        400,
        f"at most {MAX_BATCH_SIZE} are allowed",
    ),
    (
        "unknown signature",
        {"signature_name": "classify", "instances": [IMAGE]},
        400,
        'Serving signature name: "classify" not found',
    ),
    (
        "signature_name too deep to quote back",
        b'{"signature_name": ' + b"[" * 1000 + b"]" * 1000 + b', "instances": [[]]}',
        400,
        "'signature_name' must be a string",
    ),
    (
        "instances nested past the JSON parser's depth",
        b'{"instances": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        400,
        "nested deeper than",
    ),
    (
        "instances nested past what an array can hold",
        {"instances": nested(100)},
        400,
        "is nested 100 levels deep; the model expects rank 3",
    ),
    (
        "body over MAX_REQUEST_BYTES",
        b'{"instances": [' + b" " * MAX_REQUEST_BYTES + b"]}",
        413,
        f"exceeds the limit of {MAX_REQUEST_BYTES} bytes",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_is_rejected_and_server_keeps_serving(
    server: ServerProcess,
    split: Split,
    body: bytes | dict[str, Any],
    status: int,
    message: str,
) -> None:
    response = predict(server, body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert_serves_good_request(server, split.x_test[0].tolist(), int(split.y_test[0]))


@pytest.mark.parametrize("times_the_limit", [1, 16, 256], ids=["just-over", "16x", "256x"])
def test_chunked_body_over_limit_is_rejected(
    server: ServerProcess, split: Split, times_the_limit: int
) -> None:
    def chunks() -> Any:
        yield b'{"instances": ['
        for _ in range(times_the_limit * MAX_REQUEST_BYTES // 1024 + 1):
            yield b" " * 1024
        yield b"]}"

    # No Content-Length: the limit must hold on the bytes that actually arrive.
    response = httpx2.post(server.base_url + PREDICT, content=chunks())
    assert response.status_code == 413
    assert "exceeds the limit" in response.json()["error"]
    assert_serves_good_request(server, split.x_test[0].tolist(), int(split.y_test[0]))


@pytest.mark.parametrize(
    ("route", "status", "message"),
    [
        (
            ("POST", "/v1/models/nope:predict"),
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            ("POST", "/v1/models/digits/versions/9:predict"),
            404,
            "Servable not found for request: Specific(digits, 9)",
        ),
        (("GET", "/v1/models/nope"), 404, "Could not find any versions of model nope"),
        (("GET", "/v1/models/digits/versions/9"), 404, "Could not find version 9 of model digits"),
        (("GET", "/v1/models/nope/metadata"), 404, "Servable not found"),
        # TF Serving's answer to a path or method no API takes (test_rest_conformance.py).
        (("GET", PREDICT), 400, "Malformed request: GET /v1/models/digits:predict"),
        (("GET", "/nothing/here"), 404, "Not Found"),
    ],
)
def test_unknown_model_version_or_path(
    server: ServerProcess, split: Split, route: tuple[str, str], status: int, message: str
) -> None:
    method, path = route
    response = httpx2.request(method, server.base_url + path, json={"instances": [IMAGE]})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert_serves_good_request(server, split.x_test[0].tolist(), int(split.y_test[0]))
