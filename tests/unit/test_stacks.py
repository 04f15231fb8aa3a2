"""Both stacks evaluated end to end from their real Pulumi.<stack>.yaml files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from gpu_model_serving import stack_outputs
from model_contract.contract import Contract
from tests.unit.harness import StackMocks, run_stack
from tests.unit.kubernetes_schema import kubernetes_version, validation_errors
from tests.unit.test_settings import _eks_overrides

SERVING_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ConfigMap",
}


def objects_by_kind(mocks: StackMocks) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in mocks.kubernetes_objects()}


def test_dev_stack_creates_the_local_serving_objects(mocks: StackMocks) -> None:
    outputs = run_stack("dev")
    assert set(objects_by_kind(mocks)) == SERVING_KINDS
    assert mocks.of_type("gcp:container/nodePool:NodePool") == []
    assert mocks.of_type("aws:eks/nodeGroup:NodeGroup") == []
    provider = mocks.one("pulumi:providers:kubernetes").inputs
    assert provider.get("renderYamlToDirectory", "") in ("", None)
    deployment = objects_by_kind(mocks)["Deployment"]
    image_ref = outputs[stack_outputs.IMAGE_REF]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image_ref
    assert image_ref.startswith("127.0.0.1:5000/model-server@sha256:")
    # The HPA owns the replica count: declaring one would reset it on every update.
    assert "replicas" not in deployment["spec"]
    assert objects_by_kind(mocks)["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 1
    assert outputs[stack_outputs.GPU_POOL_NAME] == "gpu-pool"
    assert outputs[stack_outputs.NAMESPACE] == "model-serving"
    assert outputs[stack_outputs.DEPLOYMENT_NAME] == deployment["metadata"]["name"]
    assert outputs[stack_outputs.PREDICT_URL] == (
        "http://digits-server.model-serving.svc.cluster.local:8501/v1/models/digits:predict"
    )
    assert image_ref.endswith(outputs[stack_outputs.IMAGE_DIGEST])


def test_prod_stack_creates_a_gke_l4_pool_and_tensorflow_serving_with_three_replicas(
    mocks: StackMocks,
) -> None:
    outputs = run_stack("prod")
    node_pool = mocks.one("gcp:container/nodePool:NodePool").inputs
    assert node_pool["nodeConfig"]["guestAccelerators"][0]["type"] == "nvidia-l4"
    objects = objects_by_kind(mocks)
    # Managed collection finds the servers only through a PodMonitoring; without one, no scrape.
    assert set(objects) == SERVING_KINDS | {"PodMonitoring", "Rules"}
    deployment = objects["Deployment"]
    assert "replicas" not in deployment["spec"]
    assert objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    # The HPA scales on the metric the exported prometheus-adapter rule serves.
    (rule,) = yaml.safe_load(outputs[stack_outputs.PROMETHEUS_ADAPTER_RULES])
    (metric,) = objects["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == rule["name"]["as"]
    assert rule["seriesQuery"].startswith(':tensorflow:serving:request_count{namespace="')
    # The SLO alerts judge this stack's Deployment, in its namespace.
    (group,) = yaml.safe_load(outputs[stack_outputs.SLO_ALERT_RULES])["groups"]
    (no_replica,) = [r for r in group["rules"] if r["alert"] == "ModelServerNoAvailableReplica"]
    assert f'deployment="{deployment["metadata"]["name"]}"' in no_replica["expr"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["cloud.google.com/gke-nodepool"] == "gpu-pool"
    assert {"name": "MODEL_NAME", "value": "digits"} in pod["containers"][0]["env"]
    assert objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert outputs[stack_outputs.IMAGE_REF].startswith(
        "us-central1-docker.pkg.dev/ml-platform-prod/models/digits-server@sha256:"
    )
    provider = mocks.one("pulumi:providers:kubernetes").inputs
    assert provider["context"] == "gke_ml-platform-prod_us-central1_serving"


def test_render_mode_sends_the_manifests_to_a_directory_and_names_no_cluster(
    mocks: StackMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK would fill the provider's kubeconfig from $KUBECONFIG, which the provider rejects
    # beside renderYamlToDirectory.
    monkeypatch.setenv("KUBECONFIG", "/somewhere/kubeconfig.yaml")
    run_stack("dev", renderYamlToDirectory="rendered/dev")
    provider = mocks.one("pulumi:providers:kubernetes").inputs
    assert provider["renderYamlToDirectory"] == "rendered/dev"
    assert provider.get("kubeconfig", "") == ""
    assert "context" not in provider


@pytest.mark.parametrize(
    ("stack", "overrides"),
    [("dev", {}), ("prod", {}), ("prod", _eks_overrides())],
    ids=["dev", "prod", "prod-eks"],
)
def test_every_kubernetes_object_goes_through_the_explicit_provider(
    mocks: StackMocks, stack: str, overrides: dict[str, object]
) -> None:
    """A Kubernetes object registered without it would go to the ambient kubeconfig's cluster
    (the default provider): each one must name the stack's own provider."""
    run_stack(stack, **overrides)
    (provider,) = mocks.of_type("pulumi:providers:kubernetes")
    objects = [c for c in mocks.created if c.type.startswith("kubernetes:") and c is not provider]
    assert objects
    # The mocks' reference to the one explicit provider: <its URN>::<its id>.
    explicit = f"$pulumi:providers:kubernetes::{provider.name}::{provider.name}-id"
    unrouted = [(c.type, c.name) for c in objects if not (c.provider or "").endswith(explicit)]
    assert unrouted == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("runtime", ["python", "tensorflow-serving"])
