# mypy: disable-error-code="no-any-return"
# (the generated protos are untyped: their messages come back as Any.)
"""TensorFlow Serving's gRPC API over a real channel, with a client built from the published
protos (tensorflow-serving-api): the same answers as REST, TF Serving's status codes for bad
requests, the shared metrics, and a drain under gRPC load."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import httpx2
import numpy as np
import pytest
import tensorflow as tf
from serving.metrics import TF_SERVING_REQUEST_COUNT, TF_SERVING_REQUEST_LATENCY
from support import (
    MAX_BATCH_SIZE,
    MAX_REQUEST_BYTES,
    HeldBody,
    ServerProcess,
    increase,
    metric_samples,
    wait_in_flight,
)
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from training.train import Split

MODEL = "digits"


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as opened:
        yield opened


@pytest.fixture(scope="module")
def predictions(channel: grpc.Channel) -> Any:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def predict_request(images: np.ndarray, **spec: Any) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop("name", MODEL)
    for field, value in spec.items():
        if field == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, field, value)
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images.astype(np.float32)))
    return request


def rpc_error(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value


def test_predict_answers_what_rest_answers(
    server: ServerProcess, predictions: Any, split: Split
) -> None:
    images = split.x_test[:MAX_BATCH_SIZE]
    response = predictions.Predict(predict_request(images), timeout=30)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    classes = tf.make_ndarray(response.outputs["classes"])
    assert probabilities.shape == (len(images), 10) and classes.dtype == np.int64
    rest = httpx2.post(
        f"{server.base_url}/v1/models/{MODEL}:predict",
        json={"instances": images.tolist()},
        timeout=30,
    ).json()["predictions"]
    np.testing.assert_allclose(probabilities, [row["probabilities"] for row in rest], rtol=1e-6)
    np.testing.assert_array_equal(classes, [row["classes"] for row in rest])


def test_values_in_float_val_equal_values_in_tensor_content(predictions: Any, split: Split) -> None:
    images = split.x_test[:2].astype(np.float32)
    packed = predict_request(images)
    listed = predict_pb2.PredictRequest()
    listed.model_spec.name = MODEL
    tensor = listed.inputs["images"]
    tensor.dtype = tf.float32.as_datatype_enum
    tensor.tensor_shape.dim.add(size=2)
    tensor.tensor_shape.dim.add(size=8)
    tensor.tensor_shape.dim.add(size=8)
    tensor.float_val.extend(images.ravel().tolist())
    first = predictions.Predict(packed, timeout=30).outputs["probabilities"]
    second = predictions.Predict(listed, timeout=30).outputs["probabilities"]
    np.testing.assert_array_equal(tf.make_ndarray(first), tf.make_ndarray(second))


def test_version_and_output_filter(predictions: Any, split: Split) -> None:
    request = predict_request(split.x_test[:1], version=1)
    request.output_filter.append("classes")
    response = predictions.Predict(request, timeout=30)
    assert set(response.outputs) == {"classes"}


def test_metadata_is_the_signature_def_map(predictions: Any) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = predictions.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert [dim.size for dim in signature.inputs["images"].tensor_shape.dim] == [-1, 8, 8]
    assert set(signature.outputs) == {"classes", "probabilities"}


def test_model_status_is_available(channel: grpc.Channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    (status,) = stub.GetModelStatus(request, timeout=30).model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def _wrong_input_name(images: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_request(images)
    request.inputs["pixels"].CopyFrom(request.inputs["images"])
    del request.inputs["images"]
    return request


def _wrong_dtype(images: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_request(images)
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images.astype(np.float64)))
    return request


def _content_resized(images: np.ndarray, by: int) -> predict_pb2.PredictRequest:
    """`tensor_content` `by` bytes longer (or shorter) than the declared shape holds."""
    request = predict_request(images)
    tensor = request.inputs["images"]
    content = tensor.tensor_content
    tensor.tensor_content = content + bytes(by) if by > 0 else content[:by]
    return request


def _unknown_output(images: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_request(images)
    request.output_filter.append("logits")
    return request


def _declared_shape(shape: list[int], values: list[float]) -> predict_pb2.PredictRequest:
    """A tensor whose declared shape is `shape` and whose values are `values`: one value in
    `float_val` stands for every element, so a few bytes can declare any size."""
    request = predict_request(np.zeros((1, 8, 8)))
    tensor = request.inputs["images"]
    tensor.ClearField("tensor_content")
    del tensor.tensor_shape.dim[:]
    for size in shape:
        tensor.tensor_shape.dim.add().size = size
    tensor.float_val.extend(values)
    return request


# name, request builder, status code, text the message must carry
BAD_REQUESTS = [
    (
        "unknown model",
        lambda images: predict_request(images, name="mnist"),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(mnist)",
    ),
    (
        "unknown version",
        lambda images: predict_request(images, version=7),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(digits, 7)",
    ),
    (
        "unknown signature",
        lambda images: predict_request(images, signature_name="classify_x"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "classify_x" not found.',
    ),
    (
        "wrong input name",
        _wrong_input_name,
        grpc.StatusCode.INVALID_ARGUMENT,
        "Sent extra: {pixels}. Missing but required: {images}.",
    ),
    (
        "wrong dtype",
        _wrong_dtype,
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'images' must be DT_FLOAT; got DT_DOUBLE",
    ),
    (
        "wrong shape",
        lambda images: predict_request(images.reshape(-1, 4, 16)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'images' has shape [1, 4, 16]; the model expects [-1, 8, 8]",
    ),
    (
        "truncated tensor_content",
        lambda images: _content_resized(images, by=-4),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'images' is malformed",
    ),
    (
        "one float_val declaring a tensor of 2**40 elements",
        lambda images: _declared_shape([2**34, 8, 8], [0.5]),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"input 'images' has shape [{2**34}, 8, 8]: {2**42} bytes once decoded; at most "
        f"{MAX_REQUEST_BYTES} are allowed (MAX_REQUEST_BYTES)",
    ),
    (
        "a negative dimension",
        lambda images: _declared_shape([-1, 8, 8], [0.5]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'images' has shape [-1, 8, 8]; the model expects [-1, 8, 8]",
    ),
    (
        "more float_val values than the shape holds",
        lambda images: _declared_shape([1, 8, 8], [0.5] * 65),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'images' is malformed",
    ),
    (
        "tensor_content longer than the shape",
        lambda images: _content_resized(images, by=4),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'images' is malformed",
    ),
    (
        "too many rows",
        lambda images: predict_request(np.repeat(images, MAX_BATCH_SIZE + 1, axis=0)),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"request has {MAX_BATCH_SIZE + 1} instances; at most {MAX_BATCH_SIZE}",
    ),
    (
        "unknown output",
        _unknown_output,
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: logits",
    ),
    (
        "over the message size limit",
        lambda images: predict_request(np.zeros((MAX_REQUEST_BYTES // 256 + 1, 8, 8), np.float32)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "",
    ),
]


@pytest.mark.parametrize(
    ("build", "code", "message"),
    [row[1:] for row in BAD_REQUESTS],
    ids=[row[0] for row in BAD_REQUESTS],
)
def test_bad_requests_get_tf_servings_status_and_the_server_stays_up(
    predictions: Any, split: Split, build: Any, code: grpc.StatusCode, message: str
) -> None:
    image = split.x_test[:1]
    error = rpc_error(predictions.Predict, build(image))
    assert error.code() == code, error.details()
    assert message in (error.details() or "")
    assert predictions.Predict(predict_request(image), timeout=30).outputs["classes"]


def test_classify_on_a_predict_signature_is_an_invalid_argument(predictions: Any) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    error = rpc_error(predictions.Classify, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "No classification inputs found in SignatureDef" in (error.details() or "")


@pytest.mark.parametrize("with_task", [True, False])
def test_multi_inference_is_refused_naming_what_is_missing(
    predictions: Any, with_task: bool
) -> None:
    request = inference_pb2.MultiInferenceRequest()
    if with_task:
        request.tasks.add().model_spec.name = MODEL
    error = rpc_error(predictions.MultiInference, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    expected = "No classification inputs found" if with_task else "request has no tasks"
    assert expected in (error.details() or "")


def test_grpc_calls_land_in_tf_servings_series(
    server: ServerProcess, predictions: Any, split: Split
) -> None:
    before = metric_samples(server.base_url)
    predictions.Predict(predict_request(split.x_test[:1]), timeout=30)
    rpc_error(predictions.Predict, predict_request(split.x_test[:1], name="mnist"))
    after = metric_samples(server.base_url)
    count = f"{TF_SERVING_REQUEST_COUNT}_total"  # the parser's name for the counter
    assert increase(before, after, count, model_name=MODEL, status="OK") >= 1
    assert increase(before, after, count, model_name=MODEL, status="NOT_FOUND") == 1
    grpc_predict = {"model_name": MODEL, "API": "Predict", "entrypoint": "GRPC"}
    assert increase(before, after, f"{TF_SERVING_REQUEST_LATENCY}_count", **grpc_predict) == 1


def test_sigterm_drains_grpc_predictions_and_refuses_new_ones(
    start: Callable[..., ServerProcess], split: Split
) -> None:
    # A REST upload held open keeps the batch waiting (it is on its way to the batcher), so
    # the gRPC predictions stay in flight until it is released.
    server = start(BATCH_TIMEOUT_MICROS="10000000", DRAIN_TIMEOUT_SECONDS="30")
    held = HeldBody(json.dumps({"instances": [split.x_test[0].tolist()]}).encode())
    in_flight = 5
    with (
        grpc.insecure_channel(server.grpc_target) as channel,
        ThreadPoolExecutor(in_flight + 1) as pool,
    ):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        upload = pool.submit(
            httpx2.post, f"{server.base_url}/v1/models/{MODEL}:predict", content=held, timeout=60
        )
        wait_in_flight(server.base_url, 1)
        pending: list[Future[Any]] = [
            pool.submit(stub.Predict, predict_request(split.x_test[i : i + 1]), timeout=60)
            for i in range(in_flight)
        ]
        time.sleep(1)
        assert not any(future.done() for future in pending)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        error = rpc_error(stub.Predict, predict_request(split.x_test[:1]))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (error.details() or "")
        held.release()
        results = [future.result() for future in pending]
        assert upload.result().status_code == 200
    assert all(len(tf.make_ndarray(r.outputs["probabilities"])) == 1 for r in results)
    assert server.process.wait(30) == 0, server.log()
    assert "drain complete" in server.log()
