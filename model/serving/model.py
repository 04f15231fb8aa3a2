"""Load the newest SavedModel version and run its ``serving_default`` signature."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from serving.config import find_latest_version

logger = logging.getLogger(__name__)

SIGNATURE_NAME = "serving_default"
SERVING_TAG = "serve"
# JSON numbers can become any of these; strings/bytes would need TF Serving's base64 convention.
SUPPORTED_DTYPES = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64)
# How far TensorFlow Lite's float outputs may stray from the Session's before it is refused.
# Its XNNPACK kernels sum in another order: 1.4e-6 at most for the digits model.
TFLITE_RTOL = 1e-4
TFLITE_ATOL = 1e-5


Tensors = dict[str, np.ndarray]
Predict = Callable[[Tensors], Tensors]


class ModelLoadError(Exception):
    """The SavedModel cannot be served; the message says why."""


@dataclass(frozen=True)
class TensorInfo:
    """One named input or output of the signature."""

    name: str
    dtype: np.dtype[Any]
    dtype_name: str
    """TensorFlow's enum name, e.g. DT_FLOAT, as TF Serving reports it."""
    shape: tuple[int | None, ...]
    """None marks a dimension of any size; dimension 0 is the batch."""

    def shape_text(self) -> str:
        return "[" + ", ".join("-1" if dim is None else str(dim) for dim in self.shape) + "]"


def _tensor_info(name: str, spec: tf.TensorSpec) -> TensorInfo:
    dims = spec.shape.as_list() if spec.shape.rank is not None else []
    if spec.shape.rank is None or not dims or dims[0] is not None:
        raise ModelLoadError(f"tensor {name!r} must have a leading batch dimension of any size")
    return TensorInfo(
        name=name,
        dtype=np.dtype(spec.dtype.as_numpy_dtype),
        dtype_name=types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
        shape=tuple(dims),
    )


def _serving_signatures(path: Path) -> Mapping[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDef protos of the MetaGraph tagged for serving."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVING_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ModelLoadError(f"{path} has no MetaGraph tagged {SERVING_TAG!r}")


def _as_json(signatures: Mapping[str, meta_graph_pb2.SignatureDef]) -> dict[str, Any]:
    """The SignatureDef map as TensorFlow Serving's REST metadata API prints it."""
    return {
        name: json_format.MessageToDict(
            signature,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        for name, signature in signatures.items()
    }


def _session_runner(function: Any) -> Predict:
    """The signature's graph with its variables frozen into constants, run by a TF1 Session
    on named tensors, as TensorFlow Serving runs a SavedModel (Session::Run). Same kernels and
    outputs as calling the eager function, without its per-call Python argument binding and
    function dispatch: about 40 % less time per call for one image, 25 % for 32 (bench/)."""
    frozen = convert_variables_to_constants_v2(function)
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(frozen.graph.as_graph_def(), name="")
    session = tf.compat.v1.Session(graph=graph)
    # The frozen function's inputs and outputs are the signature's, flattened (by sorted name).
    input_names: list[str] = tf.nest.flatten(
        {name: name for name in function.structured_input_signature[1]}
    )
    output_structure = function.structured_outputs
    run = session.make_callable(
        [tensor.name for tensor in frozen.outputs],
        feed_list=[tensor.name for tensor in frozen.inputs],
    )

    def predict(inputs: Tensors) -> Tensors:
        outputs = run(*(inputs[name] for name in input_names))
        result: Tensors = tf.nest.pack_sequence_as(output_structure, outputs)
        return result

    return predict


class _EagerCall:
    """The signature called as the eager function it was loaded as."""

    def __init__(self, loaded: Any, signature: str) -> None:
        # Held: the loaded object owns the variables the function reads.
        self._loaded = loaded
        self._function = loaded.signatures[signature]

    def __call__(self, inputs: Tensors) -> Tensors:
        tensors = {name: tf.constant(value) for name, value in inputs.items()}
        return {name: value.numpy() for name, value in self._function(**tensors).items()}


def _tflite_runner(loaded: Any, signature: str) -> Predict:
    """The signature converted to TensorFlow Lite (variables frozen in) and run by its
    interpreter with the XNNPACK kernels, on one thread: the way TF Serving's
    ``--prefer_tflite_model`` runs a CPU model. For this model a call is 15 to 30 times faster than
    in the Session for one image, 3 to 5 times for 32 (bench/).
    The interpreter runs one call at a time (the lock); the batcher never overlaps calls anyway.
    """
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.signatures[signature]], loaded
    )
    with warnings.catch_warnings():
        # TF names ai-edge-litert as the interpreter's future home; this one is the converter's
        # own twin (same op versions) and adds nothing to the image.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(model_content=converter.convert(), num_threads=1)
    run = interpreter.get_signature_runner(signature)
    lock = threading.Lock()

    def predict(inputs: Tensors) -> Tensors:
        with lock:
            result: Tensors = run(**inputs)
        return result

    return predict


def _sample_inputs(function: Any, rows: int) -> Tensors:
    """Deterministic values of each input's dtype and shape (other free dimensions: 2)."""
    rng = np.random.default_rng(rows)
    samples: Tensors = {}
    for name, spec in function.structured_input_signature[1].items():
        info = _tensor_info(name, spec)
        shape = (rows, *[dim or 2 for dim in info.shape[1:]])
        if np.issubdtype(info.dtype, np.floating):
            samples[name] = rng.standard_normal(shape).astype(info.dtype)
        else:
            samples[name] = rng.integers(0, 8, shape).astype(info.dtype)
    return samples