def test_objects_validate_against_the_official_openapi_schemas(
    mocks: StackMocks, stack: str, runtime: str
) -> None:
    run_stack(stack, servingRuntime=runtime)
    objects = mocks.kubernetes_objects()
    assert len(objects) >= len(SERVING_KINDS)
    errors = [e for o in objects for e in validation_errors(o)]
    assert errors == [], f"Kubernetes {kubernetes_version()}: {errors}"


def test_the_schema_check_rejects_a_misspelt_or_mistyped_field() -> None:
    """The validation above would catch a real mistake."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "spec": {"containers": [{"name": "c", "image": "i", "readinesProbe": {}}]}
            },
            "replicas": "three",
        },
    }
    errors = validation_errors(deployment)
    assert any("readinesProbe" in e for e in errors), errors
    assert any("spec/replicas" in e for e in errors), errors


@pytest.mark.parametrize(
    ("collector", "api_version"),
    [
        ("prometheus-operator", "monitoring.coreos.com/v1"),
        ("gke-managed-prometheus", "monitoring.googleapis.com/v1"),
    ],
)
def test_collector_objects_validate_against_their_projects_crds(
    mocks: StackMocks, collector: str, api_version: str
) -> None:
    """The monitor and the SLO rules are checked against the CRDs their collectors install,
    and that check would catch a mistake."""
    run_stack("dev", metricsCollector=collector, metricsScrapeNamespaces=["monitoring"])
    collected = [o for o in mocks.kubernetes_objects() if o["apiVersion"] == api_version]
    # Registration order is not fixed: the rules are the object that holds rule groups.
    (rules,) = [o for o in collected if "groups" in o["spec"]]
    (monitor,) = [o for o in collected if o is not rules]
    assert validation_errors(monitor) == []
    assert validation_errors(rules) == []
    misspelt = {**monitor, "spec": {**monitor["spec"], "endpoint": monitor["spec"]["endpoints"]}}
    del misspelt["spec"]["endpoints"]
    assert any("endpoint" in e for e in validation_errors(misspelt))
    (group,) = rules["spec"]["groups"]
    unnamed = {**rules, "spec": {"groups": [{k: v for k, v in group.items() if k != "name"}]}}
    assert any("name" in e for e in validation_errors(unnamed))


def test_the_build_ca_bundle_from_the_environment_becomes_a_build_secret(
    mocks: StackMocks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("MODEL_BUILD_CA_BUNDLE", str(bundle))
    run_stack("dev")
    image = mocks.one("docker-build:index:Image")
    assert image.inputs["secrets"]["ca_bundle"] == bundle.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read it"), ("not a certificate", "holds no PEM certificate")],
)
def test_a_bad_build_ca_bundle_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | None, message: str
) -> None:
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_text(content)
    monkeypatch.setenv("MODEL_BUILD_CA_BUNDLE", str(bundle))
    with pytest.raises(pulumi.RunError, match=f"MODEL_BUILD_CA_BUNDLE={bundle}: {message}"):
        run_stack("dev")


def test_each_stack_exports_the_contract_its_config_map_declares(mocks: StackMocks) -> None:
    outputs = run_stack("dev")
    contract = Contract.from_output(outputs[stack_outputs.MODEL_CONTRACT])
    config_map = objects_by_kind(mocks)["ConfigMap"]
    assert Contract.from_config_map_data(config_map["data"]) == contract
    assert (contract.model, contract.signature) == ("digits", "serving_default")
    assert outputs[stack_outputs.MODEL_PATH] == "model/export/digits"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_shipped_stacks_declare_without_a_warning(
    mocks: StackMocks, monkeypatch: pytest.MonkeyPatch, stack: str
) -> None:
    """A newcomer's first `make up` (dev) and prod run clean: the warnings (a rollout without a
    surge pod, a canary that cannot fit) are for stacks that need them."""
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_, **__: warnings.append(message))
    run_stack(stack)
    assert warnings == []
