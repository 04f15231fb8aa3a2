"""The components are reusable, by the plain CLI against the real engine and the local cluster:
examples/model-server, a second Python program with none of the project's config, declares a
ModelServer for an existing image; examples/model-server-yaml, a Pulumi YAML program, declares
the same through the component package (provider/), its schema inferred from the annotations."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.environment import (
    PLAIN_CLI_DIR,
    REPO,
    install_component_package,
    private_backend_environment,
)
from tests.cluster.conftest import Cluster
from tests.cluster.kube import resource_path
from tests.engine.conftest import ENGINE_TIMEOUT_SECONDS

pytestmark = pytest.mark.engine

EXAMPLES = REPO / "examples"
# Any digest-pinned reference: the simulated pods never pull it.
IMAGE = "127.0.0.1:5000/model-server-example@sha256:" + "1" * 64
MODEL_DIR = REPO / "model" / "export" / "digits" / "1"


@dataclass
class Program:
    work_dir: Path
    stack: str
    namespace: str
    env: dict[str, str]

    def pulumi(self, *args: str) -> subprocess.CompletedProcess[str]:
        ran = subprocess.run(
            ["pulumi", *args, "--stack", self.stack, "--non-interactive"],
            cwd=self.work_dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=ENGINE_TIMEOUT_SECONDS,
            check=False,
        )
        return ran


@pytest.fixture(scope="module", params=["model-server", "model-server-yaml"])
def program(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Program]:
    root = tmp_path_factory.mktemp(request.param)
    work_dir = root / "program"
    shutil.copytree(EXAMPLES / request.param, work_dir)
    env = private_backend_environment(root / "state", {**os.environ, **cluster.env})
    # The CLI beside its Python language host, the venv's python, and the package importable.
    env["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), str(PLAIN_CLI_DIR), env["PATH"]])
    env["PYTHONPATH"] = str(REPO)
    install_component_package(env)
    suffix = secrets.token_hex(4)
    ran = Program(work_dir, f"example-{suffix}", f"example-{suffix}", env)
    init = ran.pulumi("stack", "init")
    assert init.returncode == 0, init.stderr
    config = {"image": IMAGE, "modelDir": str(MODEL_DIR), "namespace": ran.namespace}
    for key, value in config.items():
        configured = ran.pulumi("config", "set", key, value)
        assert configured.returncode == 0, configured.stderr
    try:
        yield ran
    finally:
        destroyed = ran.pulumi("destroy", "--yes", "--remove", "--skip-preview")
        assert destroyed.returncode == 0, destroyed.stdout[-3000:] + destroyed.stderr[-3000:]


def test_another_program_serves_an_existing_image_through_the_component_with_no_project_config(
    cluster: Cluster, program: Program
) -> None:
    up = program.pulumi("up", "--yes", "--skip-preview")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    deployment: dict[str, Any] = cluster.client.get(
        resource_path("apps/v1", "Deployment", program.namespace, "digits-server")
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == IMAGE
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "nvidia-l4"}
    # The whole component, not just a Deployment: its Service, HPA, PDB, NetworkPolicy and the
    # contract ConfigMap read from the SavedModel the image serves.
    for api, kind in (
        ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
    ):
        listed = cluster.client.get(resource_path(api, kind, program.namespace))
        assert listed["items"], f"no {kind} in {program.namespace}"
    config_maps = cluster.client.get(resource_path("v1", "ConfigMap", program.namespace))
    contracts = [c for c in config_maps["items"] if "signatures.json" in c.get("data", {})]
    assert contracts and contracts[0]["data"]["model"] == "digits"
    again = program.pulumi("preview", "--expect-no-changes")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
