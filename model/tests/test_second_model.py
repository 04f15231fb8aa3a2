"""Nothing in the runtime is tied to digits: the second model (training.diabetes: two named inputs
of different dtypes) served over real HTTP and gRPC, SIGNATURE_NAME choosing the signature, and
the program's stdlib contract reader (model_contract, no TensorFlow) agreeing with TensorFlow's
own reading of several models."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx2
import numpy as np
import pytest
import tensorflow as tf
from support import MODEL_DIR, ServerProcess, launch_server, start_server
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc
from training import diabetes

sys.path.insert(0, str(MODEL_DIR.parent))
from model_contract.saved_model import SavedModelError, read_signatures

DIABETES = MODEL_DIR / "export" / "diabetes"
DIGITS = MODEL_DIR / "export" / "digits"
MEASUREMENTS = np.random.default_rng(7).normal(0, 0.05, (5, 9)).astype(np.float32)
SEX = np.array([0, 1, 1, 0, 1], np.int64)


@pytest.fixture(scope="module")
def diabetes_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = start_server(
        tmp_path_factory.mktemp("diabetes") / "server.log",
        MODEL_NAME="diabetes",
        MODEL_BASE_PATH=str(DIABETES),
    )
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def expected() -> np.ndarray:
    """TensorFlow's own call of the exported signature."""
    loaded = tf.saved_model.load(str(DIABETES / "1"))
    outputs = loaded.signatures["serving_default"](
        measurements=tf.constant(MEASUREMENTS), sex=tf.constant(SEX)
    )
    values: np.ndarray = outputs["progression"].numpy()
    return values


def test_the_export_is_a_regression_on_two_inputs_of_different_dtypes() -> None:
    assert read_signatures(DIABETES / "1" / "saved_model.pb") == {
        "serving_default": {
            "method": "tensorflow/serving/predict",
            "inputs": {
                "measurements": {"dtype": "DT_FLOAT", "shape": [-1, 9]},
                "sex": {"dtype": "DT_INT64", "shape": [-1]},
            },
            "outputs": {"progression": {"dtype": "DT_FLOAT", "shape": [-1]}},
        }
    }
    # Closed-form least squares: the fit of the published linear baselines, on every run.
    assert 50 < diabetes.fit()[2] < 56


def test_rest_predict_serves_both_request_formats(
    diabetes_server: ServerProcess, expected: np.ndarray
) -> None:
    url = f"{diabetes_server.base_url}/v1/models/diabetes:predict"
    rows = [
        {"measurements": m.tolist(), "sex": int(s)} for m, s in zip(MEASUREMENTS, SEX, strict=True)
    ]
    by_row = httpx2.post(url, json={"instances": rows}, timeout=30)
    assert by_row.status_code == 200, by_row.text
    np.testing.assert_allclose(by_row.json()["predictions"], expected, rtol=1e-5)
    columns = {"measurements": MEASUREMENTS.tolist(), "sex": SEX.tolist()}
    by_column = httpx2.post(url, json={"inputs": columns}, timeout=30)
    assert by_column.status_code == 200, by_column.text
    np.testing.assert_allclose(by_column.json()["outputs"], expected, rtol=1e-5)


def test_rest_names_the_input_a_request_gets_wrong(diabetes_server: ServerProcess) -> None:
    url = f"{diabetes_server.base_url}/v1/models/diabetes:predict"
    missing = httpx2.post(url, json={"inputs": {"measurements": MEASUREMENTS.tolist()}}, timeout=30)
    assert missing.status_code == 400 and "sex" in missing.json()["error"], missing.text
    fractional = {"measurements": MEASUREMENTS.tolist(), "sex": [0.5] * len(SEX)}
    wrong_type = httpx2.post(url, json={"inputs": fractional}, timeout=30)
    assert wrong_type.status_code == 400 and "sex" in wrong_type.json()["error"], wrong_type.text


def test_rest_metadata_lists_the_signature(diabetes_server: ServerProcess) -> None:
    metadata = httpx2.get(
        f"{diabetes_server.base_url}/v1/models/diabetes/metadata", timeout=30
    ).json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(signature["inputs"]) == {"measurements", "sex"}
    assert signature["inputs"]["sex"]["dtype"] == "DT_INT64"


