"""TensorFlow Serving's REST predict format: JSON request to arrays, arrays to JSON response.

Row format: ``{"instances": [...]}`` answered by ``{"predictions": [...]}``. Columnar format:
``{"inputs": ...}`` answered by ``{"outputs": ...}``. With one input an instance (or the
``inputs`` value) may be the bare tensor; otherwise it is an object keyed by input name. With
one output the response holds bare values; otherwise objects keyed by output name. See
https://www.tensorflow.org/tfx/serving/api_rest#request_format_2
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import orjson

from serving.model import SIGNATURE_NAME, TensorInfo

Format = Literal["row", "columnar"]
MAX_JSON_DEPTH = 1024
"""orjson's nesting limit, which its fallback for NaN bodies holds too."""
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class RequestError(Exception):
    """The request is wrong; ``str(error)`` says how, ``status`` is the HTTP code to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class PredictRequest(NamedTuple):
    format: Format
    inputs: dict[str, np.ndarray]
    rows: int


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _loads(body: bytes) -> Any:
    """JSON with TF Serving's extension: the NaN, Infinity and -Infinity tokens (api_rest.md,
    "JSON conformance"), which orjson refuses; only such a body takes the slower parser."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if str(error).startswith("depth limit exceeded"):
            raise _too_deep() from None
        try:
            return json.loads(body)
        except RecursionError:  # Python's parser has a depth limit of its own
            raise _too_deep() from None
        except (ValueError, UnicodeDecodeError):
            raise RequestError(f"malformed JSON: {error}") from None


