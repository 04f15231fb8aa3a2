"""The dev stack's objects, applied to a real control plane: accepted, admitted, scheduled."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest

from tests.cluster.conftest import Cluster, Serving
from tests.cluster.kube import resource_path, wait_for
from tests.cluster.stack import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    apply_all,
    condition,
    declared_objects,
    events,
    pods,
    rolled_out,
    running_and_ready,
)

pytestmark = pytest.mark.cluster

HPA_SYNC_TIMEOUT_SECONDS = 60  # the HPA controller syncs every 15 s
# Several deployment-controller syncs and scheduler retries: long enough to see no progress.
STALL_OBSERVATION_SECONDS = 10


def _read_back(cluster: Cluster, serving: Serving, kind: str) -> dict[str, Any]:
    declared = serving.objects[kind]
    metadata = declared["metadata"]
    path = resource_path(declared["apiVersion"], kind, metadata.get("namespace"), metadata["name"])
    return cluster.client.get(path)


def test_every_object_is_accepted_without_warnings(serving: Serving) -> None:
    # The namespace warns on restricted Pod Security: a Deployment whose pod template breaks
    # it would come back with a Warning header (and deprecated APIs warn too).
    assert set(serving.responses) == set(serving.objects)
    for kind, response in serving.responses.items():
        assert response.status == 201, f"{kind}: {response.status} {response.message}"
        assert response.warnings == (), f"{kind}: {response.warnings}"


def test_the_namespace_enforces_restricted_pod_security(cluster: Cluster, serving: Serving) -> None:
    labels = _read_back(cluster, serving, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.34"
    assert labels["kubernetes.io/metadata.name"] == serving.namespace


def test_the_deployment_rolls_out_on_gpu_nodes_only(cluster: Cluster, serving: Serving) -> None:
    deployment = cluster.client.get(serving.deployment_path)
    declared = serving.objects["Deployment"]
    assert rolled_out(deployment)
    minimum = serving.objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"]
    assert deployment["spec"]["replicas"] == minimum
    assert deployment["status"]["availableReplicas"] == minimum

    running = pods(cluster.client, serving.namespace, serving.selector)
    assert len(running) == minimum
    declared_container = declared["spec"]["template"]["spec"]["containers"][0]
    for pod in running:
        name = pod["metadata"]["name"]
        assert running_and_ready(pod), f"{name}: {pod.get('status')}"
        node_name = pod["spec"]["nodeName"]
        assert node_name in cluster.gpu_nodes, f"{name} is on {node_name}"
        node = cluster.client.get(resource_path("v1", "Node", name=node_name))
        assert node["metadata"]["labels"][GPU_PRODUCT_LABEL] == "nvidia-l4"
        container = pod["spec"]["containers"][0]
        assert container["image"] == declared_container["image"]
        assert container["resources"]["limits"][GPU_RESOURCE] == "1"
        assert (
            pod["spec"]["serviceAccountName"]
            == serving.objects["ServiceAccount"]["metadata"]["name"]
        )


def test_the_service_gets_a_cluster_ip_and_selects_the_ready_pods(
    cluster: Cluster, serving: Serving
) -> None:
    service = _read_back(cluster, serving, "Service")
    declared = serving.objects["Service"]["spec"]
    cluster_ip = service["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip)  # allocated by the API server; never contacted
    assert service["spec"]["type"] == declared["type"] == "ClusterIP"
    assert service["spec"]["selector"] == declared["selector"]
    # REST and TF Serving's gRPC API, by the container's port names.
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("http", 8501, "http"),
        ("grpc", 8500, "grpc"),
    ]

    # The EndpointSlice controller resolves the selector and the named target port.
    service_name = service["metadata"]["name"]
    ready_pods = {
        p["metadata"]["name"] for p in pods(cluster.client, serving.namespace, serving.selector)
    }

    def endpoints() -> dict[str, Any] | None:
        slices = cluster.client.get(
            resource_path("discovery.k8s.io/v1", "EndpointSlice", serving.namespace),
            labelSelector=f"kubernetes.io/service-name={service_name}",
        )["items"]
        if len(slices) != 1:
            return None
        targets = {
            e["targetRef"]["name"]
            for e in slices[0].get("endpoints") or []
            if e["conditions"].get("ready")
        }
        return slices[0] if targets == ready_pods else None

    endpoint_slice = wait_for("the Service's endpoints", endpoints, timeout=30)
    assert sorted((p["name"], p["port"]) for p in endpoint_slice["ports"]) == [
        ("grpc", 8500),
        ("http", 8501),
    ]


def test_the_hpa_targets_the_deployment(cluster: Cluster, serving: Serving) -> None:
    hpa = _read_back(cluster, serving, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    declared = serving.objects["HorizontalPodAutoscaler"]["spec"]
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": serving.objects["Deployment"]["metadata"]["name"],
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (
        declared["minReplicas"],
        declared["maxReplicas"],
    )
    assert spec["metrics"] == declared["metrics"]
    assert spec["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60

    # The HPA controller found the Deployment's scale subresource (metrics are another matter:
    # no metrics API runs here).
    def able_to_scale() -> dict[str, Any] | None:
        current = _read_back(cluster, serving, "HorizontalPodAutoscaler")
        return current if condition(current, "AbleToScale").get("status") == "True" else None

    current = wait_for("the HPA controller", able_to_scale, timeout=HPA_SYNC_TIMEOUT_SECONDS)
    minimum = serving.objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"]
    assert current["status"]["currentReplicas"] == minimum


def test_the_pdb_covers_the_serving_pods(cluster: Cluster, serving: Serving) -> None:
    pdb = _read_back(cluster, serving, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == serving.objects["Deployment"]["spec"]["selector"]
    replicas = serving.objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"]

    def counted() -> dict[str, Any] | None:
        status = _read_back(cluster, serving, "PodDisruptionBudget").get("status", {})
        return status if status.get("currentHealthy") == replicas else None

    status = wait_for("the disruption controller", counted, timeout=30)
    assert status["expectedPods"] == replicas
    assert status["disruptionsAllowed"] == 1


def test_the_network_policy_and_service_account_read_back(
    cluster: Cluster, serving: Serving
) -> None:
    policy = _read_back(cluster, serving, "NetworkPolicy")["spec"]
    # Egress denied except DNS, as the API server stores it: no server needs to reach out.
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    ]
    # The model's labels, which every slot's pods carry (stable's and a canary's).
    assert policy["podSelector"] == {"matchLabels": serving.objects["Service"]["spec"]["selector"]}
    pod_labels = serving.objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 8501, "protocol": "TCP"}, {"port": 8500, "protocol": "TCP"}]
    assert {"podSelector": {}} in rule["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}
    } in rule["from"]

    account = _read_back(cluster, serving, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_the_hpa_owns_the_replica_count(cluster: Cluster, serving: Serving) -> None:
    # A replica count above hpaMaxReplicas, set behind Pulumi's back, is undone.
    most = serving.objects["HorizontalPodAutoscaler"]["spec"]["maxReplicas"]
    scale_path = serving.deployment_path + "/scale"
    response = cluster.client.request(
        "PATCH",
        scale_path,
        {"spec": {"replicas": most + 2}},
        content_type="application/merge-patch+json",
    )
    assert response.status == 200, response.message
    wait_for(
        f"the HPA to scale the Deployment back to {most}",
        lambda: cluster.client.get(scale_path)["spec"]["replicas"] == most,
        timeout=HPA_SYNC_TIMEOUT_SECONDS,
        describe=lambda: cluster.client.get(scale_path),
    )


def test_more_replicas_than_gpus_leaves_exactly_one_pending(
    cluster: Cluster, serving: Serving
) -> None:
    # What raising the HPA bounds to 4 would apply: the HPA scales to four pods asking for one
    # GPU each, three GPUs in the pool.
    apply_all(cluster.client, declared_objects(hpaMinReplicas=4, hpaMaxReplicas=4))

    def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        current = pods(cluster.client, serving.namespace, serving.selector)
        live = [p for p in current if "deletionTimestamp" not in p["metadata"]]
        ready = [p for p in live if running_and_ready(p)]
        unschedulable = [
            p for p in live if condition(p, "PodScheduled").get("reason") == "Unschedulable"
        ]
        if len(live) == 4 and len(ready) == 3 and len(unschedulable) == 1:
            return ready, unschedulable
        return None

    ready, (pending,) = wait_for(
        "3 running pods and 1 unschedulable",
        settled,
        timeout=60,
        describe=lambda: [
            (p["metadata"]["name"], p["status"].get("phase"), p["spec"].get("nodeName"))
            for p in pods(cluster.client, serving.namespace, serving.selector)
        ],
    )
    nodes = [p["spec"]["nodeName"] for p in ready]
    assert sorted(nodes) == sorted(cluster.gpu_nodes), f"one pod per GPU node, got {nodes}"
    assert pending["status"]["phase"] == "Pending"
    assert "nodeName" not in pending["spec"]
    scheduled = condition(pending, "PodScheduled")
    assert scheduled["status"] == "False"
    assert f"Insufficient {GPU_RESOURCE}" in scheduled["message"]
    # The CPU nodes were never candidates: the GPU node selector ruled them out.
    assert "didn't match Pod's node affinity/selector" in scheduled["message"]

    failed = events(
        cluster.client,
        serving.namespace,
        reason="FailedScheduling",
        **{"involvedObject.name": pending["metadata"]["name"]},
    )
    assert failed, "no FailedScheduling event for the pending pod"
    assert f"Insufficient {GPU_RESOURCE}" in failed[-1]["message"]

    every_pod = pods(cluster.client, serving.namespace, serving.selector)
    assert not [p for p in every_pod if p["spec"].get("nodeName") in cluster.cpu_nodes]
    deployment = cluster.client.get(serving.deployment_path)
    assert deployment["status"]["availableReplicas"] == 3
    assert deployment["status"]["unavailableReplicas"] == 1


def _deployment(**overrides: object) -> dict[str, Any]:
    """The Deployment the dev stack declares with `overrides`."""
    return next(o for o in declared_objects(**overrides) if o["kind"] == "Deployment")


def _live_pods(cluster: Cluster, serving: Serving) -> list[dict[str, Any]]:
    current = pods(cluster.client, serving.namespace, serving.selector)
    return [p for p in current if "deletionTimestamp" not in p["metadata"]]


def _at_full_scale(cluster: Cluster, serving: Serving) -> None:
    """Three ready pods (hpaMinReplicas = hpaMaxReplicas = 3) on the three GPU nodes."""
    apply_all(cluster.client, declared_objects(hpaMinReplicas=3, hpaMaxReplicas=3))
    wait_for(
        "3 ready pods",
        lambda: (
            rolled_out(cluster.client.get(serving.deployment_path))
            and len([p for p in _live_pods(cluster, serving) if running_and_ready(p)]) == 3
        ),
        timeout=HPA_SYNC_TIMEOUT_SECONDS + 60,
        describe=lambda: cluster.client.get(serving.deployment_path).get("status"),
    )


def test_a_surge_rollout_stalls_when_the_pool_is_full(cluster: Cluster, serving: Serving) -> None:
    """Why the program does not always surge: with maxSurge 1 / maxUnavailable 0 at
    hpaMaxReplicas equal to the pool's GPUs, the surge pod cannot schedule and no old pod may go
    first, so the rollout never finishes."""
    _at_full_scale(cluster, serving)
    before_the_fix = _deployment(hpaMinReplicas=3, hpaMaxReplicas=3, maxBatchSize=8)
    assert before_the_fix["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": 0,
        "maxUnavailable": 1,
    }
    before_the_fix["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 1, "maxUnavailable": 0}
    apply_all(cluster.client, [before_the_fix])

    def surge_pod_unschedulable() -> dict[str, Any] | None:
        waiting = [
            p
            for p in _live_pods(cluster, serving)
            if condition(p, "PodScheduled").get("reason") == "Unschedulable"
        ]
        return waiting[0] if waiting else None

    pending = wait_for("the surge pod to be unschedulable", surge_pod_unschedulable, timeout=60)
    assert f"Insufficient {GPU_RESOURCE}" in condition(pending, "PodScheduled")["message"]

    def progress() -> tuple[int, int]:
        status = cluster.client.get(serving.deployment_path).get("status", {})
        return status.get("updatedReplicas", 0), status.get("availableReplicas", 0)

    wait_for("one updated pod and three available", lambda: progress() == (1, 3), timeout=30)
    # And it stays there: no old pod may go before the surge pod is available.
    time.sleep(STALL_OBSERVATION_SECONDS)
    assert progress() == (1, 3)
    assert surge_pod_unschedulable() is not None


def test_a_rollout_at_full_scale_completes_on_a_full_pool(
    cluster: Cluster, serving: Serving
) -> None:
    """With no room for a surge pod the program declares maxSurge 0 / maxUnavailable 1, so the
    rollout replaces pods one at a time and completes."""
    _at_full_scale(cluster, serving)
    declared = _deployment(hpaMinReplicas=3, hpaMaxReplicas=3, maxBatchSize=4)
    assert declared["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    apply_all(cluster.client, [declared])
    wait_for(
        "the rollout to complete",
        lambda: rolled_out(cluster.client.get(serving.deployment_path)),
        timeout=120,
        describe=lambda: cluster.client.get(serving.deployment_path).get("status"),
    )
    running = [p for p in _live_pods(cluster, serving) if running_and_ready(p)]
    assert len(running) == 3
    assert all(
        {"name": "MAX_BATCH_SIZE", "value": "4"} in p["spec"]["containers"][0]["env"]
        for p in running
    )
