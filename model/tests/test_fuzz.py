# mypy: disable-error-code="no-any-return"
# (the generated protos are untyped: their messages come back as Any.)
"""Hostile requests, generated: JSON documents and byte strings shaped like predict, classify,
regress and metadata calls over real HTTP, and arbitrary TensorProtos and model specs over real
gRPC, sent to the shared server. Every answer is the client's fault or a success, never the
server's: 2xx or 4xx in TF Serving's error shape (gRPC: a client-error status), never a 5xx,
INTERNAL or a reset, and a good request right after still gets the right answer.

Bounded by example count (not time), so a loaded machine runs the same cases, only slower."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import grpc
import httpx2
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support import ServerProcess
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

MODEL = "digits"
FUZZ = settings(
    max_examples=300,
    deadline=None,  # a loaded machine is slow, not wrong
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- HTTP ---------------------------------------------------------------------------------

PATHS = [
    f"/v1/models/{MODEL}:predict",
    f"/v1/models/{MODEL}/versions/1:predict",
    f"/v1/models/{MODEL}:classify",
    f"/v1/models/{MODEL}:regress",
    f"/v1/models/{MODEL}/metadata",
    f"/v1/models/{MODEL}",
    f"/v1/models/{MODEL}/labels/stable:predict",
]
NUMBERS = (
    st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, 1.0, 16.0, 1e308, -1e308, 5e-324])
)
LEAVES = st.none() | st.booleans() | NUMBERS | st.text(max_size=12)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
# Images that are nearly right: ragged, empty, the wrong size, numbers of any kind.
IMAGES = st.lists(
    st.lists(st.lists(NUMBERS, min_size=0, max_size=9), min_size=0, max_size=9),
    min_size=0,
    max_size=3,
)
KEYS = st.sampled_from(["instances", "inputs", "signature_name", "examples", "context", "images"])
DOCUMENTS = st.dictionaries(KEYS | st.text(max_size=8), JSON_VALUES | IMAGES, max_size=4)


@st.composite
def http_bodies(draw: st.DrawFn) -> bytes:
    """A request-shaped document encoded with the NaN and Infinity tokens, then perhaps broken:
    truncated, a duplicate key, bad UTF-8, deep nesting; or bytes of any kind."""
    document = json.dumps(draw(DOCUMENTS)).encode()
    damage = draw(st.sampled_from(["none", "truncate", "duplicate", "utf8", "deep", "bytes"]))
    if damage == "truncate":
        return document[: draw(st.integers(0, max(len(document) - 1, 0)))]
    if damage == "duplicate" and len(document) > 2:
        return b'{"instances": [[[0.0]]], ' + document[1:]
    if damage == "utf8":
        cut = draw(st.integers(0, len(document)))
        return (
            document[:cut]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
            + (document[cut:])
        )
    if damage == "deep":
        opened, closed = draw(st.integers(0, 5000)), draw(st.integers(0, 5000))
        return b'{"instances": ' + b"[" * opened + b"1" + b"]" * closed + b"}"
    if damage == "bytes":
        return draw(st.binary(max_size=300))
    return document


def _chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 97):
        yield body[start : start + 97]


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def good_image(http: httpx2.Client, image: list[list[float]]) -> tuple[dict[str, Any], Any]:
    """A good request and the answer it must keep getting."""
    request = {"instances": [image]}
    answer = http.post(PATHS[0], json=request)
    assert answer.status_code == 200, answer.text
    return request, answer.json()


def assert_still_serves(http: httpx2.Client, good_image: tuple[dict[str, Any], Any]) -> None:
    request, expected = good_image
    answer = http.post(PATHS[0], json=request)
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected


class HttpCall(NamedTuple):
    method: str
    path: str
    body: bytes
    chunked: bool
    """Sent with no Content-Length, in pieces."""


HTTP_CALLS = st.builds(
    HttpCall,
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    path=st.sampled_from(PATHS),
    body=http_bodies(),
    chunked=st.booleans(),
)


@FUZZ
@given(call=HTTP_CALLS)
def test_http_answers_hostile_bodies_as_client_errors(
    http: httpx2.Client, good_image: tuple[dict[str, Any], Any], call: HttpCall
) -> None:
    content = _chunks(call.body) if call.chunked else call.body
    answer = http.request(call.method, call.path, content=content)  # a reset raises here
    event(f"HTTP {answer.status_code}")  # --hypothesis-show-statistics: what the cases reached
    assert answer.status_code < 500, (answer.status_code, answer.text, call.body[:300])
    if answer.status_code >= 400:
        error = json.loads(answer.content)
        assert isinstance(error, dict) and isinstance(error.get("error"), str), answer.text
        assert error["error"], "an error must say what is wrong"
    else:
        json.loads(answer.content)  # NaN outputs are TF Serving's NaN token, which json reads
    assert_still_serves(http, good_image)


# --- gRPC ---------------------------------------------------------------------------------

# The client-error codes TF Serving answers; INTERNAL, UNKNOWN or UNAVAILABLE would be ours.
CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def mostly(right: Any, wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`right` three times in four: a request must get past its spec to reach the decoding."""
    return st.sampled_from([right] * 3 + [None]).flatmap(
        lambda pick: wrong if pick is None else st.just(pick)
    )


