"""The policy pack's rules: a passing and a failing object for each, and the real stacks.

The stacks are evaluated under mocks and their registered inputs handed to the rules exactly as
the pack hands the engine's (`Resource(type, urn, props)`); the engine test proves the pack
itself fails a real preview.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from jsonschema import Draft7Validator

from model_contract.contract import ACCEPT_BREAKING_ANNOTATION, CONFIG_MAP_COMPONENT, Contract
from model_contract.saved_model import Signature
from policy.rules import CONFIG_SCHEMAS, RULES, Resource, Violation, review
from tests.unit.harness import PROJECT, StackMocks, run_stack
from tests.unit.test_model_contract import BOTH_OUTPUTS, OLD, signatures, tensor
from tests.unit.test_settings import _eks_overrides

DIGEST = "sha256:" + "ab" * 32
LABELS = {"app": "digits"}


def _urn(kind_type: str, name: str, stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{kind_type}::{name}"


def _container(**changes: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "server",
        "image": f"127.0.0.1:5000/model-server@{DIGEST}",
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
            "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
        },
        "startupProbe": {"httpGet": {"path": "/v1/models/digits", "port": 8501}},
        "readinessProbe": {"httpGet": {"path": "/v1/models/digits", "port": 8501}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8501}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }
    container.update(changes)
    return container


def deployment(name: str = "digits-server", stack: str = "dev", **pod: Any) -> Resource:
    pod_spec: dict[str, Any] = {
        "containers": [_container()],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"nvidia.com/gpu.product": "nvidia-l4"},
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    pod_spec.update(pod)
    props = {
        "metadata": {"name": name, "namespace": "model-serving"},
        "spec": {
            "selector": {"matchLabels": LABELS},
            "template": {"metadata": {"labels": LABELS}, "spec": pod_spec},
        },
    }
    return Resource(
        "kubernetes:apps/v1:Deployment", _urn("kubernetes:apps/v1:Deployment", name, stack), props
    )


def hpa(target: str = "digits-server", max_replicas: int = 3, stack: str = "dev") -> Resource:
    props = {
        "metadata": {"name": "digits-hpa", "namespace": "model-serving"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
        },
    }
    type_ = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
    return Resource(type_, _urn(type_, "hpa", stack), props)


def pdb(selector: dict[str, Any] | None = None) -> Resource:
    props = {
        "metadata": {"name": "digits-pdb", "namespace": "model-serving"},
        "spec": {"selector": selector or {"matchLabels": LABELS}, "maxUnavailable": 1},
    }
    return Resource(
        "kubernetes:policy/v1:PodDisruptionBudget",
        _urn("kubernetes:policy/v1:PodDisruptionBudget", "pdb"),
        props,
    )


def service(service_type: str, annotations: dict[str, str] | None = None, **spec: Any) -> Resource:
    props = {
        "metadata": {
            "name": "digits",
            "namespace": "model-serving",
            "annotations": annotations or {},
        },
        "spec": {"type": service_type, "selector": LABELS, **spec},
    }
    return Resource("kubernetes:core/v1:Service", _urn("kubernetes:core/v1:Service", "svc"), props)


def violations(
    rule_name: str, *resources: Resource, config: dict[str, Any] | None = None
) -> list[Violation]:
    found = review(list(resources), {rule_name: config} if config else None)
    return [v for name, v in found if name == rule_name]


def with_container(**changes: Any) -> Resource:
    return deployment(containers=[_container(**changes)])


def test_every_rule_has_a_unique_kebab_case_name_and_a_description() -> None:
    names = [rule.name for rule in RULES]
    assert len(set(names)) == len(names), names
    assert all(rule.description and rule.name == rule.name.lower() for rule in RULES)


def test_the_declared_rules_are_the_ones_these_tests_exercise() -> None:
    """The rule names this module's tests pass to violations(): a rule dropped from RULES fails
    here (its tests expecting no violation would still pass), and a new rule needs no count
    edited, only tests of its own."""
    calls = [
        node
        for node in ast.walk(ast.parse(Path(__file__).read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "violations"
    ]
    exercised = {c.args[0].value for c in calls if c.args and isinstance(c.args[0], ast.Constant)}
    assert exercised == {rule.name for rule in RULES}


def test_every_config_key_has_a_schema_its_default_meets() -> None:
    for rule in RULES:
        for key, default in rule.config_defaults.items():
            Draft7Validator(CONFIG_SCHEMAS[key]).validate(default)
    Draft7Validator(CONFIG_SCHEMAS["liveContract"]).validate(LIVE.output())
    production = {
        r.name: r.config_defaults["productionStacks"]
        for r in RULES
        if "productionStacks" in r.config_defaults
    }
    # The rules scoped to production agree on which stacks those are: prod.
    assert production and all(stacks == ["prod"] for stacks in production.values()), production


def test_container_resources_passes_a_container_with_requests_limits_and_a_gpu() -> None:
    assert violations("container-resources", deployment()) == []


def test_container_resources_names_each_missing_request_and_limit() -> None:
    bad = with_container(resources={"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": "1"}})
    [found] = violations("container-resources", bad)
    assert "Deployment model-serving/digits-server: container 'server'" in found.message
    assert "requests.memory, limits.cpu, limits.memory" in found.message
    assert "cpuRequest" in found.message


def test_container_resources_requires_a_gpu_limit_on_a_gpu_pool_but_not_elsewhere() -> None:
    no_gpu = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    [found] = violations("container-resources", with_container(resources=no_gpu))
    assert "runs on the GPU pool (it tolerates the nvidia.com/gpu taint)" in found.message
    assert "gpuCount" in found.message
    off_pool = deployment(
        containers=[_container(resources=no_gpu)], tolerations=[], nodeSelector={}
    )
    assert violations("container-resources", off_pool) == []
    by_label = deployment(containers=[_container(resources=no_gpu)], tolerations=[])
    assert (
        "selects nodes by nvidia.com/gpu.product"
        in violations("container-resources", by_label)[0].message
    )


def test_probes_pass_with_all_three_and_name_the_missing_ones() -> None:
    assert violations("probes", deployment()) == []
    container = _container()
    del container["startupProbe"], container["livenessProbe"]
    [found] = violations("probes", deployment(containers=[container]))
    assert "container 'server' has no startupProbe, livenessProbe" in found.message


@pytest.mark.parametrize(
    "image",
    [
        "127.0.0.1:5000/model-server:dev",
        "model-server",
        "127.0.0.1:5000/model-server@",
        "x@sha256:abc",
    ],
)
def test_image_digest_rejects_tags_and_malformed_digests(image: str) -> None:
    [found] = violations("image-digest", with_container(image=image))
    assert f"image '{image}' is not pinned by digest" in found.message


def test_image_digest_accepts_a_digest_with_or_without_a_tag() -> None:
    assert violations("image-digest", deployment()) == []
    tagged = with_container(image=f"us-docker.pkg.dev/p/r/server:prod@{DIGEST}")
    assert violations("image-digest", tagged) == []


def test_a_load_balancer_without_an_internal_annotation_or_open_to_all_is_refused() -> None:
    [public] = violations("no-public-load-balancer", service("LoadBalancer"))
    assert "Service model-serving/digits is a LoadBalancer without an internal" in public.message
    internal_but_open = service(
        "LoadBalancer",
        {"networking.gke.io/load-balancer-type": "Internal"},
        loadBalancerSourceRanges=["10.0.0.0/8", "0.0.0.0/0"],
    )
    [open_range] = violations("no-public-load-balancer", internal_but_open)
    assert "admits 0.0.0.0/0" in open_range.message


@pytest.mark.parametrize(
    "annotation",
    [
        {"networking.gke.io/load-balancer-type": "Internal"},
        {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
        {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
    ],
)
def test_internal_load_balancers_and_cluster_ips_pass(annotation: dict[str, str]) -> None:
    assert violations("no-public-load-balancer", service("LoadBalancer", annotation)) == []
    assert violations("no-public-load-balancer", service("ClusterIP")) == []


def test_restricted_security_context_passes_the_restricted_profile() -> None:
    assert violations("restricted-security-context", deployment()) == []


def test_restricted_security_context_lists_every_breach() -> None:
    bad = deployment(
        containers=[
            _container(
                securityContext={"privileged": True},
                ports=[{"containerPort": 8501, "hostPort": 8501}],
            )
        ],
        hostNetwork=True,
        securityContext={},
        volumes=[{"name": "sock", "hostPath": {"path": "/var/run"}}],
    )
    [found] = violations("restricted-security-context", bad)
    for breach in (
        "hostNetwork: true",
        "hostPath volume 'sock'",
        "does not set allowPrivilegeEscalation: false",
        "is privileged",
        "does not drop ALL capabilities",
        "may run as root",
        "no RuntimeDefault or Localhost seccomp profile",
        "binds hostPort 8501",
    ):
        assert breach in found.message, breach


def test_node_agent_namespaces_are_exempt_and_configurable() -> None:
    agent = copy.deepcopy(deployment(hostNetwork=True))
    agent.props["metadata"]["namespace"] = "kube-system"
    assert violations("restricted-security-context", agent) == []
    [rule] = [r for r in RULES if r.name == "restricted-security-context"]
    assert list(rule.violations([agent], {"privilegedNamespaces": []}))


def test_a_scalable_deployment_needs_a_budget_selecting_its_pods() -> None:
    [found] = violations("disruption-budget", deployment(), hpa(max_replicas=3))
    assert (
        "can run 3 replicas but no PodDisruptionBudget in model-serving selects its pods"
        in found.message
    )
    assert violations("disruption-budget", deployment(), hpa(max_replicas=3), pdb()) == []
    other = pdb({"matchLabels": {"app": "other"}})
    assert violations("disruption-budget", deployment(), hpa(max_replicas=3), other)
    expression = pdb({"matchExpressions": [{"key": "app", "operator": "In", "values": ["digits"]}]})
    assert violations("disruption-budget", deployment(), hpa(max_replicas=3), expression) == []


def test_a_single_replica_deployment_needs_no_budget() -> None:
    assert violations("disruption-budget", deployment(), hpa(max_replicas=1)) == []
    assert violations("disruption-budget", deployment()) == []


def test_a_production_deployment_needs_an_autoscaler_and_dev_does_not() -> None:
    prod = deployment(stack="prod")
    [found] = violations("hpa-in-production", prod)
    assert "in production stack 'prod' has no HorizontalPodAutoscaler" in found.message
    assert violations("hpa-in-production", prod, hpa(stack="prod")) == []
    assert violations("hpa-in-production", deployment(stack="dev")) == []
    assert violations("hpa-in-production", prod, hpa(target="something-else", stack="prod"))


LIVE = Contract(model="digits", version=3, signature="serving_default", signatures=OLD)
BREAKING = signatures(
    inputs={"pixels": tensor([-1, 28, 28])},
    outputs={"probabilities": tensor([-1, 10])},
)


def contract_config_map(
    signatures: dict[str, Signature],
    *,
    version: int = 4,
    stack: str = "prod",
    accept: str | None = None,
) -> Resource:
    """The ConfigMap the program declares for a model's contract."""
    planned = Contract(
        model="digits", version=version, signature="serving_default", signatures=signatures
    )
    annotations = {"pulumi.com/patchForce": "true"}
    if accept is not None:
        annotations[ACCEPT_BREAKING_ANNOTATION] = accept
    props = {
        "metadata": {
            "name": "digits-contract",
            "namespace": "model-serving",
            "labels": {
                "app.kubernetes.io/name": "model-server",
                "app.kubernetes.io/instance": "digits",
                "app.kubernetes.io/component": CONFIG_MAP_COMPONENT,
                "app.kubernetes.io/managed-by": "pulumi",
            },
            "annotations": annotations,
        },
        "data": planned.config_map_data(),
    }
    type_ = "kubernetes:core/v1:ConfigMap"
    return Resource(type_, _urn(type_, "model-server-contract", stack), props)


