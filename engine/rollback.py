"""`make rollback`: the stack back on an image it ran before, through the engine, with no build.

What ran before is the cluster's own rollout history: the Deployment's ReplicaSets, each with
its pod template's image and the model version the Deployment carried then (the Deployment
controller copies its annotations onto each ReplicaSet it makes). The Pulumi state keeps only
the latest update's outputs on a file or bucket backend (exporting an older version needs the
Pulumi Cloud backend), and the cluster keeps `revisionHistoryLimit` revisions.

The choice is written into the stack's config file (servingImage, modelVersion), so the
declaration says what is live: `make drift` stays clean and the next `make up` keeps serving it
until someone removes servingImage (README, "Rollback").
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from engine.stack_file import write_config
from gpu_model_serving import stack_outputs
from model_contract.contract import MODEL_VERSION_ANNOTATION

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
PINNED_IMAGE_KEY = "servingImage"
MODEL_VERSION_KEY = "modelVersion"


class RollbackError(Exception):
    """Nothing to roll back to, or the history cannot be read; the message says why."""


@dataclass(frozen=True)
class Revision:
    number: int
    image: str
    model_version: str | None

    def describe(self) -> str:
        version = f"model version {self.model_version}" if self.model_version else "model version ?"
        return f"revision {self.number}: {self.image} ({version})"


def revisions(namespace: str, deployment: str, kubectl: list[str]) -> list[Revision]:
    """The Deployment's revisions, newest first."""
    listing = subprocess.run(
        [*kubectl, "get", "replicasets", "--namespace", namespace, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if listing.returncode != 0:
        raise RollbackError(
            f"cannot list the ReplicaSets of {namespace}/{deployment}: {listing.stderr.strip()}"
        )
    found = [
        _revision(item)
        for item in json.loads(listing.stdout)["items"]
        if any(
            owner.get("kind") == "Deployment" and owner.get("name") == deployment
            for owner in item["metadata"].get("ownerReferences", [])
        )
    ]
    return sorted(found, key=lambda revision: revision.number, reverse=True)


def _revision(replica_set: dict[str, Any]) -> Revision:
    annotations = replica_set["metadata"].get("annotations", {})
    return Revision(
        number=int(annotations.get(REVISION_ANNOTATION, 0)),
        image=replica_set["spec"]["template"]["spec"]["containers"][0]["image"],
        model_version=annotations.get(MODEL_VERSION_ANNOTATION),
    )


def choose(history: list[Revision], to: str | None) -> Revision:
    """The revision to return to: `to` (an image digest, a whole reference or a model version),
    else the newest whose image differs from the one serving now."""
    if not history:
        raise RollbackError("the Deployment has no rollout history in the cluster")
    current = history[0]
    if to is None:
        earlier = next((r for r in history[1:] if r.image != current.image), None)
        if earlier is None:
            raise RollbackError(f"no earlier image than the one serving ({current.describe()})")
        return earlier
    matches = [
        r
        for r in history
        if r.image == to or r.image.endswith(f"@{to}") or (to.isdigit() and r.model_version == to)
    ]
    if not matches:
        listing = "\n".join(f"  {r.describe()}" for r in history)
        raise RollbackError(f"no revision matches {to!r}; the cluster keeps:\n{listing}")
    return matches[0]


def kubectl_for(config_file: Path, project: str) -> list[str]:
    """kubectl aimed where the stack's Kubernetes provider is (its kubeconfig and context keys;
    the default lookup, $KUBECONFIG, otherwise)."""
    config = (yaml.safe_load(config_file.read_text()) or {}).get("config") or {}
    command = ["kubectl"]
    kubeconfig = config.get(f"{project}:kubeconfig")
    if kubeconfig:
        command += ["--kubeconfig", str(kubeconfig)]
    context = config.get(f"{project}:kubeContext")
    if context:
        command += ["--context", str(context)]
    return command


def pin(stack: auto.Stack, config_file: Path, project: str, revision: Revision) -> None:
    """Write the revision into the stack's config file."""
    settings = {PINNED_IMAGE_KEY: revision.image}
    if revision.model_version:
        settings[MODEL_VERSION_KEY] = revision.model_version
    write_config(stack, config_file, project, settings)


def serving(stack: auto.Stack) -> tuple[str, str]:
    """The live stack's namespace and Deployment name."""
    outputs = stack.outputs()
    try:
        return (
            str(outputs[stack_outputs.NAMESPACE].value),
            str(outputs[stack_outputs.DEPLOYMENT_NAME].value),
        )
    except KeyError:
        raise RollbackError(f"stack {stack.name} has not been deployed") from None
