"""The dev stack through the real engine and providers, in render mode."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

import stack_outputs
from ops import engine
from tests.engine.conftest import EngineStack
from tests.unit.harness import PROJECT
from tests.unit.kubernetes_schema import validation_errors

pytestmark = pytest.mark.engine

REGISTRY = "127.0.0.1:5000"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def rendered(engine_stack: EngineStack) -> dict[str, dict[str, Any]]:
    """The rendered manifests by kind."""
    documents = [
        doc
        for path in sorted(engine_stack.render_dir.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    return {doc["kind"]: doc for doc in documents}


def changed_resources(stack: auto.Stack) -> dict[str, str]:
    """What a preview of the stack's current config would do: {resource name: operation}."""
    events: list[auto.EngineEvent] = []
    stack.preview(on_event=events.append)
    return {
        e.resource_pre_event.metadata.urn.rsplit("::", 1)[1]: e.resource_pre_event.metadata.op
        for e in events
        if e.resource_pre_event is not None
        and e.resource_pre_event.metadata.op not in (auto.OpType.SAME, auto.OpType.READ)
    }


def test_preview_and_up_succeed_with_the_real_engine(engine_stack: EngineStack) -> None:
    assert engine_stack.up.summary.result == "succeeded"
    assert engine_stack.preview.change_summary.get("create", 0) >= 10
    assert engine_stack.up.summary.resource_changes.get("create", 0) >= 10


def test_rendered_manifests_validate_and_carry_digest_scheduling_probes_and_security(
    engine_stack: EngineStack,
) -> None:
    manifests = rendered(engine_stack)
    assert {
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= set(manifests)
    errors = [e for m in manifests.values() for e in validation_errors(m)]
    assert errors == []

    image_ref = engine_stack.outputs[stack_outputs.IMAGE_REF]
    assert isinstance(image_ref, str) and f"{REGISTRY}/model-server@sha256:" in image_ref
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["image"] == image_ref
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "nvidia-l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert server["readinessProbe"]["httpGet"]["path"] == "/v1/models/digits"
    assert server["startupProbe"]["httpGet"]["path"] == "/v1/models/digits"
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


def test_the_registry_holds_the_digest_the_stack_exported(engine_stack: EngineStack) -> None:
    tag = engine_stack.stack.name
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/model-server/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_TYPES},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        registry_digest = response.headers["Docker-Content-Digest"]
    assert registry_digest == engine_stack.outputs[stack_outputs.IMAGE_DIGEST]


def test_a_second_up_with_nothing_changed_changes_nothing(engine_stack: EngineStack) -> None:
    again = engine_stack.stack.up()
    assert set(again.summary.resource_changes or {}) == {"same"}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("replicas", "2", {"model-server-deployment": auto.OpType.UPDATE}),
        ("hpaMaxReplicas", "5", {"model-server-autoscaler": auto.OpType.UPDATE}),
        ("memoryLimit", "2Gi", {"model-server-deployment": auto.OpType.UPDATE}),
    ],
)
def test_a_config_change_previews_exactly_the_resources_it_changes(
    engine_stack: EngineStack, key: str, value: str, expected: dict[str, auto.OpType]
) -> None:
    stack = engine_stack.stack
    full_key = f"{PROJECT}:{key}"
    before = stack.get_config(full_key)
    stack.set_config(full_key, auto.ConfigValue(value))
    try:
        assert changed_resources(stack) == expected
    finally:
        stack.set_config(full_key, before)
    assert changed_resources(stack) == {}


def test_a_missing_plugin_is_a_clear_error_not_a_hang_or_a_download(
    engine_stack: EngineStack, tmp_path: Path
) -> None:
    empty_home = tmp_path / "pulumi-home"
    empty_home.mkdir()
    # Copy the stack's state location and secrets, but no plugins: not in PULUMI_HOME, and
    # ambient binaries on PATH ignored.
    stack = engine.select_stack(
        engine_stack.stack.name,
        env={"PULUMI_HOME": str(empty_home), "PULUMI_IGNORE_AMBIENT_PLUGINS": "true"},
    )
    started = time.monotonic()
    with pytest.raises(auto.CommandError) as raised:
        stack.preview()
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert "kubernetes" in message and "plugin" in message.lower(), message
    assert elapsed < 120
    assert not any((empty_home / "plugins").glob("resource-*")), "a plugin was downloaded"
    assert os.environ.get("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION") == "true"
    json.dumps(message)  # the error is plain text a CI log can show
