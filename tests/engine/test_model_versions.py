"""A model's life through the real engine: version after version from a model repository outside
the project, the contract in the preview record and the PR comment, the model-contract rule on a
production-like stack, and `rollback` with no build.

The tests run in file order against one throwaway stack whose modelPath is a TF Serving layout
in a temporary directory: version 1 is the bundled digits model, version 2 the same SavedModel
with a release note among its assets (new bytes, the same signatures).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.environment import REPO
from gpu_model_serving import stack_outputs
from model_contract.contract import MODEL_VERSION_ANNOTATION
from model_contract.diff import fingerprint
from model_contract.saved_model import read_signatures
from tests.cluster.conftest import Cluster
from tests.cluster.kube import resource_path
from tests.cluster.stack import (
    STARTUP_PROBE_FAILED,
    condition,
    pods,
    pods_never_ready,
    rolled_out,
    running_and_ready,
)
from tests.engine.conftest import (
    PROJECT,
    EngineStack,
    buildkit_builds,
    keep_artifact,
    planned_steps,
    throwaway_stack,
)

pytestmark = pytest.mark.engine

BUNDLED_MODEL = REPO / "model" / "export" / "digits" / "1"
# A second, different model (two inputs of other dtypes): the same model name in place of digits
# breaks every digits client.
OTHER_MODEL = REPO / "model" / "export" / "diabetes" / "1"


@pytest.fixture(scope="module")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("model-repository") / "digits"
    shutil.copytree(BUNDLED_MODEL, base / "1")
    shutil.copytree(BUNDLED_MODEL, base / "2")
    (base / "2" / "assets").mkdir(exist_ok=True)
    (base / "2" / "assets" / "RELEASE").write_text("digits 2: retrained on the same contract\n")
    return base


@pytest.fixture(scope="module")
def versions_stack(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, model_repository: Path
) -> Iterator[EngineStack]:
    """The stack deployed with version 1 of the outside model repository."""
    root = tmp_path_factory.mktemp("versions")
    with throwaway_stack(cluster, root, modelPath=str(model_repository), modelVersion="1") as stack:
        stack.run("up")
        yield stack


def _deployment(cluster: Cluster, stack: EngineStack) -> dict[str, Any]:
    name = stack.outputs()[stack_outputs.DEPLOYMENT_NAME]
    return cluster.client.get(resource_path("apps/v1", "Deployment", stack.namespace, name))


def _pod_images(cluster: Cluster, stack: EngineStack) -> set[str]:
    listing = cluster.client.get(
        resource_path("v1", "Pod", stack.namespace),
        labelSelector="app.kubernetes.io/name=model-server",
    )
    return {
        pod["spec"]["containers"][0]["image"]
        for pod in listing["items"]
        if "deletionTimestamp" not in pod["metadata"]
    }


def _review_comment(record: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "review", "comment", "--record", str(record)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def _set_config(stack: EngineStack, **keys: Any) -> None:
    """Change the stack's base config for the rest of the module."""
    stack.base_config.update({f"{PROJECT}:{key}": value for key, value in keys.items()})
    stack.write_config()


def test_version_2_rolls_the_digest_and_the_review_shows_an_unchanged_contract(
    cluster: Cluster, versions_stack: EngineStack, tmp_path: Path
) -> None:
    version_1 = versions_stack.outputs()
    assert version_1[stack_outputs.MODEL_CONTRACT]["version"] == 1
    _set_config(versions_stack, modelVersion="2")
    record_file = tmp_path / "preview.json"
    preview = versions_stack.cli("preview", "--record", str(record_file))
    assert preview.returncode == 0, preview.stdout + preview.stderr
    model = json.loads(record_file.read_text())["model"]
    assert (model["old"]["version"], model["new"]["version"]) == (1, 2)
    assert (model["verdict"], model["changes"]) == ("unchanged", [])
    assert model["image_roll"]["old"] == version_1[stack_outputs.IMAGE_REF]
    comment = _review_comment(record_file)
    assert "### Model `digits`" in comment
    assert "**Contract: unchanged**, version 1 → 2." in comment
    keep_artifact("pr-comment-model-version.md", comment)

    versions_stack.run("up")
    version_2 = versions_stack.outputs()
    assert version_2[stack_outputs.IMAGE_DIGEST] != version_1[stack_outputs.IMAGE_DIGEST]
    assert version_2[stack_outputs.MODEL_CONTRACT]["version"] == 2
    deployment = _deployment(cluster, versions_stack)
    assert rolled_out(deployment)
    assert deployment["metadata"]["annotations"][MODEL_VERSION_ANNOTATION] == "2"
    assert _pod_images(cluster, versions_stack) == {version_2[stack_outputs.IMAGE_REF]}


