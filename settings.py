"""The stack's configuration, read once from `pulumi.Config` into frozen, validated values.

Every key is declared once, with its type, description and default, in Pulumi.yaml; the
stack files hold only what differs per environment. `load_settings` reports every problem at
once, each naming the key, the bad value and the rule.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, TypeVar, cast

import pulumi

ServingRuntime = Literal["python", "tensorflow-serving"]
PoolProvider = Literal["existing", "gke", "eks"]
ImageVariant = Literal["cpu", "gpu"]
RegistryAuth = Literal["none", "basic", "gcp", "ecr"]
CacheMode = Literal["inline", "registry", "none"]
BuildNetwork = Literal["default", "host", "none"]
HpaMetric = Literal["cpu", "requests"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]

SERVING_RUNTIMES: tuple[ServingRuntime, ...] = ("python", "tensorflow-serving")
# The knobs both serving runtimes read from their environment, with the range each runtime
# accepts (model/serving/limits.json): the stack's keys for them are held to the same range.
RUNTIME_LIMITS: Mapping[str, Mapping[str, int | str]] = {
    str(limit["stackKey"]): limit
    for name, limit in json.loads(
        (Path(__file__).parent / "model" / "serving" / "limits.json").read_text()
    ).items()
    if not name.startswith("_")
}
POOL_PROVIDERS: tuple[PoolProvider, ...] = ("existing", "gke", "eks")

# GKE accelerator names and the machine family each one attaches to.
GKE_ACCELERATOR_MACHINE_FAMILIES: Mapping[str, str] = {
    "nvidia-tesla-t4": "n1",
    "nvidia-tesla-v100": "n1",
    "nvidia-tesla-p4": "n1",
    "nvidia-tesla-p100": "n1",
    "nvidia-l4": "g2",
    "nvidia-tesla-a100": "a2",
    "nvidia-a100-80gb": "a2",
    "nvidia-h100-80gb": "a3",
    "nvidia-h100-mega-80gb": "a3",
    "nvidia-h200-141gb": "a3",
}
# EC2 GPU instance families and the accelerator each carries.
EKS_INSTANCE_FAMILY_ACCELERATORS: Mapping[str, str] = {
    "g4dn": "nvidia-tesla-t4",
    "g5": "nvidia-a10g",
    "g6": "nvidia-l4",
    "g6e": "nvidia-l40s",
    "p3": "nvidia-tesla-v100",
    "p4d": "nvidia-a100",
    "p5": "nvidia-h100",
}
EKS_AMI_TYPES = (
    "AL2023_x86_64_NVIDIA",
    "AL2_x86_64_GPU",
    "BOTTLEROCKET_x86_64_NVIDIA",
    "BOTTLEROCKET_ARM_64_NVIDIA",
)
GKE_DRIVER_VERSIONS = ("DEFAULT", "LATEST", "INSTALLATION_DISABLED")

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?\d+))?$"
)
_SUFFIX_FACTORS: Mapping[str, Fraction] = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{s: Fraction(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
}
# Docker reference grammar (distribution/reference): host[:port], path components, tag.
_REGISTRY_HOST = re.compile(
    r"^(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
    r"(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*)(?::[0-9]{1,5})?$"
)
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_LABEL_KEY = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
)
_DIGEST_PINNED_IMAGE = re.compile(r"^[a-z0-9.:/_-]+(?::[A-Za-z0-9_.-]+)?@sha256:[0-9a-f]{64}$")
_POD_SECURITY_VERSION = re.compile(r"^v1\.[0-9]{1,3}$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PLATFORM = re.compile(r"^linux/(?:amd64|arm64)$")
_BUILDER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass(frozen=True)
class Quantity:
    """A Kubernetes resource quantity: the text as written and its exact value."""

    text: str
    value: Fraction

    @classmethod
    def parse(cls, text: str) -> Quantity | None:
        match = _QUANTITY.match(text)
        if match is None:
            return None
        value = Fraction(match["number"])
        if match["exponent"] is not None:
            value *= Fraction(10) ** int(match["exponent"])
        return cls(text, value * _SUFFIX_FACTORS[match["suffix"] or ""])


@dataclass(frozen=True)
class KubernetesSettings:
    """How the program reaches the cluster and where the serving objects live."""

    kubeconfig: str | None
    context: str | None
    render_yaml_to_directory: str | None
    namespace: str
    create_namespace: bool
    pod_security_version: str
    """Pod Security Standards version the namespace enforces, e.g. v1.34."""


@dataclass(frozen=True)
class ImageSettings:
    """The model server image: what to build and where to push it."""

    runtime: ServingRuntime
    variant: ImageVariant
    registry: str
    repository: str
    tag: str
    base_image: str | None
    platform: str
    build_network: BuildNetwork
    builder: str | None
    cache_mode: CacheMode
    build_on_preview: bool
    registry_auth: RegistryAuth
    registry_username: str | None
    registry_password: pulumi.Output[str] | None

    @property
    def repository_url(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass(frozen=True)
class GkePoolSettings:
    project: str
    cluster: str
    location: str
    machine_type: str
    driver_version: str


@dataclass(frozen=True)
class EksPoolSettings:
    cluster_name: str
    node_role_arn: str
    subnet_ids: tuple[str, ...]
    instance_types: tuple[str, ...]
    ami_type: str
    device_plugin_image: str
    """NVIDIA device plugin image, pinned by digest (deployed for AL2023/AL2 AMIs)."""


@dataclass(frozen=True)
class GpuPoolSettings:
    """The GPU node pool: which cloud, which accelerator, how many nodes."""

    provider: PoolProvider
    name: str
    accelerator_type: str
    accelerators_per_node: int
    min_nodes: int
    max_nodes: int
    spot: bool
    node_label_key: str
    gke: GkePoolSettings | None
    eks: EksPoolSettings | None


@dataclass(frozen=True)
class ResourceSettings:
    cpu_request: Quantity
    cpu_limit: Quantity
    memory_request: Quantity
    memory_limit: Quantity
    ephemeral_storage_request: Quantity
    ephemeral_storage_limit: Quantity
    gpu_count: int


@dataclass(frozen=True)
class AutoscalingSettings:
    min_replicas: int
    max_replicas: int
    metric: HpaMetric
    target_cpu_utilization: int
    target_requests_per_second: int
    requests_metric_name: str
    scale_down_stabilization_seconds: int


@dataclass(frozen=True)
class ServerSettings:
    """The Kubernetes objects that serve the model."""

    model_name: str
    runtime: ServingRuntime
    resources: ResourceSettings
    autoscaling: AutoscalingSettings
    pdb_max_unavailable: int
    startup_timeout_seconds: int
    pre_stop_sleep_seconds: int
    shutdown_timeout_seconds: int
    max_batch_size: int
    batch_timeout_micros: int
    service_type: ServiceType
    allowed_ingress_namespaces: tuple[str, ...]
    allowed_ingress_cidrs: tuple[str, ...]
    allowed_egress_cidrs: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    kubernetes: KubernetesSettings
    image: ImageSettings
    gpu_pool: GpuPoolSettings
    server: ServerSettings


class ConfigError(Exception):
    """Every problem found in the stack's configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problems):\n{listing}")


