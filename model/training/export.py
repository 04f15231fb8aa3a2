"""Export a trained model as a versioned SavedModel that TensorFlow Serving can load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from training.train import EPOCHS, IMAGE_SHAPE, SEED, TrainingResult, train

MODEL_NAME = "digits"
SIGNATURE_NAME = "serving_default"
INPUT_NAME = "images"
MIN_TEST_ACCURACY = 0.97


class AccuracyTooLowError(Exception):
    """Training did not reach MIN_TEST_ACCURACY; nothing was exported."""


class DigitsServable(tf.Module):  # type: ignore[misc]  # tensorflow ships no type hints
    """A plain tf.Module around the Keras model: an explicit signature, loadable without Keras."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(name=MODEL_NAME)
        # The same layers in an uncompiled Model: the trained model tracks Adam's slot
        # variables, which would triple the export's size and mean nothing to a server.
        self.model = keras.Model(model.inputs, model.outputs, name=model.name)

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec([None, *IMAGE_SHAPE], tf.float32, name=INPUT_NAME)]
    )
    def serve(self, images: tf.Tensor) -> dict[str, Any]:
        probabilities = self.model(images, training=False)
        classes = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"probabilities": probabilities, "classes": classes}


def export(model: keras.Model, base_path: Path, version: int) -> Path:
    """Write ``base_path/<version>/`` atomically and return it.

    The SavedModel is written beside the target and renamed into place, so a server that polls
    ``base_path`` (TensorFlow Serving does) never sees a half-written version directory; it
    ignores names that are not numbers.
    """
    base_path.mkdir(parents=True, exist_ok=True)
    target = base_path / str(version)
    staging = base_path / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    servable = DigitsServable(model)
    tf.saved_model.save(servable, str(staging), signatures={SIGNATURE_NAME: servable.serve})
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def metrics_of(result: TrainingResult, version: int) -> dict[str, Any]:
    return {
        "model": MODEL_NAME,
        "version": version,
        "test_accuracy": round(result.test_accuracy, 6),
        "test_loss": round(result.test_loss, 6),
        "train_examples": len(result.split.y_train),
        "test_examples": len(result.split.y_test),
        "epochs": EPOCHS,
        "seed": SEED,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def train_and_export(export_dir: Path, version: int) -> TrainingResult:
    """Train; if accurate enough, write ``export_dir/digits/<version>/`` and metrics.json."""
    result = train()
    if result.test_accuracy < MIN_TEST_ACCURACY:
        raise AccuracyTooLowError(
            f"held-out accuracy {result.test_accuracy:.4f} is below {MIN_TEST_ACCURACY}"
        )
    export(result.model, export_dir / MODEL_NAME, version)
    metrics = json.dumps(metrics_of(result, version), indent=2, sort_keys=True)
    (export_dir / "metrics.json").write_text(metrics + "\n")
    return result
