"""After a failed `up`: the Warning events of the Deployment's unready pods, and nothing else."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from engine.unready_pods import unready_pod_reasons

PROBE_503 = "Startup probe failed: HTTP probe failed with statuscode: 503"


def pod(name: str, replica_set: str, ready: bool) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [{"kind": "ReplicaSet", "name": replica_set}],
        },
        "status": {"conditions": [{"type": "Ready", "status": str(ready)}]},
    }


def warning(pod_name: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "involvedObject": {"kind": "Pod", "name": pod_name},
        "reason": reason,
        "message": message,
    }


def fake_kubectl(tmp_path: Path, listings: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A kubectl that answers `get <kind> ... -o json` from `listings`, or fails for a kind it
    does not have."""
    data = tmp_path / "listings.json"
    data.write_text(json.dumps(listings))
    script = tmp_path / "kubectl.py"
    script.write_text(
        "import json, sys\n"
        f"listings = json.load(open({str(data)!r}))\n"
        "kind = sys.argv[2]\n"
        "if kind not in listings: sys.exit('error: the server is unreachable')\n"
        "print(json.dumps({'items': listings[kind]}))\n"
    )
    return [sys.executable, str(script)]


def test_each_distinct_warning_of_an_unready_pod_is_one_line_naming_the_deployment(
    tmp_path: Path,
) -> None:
    kubectl = fake_kubectl(
        tmp_path,
        {
            "pods": [
                pod("digits-server-new-a", "digits-server-new", ready=False),
                pod("digits-server-new-b", "digits-server-new", ready=False),
                pod("digits-server-old-a", "digits-server-old", ready=True),
                pod("other-app-x-a", "other-app-x", ready=False),
            ],
            "events": [
                warning("digits-server-new-a", "Unhealthy", PROBE_503),
                warning("digits-server-new-b", "Unhealthy", PROBE_503),
                # A ready pod's old warning and another app's are not the reason.
                warning("digits-server-old-a", "Unhealthy", "Readiness probe failed"),
                warning("other-app-x-a", "BackOff", "Back-off pulling image"),
            ],
        },
    )
    assert unready_pod_reasons("serving", "digits-server", kubectl) == [
        "Deployment serving/digits-server: pods not ready (digits-server-new-a, "
        f"digits-server-new-b): Unhealthy: {PROBE_503}"
    ]


def test_all_pods_ready_or_an_unreadable_cluster_adds_nothing(tmp_path: Path) -> None:
    ready = fake_kubectl(
        tmp_path,
        {
            "pods": [pod("digits-server-old-a", "digits-server-old", ready=True)],
            "events": [warning("digits-server-old-a", "Unhealthy", PROBE_503)],
        },
    )
    assert unready_pod_reasons("serving", "digits-server", ready) == []
    assert unready_pod_reasons("serving", "digits-server", fake_kubectl(tmp_path, {})) == []
