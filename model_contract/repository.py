"""A model repository as TensorFlow Serving lays it out: `<base>/<version>/saved_model.pb`, one
numeric directory per version."""

from __future__ import annotations

from pathlib import Path

from model_contract.contract import Contract
from model_contract.saved_model import read_signatures


class ModelRepositoryError(Exception):
    """The repository or the version asked for cannot be served; the message says why."""


def versions(base: Path) -> dict[int, Path]:
    """The numeric version directories under `base`, by version."""
    if not base.is_dir():
        raise ModelRepositoryError(f"{base} is not a directory")
    found = {
        int(child.name): child
        for child in base.iterdir()
        if child.is_dir() and child.name.isdigit()
    }
    if not found:
        raise ModelRepositoryError(
            f"{base} has no numeric version directory (TensorFlow Serving's layout: "
            "<modelPath>/<version>/saved_model.pb)"
        )
    return dict(sorted(found.items()))


def version_contract(version_dir: Path, signature: str = "serving_default") -> Contract:
    """The contract of one version directory (<base>/<model>/<version>): the model's name and
    version from the directory names, its signatures from saved_model.pb."""
    saved_model = version_dir / "saved_model.pb"
    if not version_dir.name.isdigit() or not saved_model.is_file():
        raise ModelRepositoryError(
            f"{version_dir}: must be <base>/<model>/<version>/saved_model.pb"
        )
    return Contract(
        model=version_dir.parent.name,
        version=int(version_dir.name),
        signature=signature,
        signatures=read_signatures(saved_model),
    )
