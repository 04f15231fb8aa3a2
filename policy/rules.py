"""The platform's rules for what a stack may deploy, as plain functions over the planned objects.

`policy/__main__.py` serves them as a CrossGuard policy pack that the engine runs on every
preview and up; the tests call them directly. A rule reads Kubernetes objects as the engine
hands them over: the provider's checked inputs, camelCase, as Mappings and Sequences (during a
preview the pack wraps them in proxies that raise on a value not known yet, and the engine then
skips that rule for that object until `up`, when the value is known).

Each message names the object and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model_contract.contract import ACCEPT_BREAKING_ANNOTATION, CONFIG_MAP_COMPONENT, Contract
from model_contract.diff import diff

PACK_NAME = "gpu-model-serving"

WORKLOAD_POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Long-running servers: what probes and disruption budgets are about.
SERVING_KINDS = ("Deployment", "StatefulSet")
GPU_RESOURCE = "nvidia.com/gpu"
# Node labels by which a pod selects a GPU pool (GKE, the NVIDIA GPU operator, EKS).
GPU_NODE_LABELS = (
    "cloud.google.com/gke-accelerator",
    "nvidia.com/gpu.product",
    "k8s.amazonaws.com/accelerator",
)
# Service annotations that make a cloud load balancer internal (GKE, AWS, Azure).
INTERNAL_LOAD_BALANCER_ANNOTATIONS: Mapping[str, str] = {
    "networking.gke.io/load-balancer-type": "internal",
    "cloud.google.com/load-balancer-type": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
}
OPEN_RANGES = ("0.0.0.0/0", "::/0")
DIGEST_PINNED_IMAGE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
DEFAULT_PRODUCTION_STACKS = ("prod",)
# One key, one default, for every rule that applies to production stacks only. CrossGuard
# configures each policy on its own, so a config file that changes it sets it for each of them.
PRODUCTION_STACKS_CONFIG: Mapping[str, Any] = {"productionStacks": list(DEFAULT_PRODUCTION_STACKS)}
COMPONENT_LABEL = "app.kubernetes.io/component"
# The program's stack key, with its project namespace, that sets ACCEPT_BREAKING_ANNOTATION.
ACCEPT_BREAKING_KEY = "gpu-model-serving:modelContractAcceptBreaking"
# Node agents (device plugins) need host access that the restricted profile forbids.
DEFAULT_PRIVILEGED_NAMESPACES = ("kube-system",)


@dataclass(frozen=True)
class Resource:
    """One resource of the stack as the engine plans it."""

    type: str
    """Pulumi type token, e.g. kubernetes:apps/v1:Deployment."""
    urn: str
    props: Mapping[str, Any]

    @property
    def kind(self) -> str:
        """The Kubernetes kind for a kubernetes:* type, else ''."""
        return self.type.rpartition(":")[2] if self.type.startswith("kubernetes:") else ""

    @property
    def namespace(self) -> str:
        return str(_get(self.props, "metadata", "namespace") or "default")

    @property
    def object_name(self) -> str:
        return str(_get(self.props, "metadata", "name") or self.urn.rpartition("::")[2])

    @property
    def label(self) -> str:
        """How messages name the object: `Deployment model-serving/digits-server`."""
        return f"{self.kind} {self.namespace}/{self.object_name}"

    @property
    def stack(self) -> str:
        """The stack, from the URN (urn:pulumi:<stack>::<project>::...)."""
        return self.urn.partition("::")[0].rpartition(":")[2]


@dataclass(frozen=True)
class Violation:
    urn: str
    message: str


STRING_LIST_SCHEMA: Mapping[str, Any] = {"type": "array", "items": {"type": "string"}}
CONFIG_SCHEMAS: Mapping[str, Mapping[str, Any]] = {
    "privilegedNamespaces": STRING_LIST_SCHEMA,
    "productionStacks": STRING_LIST_SCHEMA,
    # The live stack's modelContract output (Contract.output()), which the engine passes; null
    # for a stack never deployed.
    "liveContract": {"type": ["object", "null"]},
}
"""The JSON Schema of each configuration key a rule reads (the engine checks the policy pack's
configuration against it)."""

ResourceCheck = Callable[[Resource, Mapping[str, Any]], Iterator[str]]
StackCheck = Callable[[Sequence[Resource], Mapping[str, Any]], Iterator[Violation]]


@dataclass(frozen=True)
class Rule:
    """A rule checks each resource as it is registered (so `up` stops before applying it) or,
    for rules across objects, the whole stack once."""

    name: str
    description: str
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    config_defaults: Mapping[str, Any] = field(default_factory=dict)

    def config(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**self.config_defaults, **(overrides or {})}

    def violations(
        self, resources: Sequence[Resource], overrides: Mapping[str, Any] | None = None
    ) -> Iterator[Violation]:
        config = self.config(overrides)
        if self.resource_check is not None:
            for resource in resources:
                for message in self.resource_check(resource, config):
                    yield Violation(resource.urn, message)
        if self.stack_check is not None:
            yield from self.stack_check(resources, config)


def _get(value: Any, *path: str) -> Any:
    """value[path[0]][path[1]]..., or None where a key is absent."""
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _items(value: Any) -> list[Any]:
    """A list value (a proxy is a Sequence, not a list), or [] when absent."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _pod_spec(resource: Resource) -> Mapping[str, Any] | None:
    path = WORKLOAD_POD_SPEC_PATHS.get(resource.kind)
    spec = _get(resource.props, *path) if path else None
    return spec if isinstance(spec, Mapping) else None


