"""Environment parsing: defaults, every rule, all problems at once, and the CLI's exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from serving.config import ConfigError, load_settings
from support import COMMITTED_MODEL, MODEL_DIR, launch_server


def test_defaults_match_tf_serving_conventions() -> None:
    settings = load_settings({"MODEL_BASE_PATH": str(COMMITTED_MODEL)})
    assert settings.model_name == "digits"
    assert settings.host == "0.0.0.0"
    assert settings.port == 8501
    assert settings.max_batch_size == 32
    assert settings.batch_timeout_s == pytest.approx(0.002)
    assert settings.max_request_bytes == 1024 * 1024
    assert settings.drain_timeout_s == 30
    assert settings.log_level == "info"
    assert settings.processes == 1
    assert settings.inference_engine == "tflite"


def test_model_base_path_defaults_to_models_slash_name() -> None:
    with pytest.raises(ConfigError, match=r"MODEL_BASE_PATH='/models/mnist': /models/mnist is not"):
        load_settings({"MODEL_NAME": "mnist"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT='http': not an integer"),
        ("PORT", "70000", "PORT='70000': must be between 1 and 65535"),
        ("MAX_BATCH_SIZE", "0", "MAX_BATCH_SIZE='0': must be between 1 and 1024"),
        ("SERVING_PROCESSES", "0", "SERVING_PROCESSES='0': must be between 1 and 64"),
        ("SERVING_PROCESSES", "two", "SERVING_PROCESSES='two': not an integer"),
        ("MAX_BATCH_SIZE", "1025", "MAX_BATCH_SIZE='1025': must be between 1 and 1024"),
        ("BATCH_TIMEOUT_MICROS", "-1", "BATCH_TIMEOUT_MICROS='-1': must be between 0"),
        ("BATCH_TIMEOUT_MICROS", "10000001", "'10000001': must be between 0 and 10000000"),
        ("MAX_REQUEST_BYTES", "1e6", "MAX_REQUEST_BYTES='1e6': not an integer"),
        ("DRAIN_TIMEOUT_SECONDS", "soon", "DRAIN_TIMEOUT_SECONDS='soon': not a number"),
        ("DRAIN_TIMEOUT_SECONDS", "inf", "DRAIN_TIMEOUT_SECONDS='inf': must be between 0 and 600"),
        ("DRAIN_TIMEOUT_SECONDS", "601", "DRAIN_TIMEOUT_SECONDS='601': must be between 0 and 600"),
        ("MODEL_NAME", "../etc", "MODEL_NAME='../etc': must be letters"),
        ("HOST", " ", "HOST=' ': must not be empty"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='loud': must be one of"),
        ("INFERENCE_ENGINE", "onnx", "INFERENCE_ENGINE='onnx': must be one of tflite, session"),
    ],
)
def test_each_bad_value_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as raised:
        load_settings({"MODEL_BASE_PATH": str(COMMITTED_MODEL), name: value})
    assert "; " not in str(raised.value), "only the bad variable is reported"


def test_model_base_path_needs_a_version_with_a_saved_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no numeric version directory"):
        load_settings({"MODEL_BASE_PATH": str(tmp_path)})
    (tmp_path / "3").mkdir()
    with pytest.raises(ConfigError, match=r"3 has no saved_model\.pb"):
        load_settings({"MODEL_BASE_PATH": str(tmp_path)})


def test_cli_reports_every_problem_without_traceback() -> None:
    environment = {
        **os.environ,
        "PYTHONPATH": str(MODEL_DIR),
        "MODEL_BASE_PATH": "/does/not/exist",
        "PORT": "eighty",
        "MAX_BATCH_SIZE": "-3",
    }
    result = subprocess.run(
        [sys.executable, "-m", "serving"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for fragment in ("PORT='eighty'", "MAX_BATCH_SIZE='-3'", "MODEL_BASE_PATH='/does/not/exist'"):
        assert fragment in result.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_unloadable_model_exits_1_with_the_reason(tmp_path: Path, processes: str) -> None:
    (tmp_path / "digits" / "1").mkdir(parents=True)
    (tmp_path / "digits" / "1" / "saved_model.pb").write_bytes(b"not a protobuf")
    server = launch_server(
        tmp_path / "server.log",
        MODEL_BASE_PATH=str(tmp_path / "digits"),
        SERVING_PROCESSES=processes,
    )
    assert server.process.wait(120) == 1, server.log()
    assert "could not load model digits" in server.log()
