"""Fixtures for the image tests: the local engine, the local base image and image builds.

Standard library only (plus pytest), so any interpreter runs them; no TensorFlow needed.
The engine and registry come from scripts/docker.sh start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.registry import REGISTRY

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"

TEST_REPOSITORY = f"{REGISTRY}/model-server-test"
BASE_IMAGE = os.environ.get("BASE_IMAGE", "localhost/debian-python:bookworm")
BUILD_TIMEOUT_SECONDS = 3600


def docker(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Runs the docker CLI; on failure the test fails showing the command and its output."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


Docker = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def docker_cli() -> Docker:
    """The `docker` helper above, for test modules (they do not import conftest)."""
    return docker


@pytest.fixture(scope="session")
def test_repository() -> str:
    """Where test images are tagged: the local registry, a repository of their own."""
    return TEST_REPOSITORY


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if shutil.which("docker") is None:
        pytest.fail("no docker CLI on PATH (scripts/docker.sh start installs the engine)")
    if docker("info", check=False, timeout=30).returncode != 0:
        pytest.fail("the Docker engine does not answer: run scripts/docker.sh start")


@pytest.fixture(scope="session")
def base_image(docker_engine: None) -> str:
    """The local stand-in for the official Python base image (a no-op when it exists)."""
    subprocess.run([str(SCRIPTS / "base-image.sh")], check=True, timeout=1800)
    return BASE_IMAGE


BuildImage = Callable[..., str]


@pytest.fixture(scope="session")
def build_image(base_image: str) -> Iterator[BuildImage]:
    """Builds model/Dockerfile through scripts/build-image.sh (reusing the build cache)."""
    built: list[str] = []

    def build(
        target: str, variant: str, tag: str, *build_args: str, model: Path | None = None
    ) -> str:
        command = [
            str(SCRIPTS / "build-image.sh"),
            "--target",
            target,
            "--variant",
            variant,
            "--tag",
            tag,
            "--python-base",
            base_image,
        ]
        for build_arg in build_args:
            command += ["--build-arg", build_arg]
        if model is not None:
            command += ["--model", str(model)]
        started = time.monotonic()
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False
        )
        if result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{result.stderr[-6000:]}")
        print(f"built {tag} in {time.monotonic() - started:.0f}s")
        built.append(tag)
        return tag

    yield build
    # Untag only; layers stay in the build cache for the next run.
    for tag in built:
        docker("image", "rm", tag, check=False)
