"""The canary in the stack: a second model version in the slot stable is not in, its share of
traffic (HTTPRoute weights or replica count), the GPU pool's room for both, and a promotion
that flips the slots' roles without touching the canary's pods."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.unit.harness import ROOT, StackMocks, run_stack
from tests.unit.kubernetes_schema import validation_errors
from tests.unit.test_settings import problems_for

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """The bundled digits model as versions 1 and 2 (the same SavedModel), outside the
    project; version 2's variables differ by one byte, so its image differs."""
    copy = tmp_path / "digits"
    shutil.copytree(ROOT / "model" / "export" / "digits" / "1", copy / "1")
    shutil.copytree(copy / "1", copy / "2")
    (copy / "2" / "assets.extra").mkdir(exist_ok=True)
    (copy / "2" / "assets.extra" / "note").write_text("version 2")
    return copy


def by_name(mocks: StackMocks, type_token: str) -> dict[str, dict[str, Any]]:
    return {c.inputs["metadata"]["name"]: c.inputs for c in mocks.of_type(type_token)}


def logged(monkeypatch: pytest.MonkeyPatch, level: str) -> list[str]:
    """The messages the program logs at `level` (pulumi.log.info, .warn) from now on."""
    messages: list[str] = []
    monkeypatch.setattr(pulumi.log, level, lambda message, *_, **__: messages.append(message))
    return messages


def image_of(deployment: dict[str, Any]) -> str:
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_a_canary_runs_in_the_other_slot_with_its_own_image_and_its_own_selector(
    mocks: StackMocks, repository: Path
) -> None:
    outputs = run_stack("dev", modelPath=str(repository), modelVersion="1", canaryModelVersion="2")
    deployments = by_name(mocks, DEPLOYMENT)
    stable, canary = deployments["digits-server"], deployments["digits-server-b"]
    assert stable["metadata"]["annotations"]["gpu-model-serving/track"] == "stable"
    assert canary["metadata"]["annotations"]["gpu-model-serving/track"] == "canary"
    assert canary["metadata"]["annotations"]["gpu-model-serving/model-version"] == "2"
    assert image_of(canary) != image_of(stable)
    assert image_of(canary) == outputs["canaryImageRef"]
    assert outputs["canaryDeploymentName"] == "digits-server-b"
    assert outputs["deploymentName"] == "digits-server"
    # Neither Deployment's selector matches the other's pods (an HPA or PDB would count them).
    for own, other in ((stable, canary), (canary, stable)):
        selector = own["spec"]["selector"]["matchLabels"].items()
        assert not selector <= other["spec"]["template"]["metadata"]["labels"].items()
    # Both slots' pods are behind the one Service and its NetworkPolicy.
    service = mocks.one("kubernetes:core/v1:Service").inputs["spec"]["selector"].items()
    policy = mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs
    for deployment in (stable, canary):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"].items()
        assert service <= pod_labels
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels
    # Everything stable has (probes, security, scheduling) but the image and the version.
    stable_pod, canary_pod = (d["spec"]["template"]["spec"] for d in (stable, canary))
    for field in ("nodeSelector", "tolerations", "securityContext"):
        assert canary_pod[field] == stable_pod[field]
    for probe in ("startupProbe", "readinessProbe", "resources", "securityContext"):
        assert canary_pod["containers"][0][probe] == stable_pod["containers"][0][probe]
    # Its own PDB, over its own pods.
    budgets = by_name(mocks, PDB)
    assert budgets["digits-server-b"]["spec"]["selector"] == canary["spec"]["selector"]
    # And every object is one the API server's schema admits.
    assert [e for o in mocks.kubernetes_objects() for e in validation_errors(o)] == []


