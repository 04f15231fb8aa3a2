# mypy: disable-error-code="import-untyped"
# (protobuf ships no type stubs in every environment that runs these tests.)
"""The tensorflow-serving target, as far as it can be checked without its base image.

The official tensorflow/serving image lives on Docker Hub, which this project's machines cannot
reach, so that target is never built for real here. What is checked instead:
- the batching and monitoring configs parse as the TensorFlow Serving protos they claim to be;
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

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "model" / "docker" / "tensorflow-serving"
ENTRYPOINT = CONFIG_DIR / "entrypoint.sh"
METRICS_PATH = "/monitoring/prometheus/metrics"
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


def test_batching_parameters_are_a_valid_batching_parameters_proto() -> None:
    parameters = parse_text_proto("BatchingParameters", CONFIG_DIR / "batching.config")
    max_batch_size = parameters.max_batch_size.value  # type: ignore[attr-defined]
    allowed = list(parameters.allowed_batch_sizes)  # type: ignore[attr-defined]
    assert max_batch_size > 0
    assert parameters.num_batch_threads.value >= 1  # type: ignore[attr-defined]
    assert parameters.batch_timeout_micros.value > 0  # type: ignore[attr-defined]
    # tensorflow_model_server refuses to start otherwise.
    if allowed:
        assert allowed == sorted(set(allowed))
        assert allowed[-1] == max_batch_size


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


def test_entrypoint_passes_flags_and_arguments(stub_server: Path, tmp_path: Path) -> None:
    process, args_file = start_entrypoint(
        stub_server,
        tmp_path,
        PORT="9501",
        BATCHING_PARAMETERS_FILE="/etc/tfserving/batching.config",
        MONITORING_CONFIG_FILE="/etc/tfserving/monitoring.config",
        DRAIN_TIMEOUT_SECONDS="0",
    )
    try:
        flags = args_file.read_text().split()
        assert "--rest_api_port=9501" in flags
        assert "--model_name=digits" in flags
        assert "--model_base_path=/models/digits" in flags
        assert "--enable_batching=true" in flags
        assert "--batching_parameters_file=/etc/tfserving/batching.config" in flags
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


def test_entrypoint_rejects_a_bad_drain_timeout() -> None:
    result = subprocess.run(
        ["bash", str(ENTRYPOINT)],
        env={"PATH": os.environ["PATH"], "MODEL_NAME": "digits", "DRAIN_TIMEOUT_SECONDS": "10s"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert "DRAIN_TIMEOUT_SECONDS" in result.stderr


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
        "ls /models/digits/1/saved_model.pb $BATCHING_PARAMETERS_FILE $MONITORING_CONFIG_FILE",
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