def live(contract: Contract | None = LIVE) -> dict[str, Any]:
    """The rule's configuration as the pack receives it: through a protobuf Struct, which makes
    every number a float."""
    struct = struct_pb2.Struct()
    struct.update({"liveContract": contract.output() if contract else None})
    config: dict[str, Any] = json_format.MessageToDict(struct)
    return config


def fingerprint_of(signatures: dict[str, Signature]) -> str:
    return Contract("digits", 4, "serving_default", signatures).fingerprint


def test_a_breaking_contract_in_production_names_model_versions_changes_and_the_fix() -> None:
    [found] = violations("model-contract", contract_config_map(BREAKING), config=live())
    assert found.urn.endswith("::model-server-contract")
    assert found.message.startswith(
        "ConfigMap model-serving/digits-contract: model digits version 3 → 4 breaks the contract "
        "that production stack 'prod' serves to its clients: "
    )
    assert "`serving_default`: input `images` renamed to `pixels` (DT_FLOAT [-1, 28, 28])" in (
        found.message
    )
    assert "`serving_default`: output `classes` removed (DT_INT64 [-1])" in found.message
    new = fingerprint_of(BREAKING)
    assert (
        f"set the stack key gpu-model-serving:modelContractAcceptBreaking to {new} "
        f"(pulumi config set modelContractAcceptBreaking {new} --stack prod)"
    ) in found.message
    assert "Serve a model compatible with version 3" in found.message
    assert "stale" not in found.message


