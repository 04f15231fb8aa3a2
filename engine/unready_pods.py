"""Why a failed `up` failed, in the pods' own words.

The Kubernetes provider's error names the Deployment and ProgressDeadlineExceeded, not why the
new pods never became ready; that is in the pods' Warning events (a startup probe's 503, an
image that cannot be pulled, no node with a free GPU). After a failed `up` these lines say it.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any


def unready_pod_reasons(namespace: str, deployment: str, kubectl: list[str]) -> list[str]:
    """One line per distinct Warning (reason and message) of the Deployment's pods that are
    not Ready; empty when every pod is ready or the cluster cannot be read."""
    pods = _items(kubectl, "pods", namespace)
    unready = {
        pod["metadata"]["name"] for pod in pods if _owned_by(pod, deployment) and not _ready(pod)
    }
    reasons: dict[tuple[str, str], list[str]] = {}
    for event in _items(kubectl, "events", namespace, "--field-selector", "type=Warning"):
        involved = event.get("involvedObject", {})
        if involved.get("kind") == "Pod" and involved.get("name") in unready:
            key = (str(event.get("reason", "")), str(event.get("message", "")).strip())
            reasons.setdefault(key, []).append(involved["name"])
    return [
        f"Deployment {namespace}/{deployment}: pods not ready ({', '.join(sorted(set(names)))}): "
        f"{reason}: {message}"
        for (reason, message), names in reasons.items()
    ]


def _items(kubectl: list[str], kind: str, namespace: str, *flags: str) -> list[dict[str, Any]]:
    listing = subprocess.run(
        [*kubectl, "get", kind, "--namespace", namespace, *flags, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if listing.returncode != 0:
        return []  # an explanation is a courtesy: the failure itself is already reported
    items: list[dict[str, Any]] = json.loads(listing.stdout).get("items", [])
    return items


def _owned_by(pod: dict[str, Any], deployment: str) -> bool:
    # A Deployment's ReplicaSets are named <deployment>-<pod-template-hash>.
    return any(
        owner.get("kind") == "ReplicaSet" and owner.get("name", "").rpartition("-")[0] == deployment
        for owner in pod["metadata"].get("ownerReferences", [])
    )


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
