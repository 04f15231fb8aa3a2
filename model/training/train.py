"""Deterministic training of a small CNN on scikit-learn's bundled 8x8 digits (no download)."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
IMAGE_SHAPE = (8, 8)
NUM_CLASSES = 10
# The dataset's pixel intensities run 0..16; the model rescales them itself so clients
# send raw dataset values.
MAX_PIXEL = 16.0
EPOCHS = 40
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
# Several optimizer steps per tf.function call: per-step Python overhead dominates on a model
# this small.
STEPS_PER_EXECUTION = 32
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class Split:
    """Train and held-out test images (float32, [n, 8, 8], values 0..16) with int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class TrainingResult:
    model: keras.Model
    split: Split
    test_accuracy: float
    test_loss: float


def load_split() -> Split:
    digits = load_digits()
    images = digits.images.astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SEED
    )
    return Split(x_train, y_train, x_test, y_test)


def build_model() -> keras.Model:
    inputs = keras.Input(shape=IMAGE_SHAPE, name="images", dtype="float32")
    x = keras.layers.Rescaling(1.0 / MAX_PIXEL)(inputs)
    x = keras.layers.Reshape((*IMAGE_SHAPE, 1))(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits")


def train(epochs: int = EPOCHS) -> TrainingResult:
    """Train from scratch; the same machine always produces the same weights."""
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    split = load_split()
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    model.fit(
        split.x_train, split.y_train, epochs=epochs, batch_size=BATCH_SIZE, shuffle=True, verbose=0
    )
    loss, accuracy = model.evaluate(split.x_test, split.y_test, verbose=0)
    return TrainingResult(model, split, float(accuracy), float(loss))