def disagreement(candidate: Tensors, reference: Tensors) -> str | None:
    """What differs between two runs' outputs beyond float rounding, or None."""
    if candidate.keys() != reference.keys():
        return f"outputs {sorted(candidate)} instead of {sorted(reference)}"
    for name, expected in reference.items():
        actual = candidate[name]
        if actual.dtype != expected.dtype or actual.shape != expected.shape:
            return (
                f"output {name!r} is {actual.dtype}{list(actual.shape)} "
                f"instead of {expected.dtype}{list(expected.shape)}"
            )
        if np.issubdtype(expected.dtype, np.floating):
            if not np.allclose(actual, expected, rtol=TFLITE_RTOL, atol=TFLITE_ATOL):
                return f"output {name!r} differs by up to {np.max(np.abs(actual - expected))}"
        # Compared, not subtracted: booleans cannot be, and unsigned integers would wrap.
        elif (differing := np.count_nonzero(actual != expected)) > 0:
            return f"output {name!r} differs in {differing} of {expected.size} values"
    return None


@dataclass(frozen=True)
class SignatureRunner:
    engine: str
    """What runs the signature: tflite, session or eager."""
    predict: Predict


def signature_runner(
    loaded: Any, engine: str = "tflite", signature: str = SIGNATURE_NAME
) -> SignatureRunner:
    """The signature's frozen graph run by ``engine``: ``session`` (a TF1 Session) or
    ``tflite`` (TensorFlow Lite, if it can serve this model, else the Session, with a warning).

    TensorFlow Lite serves when a GPU is not visible (it would leave the GPU idle), the graph
    converts (every op in TFLite's set) and it gives the Session's outputs on sample inputs of
    1 and 7 rows. A graph that cannot be frozen (one that updates its variables or holds lookup
    tables, or whose constants would pass protobuf's 2 GiB) is called eagerly instead.

    Only the eager call keeps the loaded SavedModel: the frozen graph and the TFLite model
    hold their own copy of the weights, so the variables are not kept twice.
    """
    function = loaded.signatures[signature]
    try:
        session = _session_runner(function)
    except Exception as error:  # freezing fails in many ways; the eager call still serves
        logger.warning("serving the signature as an eager call: it cannot be frozen (%s)", error)
        return SignatureRunner("eager", _EagerCall(loaded, signature))
    if engine == "session":
        return SignatureRunner("session", session)
    if tf.config.list_physical_devices("GPU"):
        logger.info("serving with the TensorFlow Session: a GPU is visible")
        return SignatureRunner("session", session)
    try:
        tflite = _tflite_runner(loaded, signature)
        samples = [_sample_inputs(function, rows) for rows in (1, 7)]
        problem = next(
            filter(None, (disagreement(tflite(sample), session(sample)) for sample in samples)),
            None,
        )
    except Exception as error:  # conversion and the interpreter fail in many ways
        # The converter's messages carry the whole MLIR module: its first line says enough.
        first_line = str(error).strip().split("\n", 1)[0][:300]
        problem = f"{type(error).__name__}: {first_line}"
    if problem is not None:
        logger.warning("serving with the TensorFlow Session: TensorFlow Lite cannot (%s)", problem)
        return SignatureRunner("session", session)
    logger.info("serving with TensorFlow Lite: it gives the Session's outputs on sample inputs")
    return SignatureRunner("tflite", tflite)


class LoadedModel:
    """One loaded version. ``predict`` is safe to call from a worker thread."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        engine: str = "tflite",
        signature: str = SIGNATURE_NAME,
    ) -> None:
        self.name = name
        self.version = version
        self.signature_name = signature
        """The signature served: requests that name none get it (SIGNATURE_NAME)."""
        loaded = tf.saved_model.load(str(path), tags=[SERVING_TAG])
        if signature not in loaded.signatures:
            present = ", ".join(sorted(loaded.signatures)) or "none"
            raise ModelLoadError(
                f"SIGNATURE_NAME={signature}: {path} has no such signature (it has: {present})"
            )
        function = loaded.signatures[signature]
        input_specs: dict[str, tf.TensorSpec] = function.structured_input_signature[1]
        output_specs: dict[str, tf.TensorSpec] = function.structured_outputs
        self.inputs = {name: _tensor_info(name, spec) for name, spec in input_specs.items()}
        self.outputs = {name: _tensor_info(name, spec) for name, spec in output_specs.items()}
        for info in self.inputs.values():
            if info.dtype.type not in SUPPORTED_DTYPES:
                raise ModelLoadError(f"input {info.name!r} has unsupported dtype {info.dtype_name}")
        # The SignatureDefs as protos (gRPC metadata) and as JSON (REST metadata).
        self.signatures = _serving_signatures(path)
        self.signature_defs = _as_json(self.signatures)
        runner = signature_runner(loaded, engine, signature)
        self.engine = runner.engine
        """What runs the signature: tflite, session or eager."""
        self.predict: Predict = runner.predict
        """Outputs by name for inputs by name; safe to call from a worker thread."""

    def zeros(self, rows: int) -> Tensors:
        """Inputs of ``rows`` rows, all zero (other free dimensions: 1)."""
        return {
            name: np.zeros((rows, *[dim or 1 for dim in info.shape[1:]]), info.dtype)
            for name, info in self.inputs.items()
        }

    def warm_up(self, batch_sizes: tuple[int, ...]) -> None:
        """Run every batch size once so the first real requests pay no one-time costs."""
        for rows in batch_sizes:
            self.predict(self.zeros(rows))


def load_latest(
    name: str, base_path: Path, engine: str = "tflite", signature: str = SIGNATURE_NAME
) -> LoadedModel:
    try:
        version, path = find_latest_version(base_path)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None
    return LoadedModel(name, version, path, engine, signature)
