"""Restricted Pod Security, enforced by the API server itself in the program's namespace."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.conftest import Cluster, Serving
from tests.cluster.kube import resource_path, wait_for

pytestmark = pytest.mark.cluster

# The version the namespace pins (podSecurityStandardVersion), named by the API server itself.
VIOLATION = 'violates PodSecurity "restricted:v1.34"'


def compliant_pod(namespace: str, image: str) -> dict[str, Any]:
    """The smallest pod the restricted profile admits."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-security-probe", "namespace": namespace},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def _privileged(pod: dict[str, Any]) -> None:
    context = pod["spec"]["containers"][0]["securityContext"]
    context["privileged"] = True
    del context["allowPrivilegeEscalation"]  # false with privileged is invalid (422), not insecure


def _root(pod: dict[str, Any]) -> None:
    del pod["spec"]["securityContext"]["runAsNonRoot"]
    pod["spec"]["securityContext"]["runAsUser"] = 0


def _no_seccomp(pod: dict[str, Any]) -> None:
    del pod["spec"]["securityContext"]["seccompProfile"]


def _privilege_escalation(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


def _added_capability(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def _host_path(pod: dict[str, Any]) -> None:
    pod["spec"]["volumes"] = [{"name": "host", "hostPath": {"path": "/"}}]


INSECURE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "privileged": (_privileged, "privileged"),
    "root": (_root, "runAsUser=0"),
    "no-seccomp": (_no_seccomp, "seccompProfile"),
    "privilege-escalation": (_privilege_escalation, "allowPrivilegeEscalation != false"),
    "added-capability": (_added_capability, "NET_ADMIN"),
    "host-path": (_host_path, "hostPath"),
}


def _image(serving: Serving) -> str:
    image: str = serving.objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


@pytest.mark.parametrize("variant", sorted(INSECURE))
def test_an_insecure_pod_is_rejected(cluster: Cluster, serving: Serving, variant: str) -> None:
    make_insecure, named_in_message = INSECURE[variant]
    pod = compliant_pod(serving.namespace, _image(serving))
    make_insecure(pod)
    response = cluster.client.create(pod)
    assert response.status == 403, f"{variant}: {response.status} {response.message}"
    assert VIOLATION in response.message
    assert named_in_message in response.message


def test_the_rejection_comes_from_the_namespace_labels(cluster: Cluster, serving: Serving) -> None:
    # The same privileged pod passes admission where no Pod Security level is enforced
    # (dry run: nothing is stored in `default`).
    pod = compliant_pod("default", _image(serving))
    _privileged(pod)
    response = cluster.client.create(pod, dry_run=True)
    assert response.status == 201, response.message


def test_the_compliant_pod_is_admitted(cluster: Cluster, serving: Serving) -> None:
    pod = compliant_pod(serving.namespace, _image(serving))
    path = resource_path("v1", "Pod", serving.namespace, pod["metadata"]["name"])
    response = cluster.client.create(copy.deepcopy(pod))
    try:
        assert response.status == 201, response.message
        assert response.warnings == ()
    finally:
        cluster.client.delete(path, grace_seconds=0)
        wait_for("the probe pod to go", lambda: not cluster.client.exists(path), timeout=30)