def test_grpc_predict_serves_both_inputs(
    diabetes_server: ServerProcess, expected: np.ndarray
) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "diabetes"
    request.inputs["measurements"].CopyFrom(tf.make_tensor_proto(MEASUREMENTS))
    request.inputs["sex"].CopyFrom(tf.make_tensor_proto(SEX))
    with grpc.insecure_channel(diabetes_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
        np.testing.assert_allclose(
            tf.make_ndarray(response.outputs["progression"]), expected, rtol=1e-5
        )
        metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=["signature_def"]
        )
        metadata_request.model_spec.name = "diabetes"
        metadata = stub.GetModelMetadata(metadata_request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def["serving_default"].inputs) == {"measurements", "sex"}


class SeveralSignatures(tf.Module):  # type: ignore[misc]  # tensorflow ships no type hints
    """Several signatures, unknown dimensions, a string input, and an input of any rank."""

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")]
    )
    def doubled(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x * 2.0}

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[
            tf.TensorSpec([None], tf.string, name="text"),
            tf.TensorSpec([None, None], tf.int32, name="ids"),
        ]
    )
    def lengths(self, text: tf.Tensor, ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"length": tf.strings.length(text), "total": tf.reduce_sum(ids, axis=1)}

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids")]
    )
    def totals(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"total": tf.reduce_sum(ids, axis=1)}

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec(None, tf.float32, name="anything")]
    )
    def identity(self, anything: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"same": tf.identity(anything)}


@pytest.fixture(scope="module")
def several_signatures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("several") / "models" / "1"
    module = SeveralSignatures()
    signatures = {
        "serving_default": module.doubled,
        "lengths": module.lengths,
        "identity": module.identity,
        "totals": module.totals,
    }
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def _tensorflow_reading(path: Path) -> dict[str, Any]:
    """Names, dtypes and shapes (-1 unknown, None unknown rank) as TensorFlow loads them."""

    def describe(spec: tf.TensorSpec) -> dict[str, Any]:
        dims = spec.shape.as_list() if spec.shape.rank is not None else None
        return {
            "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
            "shape": None if dims is None else [-1 if d is None else d for d in dims],
        }

    loaded = tf.saved_model.load(str(path))
    return {
        name: {
            "inputs": {k: describe(v) for k, v in function.structured_input_signature[1].items()},
            "outputs": {k: describe(v) for k, v in function.structured_outputs.items()},
        }
        for name, function in loaded.signatures.items()
    }


@pytest.mark.parametrize("model", ["digits", "diabetes", "several signatures"])
def test_the_stdlib_reader_agrees_with_tensorflow(model: str, several_signatures: Path) -> None:
    path = {
        "digits": DIGITS / "1",
        "diabetes": DIABETES / "1",
        "several signatures": several_signatures,
    }[model]
    read = read_signatures(path / "saved_model.pb")
    without_methods = {
        name: {"inputs": sig["inputs"], "outputs": sig["outputs"]} for name, sig in read.items()
    }
    assert without_methods == _tensorflow_reading(path)
    assert {sig["method"] for sig in read.values()} == {"tensorflow/serving/predict"}


def test_the_reader_names_a_truncated_or_foreign_file(tmp_path: Path) -> None:
    whole = (DIABETES / "1" / "saved_model.pb").read_bytes()
    for name, data in {"truncated": whole[: len(whole) // 2], "garbage": b"\xff" * 64}.items():
        pb = tmp_path / name / "saved_model.pb"
        pb.parent.mkdir()
        pb.write_bytes(data)
        with pytest.raises(SavedModelError, match=str(pb)):
            read_signatures(pb)


def test_signature_name_chooses_the_signature_served(
    start: Callable[..., ServerProcess], several_signatures: Path
) -> None:
    server = start(
        MODEL_NAME="models",
        MODEL_BASE_PATH=str(several_signatures.parent),
        SIGNATURE_NAME="totals",
    )
    url = f"{server.base_url}/v1/models/models:predict"
    answer = httpx2.post(url, json={"inputs": {"ids": [[1, 2, 3], [4, 5, 6]]}}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == [6, 15]
    other = httpx2.post(
        url, json={"signature_name": "serving_default", "instances": [[1, 2, 3]]}, timeout=30
    )
    assert other.status_code == 400 and "serving_default" in other.json()["error"]


def test_an_absent_signature_name_is_a_startup_error_listing_the_ones_present(
    tmp_path: Path, several_signatures: Path
) -> None:
    server = launch_server(
        tmp_path / "server.log",
        MODEL_NAME="models",
        MODEL_BASE_PATH=str(several_signatures.parent),
        SIGNATURE_NAME="classify",
    )
    try:
        server.process.wait(timeout=120)
    except Exception:
        server.kill()
        raise
    assert server.process.returncode != 0
    assert "SIGNATURE_NAME=classify" in server.log()
    assert "(it has: identity, lengths, serving_default, totals)" in server.log()
