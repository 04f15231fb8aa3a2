"""Cluster layer: the dev stack's objects on the project's local Kubernetes cluster.

The cluster is `scripts/cluster.sh start` (real kube-apiserver, controller-manager and scheduler;
kwok plays the kubelets of 3 GPU and 2 CPU nodes). The session starts it when it is not running
and leaves it running; `scripts/cluster.sh stop` stops it. The serving namespace is deleted at
the end of the session.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import (
    CLUSTER_SH,
    ApiResponse,
    KubeClient,
    cluster_env,
    resource_path,
    wait_for,
)
from tests.cluster.stack import (
    apply_all,
    declared_objects,
    delete_namespace,
    label_selector,
    rolled_out,
    simulated_nodes,
    warning_events,
)

START_TIMEOUT_SECONDS = 600
ROLLOUT_TIMEOUT_SECONDS = 90


@dataclass(frozen=True)
class Cluster:
    client: KubeClient
    kubeconfig: Path
    env: dict[str, str]
    kwok_cluster_dir: Path
    gpu_nodes: frozenset[str]
    cpu_nodes: frozenset[str]


@dataclass(frozen=True)
class Serving:
    """The dev stack as applied: its objects by kind and the API server's answers."""

    objects: dict[str, dict[str, Any]]
    responses: dict[str, ApiResponse]
    namespace: str
    selector: str

    @property
    def deployment_path(self) -> str:
        name = self.objects["Deployment"]["metadata"]["name"]
        return resource_path("apps/v1", "Deployment", self.namespace, name)


def _run(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLUSTER_SH), command], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    if _run("status", 120).returncode != 0:
        started = _run("start", START_TIMEOUT_SECONDS)
        if started.returncode != 0:
            pytest.fail(
                f"the local cluster is not running and `scripts/cluster.sh start` failed "
                f"(exit {started.returncode}):\n{started.stderr[-4000:]}",
                pytrace=False,
            )
    env = cluster_env()
    kubeconfig = Path(env["KUBECONFIG"])
    client = KubeClient(kubeconfig)
    gpu_nodes, cpu_nodes = simulated_nodes()
    for name in sorted(gpu_nodes | cpu_nodes):
        node = client.get(resource_path("v1", "Node", name=name))
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", f"node {name} is not Ready"
    # kwokctl keeps its pid files beside the kubeconfig: clusters/<name>/{kubeconfig.yaml,pids/}
    return Cluster(client, kubeconfig, env, kubeconfig.parent, gpu_nodes, cpu_nodes)


@pytest.fixture(scope="session")
def serving(cluster: Cluster) -> Iterator[Serving]:
    """The dev stack applied and rolled out; its namespace deleted afterwards."""
    client = cluster.client
    objects = declared_objects()
    by_kind = {o["kind"]: o for o in objects}
    namespace = by_kind["Namespace"]["metadata"]["name"]
    if client.exists(resource_path("v1", "Namespace", name=namespace)):
        delete_namespace(client, namespace)  # left over from an interrupted run
    try:
        responses = apply_all(client, objects)
        served = Serving(
            by_kind,
            responses,
            namespace,
            label_selector(by_kind["Deployment"]["spec"]["selector"]["matchLabels"]),
        )
        wait_for(
            "the Deployment to roll out",
            lambda: rolled_out(client.get(served.deployment_path)),
            timeout=ROLLOUT_TIMEOUT_SECONDS,
            describe=lambda: {
                "status": client.get(served.deployment_path).get("status"),
                "warnings": warning_events(client, namespace),
            },
        )
        yield served
    finally:
        delete_namespace(client, namespace)
