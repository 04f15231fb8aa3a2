"""The policy pack's rules: a passing and a failing object for each, and the real stacks.

The stacks are evaluated under mocks and their registered inputs handed to the rules exactly as
the pack hands the engine's (`Resource(type, urn, props)`); the engine test proves the pack
itself fails a real preview.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policy.rules import RULES, Resource, Violation, review
from tests.unit.harness import PROJECT, StackMocks, run_stack
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


def violations(rule_name: str, *resources: Resource) -> list[Violation]:
    return [v for name, v in review(list(resources)) if name == rule_name]


def with_container(**changes: Any) -> Resource:
    return deployment(containers=[_container(**changes)])


def test_every_rule_has_a_unique_kebab_case_name_and_a_description() -> None:
    names = [rule.name for rule in RULES]
    assert len(set(names)) == len(names) == 8
    assert all(rule.description and rule.name == rule.name.lower() for rule in RULES)


# --- container-resources --------------------------------------------------------------------


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


# --- probes ---------------------------------------------------------------------------------


def test_probes_pass_with_all_three_and_name_the_missing_ones() -> None:
    assert violations("probes", deployment()) == []
    container = _container()
    del container["startupProbe"], container["livenessProbe"]
    [found] = violations("probes", deployment(containers=[container]))
    assert "container 'server' has no startupProbe, livenessProbe" in found.message


# --- image-digest ---------------------------------------------------------------------------


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


# --- no-public-load-balancer ----------------------------------------------------------------


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


# --- restricted-security-context ------------------------------------------------------------


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


# --- disruption-budget ----------------------------------------------------------------------


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


# --- hpa-in-production ----------------------------------------------------------------------


def test_a_production_deployment_needs_an_autoscaler_and_dev_does_not() -> None:
    prod = deployment(stack="prod")
    [found] = violations("hpa-in-production", prod)
    assert "in production stack 'prod' has no HorizontalPodAutoscaler" in found.message
    assert violations("hpa-in-production", prod, hpa(stack="prod")) == []
    assert violations("hpa-in-production", deployment(stack="dev")) == []
    assert violations("hpa-in-production", prod, hpa(target="something-else", stack="prod"))


# --- the real stacks ------------------------------------------------------------------------


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
    """Before #9 hardened it (defect 6), the device plugin DaemonSet broke container-resources
    (no resources) and image-digest (by tag): the pack caught both."""
    resources = stack_resources(mocks, "prod", **_eks_overrides())
    assert any(r.kind == "DaemonSet" for r in resources)
    assert review(resources) == []