def test_a_new_version_beside_the_served_one_builds_and_changes_nothing(
    versions_stack: EngineStack, model_repository: Path
) -> None:
    shutil.copytree(BUNDLED_MODEL, model_repository / "3")
    try:
        builds_before = buildkit_builds()
        up, events = versions_stack.run("up")
        assert planned_steps(events) == []
        assert set(up.summary.resource_changes or {}) == {"same"}, up.summary.resource_changes
        assert buildkit_builds() == builds_before
    finally:
        shutil.rmtree(model_repository / "3")


def test_rollback_returns_to_version_1_with_no_build_and_no_drift(
    cluster: Cluster, versions_stack: EngineStack, tmp_path: Path
) -> None:
    serving_2 = versions_stack.outputs()[stack_outputs.IMAGE_REF]
    builds_before = buildkit_builds()
    rollback = versions_stack.cli("rollback")
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert "(model version 1)" in rollback.stdout, rollback.stdout
    assert buildkit_builds() == builds_before

    serving_1 = versions_stack.outputs()[stack_outputs.IMAGE_REF]
    assert serving_1 != serving_2
    assert versions_stack.outputs()[stack_outputs.MODEL_CONTRACT]["version"] == 1
    deployment = _deployment(cluster, versions_stack)
    assert rolled_out(deployment)
    assert _pod_images(cluster, versions_stack) == {serving_1}
    # The declaration says what is live: the stack file pins it, so drift is clean and the next
    # up keeps it.
    pinned = yaml.safe_load(versions_stack.config_file.read_text())["config"]
    assert pinned[f"{PROJECT}:servingImage"] == serving_1
    assert str(pinned[f"{PROJECT}:modelVersion"]) == "1"
    drift = versions_stack.cli("drift", "--report", str(tmp_path / "drift.json"))
    assert drift.returncode == 0, drift.stdout + drift.stderr
    _, events = versions_stack.run("up")
    assert planned_steps(events) == []

    # Back to roll-forward, as the README says: drop the pin, name the version.
    _set_config(versions_stack, modelVersion="2")
    versions_stack.run("up")
    assert versions_stack.outputs()[stack_outputs.IMAGE_REF] == serving_2


def test_rollback_to_a_version_the_cluster_never_ran_names_what_it_keeps(
    versions_stack: EngineStack,
) -> None:
    rollback = versions_stack.cli("rollback", "--to", "7")
    assert rollback.returncode == 1
    assert "no revision matches '7'; the cluster keeps:" in rollback.stderr
    assert "(model version 1)" in rollback.stderr and "(model version 2)" in rollback.stderr
    assert "Traceback" not in rollback.stdout + rollback.stderr


