"""Train, export, load: the served SavedModel is the trained model, accurate and reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from serving.model import LoadedModel, load_latest
from support import COMMITTED_MODEL, accuracy
from training.export import train_and_export
from training.train import Split, TrainingResult, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, Path]:
    """What ``python -m training`` does, into a temporary export directory."""
    export_dir = tmp_path_factory.mktemp("export")
    return train_and_export(export_dir, version=3), export_dir


@pytest.fixture(scope="module")
def exported(trained: tuple[TrainingResult, Path]) -> Path:
    return trained[1]


def test_export_is_a_versioned_saved_model_with_metrics(exported: Path) -> None:
    version_dir = exported / "digits" / "3"
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables" / "variables.index").is_file()
    size = sum(path.stat().st_size for path in version_dir.rglob("*") if path.is_file())
    assert size < 1024 * 1024, f"export is {size} bytes"
    assert not list((exported / "digits").glob(".staging-*"))
    metrics = json.loads((exported / "metrics.json").read_text())
    assert metrics["model"] == "digits"
    assert metrics["version"] == 3
    assert metrics["test_accuracy"] >= 0.97


def test_loaded_signature_matches_the_contract(exported: Path) -> None:
    model = load_latest("digits", exported / "digits")
    assert model.version == 3
    assert {name: (info.dtype_name, info.shape) for name, info in model.inputs.items()} == {
        "images": ("DT_FLOAT", (None, 8, 8))
    }
    assert {name: (info.dtype_name, info.shape) for name, info in model.outputs.items()} == {
        "probabilities": ("DT_FLOAT", (None, 10)),
        "classes": ("DT_INT64", (None,)),
    }


def test_served_predictions_equal_the_in_process_model(
    trained: tuple[TrainingResult, Path], split: Split
) -> None:
    result, export_dir = trained
    served = load_latest("digits", export_dir / "digits")
    expected = np.asarray(result.model(split.x_test, training=False))
    outputs = served.predict({"images": split.x_test})
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs["classes"], expected.argmax(axis=1))
    assert outputs["classes"].dtype == np.int64
    assert accuracy(outputs["classes"], split.y_test) >= 0.97


def test_retraining_is_deterministic() -> None:
    first, second = train(epochs=2), train(epochs=2)
    assert (first.test_accuracy, first.test_loss) == (second.test_accuracy, second.test_loss)
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_committed_model_is_accurate(split: Split) -> None:
    model = LoadedModel("digits", 1, COMMITTED_MODEL / "1")
    classes = model.predict({"images": split.x_test})["classes"]
    assert accuracy(classes, split.y_test) >= 0.97
    metrics = json.loads((COMMITTED_MODEL.parent / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(accuracy(classes, split.y_test), abs=1e-6)