def _too_deep() -> RequestError:
    return RequestError(f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels")


def _dumps(body: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> bytes:
    """orjson writes NaN and the infinities as null; TF Serving writes the NaN, Infinity and
    -Infinity tokens, as Python's json does. Outputs are numbers, so only a `null` in orjson's
    text calls for the finiteness check and the slower encoder."""
    encoded = orjson.dumps(body, option=_ORJSON_OPTIONS)
    if b"null" not in encoded or all(
        v.dtype.kind != "f" or np.isfinite(v).all() for v in outputs.values()
    ):
        return encoded
    return json.dumps(body, default=lambda value: value.tolist()).encode()


def parse_predict(
    body: bytes, inputs: Mapping[str, TensorInfo], served: str = SIGNATURE_NAME
) -> PredictRequest:
    """Decode and check a predict request against the signature's inputs."""
    document = _loads(body)
    if not isinstance(document, dict):
        raise RequestError("request body must be a JSON object with 'instances' or 'inputs'")
    signature = _signature_name(document, served)
    if signature != served:
        # TensorFlow Serving's wording.
        raise RequestError(f'Serving signature name: "{signature}" not found in signature def')
    if "instances" in document and "inputs" in document:
        raise RequestError("request must have one of 'instances' or 'inputs', not both")
    values: Mapping[str, Any]
    if "instances" in document:
        values = _rows_to_columns(document["instances"], inputs)
        request_format: Format = "row"
    elif "inputs" in document:
        values = _named(document["inputs"], inputs, "'inputs'")
        request_format = "columnar"
    else:
        raise RequestError("missing 'instances' or 'inputs' key")
    arrays = {name: _to_array(name, values[name], info) for name, info in inputs.items()}
    return PredictRequest(request_format, arrays, row_count(arrays))


def row_count(arrays: Mapping[str, np.ndarray]) -> int:
    """The batch's rows: dimension 0, the same for every input and not empty (REST and gRPC)."""
    counts = {array.shape[0] for array in arrays.values()}
    if len(counts) != 1:
        raise RequestError("all inputs must have the same number of rows (dimension 0)")
    rows = int(counts.pop())
    if rows == 0:
        raise RequestError("request has no instances: the batch is empty")
    return rows


def check_rows(rows: int, limit: int) -> None:
    """One request may carry at most a batch's rows (REST and gRPC)."""
    if rows > limit:
        raise RequestError(
            f"request has {rows} instances; at most {limit} are allowed (MAX_BATCH_SIZE)"
        )


def _rows_to_columns(instances: Any, inputs: Mapping[str, TensorInfo]) -> dict[str, Any]:
    if not isinstance(instances, list):
        raise RequestError("'instances' must be a list")
    if not instances:
        raise RequestError("'instances' is empty: the batch is empty")
    if len(inputs) == 1 and not isinstance(instances[0], dict):
        return {next(iter(inputs)): instances}
    columns: dict[str, list[Any]] = {name: [] for name in inputs}
    for index, instance in enumerate(instances):
        named = _named(instance, inputs, f"instance {index}")
        for name in inputs:
            columns[name].append(named[name])
    return columns


def _named(value: Any, inputs: Mapping[str, TensorInfo], where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        if len(inputs) == 1:
            return {next(iter(inputs)): value}
        raise RequestError(f"{where} must be an object keyed by input name: {', '.join(inputs)}")
    unknown = sorted(set(value) - set(inputs))
    if unknown:
        raise RequestError(
            f"{where} has unknown input {', '.join(map(repr, unknown))}; "
            f"the model's inputs are: {', '.join(inputs)}"
        )
    missing = [name for name in inputs if name not in value]
    if missing:
        raise RequestError(f"{where} is missing input {', '.join(map(repr, missing))}")
    return value


def _nesting(value: Any) -> int:
    """How deep `value`'s first elements nest lists: the rank it claims, found in O(rank)."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        if not value:
            break
        value = value[0]
    return depth


def _to_array(name: str, value: Any, info: TensorInfo) -> np.ndarray:
    # Before NumPy walks it: a deep value would only get NumPy's 64-dimension refusal.
    depth = _nesting(value)
    if depth > len(info.shape):
        raise RequestError(
            f"input {name!r} is nested {depth} levels deep; the model expects rank "
            f"{len(info.shape)}: {info.shape_text()} (-1: any size)"
        )
    try:
        array = np.asarray(value)
    except ValueError:
        raise RequestError(
            f"input {name!r} is not a rectangular array: its rows have different shapes"
        ) from None
    if array.size == 0:
        raise RequestError(f"input {name!r} is empty: the batch is empty")
    # JSON numbers arrive as int64 or float64; integers are fine for a float input, as in
    # TensorFlow Serving, but not the other way round.
    accepted = "iuf" if info.dtype.kind == "f" else "iu"
    if array.dtype.kind not in accepted:
        got = {"U": "strings", "b": "booleans", "f": "non-integer numbers"}.get(
            array.dtype.kind, "nulls, objects or out-of-range numbers"
        )
        expected = "numbers" if info.dtype.kind == "f" else "integers"
        raise RequestError(f"input {name!r} must hold {expected} ({info.dtype_name}); got {got}")
    check_shape(name, array.shape, info)
    if info.dtype.kind == "i" and array.size:
        limits = np.iinfo(info.dtype)
        # Casting would wrap out-of-range integers around silently.
        if array.min() < limits.min or array.max() > limits.max:
            raise RequestError(f"input {name!r} has values out of range for {info.dtype_name}")
    return np.ascontiguousarray(array, dtype=info.dtype)


def check_shape(name: str, shape: Sequence[int], info: TensorInfo) -> None:
    """The input's rank and fixed dimensions are the signature's (REST and gRPC alike)."""
    if (
        len(shape) != len(info.shape)
        or any(size < 0 for size in shape)
        or any(
            expected is not None and got != expected
            for got, expected in zip(shape, info.shape, strict=True)
        )
    ):
        raise RequestError(
            f"input {name!r} has shape {list(shape)}; the model expects "
            f"{info.shape_text()} (-1: any size)"
        )


def render_predict(request_format: Format, outputs: Mapping[str, np.ndarray], rows: int) -> bytes:
    """Shape the outputs exactly as TensorFlow Serving does for the request's format."""
    if request_format == "row":
        if len(outputs) == 1:
            body: dict[str, Any] = {"predictions": next(iter(outputs.values()))}
        else:
            body = {
                "predictions": [
                    {name: value[row] for name, value in outputs.items()} for row in range(rows)
                ]
            }
    elif len(outputs) == 1:
        body = {"outputs": next(iter(outputs.values()))}
    else:
        body = {"outputs": dict(outputs)}
    return _dumps(body, outputs)


def parse_examples(body: bytes, served: str = SIGNATURE_NAME) -> tuple[str, int]:
    """A classify or regress request (api_rest.md): its signature name and example count."""
    document = _loads(body)
    if not isinstance(document, dict):
        raise RequestError("request body must be a JSON object with 'examples'")
    examples = document.get("examples")
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise RequestError("'examples' must be a list of objects (feature name to value)")
    context = document.get("context", {})
    if not isinstance(context, dict):
        raise RequestError("'context' must be an object (feature name to value)")
    return _signature_name(document, served), len(examples)


def _signature_name(document: Mapping[str, Any], served: str) -> str:
    """The request's signature; absent or empty means the served one, as in TF Serving."""
    signature = document.get("signature_name") or served
    if not isinstance(signature, str):
        # Checked before it is quoted back: a deep list would not even format.
        raise RequestError("'signature_name' must be a string")
    return signature


def no_example_signature(
    kind: Literal["classification", "regression"],
    inputs: Sequence[str],
    served: str = SIGNATURE_NAME,
) -> str:
    """TF Serving's answer to classify or regress on a predict signature: it has no input named
    `inputs` to take serialized tf.Examples (servables/tensorflow/classifier.cc)."""
    return (
        f"No {kind} inputs found in SignatureDef: the signature {served!r} takes "
        f"{', '.join(map(repr, inputs))}, not serialized tf.Examples under 'inputs'; "
        "use :predict"
    )