def test_a_version_that_never_loads_fails_up_at_its_deadline_and_rollback_returns_to_health(
    cluster: Cluster, versions_stack: EngineStack, model_repository: Path, tmp_path: Path
) -> None:
    # Version 3: version 2's graph and signatures (the preview reads a valid contract) with its
    # weights cut short, so no server can load it.
    broken = model_repository / "3"
    shutil.copytree(model_repository / "2", broken)
    weights = broken / "variables" / "variables.data-00000-of-00001"
    weights.write_bytes(weights.read_bytes()[:64])
    # From version 2, whatever the tests before left running (they may be deselected).
    _set_config(versions_stack, modelVersion="2")
    versions_stack.run("up")
    serving_2 = versions_stack.outputs()[stack_outputs.IMAGE_REF]
    selector = "app.kubernetes.io/name=model-server"
    serving_pods = {
        p["metadata"]["name"] for p in pods(cluster.client, versions_stack.namespace, selector)
    }
    try:
        with (
            pods_never_ready(
                cluster.client, versions_stack.namespace, {"app.kubernetes.io/version": "3"}
            ),
            versions_stack.configured(
                modelVersion="3", startupTimeoutSeconds=10, progressDeadlineSeconds=20
            ),
        ):
            up = versions_stack.cli("up")
            output = up.stdout + up.stderr
            assert up.returncode == 1, output
            name = versions_stack.outputs()[stack_outputs.DEPLOYMENT_NAME]
            assert f"{versions_stack.namespace}/{name}" in output, output
            assert "ProgressDeadlineExceeded" in output, output
            assert STARTUP_PROBE_FAILED in output, output
            assert "Traceback" not in output
            # As many available as the HPA asks for: the old pods never left and still serve
            # (the stuck new pod counts as unavailable in the status, so that field cannot say).
            deployment = _deployment(cluster, versions_stack)
            assert condition(deployment, "Progressing")["reason"] == "ProgressDeadlineExceeded"
            status = deployment["status"]
            assert status.get("availableReplicas", 0) >= deployment["spec"]["replicas"], status
            still = {
                p["metadata"]["name"]: p
                for p in pods(cluster.client, versions_stack.namespace, selector)
            }
            assert serving_pods <= set(still)
            assert all(running_and_ready(still[n]) for n in serving_pods)

            rollback = versions_stack.cli("rollback")
            assert rollback.returncode == 0, rollback.stdout + rollback.stderr
            (chosen,) = [x for x in rollback.stdout.splitlines() if x.startswith("rollback: to ")]
            assert "(model version 2)" in chosen, rollback.stdout
            assert rolled_out(_deployment(cluster, versions_stack))
            assert _pod_images(cluster, versions_stack) == {serving_2}
            drift = versions_stack.cli("drift", "--report", str(tmp_path / "drift.json"))
            assert drift.returncode == 0, drift.stdout + drift.stderr
    finally:
        shutil.rmtree(broken)
    # Roll-forward again from version 2 (the base config): the image it serves already.
    versions_stack.run("up")
    assert versions_stack.outputs()[stack_outputs.IMAGE_REF] == serving_2


def test_another_model_in_place_breaks_a_production_stack_unless_it_accepts_that_break(
    cluster: Cluster, versions_stack: EngineStack, tmp_path: Path
) -> None:
    production = tmp_path / "policy.json"
    production.write_text(
        json.dumps({"model-contract": {"productionStacks": [versions_stack.name]}})
    )
    serving = versions_stack.outputs()[stack_outputs.IMAGE_REF]
    accepted = fingerprint(read_signatures(OTHER_MODEL / "saved_model.pb"))
    with versions_stack.configured(modelPath=str(OTHER_MODEL.parent), modelVersion="1"):
        preview = versions_stack.cli("preview", "--policy-config", str(production))
        output = preview.stdout + preview.stderr
        assert preview.returncode == 1, output
        assert "model-contract" in output
        assert "breaks the contract that production stack" in output
        assert "removed" in output, output
        assert f"modelContractAcceptBreaking to {accepted}" in output
        assert "Traceback" not in output
        # The same preview on a stack that is not production passes: the rule is for production.
        assert versions_stack.cli("preview").returncode == 0

    with versions_stack.configured(
        modelPath=str(OTHER_MODEL.parent), modelVersion="1", modelContractAcceptBreaking=accepted
    ):
        preview = versions_stack.cli("preview", "--policy-config", str(production))
        assert preview.returncode == 0, preview.stdout + preview.stderr
    assert versions_stack.outputs()[stack_outputs.IMAGE_REF] == serving


def test_a_bad_model_version_ends_the_engine_with_its_message_and_no_traceback(
    versions_stack: EngineStack, model_repository: Path
) -> None:
    with versions_stack.configured(modelVersion="9"):
        preview = versions_stack.cli("preview")
    output = preview.stdout + preview.stderr
    assert preview.returncode == 1, output
    assert f'{PROJECT}:modelVersion = "9": is not a version under {model_repository}' in output
    assert "(it has: 1, 2)" in output
    assert "Traceback" not in output
