"""The python runtime's CPU image: built from model/Dockerfile, inspected, run, pushed.

Built from the local base image (scripts/base-image.sh); the engine and the registry on
127.0.0.1:5000 come from scripts/docker.sh start.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.registry import REGISTRY, manifest_digest, registry_request

pytestmark = pytest.mark.docker

FIXTURE = Path(__file__).with_name("digits_fixture.json")
MODEL_NAME = "digits"
NON_ROOT_USER = "10001:10001"
READY_TIMEOUT_SECONDS = 180
# What the ModelServer's terminationGracePeriodSeconds gives the pod; the server must drain
# and exit 0 within it.
GRACE_PERIOD_SECONDS = 30
DRAIN_TIMEOUT_SECONDS = 5
PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.DOTALL
)


@pytest.fixture(scope="module")
def image(build_image: Callable[..., str], test_repository: str) -> str:
    return build_image("python", "cpu", f"{test_repository}:python-cpu-{uuid.uuid4().hex[:8]}")


Docker = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def docker(docker_cli: Docker) -> Docker:
    return docker_cli


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_json(
    url: str, body: object | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode(errors="replace")


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def image_files(image: str, scratch: Path) -> Iterator[tuple[str, str, bytes]]:
    """(layer, path, content) for every regular file in every layer of the saved image."""
    archive = scratch / "image.tar"
    subprocess.run(["docker", "save", "--output", str(archive), image], check=True, timeout=600)
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if not (member.isfile() and member.name.endswith(("layer.tar", ".tar"))):
                continue
            layer_file = outer.extractfile(member)
            assert layer_file is not None
            with tarfile.open(fileobj=layer_file) as layer:
                for entry in layer:
                    if entry.isfile():
                        content = layer.extractfile(entry)
                        assert content is not None
                        yield member.name, entry.name, content.read()


def proxy_only_certificates(bundle: Path) -> set[bytes]:
    """Certificates in the build's CA bundle that are not public roots: the proxy's own CA.

    Public roots are the host's Mozilla set (Debian's ca-certificates); they are in the image
    legitimately, the proxy's CA must not be.
    """
    public_dir = Path("/usr/share/ca-certificates/mozilla")
    public = {
        b"".join(match.split())
        for path in public_dir.glob("*.crt")
        for match in PEM_CERTIFICATE.findall(path.read_bytes())
    }
    return {
        b"".join(match.split()) for match in PEM_CERTIFICATE.findall(bundle.read_bytes())
    } - public


def test_runs_as_numeric_non_root_user(image: str, docker: Docker) -> None:
    user = docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    assert user == NON_ROOT_USER
    assert docker(
        "run", "--rm", "--network", "host", "--entrypoint", "id", image
    ).stdout.startswith("uid=10001")


def test_no_ca_bundle_in_any_layer(image: str, tmp_path: Path) -> None:
    bundle_path = os.environ.get("SSL_CERT_FILE", "")
    bundle = Path(bundle_path).read_bytes() if bundle_path and Path(bundle_path).is_file() else None
    proxy_certificates = proxy_only_certificates(Path(bundle_path)) if bundle else set()
    offenders = []
    for layer, path, content in image_files(image, tmp_path):
        if path.startswith(("run/secrets", "./run/secrets")):
            offenders.append(f"{layer}: {path} (secret mount path)")
        elif bundle is not None and content == bundle:
            offenders.append(f"{layer}: {path} (copy of the build's CA bundle)")
        elif proxy_certificates and b"-----BEGIN CERTIFICATE-----" in content:
            found = {b"".join(m.split()) for m in PEM_CERTIFICATE.findall(content)}
            if found & proxy_certificates:
                offenders.append(f"{layer}: {path} (contains the proxy's CA certificate)")
    assert offenders == []


def test_final_stage_has_no_build_tools_or_pip(image: str, docker: Docker) -> None:
    probe = (
        "for tool in gcc cc c++ make pip pip3; do command -v $tool && echo found $tool; done; "
        "python3 -m pip --version && echo found pip-module; "
        "ls /opt/venv/bin/pip* 2>/dev/null && echo found venv-pip; "
        "ls -d /root/.cache/pip /tmp/* 2>/dev/null && echo found leftovers; "
        "ls -d /opt/venv/lib/python3*/site-packages/tensorflow/include 2>/dev/null "
        "&& echo found tf-headers; true"
    )
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c", probe)
    assert "found" not in result.stdout, result.stdout


@pytest.mark.parametrize("processes", ["1", "2"])
def test_serves_digits_read_only_and_stops_cleanly(
    image: str, docker: Docker, processes: str
) -> None:
    """With 2 processes the supervisor is PID 1: it keeps its metrics files in the tmpfs and
    passes `docker stop`'s SIGTERM on to both. Each process serves with TensorFlow Lite."""
    fixture = json.loads(FIXTURE.read_text())
    port, grpc_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    name = f"model-image-test-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "--detach", "--name", name,
        "--network", "host",
        "--read-only", "--tmpfs", "/tmp",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--env", "HOST=127.0.0.1",
        "--env", f"PORT={port}",
        "--env", f"GRPC_PORT={grpc_port}",
        "--env", f"DRAIN_TIMEOUT_SECONDS={DRAIN_TIMEOUT_SECONDS}",
        "--env", f"SERVING_PROCESSES={processes}",
        image,
    )  # fmt: skip
    try:
        status = wait_until_available(docker, name, f"{base_url}/v1/models/{MODEL_NAME}")
        assert status["model_version_status"][0]["state"] == "AVAILABLE"

        code, _, body = http_json(
            f"{base_url}/v1/models/{MODEL_NAME}:predict", {"instances": fixture["instances"]}
        )
        assert code == 200, body
        assert isinstance(body, dict)
        # serving_default has two outputs, so each prediction is a {name: value} row.
        rows = body["predictions"]
        assert [row["classes"] for row in rows] == fixture["labels"]
        assert [argmax(row["probabilities"]) for row in rows] == fixture["labels"]

        with urllib.request.urlopen(f"{base_url}/monitoring/prometheus/metrics", timeout=10) as r:
            assert r.status == 200
        assert grpc_model_status(f"127.0.0.1:{grpc_port}") == MODEL_VERSION_1_AVAILABLE

        started = time.monotonic()
        docker("stop", "--time", str(GRACE_PERIOD_SECONDS), name, timeout=GRACE_PERIOD_SECONDS + 30)
        stopped_after = time.monotonic() - started
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
        logs = container_logs(docker, name)
        assert state["ExitCode"] == 0, logs
        assert not state["OOMKilled"]
        assert stopped_after < GRACE_PERIOD_SECONDS, logs
        # Every process runs the model in TensorFlow Lite: it converts in a read-only image.
        assert logs.count("serving with TensorFlow Lite") == int(processes), logs
    finally:
        docker("rm", "--force", name, check=False)


