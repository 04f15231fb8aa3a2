"""How the signature runs: its frozen graph in TensorFlow Lite or a Session, or the eager call
when it cannot be frozen; whichever runs, the signature's own answers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from serving.model import (
    TFLITE_ATOL,
    LoadedModel,
    disagreement,
    load_latest,
    signature_runner,
)
from support import COMMITTED_MODEL
from training.train import Split

FALLBACK_WARNING = "serving the signature as an eager call"
ENGINE_LOG = {
    "tflite": "serving with TensorFlow Lite: it gives the Session's outputs",
    "session": "serving with the TensorFlow Session",
}
TFLITE_REFUSED = "serving with the TensorFlow Session: TensorFlow Lite cannot"


def eager_answers(model_path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    function = tf.saved_model.load(str(model_path)).signatures["serving_default"]
    return {name: value.numpy() for name, value in function(images=tf.constant(images)).items()}


@pytest.mark.parametrize("engine", ["tflite", "session"])
@pytest.mark.parametrize("rows", [1, 7, 32])
def test_each_engine_answers_what_the_signature_answers(
    split: Split, rows: int, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="serving.model"):
        model = load_latest("digits", COMMITTED_MODEL, engine)
    assert model.engine == engine
    assert FALLBACK_WARNING not in caplog.text  # the committed model is frozen
    assert TFLITE_REFUSED not in caplog.text  # and converts
    if engine == "tflite":
        assert ENGINE_LOG["tflite"] in caplog.text
    images = split.x_test[:rows].astype(np.float32)
    ours = model.predict({"images": images})
    theirs = eager_answers(COMMITTED_MODEL / str(model.version), images)
    assert ours.keys() == theirs.keys() == {"classes", "probabilities"}
    np.testing.assert_array_equal(ours["classes"], theirs["classes"])
    tolerance = TFLITE_ATOL if engine == "tflite" else 1e-6
    np.testing.assert_allclose(ours["probabilities"], theirs["probabilities"], atol=tolerance)
    assert ours["classes"].dtype == np.int64 and ours["probabilities"].shape == (rows, 10)


def test_a_graph_tensorflow_lite_cannot_convert_runs_in_the_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Gamma(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])  # type: ignore[untyped-decorator]
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.math.igamma(x + 1.0, x + 2.0)}  # no TFLite kernel

    module = Gamma()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    with caplog.at_level(logging.INFO, logger="serving.model"):
        model = LoadedModel("gamma", 1, tmp_path / "1")
    assert model.engine == "session"
    assert TFLITE_REFUSED in caplog.text and "ConverterError" in caplog.text
    refusal = next(r.getMessage() for r in caplog.records if TFLITE_REFUSED in r.getMessage())
    assert len(refusal) < 500  # the first line of the converter's message, not its MLIR dump
    expected = tf.math.igamma(tf.constant(2.0), tf.constant(3.0)).numpy()
    assert model.predict({"x": np.ones((1, 3), np.float32)})["y"].tolist() == [[expected] * 3]


def test_a_visible_gpu_keeps_the_session(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = tf.config.list_physical_devices
    fake_gpu = ["/physical_device:GPU:0"]
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: fake_gpu if kind == "GPU" else real(kind),
    )
    with caplog.at_level(logging.INFO, logger="serving.model"):
        model = load_latest("digits", COMMITTED_MODEL, "tflite")
    assert model.engine == "session"
    assert "serving with the TensorFlow Session: a GPU is visible" in caplog.text
    assert ENGINE_LOG["tflite"] not in caplog.text


def _outputs(**arrays: object) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in arrays.items()}


@pytest.mark.parametrize(
    ("candidate", "problem"),
    [
        (_outputs(p=np.array([0.5, 0.5 + 1e-6], np.float32), c=[1]), None),  # float rounding
        (_outputs(p=np.array([0.5, 0.51], np.float32), c=[1]), "output 'p' differs by up to"),
        (
            _outputs(p=np.array([0.5, 0.5], np.float32), c=[2]),
            "output 'c' differs in 1 of 1 values",
        ),
        (
            _outputs(p=np.array([0.5, 0.5], np.float64), c=[1]),
            "output 'p' is float64[2] instead of float32[2]",
        ),
        (
            _outputs(p=np.array([0.5], np.float32), c=[1]),
            "output 'p' is float32[1] instead of float32[2]",
        ),
        (_outputs(p=np.array([0.5, 0.5], np.float32)), "outputs ['p'] instead of ['c', 'p']"),
        (_outputs(p=np.array([0.5, 0.5], np.float32), c=[1], b=[False]), None),
        (_outputs(p=np.array([0.5, 0.5], np.float32), c=[1], b=[True]), "output 'b' differs in 1"),
    ],
)
def test_disagreement_names_what_differs(
    candidate: dict[str, np.ndarray], problem: str | None
) -> None:
    reference = _outputs(p=np.array([0.5, 0.5], np.float32), c=[1])
    if "b" in candidate:  # a boolean output: compared, never subtracted
        reference["b"] = np.array([False])
    found = disagreement(candidate, reference)
    assert found == problem if problem is None else found is not None and found.startswith(problem)


class _CountsCalls(tf.Module):  # type: ignore[misc]  # tensorflow ships no type hints
    """Updates a variable on every call: a frozen copy would answer 1 forever."""

    def __init__(self) -> None:
        self.calls = tf.Variable(0, dtype=tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])  # type: ignore[untyped-decorator]
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        self.calls.assign_add(1)
        return {"doubled": x * 2.0, "calls": tf.fill([tf.shape(x)[0]], self.calls.read_value())}


def test_a_model_that_updates_its_variables_is_called_eagerly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    module = _CountsCalls()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    with caplog.at_level(logging.WARNING):
        model = LoadedModel("counter", 1, tmp_path / "1")
    assert model.engine == "eager"
    assert FALLBACK_WARNING in caplog.text
    first = model.predict({"x": np.ones((2, 2), np.float32)})
    second = model.predict({"x": np.ones((1, 2), np.float32)})
    np.testing.assert_array_equal(first["doubled"], np.full((2, 2), 2.0))
    assert first["calls"].tolist() == [1, 1] and second["calls"].tolist() == [2]


@pytest.mark.parametrize("engine", ["tflite", "session"])
def test_the_runner_feeds_inputs_by_name(
    tmp_path: Path, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Several inputs: each fed to its own placeholder whatever the order they arrive in."""

    class TwoInputs(tf.Module):  # type: ignore[misc]
        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.float32)]
        )
        def serve(self, minuend: tf.Tensor, subtrahend: tf.Tensor) -> dict[str, tf.Tensor]:
            # Neither in sorted order: names, not positions, must pair them up.
            return {"sum": minuend + subtrahend, "difference": minuend - subtrahend}

    module = TwoInputs()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    with caplog.at_level(logging.INFO, logger="serving.model"):
        runner = signature_runner(tf.saved_model.load(str(tmp_path / "1")), engine)
    assert runner.engine == engine
    assert (ENGINE_LOG["tflite"] in caplog.text) == (engine == "tflite")
    answers = runner.predict(
        {
            "subtrahend": np.array([1.0, 2.0], np.float32),
            "minuend": np.array([10.0, 20.0], np.float32),
        }
    )
    assert answers["difference"].tolist() == [9.0, 18.0]
    assert answers["sum"].tolist() == [11.0, 22.0]