def test_a_share_by_replica_count_is_the_nearest_pod_count_and_the_preview_says_what_it_is(
    mocks: StackMocks, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = logged(monkeypatch, "info")
    run_stack(
        "dev",
        modelPath=str(repository),
        canaryModelVersion="1",
        modelVersion="2",
        hpaMinReplicas=3,
        hpaMaxReplicas=3,
        gpuPoolMaxNodes=3,
        gpuAcceleratorsPerNode=2,
        canaryWeight=10,
    )
    scalers = by_name(mocks, HPA)
    canary = scalers["digits-server-b"]["spec"]
    assert (canary["minReplicas"], canary["maxReplicas"]) == (1, 1)
    (share,) = [m for m in said if m.startswith("canary share")]
    assert "1 canary pod(s) beside 3 stable" in share
    assert "take 25 % of the Service's traffic (canaryWeight asks 10 %)" in share


def test_a_gateway_splits_by_route_weights_to_one_service_per_slot(
    mocks: StackMocks, repository: Path
) -> None:
    run_stack(
        "dev",
        modelPath=str(repository),
        modelVersion="1",
        canaryModelVersion="2",
        canaryWeight=20,
        gatewayName="gateways/public",
    )
    route = mocks.one(HTTP_ROUTE).inputs
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [
        {"name": "digits-server-a", "port": 8501, "weight": 80},
        {"name": "digits-server-b", "port": 8501, "weight": 20},
    ]
    services = by_name(mocks, "kubernetes:core/v1:Service")
    deployments = by_name(mocks, DEPLOYMENT)
    for slot, deployment in (("a", "digits-server"), ("b", "digits-server-b")):
        selector = deployments[deployment]["spec"]["selector"]["matchLabels"]
        assert services[f"digits-server-{slot}"]["spec"]["selector"] == selector
    # The canary scales on its share like stable does.
    canary = by_name(mocks, HPA)["digits-server-b"]["spec"]
    assert (canary["minReplicas"], canary["maxReplicas"]) == (1, 2)
    # The route's CRD is read first (a cluster without Gateway API fails the preview), and
    # the route is what the Gateway API's own schema admits.
    assert "httproutes.gateway.networking.k8s.io" in {c.read_id for c in mocks.created}
    assert validation_errors({"apiVersion": "gateway.networking.k8s.io/v1", **route}) == []


def test_the_monitor_labels_each_slot_with_the_track_it_plays_now(
    mocks: StackMocks, repository: Path
) -> None:
    run_stack(
        "dev",
        modelPath=str(repository),
        modelVersion="2",
        canaryModelVersion="1",
        stableSlot="b",
        metricsCollector="prometheus-operator",
        metricsScrapeNamespaces=["monitoring"],
    )
    monitor = mocks.one("kubernetes:monitoring.coreos.com/v1:ServiceMonitor").inputs
    tracks = {r["regex"]: r["replacement"] for r in monitor["spec"]["endpoints"][0]["relabelings"]}
    assert tracks == {"digits": "canary", "digits-b": "stable"}


def test_promotion_flips_the_roles_and_leaves_the_canarys_pod_template_as_it_was(
    mocks: StackMocks, repository: Path
) -> None:
    common = {"modelPath": str(repository)}
    run_stack("dev", **common, modelVersion="1", canaryModelVersion="2")
    before = by_name(mocks, DEPLOYMENT)["digits-server-b"]
    mocks.created.clear()
    outputs = run_stack("dev", **common, modelVersion="2", stableSlot="b")
    deployments = by_name(mocks, DEPLOYMENT)
    # Only stable serves: slot a's Deployment, HPA and PDB are gone.
    assert set(deployments) == {"digits-server-b"}
    assert set(by_name(mocks, HPA)) == set(by_name(mocks, PDB)) == {"digits-server-b"}
    after = deployments["digits-server-b"]
    assert after["spec"]["template"] == before["spec"]["template"]  # no pod restarts
    assert after["metadata"]["annotations"]["gpu-model-serving/track"] == "stable"
    assert outputs["deploymentName"] == "digits-server-b"
    assert "canaryDeploymentName" not in outputs


def test_a_pool_without_room_for_the_canary_beside_stable_fails_with_the_arithmetic(
    mocks: StackMocks, repository: Path
) -> None:
    with pytest.raises(pulumi.RunError) as failure:
        run_stack(
            "dev",
            modelPath=str(repository),
            modelVersion="1",
            canaryModelVersion="2",
            hpaMinReplicas=3,
            hpaMaxReplicas=3,
            gpuPoolMaxNodes=3,
        )
    assert str(failure.value) == (
        "the canary cannot start: the GPU pool fits 3 pod(s) (gpuPoolMaxNodes 3 * 1 GPU(s) per "
        "node / gpuCount 1), and stable's 3 (hpaMinReplicas) + the canary's 1 need 4; raise "
        "gpuPoolMaxNodes or lower canaryWeight"
    )


def test_a_pool_without_room_at_full_scale_warns_with_the_arithmetic(
    mocks: StackMocks, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warned = logged(monkeypatch, "warn")
    run_stack(
        "dev",
        modelPath=str(repository),
        modelVersion="1",
        canaryModelVersion="2",
        gatewayName="gateways/public",
        hpaMinReplicas=1,
        hpaMaxReplicas=2,
        gpuPoolMaxNodes=3,
    )
    (full,) = [w for w in warned if "full scale the canary" in w]
    assert "stable's 2 (hpaMaxReplicas) + the canary's 2 need 4" in full


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"canaryModelVersion": "1"}, "canaryModelVersion = 1: is the version stable serves"),
        ({"canaryModelVersion": "9"}, 'canaryModelVersion = "9": is not a version under'),
        ({"canaryModelVersion": "v2"}, "must be a version number, or empty for no canary"),
        ({"canaryWeight": 100}, "canaryWeight = 100: must be"),
        ({"canaryWeight": 0}, "canaryWeight = 0: must be"),
        ({"stableSlot": "c"}, 'stableSlot = "c": must be one of'),
        (
            {"gatewayName": "public"},
            'gatewayName = "public": must be the Gateway\'s namespace/name',
        ),
    ],
)
def test_canary_keys_are_checked(overrides: dict[str, object], problem: str) -> None:
    (found,) = problems_for("dev", **overrides)
    assert problem in found
