"""A second, different model: a regression on scikit-learn's diabetes data with two named inputs
of different dtypes, so that nothing in the runtimes, the image or the program is tied to digits.

The inputs are the nine float measurements and the patient's sex as an int64 code (0 or 1: the
dataset's scaled column, split back to its two values); the output is the disease progression a
year later. Least squares in closed form: no training randomness, the same weights on every run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_diabetes

MODEL_NAME = "diabetes"
SIGNATURE_NAME = "serving_default"
SEX_COLUMN = 1
MEASUREMENTS = 9


def fit() -> tuple[np.ndarray, np.ndarray, float]:
    """Weights of the measurements, of each sex code, and the root mean squared error."""
    features, target = load_diabetes(return_X_y=True)
    sex = (features[:, SEX_COLUMN] > 0).astype(np.int64)
    measurements = np.delete(features, SEX_COLUMN, axis=1)
    design = np.hstack([measurements, np.eye(2)[sex]])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    rmse = float(np.sqrt(np.mean((design @ solution - target) ** 2)))
    return solution[:MEASUREMENTS], solution[MEASUREMENTS:], rmse


class DiabetesServable(tf.Module):  # type: ignore[misc]  # tensorflow ships no type hints
    def __init__(self, weights: np.ndarray, sex_offsets: np.ndarray) -> None:
        super().__init__(name=MODEL_NAME)
        self.weights = tf.constant(weights, tf.float32)
        self.sex_offsets = tf.constant(sex_offsets, tf.float32)

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[
            tf.TensorSpec([None, MEASUREMENTS], tf.float32, name="measurements"),
            tf.TensorSpec([None], tf.int64, name="sex"),
        ]
    )
    def serve(self, measurements: tf.Tensor, sex: tf.Tensor) -> dict[str, Any]:
        offset = tf.gather(self.sex_offsets, tf.clip_by_value(sex, 0, 1))
        return {"progression": tf.linalg.matvec(measurements, self.weights) + offset}


def export(base_path: Path, version: int) -> tuple[Path, float]:
    """Write ``base_path/<version>/`` atomically (as training.export does); return it and the
    fit's RMSE."""
    weights, sex_offsets, rmse = fit()
    base_path.mkdir(parents=True, exist_ok=True)
    target = base_path / str(version)
    staging = base_path / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    servable = DiabetesServable(weights, sex_offsets)
    tf.saved_model.save(servable, str(staging), signatures={SIGNATURE_NAME: servable.serve})
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target, rmse
