"""A disposable copy of the project, for stacks that must not write into the checkout.

The engine writes a stack file (`Pulumi.<stack>.yaml`, with its encryption salt) beside
Pulumi.yaml; tests and benchmarks run their throwaway stacks in a copy, which a test may also
change (the model, the Dockerfile) without touching the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.environment import REPO

# What the program needs to run and build; the model's virtualenv and caches stay behind.
PROJECT_FILES = ("Pulumi.yaml", "__main__.py")
PROJECT_DIRS = ("gpu_model_serving", "model", "model_contract")
_IGNORED = shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache", ".mypy_cache")


def copy_project(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, destination / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, destination / name, ignore=_IGNORED)
    return destination