def test_an_override_naming_the_planned_contract_accepts_that_break() -> None:
    accepted = contract_config_map(BREAKING, accept=fingerprint_of(BREAKING))
    assert violations("model-contract", accepted, config=live()) == []


def test_a_stale_override_does_not_cover_a_later_break_and_says_so() -> None:
    earlier = signatures(inputs={"pixels": tensor([-1, 28, 28])})
    stale = contract_config_map(BREAKING, accept=fingerprint_of(earlier))
    [found] = violations("model-contract", stale, config=live())
    assert (
        "The stack's override gpu-model-serving:modelContractAcceptBreaking = "
        f"{fingerprint_of(earlier)} is stale: it names another contract's fingerprint"
    ) in found.message
    assert f"to {fingerprint_of(BREAKING)} (pulumi config set" in found.message


@pytest.mark.parametrize(
    "planned",
    [
        OLD,
        signatures(outputs={**BOTH_OUTPUTS, "logits": tensor([-1, 10])}),
        {**OLD, "classify": OLD["serving_default"]},
    ],
    ids=["unchanged", "new output", "new signature"],
)
def test_compatible_and_unchanged_contracts_pass(planned: dict[str, Signature]) -> None:
    assert violations("model-contract", contract_config_map(planned), config=live()) == []


def test_a_first_deploy_and_non_production_stacks_are_not_checked() -> None:
    assert violations("model-contract", contract_config_map(BREAKING), config=live(None)) == []
    assert violations("model-contract", contract_config_map(BREAKING)) == []
    dev = contract_config_map(BREAKING, stack="dev")
    assert violations("model-contract", dev, config=live()) == []
    dev_in_production = {**live(), "productionStacks": ["dev"]}
    assert violations("model-contract", dev, config=dev_in_production)


