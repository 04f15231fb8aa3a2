"""How the signature runs: a frozen graph in a Session, or the eager call when it cannot be
frozen; either way the signature's own answers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from serving.model import LoadedModel, load_latest, signature_runner
from support import COMMITTED_MODEL
from training.train import Split

FALLBACK_WARNING = "serving the signature as an eager call"


def eager_answers(model_path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    function = tf.saved_model.load(str(model_path)).signatures["serving_default"]
    return {name: value.numpy() for name, value in function(images=tf.constant(images)).items()}


@pytest.mark.parametrize("rows", [1, 7, 32])
def test_the_session_answers_what_the_signature_answers(
    split: Split, rows: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        model = load_latest("digits", COMMITTED_MODEL)
    assert FALLBACK_WARNING not in caplog.text  # the committed model is frozen
    images = split.x_test[:rows].astype(np.float32)
    ours = model.predict({"images": images})
    theirs = eager_answers(COMMITTED_MODEL / str(model.version), images)
    assert ours.keys() == theirs.keys() == {"classes", "probabilities"}
    np.testing.assert_array_equal(ours["classes"], theirs["classes"])
    np.testing.assert_allclose(ours["probabilities"], theirs["probabilities"], rtol=0, atol=1e-6)
    assert ours["classes"].dtype == np.int64 and ours["probabilities"].shape == (rows, 10)


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
    assert FALLBACK_WARNING in caplog.text
    first = model.predict({"x": np.ones((2, 2), np.float32)})
    second = model.predict({"x": np.ones((1, 2), np.float32)})
    np.testing.assert_array_equal(first["doubled"], np.full((2, 2), 2.0))
    assert first["calls"].tolist() == [1, 1] and second["calls"].tolist() == [2]


def test_the_runner_feeds_inputs_by_name(tmp_path: Path) -> None:
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
    run = signature_runner(tf.saved_model.load(str(tmp_path / "1")))
    answers = run(
        {
            "subtrahend": np.array([1.0, 2.0], np.float32),
            "minuend": np.array([10.0, 20.0], np.float32),
        }
    )
    assert answers["difference"].tolist() == [9.0, 18.0]
    assert answers["sum"].tolist() == [11.0, 22.0]