DIMENSIONS = st.integers(-3, 20) | st.integers(2**16, 2**40) | st.integers(-(2**63), 2**63 - 1)
SHAPES = st.lists(DIMENSIONS, max_size=5) | st.tuples(DIMENSIONS, st.just(8), st.just(8)).map(list)
DTYPES = st.sampled_from(sorted(types_pb2.DataType.values()))
NAMES = st.sampled_from(["", "mnist"]) | st.text(max_size=10)
FLOATS = st.floats(width=32)


@st.composite
def tensors(draw: st.DrawFn) -> tensor_pb2.TensorProto:
    """A TensorProto of any dtype and declared shape whose values may not fit either."""
    tensor = tensor_pb2.TensorProto(dtype=draw(mostly(types_pb2.DT_FLOAT, DTYPES)))
    for size in draw(SHAPES):
        tensor.tensor_shape.dim.add().size = size
    tensor.tensor_shape.unknown_rank = draw(st.booleans())
    values = draw(st.sampled_from(["content", "float_val", "int_val", "string_val", "none"]))
    if values == "content":
        tensor.tensor_content = draw(st.binary(max_size=1024))
    elif values == "float_val":
        # One value stands for every element of the declared shape.
        one_or_many = st.lists(FLOATS, min_size=1, max_size=1) | st.lists(FLOATS, max_size=130)
        tensor.float_val.extend(draw(one_or_many))
    elif values == "int_val":
        tensor.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=70)))
    elif values == "string_val":
        tensor.string_val.extend(draw(st.lists(st.binary(max_size=20), max_size=5)))
    return tensor


@st.composite
def model_specs(draw: st.DrawFn, message: Any) -> Any:
    request = message()
    request.model_spec.name = draw(mostly(MODEL, NAMES))
    if draw(st.booleans()):
        request.model_spec.version.value = draw(mostly(1, st.integers(-(2**63), 2**63 - 1)))
    request.model_spec.signature_name = draw(mostly("", st.just("serving_default") | NAMES))
    return request


@st.composite
def predict_requests(draw: st.DrawFn) -> predict_pb2.PredictRequest:
    request = draw(model_specs(predict_pb2.PredictRequest))
    names = st.lists(st.just("images") | st.text(max_size=6), max_size=3)
    for name in draw(mostly(("images",), names)):
        request.inputs[name].CopyFrom(draw(tensors()))
    outputs = st.lists(st.just("classes") | NAMES, max_size=2)
    request.output_filter.extend(draw(mostly((), outputs)))
    return request


@st.composite
def metadata_requests(draw: st.DrawFn) -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = draw(model_specs(get_model_metadata_pb2.GetModelMetadataRequest))
    fields = st.sampled_from(["signature_def", ""]) | st.text(max_size=8)
    request.metadata_field.extend(draw(st.lists(fields, max_size=3)))
    return request


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[Any]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def assert_client_error_or_ok(call: Any, request: Any) -> None:
    try:
        call(request, timeout=30)
        event("OK")
    except grpc.RpcError as error:
        event(error.code().name)
        assert error.code() in CLIENT_ERRORS, (error.code(), error.details(), request)
        assert error.details(), "an error must say what is wrong"


@pytest.fixture(scope="module")
def good_tensor(stub: Any, image: list[list[float]]) -> tuple[Any, Any]:
    """A good request and the reply it must keep getting."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.array([image], np.float32)))
    return request, stub.Predict(request, timeout=30)


def assert_grpc_still_serves(stub: Any, good_tensor: tuple[Any, Any]) -> None:
    request, expected = good_tensor
    assert stub.Predict(request, timeout=30) == expected


@FUZZ
@given(request=predict_requests())
def test_grpc_predict_answers_hostile_tensors_as_client_errors(
    stub: Any, good_tensor: tuple[Any, Any], request: Any
) -> None:
    assert_client_error_or_ok(stub.Predict, request)
    assert_grpc_still_serves(stub, good_tensor)


@settings(FUZZ, max_examples=100)
@given(
    request=st.one_of(
        metadata_requests(),
        model_specs(classification_pb2.ClassificationRequest),
        model_specs(regression_pb2.RegressionRequest),
    )
)
def test_grpc_metadata_classify_and_regress_answer_any_spec(
    stub: Any, good_tensor: tuple[Any, Any], request: Any
) -> None:
    call = {
        "GetModelMetadataRequest": stub.GetModelMetadata,
        "ClassificationRequest": stub.Classify,
        "RegressionRequest": stub.Regress,
    }[type(request).__name__]
    assert_client_error_or_ok(call, request)
    assert_grpc_still_serves(stub, good_tensor)