def test_only_the_contract_config_map_is_checked() -> None:
    other = copy.deepcopy(contract_config_map(BREAKING))
    other.props["metadata"]["labels"]["app.kubernetes.io/component"] = "settings"
    assert violations("model-contract", other, deployment(stack="prod"), config=live()) == []


def test_a_live_contract_or_config_map_that_is_not_a_contract_is_reported() -> None:
    [bad_live] = violations(
        "model-contract", contract_config_map(OLD), config={"liveContract": {"model": "digits"}}
    )
    assert "liveContract is not the live stack's modelContract output" in bad_live.message
    planned = contract_config_map(OLD)
    foreign = Resource(planned.type, planned.urn, {**planned.props, "data": {"a.yaml": "x: 1"}})
    [bad_data] = violations("model-contract", foreign, config=live())
    assert "is labelled app.kubernetes.io/component: model-contract but its data" in (
        bad_data.message
    )


def network_policy(ports: list[dict[str, Any]] | None, **selector: Any) -> Resource:
    ingress: dict[str, Any] = {"from": [{"podSelector": {}}]}
    if ports is not None:
        ingress["ports"] = ports
    props = {
        "metadata": {"name": "digits-server", "namespace": "model-serving"},
        "spec": {
            "podSelector": selector or {"matchLabels": LABELS},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [ingress],
        },
    }
    return Resource(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        _urn("kubernetes:networking.k8s.io/v1:NetworkPolicy", "policy"),
        props,
    )


