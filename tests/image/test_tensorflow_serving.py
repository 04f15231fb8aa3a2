# mypy: disable-error-code="import-untyped"
# (protobuf ships no type stubs in every environment that runs these tests.)
"""The tensorflow-serving target, as far as it can be checked without its base image.

The official tensorflow/serving image lives on Docker Hub, which this project's machines cannot
reach, so that target is never built for real here. What is checked instead:
- the batching parameters the entrypoint writes from MAX_BATCH_SIZE/BATCH_TIMEOUT_MICROS, and
  the monitoring config, parse as the TensorFlow Serving protos they claim to be;
- the entrypoint's defaults and ranges are model/serving/limits.json's;
- the entrypoint's flags and SIGTERM drain, against a stub server binary;
- (docker) the target's own Dockerfile steps, built on the local Debian image as a stand-in
  base, and the entrypoint's drain as PID 1 in a real container.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "model" / "docker" / "tensorflow-serving"
ENTRYPOINT = CONFIG_DIR / "entrypoint.sh"
METRICS_PATH = "/monitoring/prometheus/metrics"
LIMITS: dict[str, dict[str, int]] = json.loads(
    (REPO_ROOT / "model" / "serving" / "limits.json").read_text()
)
STUB_SERVER = """#!/bin/sh
echo "$@" > "${STUB_ARGS_FILE:-/dev/null}"
exec sleep 1000
"""

Docker = Callable[..., subprocess.CompletedProcess[str]]


def tensorflow_serving_messages() -> dict[str, type]:
    """Message classes for the two config protos, declared field for field like upstream's
    tensorflow_serving/servables/tensorflow/session_bundle_config.proto (BatchingParameters)
    and tensorflow_serving/config/monitoring_config.proto, so that text-format parsing rejects
    any unknown field or wrongly typed value just as tensorflow_model_server would."""
    protobuf = pytest.importorskip("google.protobuf")
    del protobuf
    from google.protobuf import (  # noqa: PLC0415 (optional dependency)
        descriptor_pb2,
        descriptor_pool,
        message_factory,
        wrappers_pb2,
    )

    field = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)

    serving = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    batching = serving.message_type.add(name="BatchingParameters")
    for name, number, wrapper in [
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
    ]:
        batching.field.add(
            name=name,
            number=number,
            type=field.TYPE_MESSAGE,
            label=field.LABEL_OPTIONAL,
            type_name=f".google.protobuf.{wrapper}",
        )
    batching.field.add(
        name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED
    )
    batching.field.add(
        name="pad_variable_length_inputs",
        number=7,
        type=field.TYPE_BOOL,
        label=field.LABEL_OPTIONAL,
    )
    prometheus = serving.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    monitoring = serving.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_OPTIONAL,
        type_name=".tensorflow.serving.PrometheusConfig",
    )
    pool.Add(serving)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
        )
        for name in ("BatchingParameters", "MonitoringConfig")
    }


def parse_text_proto(message_name: str, path: Path) -> object:
    from google.protobuf import text_format  # noqa: PLC0415 (optional dependency)

    message = tensorflow_serving_messages()[message_name]()
    return text_format.Parse(path.read_text(), message)


def test_monitoring_config_serves_prometheus_on_the_shared_path() -> None:
    config = parse_text_proto("MonitoringConfig", CONFIG_DIR / "monitoring.config")
    assert config.prometheus_config.enable  # type: ignore[attr-defined]
    assert config.prometheus_config.path == METRICS_PATH  # type: ignore[attr-defined]


def test_a_misspelt_field_is_rejected() -> None:
    from google.protobuf import text_format  # noqa: PLC0415 (optional dependency)

    message = tensorflow_serving_messages()["BatchingParameters"]()
    with pytest.raises(text_format.ParseError, match="max_batch_sizes"):
        text_format.Parse("max_batch_sizes { value: 4 }", message)


@pytest.fixture
def stub_server(tmp_path: Path) -> Path:
    stub = tmp_path / "bin" / "tensorflow_model_server"
    stub.parent.mkdir()
    stub.write_text(STUB_SERVER)
    stub.chmod(0o755)
    return stub


def start_entrypoint(
    stub_server: Path, tmp_path: Path, **env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    args_file = tmp_path / "server-args"
    environment = {
        "PATH": f"{stub_server.parent}:{os.environ['PATH']}",
        "MODEL_NAME": "digits",
        "STUB_ARGS_FILE": str(args_file),
        **env,
    }
    process = subprocess.Popen(
        ["bash", str(ENTRYPOINT), "--rest_api_timeout_in_ms=5000"],
        env=environment,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while not (args_file.exists() and args_file.read_text()):
        assert time.monotonic() < deadline, "stub server never started"
        time.sleep(0.05)
    return process, args_file


def batching_parameters(stub_server: Path, tmp_path: Path, **env: str) -> Any:
    """The BatchingParameters the entrypoint hands the server for this environment."""
    process, args_file = start_entrypoint(
        stub_server, tmp_path, TMPDIR=str(tmp_path), DRAIN_TIMEOUT_SECONDS="0", **env
    )
    try:
        flags = args_file.read_text().split()
        assert "--enable_batching=true" in flags
        path = Path(
            next(f for f in flags if f.startswith("--batching_parameters_file=")).split("=", 1)[1]
        )
        assert path == tmp_path / "batching.config"
        return parse_text_proto("BatchingParameters", path)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("max_batch_size", "timeout_micros", "allowed"),
    [
        ("64", "5000", [1, 2, 4, 8, 16, 32, 64]),
        ("48", "0", [1, 2, 4, 8, 16, 32, 48]),
        ("1", "10000000", [1]),
        ("1024", "2000", [2**i for i in range(11)]),
    ],
)
def test_the_batching_keys_reach_tf_serving_as_batching_parameters(
    stub_server: Path, tmp_path: Path, max_batch_size: str, timeout_micros: str, allowed: list[int]
) -> None:
    """A batching file baked into the image would ignore the stack's maxBatchSize and
    batchTimeoutMicros, so prod would batch with the defaults. The generated file parses as the
    proto and ends on max_batch_size, as tensorflow_model_server requires."""
    parameters = batching_parameters(
        stub_server, tmp_path, MAX_BATCH_SIZE=max_batch_size, BATCH_TIMEOUT_MICROS=timeout_micros
    )
    assert parameters.max_batch_size.value == int(max_batch_size)
    assert parameters.batch_timeout_micros.value == int(timeout_micros)
    assert list(parameters.allowed_batch_sizes) == allowed
    assert parameters.num_batch_threads.value >= 1


def test_the_entrypoint_defaults_are_the_shared_ones(stub_server: Path, tmp_path: Path) -> None:
    parameters = batching_parameters(stub_server, tmp_path)
    assert parameters.max_batch_size.value == LIMITS["MAX_BATCH_SIZE"]["default"]
    assert parameters.batch_timeout_micros.value == LIMITS["BATCH_TIMEOUT_MICROS"]["default"]
    script = ENTRYPOINT.read_text()
    assert (
        f'DRAIN_TIMEOUT_SECONDS="${{DRAIN_TIMEOUT_SECONDS:-{LIMITS["DRAIN_TIMEOUT_SECONDS"]["default"]}}}"'
        in script
    )


@pytest.mark.parametrize(
    "name", ["MAX_BATCH_SIZE", "BATCH_TIMEOUT_MICROS", "DRAIN_TIMEOUT_SECONDS"]
)
def test_the_entrypoint_accepts_exactly_the_shared_range(name: str, tmp_path: Path) -> None:
    limit = LIMITS[name]
    for value, accepted in (
        (limit["min"], True),
        (limit["max"], True),
        (limit["min"] - 1, False),
        (limit["max"] + 1, False),
    ):
        result = run_entrypoint_once(tmp_path, **{name: str(value)})
        rejected = (
            f"{name}='{value}': must be a whole number between {limit['min']} and {limit['max']}"
        )
        assert (rejected not in result.stderr) == accepted, (value, result.stderr)


def run_entrypoint_once(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The entrypoint with a server that exits at once: its status, or 2 for a bad environment."""
    done = tmp_path / "done"
    done.write_text("#!/bin/sh\nexit 0\n")
    done.chmod(0o755)
    return subprocess.run(
        ["bash", str(ENTRYPOINT)],
        env={
            "PATH": os.environ["PATH"],
            "MODEL_NAME": "digits",
            "MODEL_SERVER": str(done),
            "TMPDIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_entrypoint_passes_flags_and_arguments(stub_server: Path, tmp_path: Path) -> None:
    process, args_file = start_entrypoint(
        stub_server,
        tmp_path,
        PORT="9501",
        TMPDIR=str(tmp_path),
        MONITORING_CONFIG_FILE="/etc/tfserving/monitoring.config",
        DRAIN_TIMEOUT_SECONDS="0",
    )
    try:
        flags = args_file.read_text().split()
        assert "--rest_api_port=9501" in flags
        assert "--model_name=digits" in flags
        assert "--model_base_path=/models/digits" in flags
        assert "--enable_batching=true" in flags
        assert f"--batching_parameters_file={tmp_path}/batching.config" in flags
        assert "--monitoring_config_file=/etc/tfserving/monitoring.config" in flags
        assert flags[-1] == "--rest_api_timeout_in_ms=5000"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_entrypoint_drains_then_exits_zero_on_sigterm(stub_server: Path, tmp_path: Path) -> None:
    drain_seconds = 2
    process, _ = start_entrypoint(stub_server, tmp_path, DRAIN_TIMEOUT_SECONDS=str(drain_seconds))
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)  # a repeated SIGTERM does not cut the drain short
    assert process.wait(timeout=drain_seconds + 10) == 0
    assert time.monotonic() - started >= drain_seconds


def test_entrypoint_reports_a_server_crash(tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    crash.write_text("#!/bin/sh\nexit 3\n")
    crash.chmod(0o755)
    result = subprocess.run(
        ["bash", str(ENTRYPOINT)],
        env={"PATH": os.environ["PATH"], "MODEL_NAME": "digits", "MODEL_SERVER": str(crash)},
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 3


def test_entrypoint_names_every_bad_value_and_exits_2(tmp_path: Path) -> None:
    result = run_entrypoint_once(
        tmp_path, DRAIN_TIMEOUT_SECONDS="10s", MAX_BATCH_SIZE="0", BATCH_TIMEOUT_MICROS="soon"
    )
    assert result.returncode == 2
    for problem in (
        "DRAIN_TIMEOUT_SECONDS='10s'",
        "MAX_BATCH_SIZE='0'",
        "BATCH_TIMEOUT_MICROS='soon'",
    ):
        assert problem in result.stderr


@pytest.mark.docker
def test_target_steps_on_a_stand_in_base(
    build_image: Callable[..., str],
    base_image: str,
    test_repository: str,
    docker_cli: Docker,
    stub_server: Path,
) -> None:
    """Not a TensorFlow Serving image: the official base is swapped for the local Debian one
    (no tensorflow_model_server in it) to check this target's own instructions and its
    entrypoint as PID 1. The real target is blocked on Docker Hub access."""
    tag = build_image(
        "tensorflow-serving",
        "cpu",
        f"{test_repository}:tensorflow-serving-stand-in-{uuid.uuid4().hex[:8]}",
        f"TFSERVING_BASE={base_image}",
    )
    config = json.loads(docker_cli("image", "inspect", "--format", "{{json .Config}}", tag).stdout)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/bin/bash", "/usr/local/bin/tensorflow-serving-entrypoint"]
    assert {"8500/tcp", "8501/tcp"} <= set(config["ExposedPorts"])
    assert env["MODEL_NAME"] == "digits"
    assert env["MODEL_BASE_PATH"] == "/models/digits"
    listing = docker_cli(
        "run", "--rm", "--network", "host", "--entrypoint", "sh", tag, "-c",
        "ls /models/digits/1/saved_model.pb $MONITORING_CONFIG_FILE",
    )  # fmt: skip
    assert "saved_model.pb" in listing.stdout

    drain_seconds = 3
    name = f"tfs-entrypoint-test-{uuid.uuid4().hex[:8]}"
    docker_cli(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "--volume", f"{stub_server}:/usr/local/bin/tensorflow_model_server:ro",
        "--env", f"DRAIN_TIMEOUT_SECONDS={drain_seconds}",
        tag,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while "starting tensorflow_model_server" not in docker_cli("logs", name).stderr:
            assert time.monotonic() < deadline, docker_cli("logs", name).stderr
            time.sleep(0.2)
        started = time.monotonic()
        docker_cli("stop", "--time", "30", name, timeout=60)
        stopped_after = time.monotonic() - started
        state = json.loads(docker_cli("inspect", "--format", "{{json .State}}", name).stdout)
        logs = docker_cli("logs", name).stderr
        assert state["ExitCode"] == 0, logs
        assert drain_seconds <= stopped_after < 30, logs
        assert "model server stopped after drain" in logs
    finally:
        docker_cli("rm", "--force", name, check=False)
