"""The local cluster itself: loopback only, the simulated node pool, kubectl from .bin/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.kube import LOOPBACK, ROOT, listeners, resource_path
from tests.cluster.stack import GPU_PRODUCT_LABEL, GPU_RESOURCE

pytestmark = pytest.mark.cluster

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
)


def _component_pids(cluster: Cluster) -> dict[str, int]:
    pids = {}
    for name in COMPONENTS:
        pidfile = cluster.kwok_cluster_dir / "pids" / f"{name}.pid"
        assert pidfile.is_file(), f"no pid file for {name} in {pidfile.parent}"
        pids[name] = int(pidfile.read_text().strip())
        assert Path(f"/proc/{pids[name]}").exists(), f"{name} (pid {pids[name]}) is not running"
    return pids


def test_every_listener_of_the_cluster_is_on_loopback(cluster: Cluster) -> None:
    sockets = listeners()
    for name, pid in _component_pids(cluster).items():
        own = [s for s in sockets if pid in s.pids]
        assert own, f"{name} (pid {pid}) has no listening socket: is ss seeing its processes?"
        exposed = [f"{s.netid} {s.address}" for s in own if s.host != LOOPBACK]
        assert not exposed, f"{name} (pid {pid}) listens beyond {LOOPBACK}: {exposed}"
    assert cluster.client.server.startswith(f"https://{LOOPBACK}:")


def test_the_simulated_pool_has_three_tainted_gpu_nodes_and_two_cpu_nodes(cluster: Cluster) -> None:
    assert len(cluster.gpu_nodes) == 3
    assert len(cluster.cpu_nodes) == 2
    zones = {
        cluster.client.get(resource_path("v1", "Node", name=name))["metadata"]["labels"][
            "topology.kubernetes.io/zone"
        ]
        for name in cluster.gpu_nodes
    }
    assert len(zones) == 3, "the GPU pool spans three zones, as a regional pool does"
    for name in sorted(cluster.gpu_nodes | cluster.cpu_nodes):
        node = cluster.client.get(resource_path("v1", "Node", name=name))
        allocatable = node["status"]["allocatable"]
        sizes = {key: allocatable[key] for key in ("cpu", "memory", "ephemeral-storage", "pods")}
        assert sizes == {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "100Gi", "pods": "110"}
        assert node["metadata"]["labels"]["topology.kubernetes.io/zone"].startswith("local-")
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        taints = node["spec"].get("taints", [])
        if name in cluster.gpu_nodes:
            assert allocatable[GPU_RESOURCE] == "1"
            assert node["metadata"]["labels"][GPU_PRODUCT_LABEL] == "nvidia-l4"
            assert {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"} in taints
        else:
            assert GPU_RESOURCE not in allocatable
            assert GPU_PRODUCT_LABEL not in node["metadata"]["labels"]
            assert taints == []


def test_kubectl_from_bin_uses_the_generated_kubeconfig(cluster: Cluster) -> None:
    # The documented way in: eval "$(scripts/cluster.sh env)"; kubectl ...
    result = subprocess.run(
        [
            str(ROOT / ".bin" / "kubectl"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "get",
            "nodes",
            "--selector",
            f"{GPU_PRODUCT_LABEL}=nvidia-l4",
            "--output",
            "name",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBECACHEDIR": cluster.env["KUBECACHEDIR"]},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(f"node/{n}" for n in cluster.gpu_nodes)
