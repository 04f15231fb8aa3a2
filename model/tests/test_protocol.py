"""TensorFlow Serving's JSON shapes for signatures the digits model does not have."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from serving.model import TensorInfo
from serving.protocol import RequestError, parse_predict, render_predict

FLOAT_INPUT = TensorInfo("x", np.dtype(np.float32), "DT_FLOAT", (None, 2))
INT_INPUT = TensorInfo("ids", np.dtype(np.int32), "DT_INT32", (None,))
TWO_INPUTS = {"x": FLOAT_INPUT, "ids": INT_INPUT}


def test_multi_input_rows_become_columns() -> None:
    body = orjson.dumps({"instances": [{"x": [1, 2], "ids": 7}, {"x": [3.5, 4], "ids": 8}]})
    request = parse_predict(body, TWO_INPUTS)
    assert request.format == "row"
    assert request.rows == 2
    np.testing.assert_array_equal(request.inputs["x"], [[1, 2], [3.5, 4]])
    assert request.inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(request.inputs["ids"], [7, 8])
    assert request.inputs["ids"].dtype == np.int32


def test_multi_input_needs_named_instances() -> None:
    with pytest.raises(RequestError, match="must be an object keyed by input name: x, ids"):
        parse_predict(orjson.dumps({"instances": [[1, 2]]}), TWO_INPUTS)


def test_inputs_must_agree_on_rows() -> None:
    body = orjson.dumps({"inputs": {"x": [[1, 2]], "ids": [1, 2]}})
    with pytest.raises(RequestError, match="same number of rows"):
        parse_predict(body, TWO_INPUTS)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([1.5], "must hold integers \\(DT_INT32\\); got non-integer numbers"),
        ([2**40], "out of range"),
    ],
)
def test_integer_inputs_reject_fractions_and_overflow(ids: list[float], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_predict(orjson.dumps({"inputs": {"x": [[1, 2]], "ids": ids}}), TWO_INPUTS)


def test_single_output_responses_are_bare_values() -> None:
    outputs = {"y": np.array([[0.5, 0.25], [1.0, 2.0]], dtype=np.float32)}
    assert orjson.loads(render_predict("row", outputs, 2)) == {
        "predictions": [[0.5, 0.25], [1.0, 2.0]]
    }
    assert orjson.loads(render_predict("columnar", outputs, 2)) == {
        "outputs": [[0.5, 0.25], [1.0, 2.0]]
    }


def test_multi_output_responses_are_keyed_by_name() -> None:
    outputs: dict[str, np.ndarray] = {
        "scores": np.array([[0.5], [0.25]], dtype=np.float32),
        "label": np.array([3, 4], dtype=np.int64),
    }
    assert orjson.loads(render_predict("row", outputs, 2)) == {
        "predictions": [{"scores": [0.5], "label": 3}, {"scores": [0.25], "label": 4}]
    }
    assert orjson.loads(render_predict("columnar", outputs, 2)) == {
        "outputs": {"scores": [[0.5], [0.25]], "label": [3, 4]}
    }


def test_float32_values_print_without_float64_noise() -> None:
    body = render_predict("columnar", {"y": np.array([0.1], dtype=np.float32)}, 1)
    assert body == b'{"outputs":[0.1]}'


def test_empty_signature_name_means_the_default() -> None:
    body = orjson.dumps({"signature_name": "", "inputs": {"x": [[1, 2]], "ids": [3]}})
    assert parse_predict(body, TWO_INPUTS).rows == 1