_T = TypeVar("_T")


class _Reader:
    """Reads raw config values, recording a problem (and returning a placeholder) on bad input."""

    def __init__(self, config: pulumi.Config) -> None:
        self._config = config
        self.problems: list[str] = []

    def problem(self, key: str, value: object, rule: str) -> None:
        shown = json.dumps(value) if isinstance(value, str) else repr(value)
        self.problems.append(f"{self._config.full_key(key)} = {shown}: {rule}")

    def _raw(self, key: str) -> str | None:
        value = self._config.get(key)
        if value is None:
            self.problems.append(
                f"{self._config.full_key(key)} is not set: declare it with a default in Pulumi.yaml"
            )
        return value

    def text(self, key: str, pattern: re.Pattern[str] | None = None, rule: str = "") -> str:
        value = self._raw(key)
        if value is None:
            return ""
        if pattern is not None and not pattern.match(value):
            self.problem(key, value, rule)
        return value

    def optional_text(
        self, key: str, pattern: re.Pattern[str] | None = None, rule: str = ""
    ) -> str | None:
        """A value that may be left empty (unset); when set, it must match `pattern`."""
        value = self.text(key)
        if not value:
            return None
        if pattern is not None and not pattern.match(value):
            self.problem(key, value, rule)
        return value

    def choice(self, key: str, options: tuple[_T, ...]) -> _T:
        value = self._raw(key)
        for option in options:
            if value == option:
                return option
        if value is not None:
            self.problem(key, value, "must be one of " + ", ".join(map(str, options)))
        return options[0]

    def integer(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self._raw(key)
        if value is None:
            return minimum or 0
        try:
            number = int(value.strip())
        except ValueError:
            self.problem(key, value, "must be an integer")
            return minimum or 0
        if minimum is not None and number < minimum:
            self.problem(key, number, f"must be ≥ {minimum}")
        elif maximum is not None and number > maximum:
            self.problem(key, number, f"must be ≤ {maximum}")
        return number

    def boolean(self, key: str) -> bool:
        value = self._raw(key)
        if value is None:
            return False
        if value.lower() not in ("true", "false"):
            self.problem(key, value, "must be true or false")
        return value.lower() == "true"

    def strings(
        self, key: str, check: Callable[[str], bool] | None = None, rule: str = ""
    ) -> tuple[str, ...]:
        value = self._raw(key)
        if value is None:
            return ()
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            self.problem(key, value, "must be a list of strings")
            return ()
        for item in items:
            if check is not None and not check(item):
                self.problem(key, item, rule)
        return tuple(items)

    def quantity(self, key: str, what: str) -> Quantity:
        value = self._raw(key)
        if value is None:
            return Quantity("0", Fraction(0))
        quantity = Quantity.parse(value)
        if quantity is None:
            self.problem(
                key,
                value,
                f"must be a Kubernetes {what} quantity such as "
                + ('"500m" or "2"' if what == "CPU" else '"512Mi" or "2Gi"'),
            )
            return Quantity(value, Fraction(0))
        if quantity.value <= 0:
            self.problem(key, value, f"must be a positive {what} quantity")
        return quantity

    def secret(self, key: str) -> pulumi.Output[str] | None:
        return self._config.get_secret(key)


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return True


def load_settings(config: pulumi.Config | None = None) -> Settings:
    """Read and validate the whole stack configuration; raise ConfigError listing every problem."""
    reader = _Reader(config or pulumi.Config())
    kubernetes = _kubernetes(reader)
    runtime = reader.choice("servingRuntime", SERVING_RUNTIMES)
    image = _image(reader, runtime)
    gpu_pool = _gpu_pool(reader)
    server = _server(reader, runtime)
    _check_across(reader, gpu_pool, server)
    if reader.problems:
        raise ConfigError(reader.problems)
    return Settings(kubernetes=kubernetes, image=image, gpu_pool=gpu_pool, server=server)


def _kubernetes(r: _Reader) -> KubernetesSettings:
    cluster = KubernetesSettings(
        kubeconfig=r.optional_text("kubeconfig"),
        context=r.optional_text("kubeContext"),
        render_yaml_to_directory=r.optional_text("renderYamlToDirectory"),
        namespace=r.text("namespace", _DNS_LABEL, "must be a DNS label (lower case, digits, '-')"),
        create_namespace=r.boolean("createNamespace"),
        pod_security_version=r.text(
            "podSecurityStandardVersion",
            _POD_SECURITY_VERSION,
            "must be a Kubernetes minor version such as v1.34 (pin the target cluster's; "
            "latest would tighten under running pods on an upgrade)",
        ),
    )
    if cluster.render_yaml_to_directory is not None:
        for key, value in (("kubeconfig", cluster.kubeconfig), ("kubeContext", cluster.context)):
            if value is not None:
                r.problem(key, value, "must be empty with renderYamlToDirectory (no cluster)")
    return cluster


def _image(r: _Reader, runtime: ServingRuntime) -> ImageSettings:
    auth = r.choice("registryAuth", cast(tuple[RegistryAuth, ...], ("none", "basic", "gcp", "ecr")))
    username = r.optional_text("registryUsername")
    password = r.secret("registryPassword")
    if auth == "basic" and username is None:
        r.problem("registryUsername", "", "must be set when registryAuth is basic")
    if auth == "basic" and password is None:
        r.problem("registryPassword", "", "must be set (as a secret) when registryAuth is basic")
    return ImageSettings(
        runtime=runtime,
        variant=r.choice("imageVariant", cast(tuple[ImageVariant, ...], ("cpu", "gpu"))),
        registry=r.text("registry", _REGISTRY_HOST, "must be a registry host[:port]"),
        repository=r.text(
            "imageRepository", _REPOSITORY, "must be lower-case path components like team/model"
        ),
        tag=r.text("imageTag", _TAG, "must be a Docker tag (letters, digits, _ . -; ≤ 128)"),
        base_image=r.optional_text("imageBaseImage"),
        platform=r.text("imagePlatform", _PLATFORM, "must be linux/amd64 or linux/arm64"),
        build_network=r.choice(
            "imageBuildNetwork", cast(tuple[BuildNetwork, ...], ("default", "host", "none"))
        ),
        builder=r.optional_text("imageBuilder", _BUILDER_NAME, "must be a buildx builder name"),
        cache_mode=r.choice(
            "imageCacheMode", cast(tuple[CacheMode, ...], ("inline", "registry", "none"))
        ),
        build_on_preview=r.boolean("imageBuildOnPreview"),
        registry_auth=auth,
        registry_username=username,
        registry_password=password,
    )


def _gpu_pool(r: _Reader) -> GpuPoolSettings:
    provider = r.choice("gpuPoolProvider", POOL_PROVIDERS)
    accelerator = r.text("gpuAcceleratorType")
    min_nodes = r.integer("gpuPoolMinNodes", minimum=0)
    max_nodes = r.integer("gpuPoolMaxNodes", minimum=1)
    if min_nodes > max_nodes:
        r.problem("gpuPoolMinNodes", min_nodes, f"must be ≤ gpuPoolMaxNodes ({max_nodes})")
    gke = _gke_pool(r, accelerator) if provider == "gke" else None
    eks = _eks_pool(r, accelerator) if provider == "eks" else None
    if provider == "existing" and not (accelerator and _LABEL_VALUE.match(accelerator)):
        r.problem("gpuAcceleratorType", accelerator, "must be a Kubernetes label value")
    return GpuPoolSettings(
        provider=provider,
        name=r.text("gpuPoolName", _DNS_LABEL, "must be a DNS label (lower case, digits, '-')"),
        accelerator_type=accelerator,
        accelerators_per_node=r.integer("gpuAcceleratorsPerNode", minimum=1, maximum=16),
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        spot=r.boolean("gpuPoolSpot"),
        node_label_key=r.text("gpuNodeLabelKey", _LABEL_KEY, "must be a Kubernetes label key"),
        gke=gke,
        eks=eks,
    )


def _require(r: _Reader, key: str, provider: str) -> str:
    value = r.text(key)
    if not value:
        r.problem(key, value, f"must be set when gpuPoolProvider is {provider}")
    return value


def _gke_pool(r: _Reader, accelerator: str) -> GkePoolSettings:
    family = GKE_ACCELERATOR_MACHINE_FAMILIES.get(accelerator)
    if family is None:
        r.problem(
            "gpuAcceleratorType",
            accelerator,
            "must be a GKE accelerator: " + ", ".join(GKE_ACCELERATOR_MACHINE_FAMILIES),
        )
    machine_type = r.text("gkeMachineType")
    if family is not None and not machine_type.startswith(f"{family}-"):
        r.problem(
            "gkeMachineType",
            machine_type,
            f"{accelerator} attaches only to {family}-* machine types",
        )
    return GkePoolSettings(
        project=_require(r, "gcpProject", "gke"),
        cluster=_require(r, "gkeCluster", "gke"),
        location=_require(r, "gkeLocation", "gke"),
        machine_type=machine_type,
        driver_version=r.choice("gkeGpuDriverVersion", GKE_DRIVER_VERSIONS),
    )


def _eks_pool(r: _Reader, accelerator: str) -> EksPoolSettings:
    known = ", ".join(f"{f}.* ({a})" for f, a in EKS_INSTANCE_FAMILY_ACCELERATORS.items())
    instance_types = r.strings(
        "eksInstanceTypes",
        lambda t: t.split(".")[0] in EKS_INSTANCE_FAMILY_ACCELERATORS and "." in t,
        f"must be a GPU instance type of a known family: {known}",
    )
    if not instance_types:
        r.problem("eksInstanceTypes", [], "must list at least one GPU instance type")
    for instance_type in instance_types:
        carried = EKS_INSTANCE_FAMILY_ACCELERATORS.get(instance_type.split(".")[0])
        if carried is not None and carried != accelerator:
            r.problem(
                "gpuAcceleratorType",
                accelerator,
                f"must match the instance type {instance_type}, which carries {carried}",
            )
    if accelerator not in EKS_INSTANCE_FAMILY_ACCELERATORS.values():
        r.problem(
            "gpuAcceleratorType",
            accelerator,
            "must be an EKS accelerator: "
            + ", ".join(sorted(set(EKS_INSTANCE_FAMILY_ACCELERATORS.values()))),
        )
    subnet_ids = r.strings(
        "eksSubnetIds", lambda s: s.startswith("subnet-"), "must be a subnet id (subnet-...)"
    )
    if not subnet_ids:
        r.problem("eksSubnetIds", [], "must list at least one subnet when gpuPoolProvider is eks")
    return EksPoolSettings(
        cluster_name=_require(r, "eksClusterName", "eks"),
        node_role_arn=_require(r, "eksNodeRoleArn", "eks"),
        subnet_ids=subnet_ids,
        instance_types=instance_types,
        ami_type=r.choice("eksAmiType", EKS_AMI_TYPES),
        device_plugin_image=r.text(
            "eksDevicePluginImage",
            _DIGEST_PINNED_IMAGE,
            "must be an image pinned by digest (repository[:tag]@sha256:<64 hex>)",
        ),
    )


def _server(r: _Reader, runtime: ServingRuntime) -> ServerSettings:
    min_replicas = r.integer("hpaMinReplicas", minimum=1)
    max_replicas = r.integer("hpaMaxReplicas", minimum=1)
    if min_replicas > max_replicas:
        r.problem("hpaMinReplicas", min_replicas, f"must be ≤ hpaMaxReplicas ({max_replicas})")
    resources = ResourceSettings(
        cpu_request=r.quantity("cpuRequest", "CPU"),
        cpu_limit=r.quantity("cpuLimit", "CPU"),
        memory_request=r.quantity("memoryRequest", "memory"),
        memory_limit=r.quantity("memoryLimit", "memory"),
        ephemeral_storage_request=r.quantity("ephemeralStorageRequest", "storage"),
        ephemeral_storage_limit=r.quantity("ephemeralStorageLimit", "storage"),
        gpu_count=r.integer("gpuCount", minimum=0),
    )
    for kind in ("cpu", "memory", "ephemeral_storage"):
        request: Quantity = getattr(resources, f"{kind}_request")
        limit: Quantity = getattr(resources, f"{kind}_limit")
        key = re.sub(r"_(\w)", lambda m: m.group(1).upper(), kind)
        if request.value > limit.value > 0:
            r.problem(f"{key}Request", request.text, f"must be ≤ {key}Limit ({limit.text})")
    return ServerSettings(
        model_name=r.text("modelName", _DNS_LABEL, "must be a DNS label (lower case, digits, '-')"),
        runtime=runtime,
        resources=resources,
        autoscaling=AutoscalingSettings(
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            metric=r.choice("hpaMetric", cast(tuple[HpaMetric, ...], ("cpu", "requests"))),
            target_cpu_utilization=r.integer("hpaTargetCpuUtilization", minimum=1, maximum=100),
            target_requests_per_second=r.integer("hpaTargetRequestsPerSecond", minimum=1),
            requests_metric_name=r.text(
                "hpaRequestsMetricName", _METRIC_NAME, "must be a Prometheus metric name"
            ),
            scale_down_stabilization_seconds=r.integer(
                "hpaScaleDownStabilizationSeconds", minimum=0, maximum=3600
            ),
        ),
        pdb_max_unavailable=r.integer("pdbMaxUnavailable", minimum=1),
        startup_timeout_seconds=r.integer("startupTimeoutSeconds", minimum=10, maximum=3600),
        pre_stop_sleep_seconds=r.integer("preStopSleepSeconds", minimum=0, maximum=300),
        shutdown_timeout_seconds=_runtime_knob(r, "shutdownTimeoutSeconds"),
        max_batch_size=_runtime_knob(r, "maxBatchSize"),
        batch_timeout_micros=_runtime_knob(r, "batchTimeoutMicros"),
        service_type=r.choice(
            "serviceType", cast(tuple[ServiceType, ...], ("ClusterIP", "NodePort", "LoadBalancer"))
        ),
        allowed_ingress_namespaces=r.strings(
            "allowedIngressNamespaces", lambda n: bool(_DNS_LABEL.match(n)), "must be a namespace"
        ),
        allowed_ingress_cidrs=r.strings(
            "allowedIngressCidrs", _is_cidr, "must be a CIDR such as 10.0.0.0/8"
        ),
        allowed_egress_cidrs=r.strings(
            "allowedEgressCidrs", _is_cidr, "must be a CIDR such as 10.0.0.0/8"
        ),
    )


def _runtime_knob(r: _Reader, key: str) -> int:
    limit = RUNTIME_LIMITS[key]
    return r.integer(key, minimum=int(limit["min"]), maximum=int(limit["max"]))


def _check_across(r: _Reader, pool: GpuPoolSettings, server: ServerSettings) -> None:
    if server.resources.gpu_count > pool.accelerators_per_node:
        r.problem(
            "gpuCount",
            server.resources.gpu_count,
            f"must be ≤ gpuAcceleratorsPerNode ({pool.accelerators_per_node}): "
            "a pod cannot span nodes",
        )
