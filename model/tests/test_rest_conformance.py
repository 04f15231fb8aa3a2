"""TensorFlow Serving's REST API as its api_rest.md documents it, section by section, against the
Python runtime over real HTTP. Where we differ on purpose (a request body limit), model/README.md
says so; the request and response formats themselves are in test_server_http.py."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import numpy as np
import pytest
from support import ServerProcess
from training.train import Split

MODEL = "/v1/models/digits"


def post(server: ServerProcess, path: str, body: bytes | dict[str, Any]) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(server.base_url + path, content=content, timeout=30)


def error_of(response: httpx2.Response) -> str:
    """ "In case of error, all APIs will return a JSON object ... with `error` as key"."""
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    message: str = body["error"]
    return message


# --- Model status API: GET /v1/models/${MODEL_NAME}[/versions/${VERSION}|/labels/${LABEL}]


@pytest.mark.parametrize("path", [MODEL, f"{MODEL}/versions/1"])
def test_status_is_a_get_model_status_response(server: ServerProcess, path: str) -> None:
    response = httpx2.get(server.base_url + path)
    assert response.status_code == 200
    assert response.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (f"{MODEL}/versions/2", 404, "Could not find version 2 of model digits"),
        ("/v1/models/mnist", 404, "Could not find any versions of model mnist"),
        (f"{MODEL}/labels/stable", 400, "Unrecognized servable version label: stable"),
    ],
)
def test_status_of_what_is_not_served(
    server: ServerProcess, path: str, status: int, message: str
) -> None:
    response = httpx2.get(server.base_url + path)
    assert response.status_code == status
    assert error_of(response) == message


# --- Model Metadata API: GET .../metadata


@pytest.mark.parametrize("path", [f"{MODEL}/metadata", f"{MODEL}/versions/1/metadata"])
def test_metadata_is_a_get_model_metadata_response(server: ServerProcess, path: str) -> None:
    body = httpx2.get(server.base_url + path).json()
    assert body["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    assert "serving_default" in body["metadata"]["signature_def"]["signature_def"]


def test_metadata_by_label_is_refused(server: ServerProcess) -> None:
    response = httpx2.get(f"{server.base_url}{MODEL}/labels/canary/metadata")
    assert response.status_code == 400
    assert error_of(response) == "Unrecognized servable version label: canary"


# --- Classify and Regress API: POST ...:(classify|regress), on a predict-only signature

EXAMPLES = {"examples": [{"pixels": [0.0] * 64}], "context": {"source": "test"}}


@pytest.mark.parametrize(
    ("verb", "kind"), [("classify", "classification"), ("regress", "regression")]
)
@pytest.mark.parametrize("path", [MODEL, f"{MODEL}/versions/1"])
def test_classify_and_regress_name_the_missing_example_input(
    server: ServerProcess, path: str, verb: str, kind: str
) -> None:
    response = post(server, f"{path}:{verb}", EXAMPLES)
    assert response.status_code == 400
    assert error_of(response).startswith(f"No {kind} inputs found in SignatureDef")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**EXAMPLES, "signature_name": "scores"}, "No signature was found with the name: scores"),
        ({"examples": "pixels"}, "'examples' must be a list of objects"),
        ({"examples": [], "context": [1]}, "'context' must be an object"),
        (b"[1, 2", "malformed JSON"),
    ],
)
def test_bad_classify_requests(server: ServerProcess, body: Any, message: str) -> None:
    response = post(server, f"{MODEL}:classify", body)
    assert response.status_code == 400
    assert message in error_of(response)


def test_classify_on_another_model_is_not_found(server: ServerProcess) -> None:
    response = post(server, "/v1/models/mnist:regress", EXAMPLES)
    assert response.status_code == 404
    assert error_of(response) == "Servable not found for request: Latest(mnist)"


# --- Predict API: POST ...:predict


@pytest.mark.parametrize(
    "path", [f"{MODEL}:predict", f"{MODEL}/versions/1:predict"], ids=["latest", "version"]
)
@pytest.mark.parametrize("signature", [None, "", "serving_default"])
def test_predict_by_url_and_default_signature(
    server: ServerProcess, split: Split, path: str, signature: str | None
) -> None:
    body: dict[str, Any] = {"instances": split.x_test[:2].tolist()}
    if signature is not None:
        body["signature_name"] = signature
    response = post(server, path, body)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


def test_predict_by_label_is_refused(server: ServerProcess, split: Split) -> None:
    response = post(
        server, f"{MODEL}/labels/stable:predict", {"instances": [split.x_test[0].tolist()]}
    )
    assert response.status_code == 400
    assert error_of(response) == "Unrecognized servable version label: stable"


def test_row_and_columnar_forms_of_the_same_tensor_agree(
    server: ServerProcess, split: Split
) -> None:
    images = split.x_test[:3].tolist()
    row = post(server, f"{MODEL}:predict", {"instances": images}).json()["predictions"]
    columnar = post(server, f"{MODEL}:predict", {"inputs": {"images": images}}).json()["outputs"]
    assert [r["classes"] for r in row] == columnar["classes"]
    np.testing.assert_allclose([r["probabilities"] for r in row], columnar["probabilities"])


# --- JSON mapping: DT_FLOAT is a number, exponent notation accepted, or NaN / Infinity


def test_exponent_notation_and_integers_are_numbers(server: ServerProcess, split: Split) -> None:
    image = split.x_test[0]
    decimal = post(server, f"{MODEL}:predict", {"instances": [image.tolist()]}).json()
    # The same values written as 1.5e1 and, where whole, as integers.
    text = json.dumps(
        [[float(v) if v % 1 else int(v) for v in row] for row in image.tolist()]
    ).replace("0.5", "5e-1")
    exponent = post(server, f"{MODEL}:predict", f'{{"instances": [{text}]}}'.encode()).json()
    assert exponent["predictions"][0]["classes"] == decimal["predictions"][0]["classes"]


def test_nan_and_infinity_tokens_are_accepted_and_returned(server: ServerProcess) -> None:
    """ "JSON conformance": the API allows NaN, Infinity and -Infinity in requests and
    responses; a NaN pixel makes every probability NaN, which comes back as the NaN token."""
    rows = [["NaN"] + ["Infinity"] + ["-Infinity"] + ["0"] * 5] + [["0"] * 8] * 7
    body = '{"instances": [[' + ", ".join("[" + ", ".join(r) + "]" for r in rows) + "]]}"
    response = post(server, f"{MODEL}:predict", body.encode())
    assert response.status_code == 200, response.text
    assert "NaN" in response.text and "null" not in response.text
    (prediction,) = json.loads(response.text)["predictions"]
    assert all(np.isnan(p) for p in prediction["probabilities"])


def test_a_b64_object_for_a_numeric_input_is_refused(server: ServerProcess) -> None:
    """ "Encoding binary values": {"b64": ...} is for DT_STRING tensors; this model's input is
    DT_FLOAT."""
    response = post(server, f"{MODEL}:predict", {"instances": [{"images": {"b64": "AAAA"}}]})
    assert response.status_code == 400
    assert "input 'images' must hold numbers (DT_FLOAT)" in error_of(response)


# --- Requests no API takes


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{MODEL}:predict"), ("POST", MODEL), ("POST", f"{MODEL}:explain"), ("GET", "/v1/x")],
)
def test_malformed_requests_are_400_as_in_tf_serving(
    server: ServerProcess, method: str, path: str
) -> None:
    response = httpx2.request(method, server.base_url + path, content=b"{}")
    assert response.status_code == 400
    assert error_of(response) == f"Malformed request: {method} {path}"
