"""Runtime settings, read once from environment variables.

Every variable, its default and its rule appear once, in ``load_settings``; ``model/README.md``
documents the same table. All problems are reported together, each naming its variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
INFERENCE_ENGINES = ("tflite", "session")
# Defaults and ranges shared with the TF Serving entrypoint and the stack's settings.
LIMITS: Mapping[str, Mapping[str, int]] = json.loads(
    (Path(__file__).with_name("limits.json")).read_text()
)
T = TypeVar("T")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(Exception):
    """One or more environment variables are invalid; the message lists each of them."""


@dataclass(frozen=True)
class Settings:
    model_name: str
    """Name clients use in ``/v1/models/<name>``."""
    model_base_path: Path
    """Directory holding numbered version directories; the highest is served."""
    host: str
    port: int
    grpc_port: int
    """TensorFlow Serving's gRPC API (PredictionService, ModelService); 0 turns it off."""
    max_batch_size: int
    """Most rows run through the model in one call; also the most rows one request may carry."""
    batch_timeout_s: float
    """Longest a row waits for others to join its batch."""
    max_request_bytes: int
    drain_timeout_s: float
    """Longest a SIGTERM waits for in-flight requests before giving up on them."""
    log_level: str
    inference_engine: str = "tflite"
    signature_name: str = "serving_default"
    """The signature served, and answered to requests that name none."""
    """What runs the signature: ``tflite`` (if it gives the Session's outputs; else the Session)
    or ``session``."""
    processes: int = 1
    """Serving processes sharing the ports, each with its own model copy and batcher: one
    Python process keeps about one core busy, whatever the pod's CPU limit."""


def _integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("not an integer") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _seconds(minimum: int, maximum: int) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("not a number of seconds") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum} seconds")
        return value

    return parse


def _limited(name: str) -> tuple[str, Callable[[str], int]]:
    """The shared default (as text) and an integer parser with the shared range."""
    limit = LIMITS[name]
    return str(limit["default"]), _integer(limit["min"], limit["max"])


def _model_name(raw: str) -> str:
    if not _MODEL_NAME.match(raw):
        raise ValueError("must be letters, digits, '_', '.' or '-', not starting with '_.-'")
    return raw


def _non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


def find_latest_version(base_path: Path) -> tuple[int, Path]:
    """The highest numeric subdirectory of base_path, as TensorFlow Serving picks it."""
    if not base_path.is_dir():
        raise ValueError(f"{base_path} is not a directory")
    versions = [
        (int(child.name), child)
        for child in base_path.iterdir()
        if child.is_dir() and child.name.isdigit()
    ]
    if not versions:
        raise ValueError(f"no numeric version directory under {base_path}")
    version, path = max(versions)
    if not (path / "saved_model.pb").is_file():
        raise ValueError(f"{path} has no saved_model.pb")
    return version, path


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must not be empty")
    return Path(raw)


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw.lower()

    return parse


class _Environment:
    """Reads variables, collecting every problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []

    def read(self, name: str, default: str, parse: Callable[[str], T]) -> T:
        raw = self._environ.get(name, default)
        try:
            return parse(raw)
        except ValueError as error:
            self.problems.append(f"{name}={raw!r}: {error}")
            # The default is valid: a stand-in so the remaining variables are still checked.
            return parse(default)

    def check(self, name: str, value: Path, rule: Callable[[Path], object]) -> None:
        try:
            rule(value)
        except ValueError as error:
            self.problems.append(f"{name}='{value}': {error}")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment (``os.environ`` by default); raise ConfigError naming every problem."""
    env = _Environment(os.environ if environ is None else environ)
    model_name = env.read("MODEL_NAME", "digits", _model_name)
    settings = Settings(
        model_name=model_name,
        # Same default as TensorFlow Serving's image: /models/<MODEL_NAME>.
        model_base_path=env.read("MODEL_BASE_PATH", f"/models/{model_name}", _path),
        host=env.read("HOST", "0.0.0.0", _non_empty),
        port=env.read("PORT", "8501", _integer(1, 65535)),
        grpc_port=env.read("GRPC_PORT", "8500", _integer(0, 65535)),
        max_batch_size=env.read("MAX_BATCH_SIZE", *_limited("MAX_BATCH_SIZE")),
        batch_timeout_s=env.read("BATCH_TIMEOUT_MICROS", *_limited("BATCH_TIMEOUT_MICROS"))
        / 1_000_000,
        max_request_bytes=env.read("MAX_REQUEST_BYTES", "1048576", _integer(1)),
        drain_timeout_s=env.read(
            "DRAIN_TIMEOUT_SECONDS",
            str(LIMITS["DRAIN_TIMEOUT_SECONDS"]["default"]),
            _seconds(
                LIMITS["DRAIN_TIMEOUT_SECONDS"]["min"], LIMITS["DRAIN_TIMEOUT_SECONDS"]["max"]
            ),
        ),
        log_level=env.read("LOG_LEVEL", "info", _choice(LOG_LEVELS)),
        inference_engine=env.read("INFERENCE_ENGINE", "tflite", _choice(INFERENCE_ENGINES)),
        processes=env.read("SERVING_PROCESSES", *_limited("SERVING_PROCESSES")),
        signature_name=env.read("SIGNATURE_NAME", "serving_default", _non_empty),
    )
    # Checked now, not when loading: a wrong path is a configuration error, reported before
    # the port opens.
    env.check("MODEL_BASE_PATH", settings.model_base_path, find_latest_version)
    if settings.grpc_port == settings.port:
        env.problems.append(f"GRPC_PORT={settings.grpc_port}: must differ from PORT")
    if env.problems:
        raise ConfigError("invalid environment: " + "; ".join(env.problems))
    return settings