DIABETES = Path(__file__).resolve().parents[2] / "model" / "export" / "diabetes" / "1"


def test_serves_the_model_it_is_given_by_its_own_name_and_inputs(
    build_image: Callable[..., str], test_repository: str, docker: Docker
) -> None:
    """The image serves the model `--model` names (another name, two inputs of two dtypes):
    nothing in it is tied to digits."""
    tag = f"{test_repository}:python-cpu-diabetes-{uuid.uuid4().hex[:8]}"
    image = build_image("python", "cpu", tag, model=DIABETES)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1/models/diabetes"
    name = f"model-image-test-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "--detach", "--name", name, "--network", "host", "--read-only",
        "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--env", "HOST=127.0.0.1", "--env", f"PORT={port}", "--env", "GRPC_PORT=0",
        image,
    )  # fmt: skip
    try:
        status = wait_until_available(docker, name, base_url)
        assert status["model_version_status"][0]["version"] == "1"
        measurements = [[0.02 * i - 0.04 for i in range(9)]] * 2
        code, _, body = http_json(
            f"{base_url}:predict", {"inputs": {"measurements": measurements, "sex": [0, 1]}}
        )
        assert code == 200, body
        assert isinstance(body, dict)
        predictions = body["outputs"]
        # The same measurements, the two sexes: two finite progressions, apart.
        assert len(predictions) == 2 and predictions[0] != predictions[1], predictions
        code, _, body = http_json(
            f"{base_url}:predict", {"inputs": {"measurements": measurements, "sex": [0.5, 1]}}
        )
        assert code == 400 and "sex" in str(body), body
    finally:
        docker("rm", "--force", name, check=False)


# ModelService.GetModelStatus, encoded by hand (this venv has grpcio but not TF Serving's
# protos): GetModelStatusRequest{model_spec{name}}, and the answer's ModelVersionStatus
# {version: 1, state: AVAILABLE (30), status{}}.
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
MODEL_VERSION_1_AVAILABLE = b"\x0a\x06\x08\x01\x10\x1e\x1a\x00"


def grpc_model_status(target: str) -> bytes:
    name = MODEL_NAME.encode()
    model_spec = b"\x0a" + bytes([len(name)]) + name
    request = b"\x0a" + bytes([len(model_spec)]) + model_spec
    with grpc.insecure_channel(target) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(GET_MODEL_STATUS)
        answer: bytes = call(request, timeout=30)
    return answer


def wait_until_available(
    docker: Docker, container: str, status_url: str
) -> dict[str, list[dict[str, str]]]:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        running = docker("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if running != "true":
            pytest.fail(f"container exited before ready:\n{container_logs(docker, container)}")
        try:
            code, _, body = http_json(status_url)
        except OSError as error:
            last = error
        else:
            last = body
            if code == 200 and isinstance(body, dict):
                return body
        time.sleep(1)
    pytest.fail(
        f"not ready after {READY_TIMEOUT_SECONDS}s (last: {last!r}):\n"
        f"{container_logs(docker, container)}"
    )


def container_logs(docker: Docker, container: str) -> str:
    result = docker("logs", container, check=False)
    return (result.stdout + result.stderr)[-4000:]


def test_push_lands_in_local_registry(image: str, docker: Docker) -> None:
    docker("push", image, timeout=900)
    repository, tag = image.rsplit(":", 1)
    registry, name = repository.split("/", 1)
    assert registry == REGISTRY
    repo_digests = docker("image", "inspect", "--format", "{{json .RepoDigests}}", image).stdout
    digest = next(d.split("@", 1)[1] for d in json.loads(repo_digests) if d.startswith(repository))

    with registry_request(f"/v2/{name}/manifests/{tag}") as response:
        assert response.headers["Docker-Content-Digest"] == digest
        manifest = json.loads(response.read())
    assert manifest_digest(name, digest) == digest
    config_digest = manifest["config"]["digest"]
    image_id = docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    assert config_digest == image_id

    # The registry runs with deletes enabled: test manifests do not pile up run after run.
    with registry_request(f"/v2/{name}/manifests/{digest}", "DELETE") as response:
        assert response.status == 202