SERVED_PORTS = [{"name": "http", "containerPort": 8501}, {"name": "grpc", "containerPort": 8500}]


def serving_both_ports() -> Resource:
    return deployment(containers=[_container(ports=SERVED_PORTS)])


@pytest.mark.parametrize(
    "policy",
    [
        network_policy([{"port": 8501}, {"port": 8500}]),
        network_policy([{"port": "http"}, {"port": "grpc"}]),
        network_policy(None),
        network_policy([{"port": 8501}, {"port": 8500}], matchLabels={}),
    ],
    ids=["by number", "by name", "all ports", "every pod of the namespace"],
)
def test_network_policy_passes_when_each_served_port_is_admitted(policy: Resource) -> None:
    assert violations("network-policy", serving_both_ports(), policy) == []


def test_network_policy_names_a_served_port_no_policy_admits() -> None:
    (found,) = violations("network-policy", serving_both_ports(), network_policy([{"port": 8501}]))
    assert "serves port grpc (8500) but no NetworkPolicy selecting its pods admits it" in (
        found.message
    )


def test_network_policy_requires_a_policy_selecting_the_pods() -> None:
    elsewhere = network_policy(None, matchLabels={"app": "other"})
    for resources in ([serving_both_ports()], [serving_both_ports(), elsewhere]):
        (found,) = violations("network-policy", *resources)
        assert "no NetworkPolicy with Ingress selects its pods" in found.message


# The pack against what the declared stacks create.
def stack_resources(mocks: StackMocks, stack: str, **overrides: object) -> list[Resource]:
    run_stack(stack, **overrides)
    return [
        Resource(c.type, _urn(c.type, c.name, stack), c.inputs)
        for c in mocks.created
        if not c.type.startswith("pulumi:providers:")
    ]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_declared_stacks_pass_every_rule(mocks: StackMocks, stack: str) -> None:
    resources = stack_resources(mocks, stack)
    assert any(r.kind == "Deployment" for r in resources)
    assert review(resources) == []


def test_gpu_count_zero_on_the_gpu_pool_breaks_container_resources(mocks: StackMocks) -> None:
    found = review(stack_resources(mocks, "dev", gpuCount=0))
    assert [name for name, _ in found] == ["container-resources"]


def test_the_eks_variant_of_prod_passes_every_rule(mocks: StackMocks) -> None:
    """The EKS variant adds the device plugin DaemonSet, which the pack checks like any
    workload: without resources or pinned by tag, it breaks container-resources and
    image-digest."""
    resources = stack_resources(mocks, "prod", **_eks_overrides())
    assert any(r.kind == "DaemonSet" for r in resources)
    assert review(resources) == []
