"""A model repository as TensorFlow Serving lays it out: `<base>/<version>/saved_model.pb`, one
numeric directory per version."""

from __future__ import annotations

from pathlib import Path


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
