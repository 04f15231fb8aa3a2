"""The real engine on the local cluster: preview, up, no-op, change, drift, restore, destroy.

The tests run in file order against one stack (the session's `engine_stack`): each leaves the
stack deployed as declared for the next.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from engine import driver
from engine.environment import REPO
from engine.preview_record import UNKNOWN, preview_record
from gpu_model_serving import stack_outputs
from gpu_model_serving.components.model_server import AWAIT_TIMEOUT_ANNOTATION
from policy.rules import RULES
from review import drift_issue
from tests.cluster.conftest import Cluster
from tests.cluster.kube import resource_path, wait_for
from tests.cluster.stack import condition, rolled_out
from tests.engine.conftest import (
    PROJECT,
    EngineStack,
    buildkit_builds,
    keep_artifact,
    planned_steps,
    report_of,
)
from tests.registry import manifest_digest
from tests.unit.kubernetes_schema import validation_errors

pytestmark = pytest.mark.engine

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
IMAGE = "docker-build:index:Image"
SERVING_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)
ROLLOUT_TIMEOUT_SECONDS = 120
# Another field manager than the provider's, as `kubectl patch` would be.
HAND_EDIT_MANAGER = "kubectl-patch"


def _deployment(cluster: Cluster, stack: EngineStack) -> dict[str, Any]:
    name = stack.outputs()[stack_outputs.DEPLOYMENT_NAME]
    return cluster.client.get(resource_path("apps/v1", "Deployment", stack.namespace, name))


def _serving_pods(cluster: Cluster, stack: EngineStack) -> list[dict[str, Any]]:
    listing = cluster.client.get(
        resource_path("v1", "Pod", stack.namespace),
        labelSelector="app.kubernetes.io/name=model-server",
    )
    return [p for p in listing["items"] if "deletionTimestamp" not in p["metadata"]]


def _ops(steps: list[auto.StepEventMetadata]) -> list[tuple[str, str]]:
    return sorted((step.op.value, step.type) for step in steps)


@pytest.fixture(scope="module")
def deployed(cluster: Cluster, engine_stack: EngineStack) -> dict[str, Any]:
    """Preview of an empty stack, then up: the preview's plan and the up's result."""
    preview, preview_events = engine_stack.run("preview")
    planned = planned_steps(preview_events)
    up, _ = engine_stack.run("up")
    return {"preview": preview, "planned": planned, "up": up}


def test_preview_plans_only_creates_and_up_deploys_them(
    cluster: Cluster, engine_stack: EngineStack, deployed: dict[str, Any]
) -> None:
    planned = deployed["planned"]
    assert planned and {step.op for step in planned} == {auto.OpType.CREATE}
    previewed = deployed["preview"].change_summary
    assert set(previewed) == {"create"} and previewed["create"] >= 10, previewed
    assert deployed["up"].summary.resource_changes == previewed
    assert deployed["up"].summary.result == "succeeded"


def test_the_image_is_pinned_by_the_digest_the_registry_serves(
    engine_stack: EngineStack, deployed: dict[str, Any]
) -> None:
    outputs = engine_stack.outputs()
    image_ref = outputs[stack_outputs.IMAGE_REF]
    match = re.fullmatch(r"127\.0\.0\.1:5000/(model-server)@(sha256:[0-9a-f]{64})", image_ref)
    assert match, image_ref
    tag = engine_stack.base_config["gpu-model-serving:imageTag"]
    assert manifest_digest(match.group(1), tag) == match.group(2)


def test_the_pods_run_the_pinned_image_on_gpu_nodes_only(
    cluster: Cluster, engine_stack: EngineStack, deployed: dict[str, Any]
) -> None:
    assert rolled_out(_deployment(cluster, engine_stack))
    pods = _serving_pods(cluster, engine_stack)
    assert pods
    image_ref = engine_stack.outputs()[stack_outputs.IMAGE_REF]
    for pod in pods:
        assert pod["status"]["phase"] == "Running", pod["status"]
        assert condition(pod, "Ready").get("status") == "True"
        assert pod["spec"]["nodeName"] in cluster.gpu_nodes, pod["spec"]["nodeName"]
        assert pod["spec"]["containers"][0]["image"] == image_ref


def test_a_second_up_changes_and_rebuilds_nothing(
    engine_stack: EngineStack, deployed: dict[str, Any]
) -> None:
    digest_before = engine_stack.outputs()[stack_outputs.IMAGE_DIGEST]
    builds_before = buildkit_builds()
    up, events = engine_stack.run("up")
    assert planned_steps(events) == []
    assert set(up.summary.resource_changes or {}) == {"same"}, up.summary.resource_changes
    # No rebuild: the engine planned `same` for the image (the provider was not asked to build),
    # BuildKit's history has no new build, and the tag still points at the same manifest.
    image_ops = [
        e.resource_pre_event.metadata.op
        for e in events
        if e.resource_pre_event and e.resource_pre_event.metadata.type == IMAGE
    ]
    assert auto.OpType.SAME in image_ops and auto.OpType.UPDATE not in image_ops, image_ops
    assert buildkit_builds() == builds_before
    tag = engine_stack.base_config["gpu-model-serving:imageTag"]
    assert manifest_digest("model-server", tag) == digest_before


def test_a_config_change_previews_as_an_update_of_exactly_what_it_changes(
    cluster: Cluster, engine_stack: EngineStack, deployed: dict[str, Any]
) -> None:
    # With up to 3 pods on the 3 GPU nodes a surge pod would not fit at full scale, so the
    # rollout strategy changes with the HPA's bound, and so does how long `up` awaits a
    # rollout (one progress deadline per pod it may replace); nothing else does.
    with engine_stack.configured(hpaMaxReplicas=3):
        _, events = engine_stack.run("preview")
        steps = planned_steps(events)
        assert sorted(_ops(steps)) == [("update", DEPLOYMENT), ("update", HPA)]
        diffs = {step.type: set(step.detailed_diff or {}) for step in steps}
        assert diffs[HPA] == {"spec.maxReplicas"}
        assert diffs[DEPLOYMENT] == {
            f'metadata.annotations["{AWAIT_TIMEOUT_ANNOTATION}"]',
            "spec.strategy.rollingUpdate.maxSurge",
            "spec.strategy.rollingUpdate.maxUnavailable",
        }
        engine_stack.run("up")
        live = _deployment(cluster, engine_stack)["spec"]["strategy"]["rollingUpdate"]
        assert live == {"maxSurge": 0, "maxUnavailable": 1}
        hpa = cluster.client.get(
            resource_path(
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                engine_stack.namespace,
                _deployment(cluster, engine_stack)["metadata"]["name"],
            )
        )
        assert hpa["spec"]["maxReplicas"] == 3
    engine_stack.run("up")


def _review_comment(record: Path) -> str:
    """`python -m review comment`, as the preview workflow runs it."""
    shown = subprocess.run(
        [sys.executable, "-m", "review", "comment", "--record", str(record)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return shown.stdout


def test_the_deployed_stack_passes_the_policy_pack_and_its_record_renders(
    engine_stack: EngineStack, deployed: dict[str, Any], tmp_path: Path
) -> None:
    record_file = tmp_path / "preview.json"
    preview = engine_stack.cli("preview", "--record", str(record_file))
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert re.search(
        r"Policy Packs run:\s+Name\s+Version\s+gpu-model-serving\|local", preview.stdout
    )
    record = json.loads(record_file.read_text())
    assert (record["succeeded"], record["steps"], record["policy"]) == (True, [], [])
    body = _review_comment(record_file)
    assert f"## Stack `{engine_stack.name}`: ✅ preview passed" in body
    assert "- passed: " + ", ".join(f"`{rule.name}`" for rule in RULES) in body


def test_a_config_that_breaks_a_rule_fails_the_preview_naming_the_rule(
    cluster: Cluster, engine_stack: EngineStack, deployed: dict[str, Any], tmp_path: Path
) -> None:
    record_file = tmp_path / "preview.json"
    with engine_stack.configured(gpuCount=0):
        preview = engine_stack.cli("preview", "--record", str(record_file))
        up = engine_stack.cli("up")
    output = preview.stdout + preview.stderr
    assert preview.returncode == 1, output
    assert re.search(
        r"\[mandatory\]\s+container-resources\s+\(kubernetes:apps/v1:Deployment", output
    )
    assert "no container has an nvidia.com/gpu limit" in output and "set gpuCount to 1" in output
    record = json.loads(record_file.read_text())
    assert [(p["rule"], p["level"]) for p in record["policy"]] == [
        ("container-resources", "mandatory")
    ]
    comment = _review_comment(record_file)
    assert "❌ preview failed" in comment
    keep_artifact("pr-comment-policy-violation.md", comment)
    # `up` stops at the same rule before applying the Deployment: the GPU limit is still there.
    assert up.returncode == 1 and "container-resources" in up.stdout + up.stderr
    container = _deployment(cluster, engine_stack)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_a_monitor_whose_crd_the_cluster_lacks_fails_the_preview_naming_it(
    engine_stack: EngineStack, deployed: dict[str, Any]
) -> None:
    """Without the check, the provider skips the unknown kind in preview and `up` fails
    half-way through."""
    with engine_stack.configured(
        metricsCollector="prometheus-operator", metricsScrapeNamespaces=["monitoring"]
    ):
        preview = engine_stack.cli("preview")
    output = preview.stdout + preview.stderr
    assert preview.returncode == 1, output
    # Both CRDs are missing and read at once: the engine names whichever read fails first.
    missing = ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")
    assert any(f"resource '{crd}' does not exist" in output for crd in missing), output
    assert "Traceback" not in output


def test_a_preview_runs_while_a_deploy_holds_the_stack_lock(
    engine_stack: EngineStack, deployed: dict[str, Any], tmp_path: Path
) -> None:
    """Why PR previews need no global queue: on a file or bucket backend only `up` locks."""
    changed = tmp_path / "changed.yaml"
    config = yaml.safe_load(engine_stack.config_file.read_text())
    config["config"][f"{PROJECT}:hpaMaxReplicas"] = 3
    changed.write_text(yaml.safe_dump(config))
    with engine_stack.up_waiting_at_its_prompt(changed) as locks:
        assert len(locks) == 1, locks
        preview = engine_stack.cli("preview", "--record", str(tmp_path / "preview.json"))
        up = engine_stack.cli("up")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert up.returncode == 1 and "the stack is currently locked by 1 lock(s)" in up.stderr
    assert not locks[0].exists()
    assert engine_stack.cli("up").returncode == 0


def test_a_model_change_builds_a_new_digest_and_rolls_the_deployment(
    cluster: Cluster, engine_stack: EngineStack, deployed: dict[str, Any], tmp_path: Path
) -> None:
    before = engine_stack.outputs()[stack_outputs.IMAGE_REF]
    server = engine_stack.work_dir / "model" / "serving" / "__init__.py"
    original = server.read_text()
    server.write_text(original + "\n# changed by the engine test\n")
    try:
        # In process: the model change is in the project copy, which the CLI does not run.
        _, events = engine_stack.run("preview")
        record = preview_record(engine_stack.name, events, succeeded=True).as_json()
        record_file = tmp_path / "preview.json"
        record_file.write_text(json.dumps(record))
        assert ("update", IMAGE) in [(s["op"], s["type"]) for s in record["steps"]]
        # The preview cannot know the new digest; it must not show the pods moving to `repo@`.
        assert [(r["old"], r["new"]) for r in record["image_rolls"]] == [(before, UNKNOWN)]
        comment = _review_comment(record_file)
        assert "### Image that would roll" in comment and f"`{before}` → a new build" in comment
        keep_artifact("pr-comment-model-change.md", comment)
        engine_stack.run("up")
        after = engine_stack.outputs()[stack_outputs.IMAGE_REF]
        assert after != before
        deployment = _deployment(cluster, engine_stack)
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == after
        assert rolled_out(deployment)
        pods = _serving_pods(cluster, engine_stack)
        assert pods and all(p["spec"]["containers"][0]["image"] == after for p in pods)
    finally:
        server.write_text(original)
    engine_stack.run("up")


def _hand_edit(cluster: Cluster, path: str, patch: dict[str, Any]) -> None:
    response = cluster.client.request(
        "PATCH",
        path,
        patch,
        content_type="application/strategic-merge-patch+json",
        params={"fieldManager": HAND_EDIT_MANAGER},
    )
    assert response.status == 200, response.message


def test_the_hpas_own_scaling_is_not_drift(
    cluster: Cluster, engine_stack: EngineStack, deployed: dict[str, Any], tmp_path: Path
) -> None:
    name = _deployment(cluster, engine_stack)["metadata"]["name"]
    scale = resource_path("apps/v1", "Deployment", engine_stack.namespace, name) + "/scale"
    # Within the HPA's bounds, as the HPA controller itself scales (the scale subresource).
    response = cluster.client.request(
        "PATCH", scale, {"spec": {"replicas": 2}}, content_type="application/merge-patch+json"
    )
    assert response.status == 200, response.message
    report_file = tmp_path / "drift.json"
    drift = engine_stack.cli("drift", "--report", str(report_file))
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert report_of(report_file) == {"stack": engine_stack.name, "drifted": False, "resources": []}
    assert "no drift" in drift.stdout
    # The docker-build provider verified the pushed image in the registry (TLS, our CA).
    assert "unable to verify image tags" not in drift.stderr, drift.stderr


def test_hand_edits_are_drift_and_up_restores_exactly_the_declared_fields(
    cluster: Cluster, engine_stack: EngineStack, deployed: dict[str, Any], tmp_path: Path
) -> None:
    deployment = _deployment(cluster, engine_stack)
    name = deployment["metadata"]["name"]
    namespace = engine_stack.namespace
    path = resource_path("apps/v1", "Deployment", namespace, name)
    declared_container = deployment["spec"]["template"]["spec"]["containers"][0]
    replicas = deployment["spec"]["replicas"]
    _hand_edit(
        cluster,
        path,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "server",
                                "image": "127.0.0.1:5000/model-server:hand-edited",
                                "readinessProbe": {"periodSeconds": 30},
                            },
                        ]
                    }
                }
            }
        },
    )
    cluster.client.delete(resource_path("policy/v1", "PodDisruptionBudget", namespace, name))
    state_dir = Path(engine_stack.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    state_before = {p: p.read_bytes() for p in state_dir.rglob("*.json")}

    report_file = tmp_path / "drift.json"
    drift = engine_stack.cli("drift", "--report", str(report_file))
    assert drift.returncode == 2, drift.stdout + drift.stderr
    report = report_of(report_file)
    assert report["drifted"] is True
    by_type = {r["type"]: r for r in report["resources"]}
    assert set(by_type) == {DEPLOYMENT, PDB}, by_type
    assert by_type[PDB]["op"] == "create"
    fields = {f["path"]: f for f in by_type[DEPLOYMENT]["fields"]}
    image = fields["spec.template.spec.containers[0].image"]
    assert image["declared"] == declared_container["image"]
    assert image["live"] == "127.0.0.1:5000/model-server:hand-edited"
    probe = fields["spec.template.spec.containers[0].readinessProbe.periodSeconds"]
    assert (probe["declared"], probe["live"]) == (
        declared_container["readinessProbe"]["periodSeconds"],
        30,
    )
    assert "missing from the cluster" in drift.stdout
    issue = drift_issue.render(report)
    assert f"- `{PDB}` **`{by_type[PDB]['name']}`**: missing from the cluster" in issue
    assert "live `127.0.0.1:5000/model-server:hand-edited`" in issue
    keep_artifact("drift-report.json", report_file.read_text())
    keep_artifact("drift-stdout.txt", drift.stdout)
    keep_artifact("drift-issue.md", issue)
    # Preview-only: the state is byte for byte what it was.
    assert {p: p.read_bytes() for p in state_dir.rglob("*.json")} == state_before

    up = engine_stack.cli("up")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    restored = cluster.client.get(path)
    container = restored["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == declared_container["image"]
    assert container["readinessProbe"] == declared_container["readinessProbe"]
    assert cluster.client.exists(resource_path("policy/v1", "PodDisruptionBudget", namespace, name))
    # The HPA's choice is not the stack's to restore.
    assert restored["spec"]["replicas"] == replicas
    wait_for(
        "the restored Deployment to roll out",
        lambda: rolled_out(cluster.client.get(path)),
        timeout=ROLLOUT_TIMEOUT_SECONDS,
    )
    clean = engine_stack.cli("drift")
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_a_bad_config_ends_the_engine_with_the_settings_error_and_no_traceback(
    engine_stack: EngineStack,
) -> None:
    with engine_stack.configured(hpaMinReplicas=0, cpuRequest="lots"):
        preview = engine_stack.cli("preview")
    output = preview.stdout + preview.stderr
    assert preview.returncode == 1, output
    assert "gpu-model-serving:hpaMinReplicas = 0: must be ≥ 1" in output
    assert 'gpu-model-serving:cpuRequest = "lots"' in output
    assert "Traceback" not in output


def test_a_missing_plugin_is_a_clear_error_not_a_download(
    engine_stack: EngineStack, tmp_path: Path
) -> None:
    empty_home = {**engine_stack.env, "PULUMI_HOME": str(tmp_path / "empty-home")}
    started = time.monotonic()
    preview = engine_stack.cli("preview", env=empty_home)
    assert preview.returncode == 1
    assert "kubernetes 4.25.0" in preview.stderr and "make toolchain" in preview.stderr
    assert time.monotonic() - started < 60


def test_the_engine_itself_refuses_to_download_a_missing_plugin(
    engine_stack: EngineStack, tmp_path: Path
) -> None:
    # The plain CLI, past our driver's check: the engine must fail, not fetch the plugin.
    env = {**engine_stack.env, "PULUMI_HOME": str(tmp_path / "empty-home")}
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    started = time.monotonic()
    preview = engine_stack.plain_cli("preview", env=env)
    output = preview.stdout + preview.stderr
    assert preview.returncode != 0, output
    assert re.search(
        r"no resource plugin 'pulumi-resource-(kubernetes|docker-build)' found in the workspace",
        output,
    ), output
    assert "Downloading" not in output and "get.pulumi.com" not in output
    assert time.monotonic() - started < 240


def test_the_plain_cli_previews_the_deployed_stack_as_unchanged(
    engine_stack: EngineStack, deployed: dict[str, Any]
) -> None:
    preview = engine_stack.plain_cli("preview", "--expect-no-changes", "--skip-plugin-pre-install")
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr[-3000:]
    assert re.search(r"\d+ unchanged", preview.stdout), preview.stdout


def test_render_mode_writes_manifests_that_validate_against_the_official_schemas(
    engine_stack: EngineStack, tmp_path: Path
) -> None:
    rendered = tmp_path / "rendered"
    render = EngineStack(
        name=f"{engine_stack.name}-render",
        work_dir=engine_stack.work_dir,
        config_file=tmp_path / "render.yaml",
        env=engine_stack.env,
        base_config=engine_stack.base_config,
    )
    render.write_config(renderYamlToDirectory=str(rendered))
    try:
        up = render.cli("up")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        documents = [
            doc
            for manifest in sorted(rendered.rglob("*.yaml"))
            for doc in yaml.safe_load_all(manifest.read_text())
            if doc
        ]
        kinds = {doc["kind"] for doc in documents}
        assert {kind for _, kind in SERVING_KINDS} | {"Namespace"} <= kinds, kinds
        for doc in documents:
            assert validation_errors(doc) == [], (doc["kind"], validation_errors(doc))
    finally:
        render.cli("destroy", "--remove")


def test_destroy_leaves_nothing_in_the_namespace_and_no_stack(
    cluster: Cluster, engine_stack: EngineStack, deployed: dict[str, Any]
) -> None:
    destroyed = engine_stack.cli("destroy", "--remove")
    assert destroyed.returncode == 0, destroyed.stdout[-3000:] + destroyed.stderr[-3000:]
    namespace = engine_stack.namespace
    for api_version, kind in SERVING_KINDS:
        listing = cluster.client.request("GET", resource_path(api_version, kind, namespace))
        assert listing.status == 404 or listing.body.get("items") == [], (kind, listing.body)
    wait_for(
        "the namespace to be gone",
        lambda: not cluster.client.exists(resource_path("v1", "Namespace", name=namespace)),
        timeout=60,
    )
    assert engine_stack.name not in driver.stack_names(engine_stack.work_dir, engine_stack.env)
