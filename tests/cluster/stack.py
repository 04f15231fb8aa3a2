"""The dev stack's Kubernetes objects as the program declares them, and applying them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.kube import ApiResponse, KubeClient, object_path, resource_path, wait_for
from tests.unit.harness import install_mocks, run_stack

ROOT = Path(__file__).resolve().parents[2]
NODES_MANIFEST = ROOT / "scripts" / "cluster" / "nodes.yaml"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = "nvidia.com/gpu"

# Dependency order, as the engine would create them: the namespace first, the service account
# before the pods that run as it, the model's contract before the Deployment that serves it,
# the Deployment before what targets or selects it.
APPLY_ORDER = (
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
    "PodMonitoring",
    "PrometheusRule",
    "Rules",
    "HTTPRoute",
)


def declared_objects(**overrides: object) -> list[dict[str, Any]]:
    """The dev stack's Kubernetes objects (config `overrides` applied), in apply order.

    Evaluated by the unit harness under Pulumi mocks: exactly what the program hands the
    provider, as Kubernetes JSON.
    """
    mocks = install_mocks()
    run_stack("dev", **overrides)
    objects = mocks.kubernetes_objects()
    unknown = {o["kind"] for o in objects} - set(APPLY_ORDER)
    assert not unknown, f"the program declares {unknown}: add them to APPLY_ORDER"
    return sorted(objects, key=lambda o: APPLY_ORDER.index(o["kind"]))


def apply_all(client: KubeClient, objects: list[dict[str, Any]]) -> dict[str, ApiResponse]:
    """Server-side apply of each object in order; every one must be accepted."""
    responses = {}
    for obj in objects:
        response = client.apply(obj)
        assert response.status in (200, 201), (
            f"apply {object_path(obj)}: {response.status} {response.message}"
        )
        responses[obj["kind"]] = response
    return responses


def delete_namespace(client: KubeClient, name: str, timeout: float = 120) -> None:
    path = resource_path("v1", "Namespace", name=name)
    client.delete(path)
    wait_for(
        f"namespace {name} to be deleted",
        lambda: not client.exists(path),
        timeout=timeout,
        describe=lambda: client.request("GET", path).body.get("status"),
    )


def simulated_nodes() -> tuple[frozenset[str], frozenset[str]]:
    """(GPU node names, CPU node names) of scripts/cluster/nodes.yaml."""
    items = yaml.safe_load(NODES_MANIFEST.read_text())["items"]
    gpu = frozenset(
        n["metadata"]["name"] for n in items if GPU_PRODUCT_LABEL in n["metadata"]["labels"]
    )
    cpu = frozenset(n["metadata"]["name"] for n in items) - gpu
    return gpu, cpu


def label_selector(match_labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))


def pods(client: KubeClient, namespace: str, selector: str) -> list[dict[str, Any]]:
    listing = client.get(resource_path("v1", "Pod", namespace), labelSelector=selector)
    items: list[dict[str, Any]] = listing["items"]
    return items


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The status condition of type `kind`, or {}."""
    conditions = (obj.get("status") or {}).get("conditions") or []  # null until first set
    found = [c for c in conditions if c["type"] == kind]
    return found[0] if found else {}


def running_and_ready(pod: dict[str, Any]) -> bool:
    return (
        pod.get("status", {}).get("phase") == "Running"
        and condition(pod, "Ready").get("status") == "True"
    )


def rolled_out(deployment: dict[str, Any]) -> bool:
    """Every replica of the current template updated, ready and available."""
    status = deployment.get("status", {})
    want = deployment["spec"]["replicas"]
    return status.get("observedGeneration", 0) >= deployment["metadata"]["generation"] and all(
        status.get(field) == want
        for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    )


def events(client: KubeClient, namespace: str, **field_selector: str) -> list[dict[str, Any]]:
    """Core/v1 events of `namespace` (the scheduler's and controllers' included)."""
    selector = ",".join(f"{key}={value}" for key, value in field_selector.items())
    params = {"fieldSelector": selector} if selector else {}
    listing = client.get(resource_path("v1", "Event", namespace), **params)
    items: list[dict[str, Any]] = listing["items"]
    return items


def warning_events(client: KubeClient, namespace: str) -> list[str]:
    return [
        f"{e['involvedObject']['kind']}/{e['involvedObject']['name']} {e['reason']}: {e['message']}"
        for e in events(client, namespace, type="Warning")
    ]


# What the kubelet reports of a server whose model cannot load: its model-status endpoint (the
# startup probe) answers 503 until the probe gives up.
STARTUP_PROBE_FAILED = "Startup probe failed: HTTP probe failed with statuscode: 503"


@contextlib.contextmanager
def pods_never_ready(client: KubeClient, namespace: str, labels: dict[str, str]) -> Iterator[None]:
    """While the block runs, kwok's simulated kubelets start the pods of `namespace` that carry
    `labels` and never make them ready, with the kubelet's Warning event, as the pods of a model
    that fails to load. Simulated pods run nothing, so a test says which pods fail this way."""
    name = f"never-ready-{namespace}"
    stage = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.namespace", "operator": "In", "values": [namespace]},
                    *(
                        {"key": f'.metadata.labels["{k}"]', "operator": "In", "values": [v]}
                        for k, v in labels.items()
                    ),
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                ]
            },
            # kwok's pod-ready stage matches these pods too; stages are drawn by weight, and
            # pod-ready has none.
            "weight": 10000,
            "next": {
                "event": {
                    "type": "Warning",
                    "reason": "Unhealthy",
                    "message": STARTUP_PROBE_FAILED,
                },
                "statusTemplate": _NEVER_READY_STATUS,
            },
        },
    }
    created = client.create(stage)
    assert created.status == 201, f"Stage {name}: {created.status} {created.message}"
    try:
        yield
    finally:
        client.delete(resource_path("kwok.x-k8s.io/v1alpha1", "Stage", name=name))


# Running, the container started but not ready (as kwok's own templates write a status).
_NEVER_READY_STATUS = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""