def _containers(pod_spec: Mapping[str, Any], *, init: bool = True) -> list[Mapping[str, Any]]:
    fields = ("initContainers", "containers") if init else ("containers",)
    return [c for field in fields for c in _items(pod_spec.get(field))]


def _quantity_at_least_one(value: Any) -> bool:
    try:
        return int(str(value)) >= 1
    except ValueError:
        return False


def _gpu_pool_marker(pod_spec: Mapping[str, Any]) -> str | None:
    """What places the pod on a GPU pool (a toleration or a node label), or None."""
    for toleration in _items(pod_spec.get("tolerations")):
        if toleration.get("key") == GPU_RESOURCE:
            return f"tolerates the {GPU_RESOURCE} taint"
    for label in _get(pod_spec, "nodeSelector") or {}:
        if label in GPU_NODE_LABELS:
            return f"selects nodes by {label}"
    return None


# --- Per-resource rules ---------------------------------------------------------------------


def container_resources(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    pod_spec = _pod_spec(resource)
    if pod_spec is None:
        return
    for container in _containers(pod_spec):
        resources = container.get("resources") or {}
        missing = [
            f"{section}.{name}"
            for section in ("requests", "limits")
            for name in ("cpu", "memory")
            if _get(resources, section, name) is None
        ]
        if missing:
            yield (
                f"{resource.label}: container '{container.get('name')}' sets no "
                f"{', '.join(missing)}; give every container CPU and memory requests and limits "
                "(stack config cpuRequest, cpuLimit, memoryRequest, memoryLimit)"
            )
    marker = _gpu_pool_marker(pod_spec)
    # A node agent (DaemonSet) on the pool serves the node and claims no GPU by design.
    if marker is None or resource.kind == "DaemonSet":
        return
    if not any(
        _quantity_at_least_one(_get(c.get("resources") or {}, "limits", GPU_RESOURCE))
        for c in _containers(pod_spec, init=False)
    ):
        yield (
            f"{resource.label} runs on the GPU pool (it {marker}) but no container has an "
            f"{GPU_RESOURCE} limit, so each pod would hold a GPU node without using its GPU; "
            "set gpuCount to 1 or more"
        )


def probes(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    pod_spec = _pod_spec(resource)
    if pod_spec is None or resource.kind not in SERVING_KINDS:
        return
    for container in _containers(pod_spec, init=False):
        missing = [
            probe
            for probe in ("startupProbe", "readinessProbe", "livenessProbe")
            if container.get(probe) is None
        ]
        if missing:
            yield (
                f"{resource.label}: container '{container.get('name')}' has no "
                f"{', '.join(missing)}; a serving container needs all three, so a rollout waits "
                "for the model to load, traffic reaches only ready pods and a hung server restarts"
            )


def image_digest(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    pod_spec = _pod_spec(resource)
    if pod_spec is None:
        return
    for container in _containers(pod_spec):
        image = str(container.get("image"))
        if not DIGEST_PINNED_IMAGE.match(image):
            yield (
                f"{resource.label}: container '{container.get('name')}' image '{image}' is not "
                "pinned by digest; deploy the pushed image as <repository>@sha256:<digest> so "
                "every pod runs the same bits and a new build shows up as a diff"
            )


def no_public_load_balancer(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.kind != "Service" or _get(resource.props, "spec", "type") != "LoadBalancer":
        return
    annotations = _get(resource.props, "metadata", "annotations") or {}
    internal = any(
        str(annotations.get(key, "")).lower() == value
        for key, value in INTERNAL_LOAD_BALANCER_ANNOTATIONS.items()
    )
    if not internal:
        yield (
            f"{resource.label} is a LoadBalancer without an internal-load-balancer annotation, so "
            "the cloud gives it a public address; annotate it internal (e.g. "
            "networking.gke.io/load-balancer-type: Internal) or use serviceType ClusterIP behind "
            "the gateway"
        )
    ranges = [str(r) for r in _items(_get(resource.props, "spec", "loadBalancerSourceRanges"))]
    open_ranges = [r for r in ranges if r in OPEN_RANGES]
    if open_ranges:
        yield (
            f"{resource.label} admits {', '.join(open_ranges)} in loadBalancerSourceRanges; "
            "list only the ranges that must reach the model"
        )


def restricted_security_context(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    """The Pod Security Standard `restricted` profile, checked before the API server rejects it."""
    pod_spec = _pod_spec(resource)
    if pod_spec is None or resource.namespace in config["privilegedNamespaces"]:
        return
    pod_context = pod_spec.get("securityContext") or {}
    problems = [
        f"{field}: true" for field in ("hostNetwork", "hostPID", "hostIPC") if pod_spec.get(field)
    ]
    problems += [
        f"hostPath volume '{volume.get('name')}'"
        for volume in _items(pod_spec.get("volumes"))
        if volume.get("hostPath") is not None
    ]
    for container in _containers(pod_spec):
        name = container.get("name")
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container '{name}' does not set allowPrivilegeEscalation: false")
        if context.get("privileged"):
            problems.append(f"container '{name}' is privileged")
        if "ALL" not in [str(c) for c in _items(_get(context, "capabilities", "drop"))]:
            problems.append(f"container '{name}' does not drop ALL capabilities")
        added = [str(c) for c in _items(_get(context, "capabilities", "add"))]
        if [c for c in added if c != "NET_BIND_SERVICE"]:
            problems.append(f"container '{name}' adds capabilities {', '.join(added)}")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"container '{name}' may run as root (runAsNonRoot is not true)")
        if 0 in (context.get("runAsUser"), pod_context.get("runAsUser")):
            problems.append(f"container '{name}' runs as user 0")
        seccomp = _get(context, "seccompProfile", "type") or _get(
            pod_context, "seccompProfile", "type"
        )
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(
                f"container '{name}' has no RuntimeDefault or Localhost seccomp profile"
            )
        problems += [
            f"container '{name}' binds hostPort {port.get('hostPort')}"
            for port in _items(container.get("ports"))
            if port.get("hostPort")
        ]
    if problems:
        yield (
            f"{resource.label} breaks the restricted Pod Security Standard: "
            f"{'; '.join(problems)}. Set them in the pod and container securityContext (the "
            "serving namespace enforces restricted, so the API server would reject the pods)"
        )


def model_contract(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    """A production stack does not break its model's clients unless it accepts that very break:
    the planned contract is compared with the live stack's, and the override names the planned
    contract's fingerprint, so that it cannot also wave through a later, different break."""
    if resource.kind != "ConfigMap" or (
        _get(resource.props, "metadata", "labels", COMPONENT_LABEL) != CONFIG_MAP_COMPONENT
    ):
        return
    live_output = config.get("liveContract")
    if live_output is None or resource.stack not in config["productionStacks"]:
        return
    try:
        live = Contract.from_output(live_output)
    except ValueError as error:
        yield (
            f"{resource.label}: the policy configuration's liveContract is not the live stack's "
            f"modelContract output ({error}); the engine passes that output, or null for a "
            "stack never deployed"
        )
        return
    try:
        planned = Contract.from_config_map_data(_get(resource.props, "data") or {})
    except ValueError as error:
        yield (
            f"{resource.label} is labelled {COMPONENT_LABEL}: {CONFIG_MAP_COMPONENT} but its data "
            f"is {error}; declare it from Contract.config_map_data()"
        )
        return
    breaking = diff(live.signatures, planned.signatures).breaking
    accepted = _get(resource.props, "metadata", "annotations", ACCEPT_BREAKING_ANNOTATION)
    if not breaking or accepted == planned.fingerprint:
        return
    model = (
        f"model {planned.model}"
        if live.model == planned.model
        else f"model {live.model} → {planned.model}"
    )
    stale = (
        f" The stack's override {ACCEPT_BREAKING_KEY} = {accepted} is stale: it names another "
        "contract's fingerprint, and an override accepts only the contract it names."
        if accepted
        else ""
    )
    yield (
        f"{resource.label}: {model} version {live.version} → {planned.version} breaks the "
        f"contract that production stack '{resource.stack}' serves to its clients: "
        f"{'; '.join(change.text for change in breaking)}.{stale} Serve a model compatible "
        f"with version {live.version}, or accept this break (and only this one): set the stack "
        f"key {ACCEPT_BREAKING_KEY} to {planned.fingerprint} (pulumi config set "
        f"modelContractAcceptBreaking {planned.fingerprint} --stack {resource.stack})"
    )


# --- Stack rules (cross-object) -------------------------------------------------------------


def _selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Whether a LabelSelector selects `labels` (an empty or absent one selects nothing here)."""
    match_labels = _get(selector, "matchLabels") or {}
    expressions = _items(_get(selector, "matchExpressions"))
    if not match_labels and not expressions:
        return False
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expression in expressions:
        key, operator = expression.get("key"), expression.get("operator")
        values = [str(v) for v in _items(expression.get("values"))]
        present = key in labels
        if not {
            "In": present and str(labels.get(key)) in values,
            "NotIn": not present or str(labels.get(key)) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(str(operator), False):
            return False
    return True


def _autoscalers_by_target(resources: Sequence[Resource]) -> dict[tuple[str, str, str], Resource]:
    """HorizontalPodAutoscalers by (namespace, kind, name) of the workload they scale."""
    return {
        (
            hpa.namespace,
            str(_get(hpa.props, "spec", "scaleTargetRef", "kind")),
            str(_get(hpa.props, "spec", "scaleTargetRef", "name")),
        ): hpa
        for hpa in resources
        if hpa.kind == "HorizontalPodAutoscaler"
    }


def disruption_budget(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[Violation]:
    autoscalers = _autoscalers_by_target(resources)
    budgets = [r for r in resources if r.kind == "PodDisruptionBudget"]
    for workload in resources:
        if workload.kind not in SERVING_KINDS:
            continue
        hpa = autoscalers.get((workload.namespace, workload.kind, workload.object_name))
        most = max(
            int(_get(workload.props, "spec", "replicas") or 1),
            int(_get(hpa.props, "spec", "maxReplicas") or 1) if hpa else 1,
        )
        if most <= 1:
            continue
        labels = _get(workload.props, "spec", "template", "metadata", "labels") or {}
        if not any(
            b.namespace == workload.namespace
            and _selector_matches(_get(b.props, "spec", "selector"), labels)
            for b in budgets
        ):
            yield Violation(
                workload.urn,
                f"{workload.label} can run {most} replicas but no PodDisruptionBudget in "
                f"{workload.namespace} selects its pods, so a node drain or upgrade may take "
                "them all down at once; add one selecting its pod labels (pdbMaxUnavailable)",
            )


def _selects(policy: Resource, labels: Mapping[str, Any]) -> bool:
    """Whether a NetworkPolicy's podSelector selects `labels` (an empty one selects every pod
    of its namespace)."""
    selector = _get(policy.props, "spec", "podSelector") or {}
    if not _get(selector, "matchLabels") and not _items(_get(selector, "matchExpressions")):
        return True
    return _selector_matches(selector, labels)


def _admits(policies: Sequence[Resource], port: Mapping[str, Any]) -> bool:
    """Whether an ingress rule of `policies` admits a container port (by number or name; a
    rule without ports admits them all)."""
    wanted = {port.get("containerPort"), port.get("name")} - {None}
    for policy in policies:
        for rule in _items(_get(policy.props, "spec", "ingress")):
            ports = _items(rule.get("ports"))
            if not ports or any(p.get("port") in wanted for p in ports):
                return True
    return False


def network_policy(resources: Sequence[Resource], config: Mapping[str, Any]) -> Iterator[Violation]:
    policies = [
        r
        for r in resources
        if r.kind == "NetworkPolicy"
        and "Ingress" in (_items(_get(r.props, "spec", "policyTypes")) or ["Ingress"])
    ]
    for workload in resources:
        if workload.kind not in SERVING_KINDS:
            continue
        labels = _get(workload.props, "spec", "template", "metadata", "labels") or {}
        selecting = [
            p for p in policies if p.namespace == workload.namespace and _selects(p, labels)
        ]
        if not selecting:
            yield Violation(
                workload.urn,
                f"{workload.label}: no NetworkPolicy with Ingress selects its pods, so any pod "
                "of the cluster may call every port; declare one admitting only its clients "
                "(allowedIngressNamespaces, allowedIngressCidrs)",
            )
            continue
        pod_spec = _pod_spec(workload) or {}
        for container in _containers(pod_spec, init=False):
            for port in _items(container.get("ports")):
                if not _admits(selecting, port):
                    name = port.get("name") or port.get("containerPort")
                    yield Violation(
                        workload.urn,
                        f"{workload.label}: container {container.get('name')} serves port "
                        f"{name} ({port.get('containerPort')}) but no NetworkPolicy selecting "
                        "its pods admits it, so no client can reach it; add it to the "
                        "policy's ingress ports",
                    )


def hpa_in_production(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> Iterator[Violation]:
    autoscalers = _autoscalers_by_target(resources)
    for workload in resources:
        if workload.kind != "Deployment" or workload.stack not in config["productionStacks"]:
            continue
        if (workload.namespace, workload.kind, workload.object_name) not in autoscalers:
            yield Violation(
                workload.urn,
                f"{workload.label} in production stack '{workload.stack}' has no "
                "HorizontalPodAutoscaler targeting it; production serving must scale with load "
                "(hpaMinReplicas, hpaMaxReplicas, hpaMetric)",
            )


RULES: tuple[Rule, ...] = (
    Rule(
        "container-resources",
        "Every container sets CPU and memory requests and limits; pods on a GPU pool claim a GPU.",
        resource_check=container_resources,
    ),
    Rule(
        "probes",
        "Every serving container has startup, readiness and liveness probes.",
        resource_check=probes,
    ),
    Rule(
        "image-digest",
        "Every container image is pinned by digest.",
        resource_check=image_digest,
    ),
    Rule(
        "no-public-load-balancer",
        "A LoadBalancer Service is internal and not open to the whole internet.",
        resource_check=no_public_load_balancer,
    ),
    Rule(
        "restricted-security-context",
        "Pods meet the restricted Pod Security Standard (outside node-agent namespaces).",
        resource_check=restricted_security_context,
        config_defaults={"privilegedNamespaces": list(DEFAULT_PRIVILEGED_NAMESPACES)},
    ),
    Rule(
        "model-contract",
        "A production stack does not break its model's contract with clients unless it "
        "accepts that very change.",
        resource_check=model_contract,
        config_defaults={**PRODUCTION_STACKS_CONFIG, "liveContract": None},
    ),
    Rule(
        "disruption-budget",
        "Every Deployment that can run more than one replica has a PodDisruptionBudget.",
        stack_check=disruption_budget,
    ),
    Rule(
        "network-policy",
        "Serving pods are selected by an ingress NetworkPolicy that admits each port they serve.",
        stack_check=network_policy,
    ),
    Rule(
        "hpa-in-production",
        "Every Deployment of a production stack is scaled by a HorizontalPodAutoscaler.",
        stack_check=hpa_in_production,
        config_defaults=PRODUCTION_STACKS_CONFIG,
    ),
)


def review(
    resources: Sequence[Resource], config: Mapping[str, Mapping[str, Any]] | None = None
) -> list[tuple[str, Violation]]:
    """Every rule over every resource, as (rule name, violation): what the pack reports."""
    return [
        (rule.name, violation)
        for rule in RULES
        for violation in rule.violations(resources, (config or {}).get(rule.name))
    ]
