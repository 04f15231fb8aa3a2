"""The stack's configuration, read once from `pulumi.Config` into frozen, validated values.

Every key is declared once, with its type, description and default, in Pulumi.yaml; the
stack files hold only what differs per environment. `load_settings` reports every problem at
once, each naming the key, the bad value and the rule.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from gpu_model_serving.components.metrics_collection import (
    CUSTOM_METRICS_ADAPTERS,
    METRICS_COLLECTORS,
    MetricsCollection,
    Slo,
)
from gpu_model_serving.components.model_image import (
    BUILD_NETWORKS,
    CACHE_MODES,
    IMAGE_VARIANTS,
    REGISTRY_AUTHS,
    BuildNetwork,
    CacheMode,
    ImageVariant,
    RegistryAuth,
)
from gpu_model_serving.components.model_server import (
    HPA_METRICS,
    SERVICE_TYPES,
    SLOTS,
    Autoscaling,
    GatewayRef,
    ServiceType,
    Slot,
)
from gpu_model_serving.config_reader import (
    DIGEST_PINNED_IMAGE,
    DNS_LABEL,
    ConfigError,
    Quantity,
    Reader,
    is_cidr,
)
from gpu_model_serving.gpu_pools import GpuPoolArgs, read_gpu_pool
from gpu_model_serving.runtime_profiles import (
    INFERENCE_ENGINES,
    SERVING_RUNTIMES,
    InferenceEngine,
    ServingRuntime,
)
from model_contract.contract import Contract
from model_contract.repository import ModelRepositoryError, versions
from model_contract.saved_model import SavedModelError, read_signatures

__all__ = ["ConfigError", "GpuPoolArgs", "Quantity", "Settings", "load_settings"]


# The python runtime's INFERENCE_ENGINE values (model/serving/config.py; a test holds them equal).
# Relative model paths are the project's (where Pulumi.yaml is), whatever the working directory.
PROJECT_DIR = Path(__file__).resolve().parent.parent
# The knobs both serving runtimes read from their environment, with the range each runtime
# accepts (model/serving/limits.json): the stack's keys for them are held to the same range.
RUNTIME_LIMITS: Mapping[str, Mapping[str, int | str]] = {
    str(limit["stackKey"]): limit
    for name, limit in json.loads(
        (PROJECT_DIR / "model" / "serving" / "limits.json").read_text()
    ).items()
    if not name.startswith("_")
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
_POD_SECURITY_VERSION = re.compile(r"^v1\.[0-9]{1,3}$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PLATFORM = re.compile(r"^linux/(?:amd64|arm64)$")
_BUILDER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_SIGNATURE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{16}$")
_GATEWAY_NAME = re.compile(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
)


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
class CanarySettings:
    """A second model version served beside stable, in the slot stable is not in."""

    version_dir: Path
    contract: Contract
    weight: int
    """The share of traffic asked for, in percent (canaryWeight)."""


@dataclass(frozen=True)
class ModelSettings:
    """The SavedModel version the stack serves, and the contract read from it."""

    path: str
    """modelPath as written: relative to the project, or absolute."""
    version_dir: Path
    """The served version's directory: the image build's model context."""
    contract: Contract
    accept_breaking: str | None
    """The fingerprint of a breaking contract this stack accepts (modelContractAcceptBreaking)."""
    pinned_image: str | None
    """An image already built, pinned by digest, served instead of a build (make rollback)."""
    stable_slot: Slot = "a"
    """The fixed Deployment stable runs in; a promotion flips it (stableSlot)."""
    canary: CanarySettings | None = None


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
class RolloutSettings:
    """How `make rollout` walks a canary to all traffic, and what it judges each step by: the
    canary's own request series against the bounds and against stable's."""

    steps: tuple[int, ...]
    """The canary's share of traffic at each step, in percent, rising to 100."""
    analysis_window_seconds: int
    """How long each step runs before it is judged, and the range its queries cover."""
    min_requests: int
    """Fewer canary requests in the window than this: no verdict, and nothing promoted."""
    max_error_ratio: float
    max_p99_latency_ms: int
    max_p99_latency_ratio: float
    """Canary p99 over stable p99 above which the canary is worse, whatever the bound."""

    def plan(self, canary: Contract, traffic_split: str) -> dict[str, Any]:
        """What `make rollout` will do with `canary`: the stack's rolloutPlan output, which
        the preview record carries into the pull-request comment."""
        return {
            "canaryVersion": canary.version,
            "canaryContract": canary.output(),
            "steps": list(self.steps),
            "trafficSplit": traffic_split,
            "analysisWindowSeconds": self.analysis_window_seconds,
            "minRequests": self.min_requests,
            "maxErrorRatio": self.max_error_ratio,
            "maxP99LatencyMs": self.max_p99_latency_ms,
            "maxP99LatencyRatio": self.max_p99_latency_ratio,
        }


@dataclass(frozen=True)
class ServerSettings:
    """The Kubernetes objects that serve the model."""

    model_name: str
    runtime: ServingRuntime
    resources: ResourceSettings
    autoscaling: Autoscaling
    pdb_max_unavailable: int
    startup_timeout_seconds: int
    progress_deadline_seconds: int
    pre_stop_sleep_seconds: int
    shutdown_timeout_seconds: int
    max_batch_size: int
    batch_timeout_micros: int
    serving_processes: int
    """Python runtime: processes per pod (SERVING_PROCESSES)."""
    inference_engine: InferenceEngine
    """Python runtime: what runs the signature (INFERENCE_ENGINE)."""
    service_type: ServiceType
    allowed_ingress_namespaces: tuple[str, ...]
    allowed_ingress_cidrs: tuple[str, ...]
    allowed_egress_cidrs: tuple[str, ...]
    metrics: MetricsCollection
    gateway: GatewayRef | None = None
    """The Gateway whose HTTPRoute splits traffic by weight (gatewayName); None: by replicas."""


@dataclass(frozen=True)
class Settings:
    kubernetes: KubernetesSettings
    image: ImageSettings
    gpu_pool: GpuPoolArgs
    server: ServerSettings
    model: ModelSettings
    rollout: RolloutSettings


def load_settings(config: pulumi.Config | None = None) -> Settings:
    """Read and validate the whole stack configuration; raise ConfigError listing every problem."""
    reader = Reader(config or pulumi.Config())
    kubernetes = _kubernetes(reader)
    runtime = reader.choice("servingRuntime", SERVING_RUNTIMES)
    image = _image(reader, runtime)
    gpu_pool = read_gpu_pool(reader)
    server = _server(reader, runtime)
    model = _model(reader, server.model_name)
    rollout = _rollout(reader, server.metrics)
    _check_across(reader, gpu_pool, server)
    _check_serving_processes(reader, image, server)
    if reader.problems:
        raise ConfigError(reader.problems)
    assert model is not None  # a None model always comes with a problem
    return Settings(
        kubernetes=kubernetes,
        image=image,
        gpu_pool=gpu_pool,
        server=server,
        model=model,
        rollout=rollout,
    )


def _kubernetes(r: Reader) -> KubernetesSettings:
    cluster = KubernetesSettings(
        kubeconfig=r.optional_text("kubeconfig"),
        context=r.optional_text("kubeContext"),
        render_yaml_to_directory=r.optional_text("renderYamlToDirectory"),
        namespace=r.text("namespace", DNS_LABEL, "must be a DNS label (lower case, digits, '-')"),
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


def _image(r: Reader, runtime: ServingRuntime) -> ImageSettings:
    auth = r.choice("registryAuth", REGISTRY_AUTHS)
    username = r.optional_text("registryUsername")
    password = r.secret("registryPassword")
    if auth == "basic" and username is None:
        r.problem("registryUsername", "", "must be set when registryAuth is basic")
    if auth == "basic" and password is None:
        r.problem("registryPassword", "", "must be set (as a secret) when registryAuth is basic")
    return ImageSettings(
        runtime=runtime,
        variant=r.choice("imageVariant", IMAGE_VARIANTS),
        registry=r.text("registry", _REGISTRY_HOST, "must be a registry host[:port]"),
        repository=r.text(
            "imageRepository", _REPOSITORY, "must be lower-case path components like team/model"
        ),
        tag=r.text("imageTag", _TAG, "must be a Docker tag (letters, digits, _ . -; ≤ 128)"),
        base_image=r.optional_text("imageBaseImage"),
        platform=r.text("imagePlatform", _PLATFORM, "must be linux/amd64 or linux/arm64"),
        build_network=r.choice("imageBuildNetwork", BUILD_NETWORKS),
        builder=r.optional_text("imageBuilder", _BUILDER_NAME, "must be a buildx builder name"),
        cache_mode=r.choice("imageCacheMode", CACHE_MODES),
        build_on_preview=r.boolean("imageBuildOnPreview"),
        registry_auth=auth,
        registry_username=username,
        registry_password=password,
    )


def _server(r: Reader, runtime: ServingRuntime) -> ServerSettings:
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
    startup_timeout = r.integer("startupTimeoutSeconds", minimum=10, maximum=3600)
    progress_deadline = r.integer("progressDeadlineSeconds", minimum=10, maximum=7200)
    if progress_deadline <= startup_timeout:
        # A pod that takes its whole startup window would fail the rollout of a healthy model.
        r.problem(
            "progressDeadlineSeconds",
            progress_deadline,
            f"must be > startupTimeoutSeconds ({startup_timeout}), with room for the image pull",
        )
    return ServerSettings(
        model_name=r.text("modelName", DNS_LABEL, "must be a DNS label (lower case, digits, '-')"),
        runtime=runtime,
        resources=resources,
        autoscaling=Autoscaling(
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            metric=r.choice("hpaMetric", HPA_METRICS),
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
        startup_timeout_seconds=startup_timeout,
        progress_deadline_seconds=progress_deadline,
        pre_stop_sleep_seconds=r.integer("preStopSleepSeconds", minimum=0, maximum=300),
        shutdown_timeout_seconds=_runtime_knob(r, "shutdownTimeoutSeconds"),
        max_batch_size=_runtime_knob(r, "maxBatchSize"),
        batch_timeout_micros=_runtime_knob(r, "batchTimeoutMicros"),
        serving_processes=_runtime_knob(r, "servingProcesses"),
        inference_engine=r.choice("inferenceEngine", INFERENCE_ENGINES),
        service_type=r.choice("serviceType", SERVICE_TYPES),
        allowed_ingress_namespaces=r.strings(
            "allowedIngressNamespaces", lambda n: bool(DNS_LABEL.match(n)), "must be a namespace"
        ),
        allowed_ingress_cidrs=r.strings(
            "allowedIngressCidrs", is_cidr, "must be a CIDR such as 10.0.0.0/8"
        ),
        allowed_egress_cidrs=r.strings(
            "allowedEgressCidrs", is_cidr, "must be a CIDR such as 10.0.0.0/8"
        ),
        metrics=_metrics(r),
        gateway=_gateway(r),
    )


def _gateway(r: Reader) -> GatewayRef | None:
    text = r.optional_text(
        "gatewayName", _GATEWAY_NAME, "must be the Gateway's namespace/name, both DNS labels"
    )
    if text is None or not _GATEWAY_NAME.match(text):
        return None
    namespace, name = text.split("/")
    return GatewayRef(namespace, name)


def _model(r: Reader, model_name: str) -> ModelSettings | None:
    """The served versions' signatures, read at preview: a model the stack cannot serve is a
    config error naming the key and the path, not a rollout that never becomes ready."""
    path = r.text("modelPath")
    signature = r.text("signatureName", _SIGNATURE_NAME, "must be a signature name")
    accept_breaking = r.optional_text(
        "modelContractAcceptBreaking",
        _FINGERPRINT,
        "must be the fingerprint of the contract to accept, sha256:<16 hex digits>, as the "
        "model-contract policy violation names it",
    )
    pinned_image = r.optional_text(
        "servingImage", DIGEST_PINNED_IMAGE, "must be an image pinned by digest, repo@sha256:..."
    )
    stable_slot = r.choice("stableSlot", SLOTS)
    weight = r.integer("canaryWeight", minimum=1, maximum=99)
    base = Path(path) if Path(path).is_absolute() else PROJECT_DIR / path
    try:
        found = versions(base)
    except ModelRepositoryError as error:
        r.problem("modelPath", path, str(error))
        return None
    repository = _Repository(path, base, found, signature, model_name)
    stable = _served_version(r, "modelVersion", repository)
    canary = _served_version(r, "canaryModelVersion", repository)
    if stable is None:
        return None
    if canary is not None and canary[1].version == stable[1].version:
        r.problem(
            "canaryModelVersion",
            canary[1].version,
            f"is the version stable serves (modelVersion {stable[1].version}): a canary is "
            "another version",
        )
    return ModelSettings(
        path=path,
        version_dir=stable[0],
        contract=stable[1],
        accept_breaking=accept_breaking,
        pinned_image=pinned_image,
        stable_slot=stable_slot,
        canary=None if canary is None else CanarySettings(canary[0], canary[1], weight),
    )


@dataclass(frozen=True)
class _Repository:
    """modelPath read: where a version key's version is looked up, and what it must offer."""

    path: str
    base: Path
    found: Mapping[int, Path]
    signature: str
    model_name: str


def _served_version(r: Reader, key: str, repo: _Repository) -> tuple[Path, Contract] | None:
    """The version `key` names (modelVersion: empty is the highest; canaryModelVersion: empty
    is none), its directory and its contract; None, with the problem recorded, if it cannot be
    served."""
    text = r.text(key)
    is_canary = key != "modelVersion"
    if not text:
        if is_canary:
            return None
        served = max(repo.found)
    elif not text.isdigit():
        empty = "no canary" if is_canary else "the highest"
        r.problem(key, text, f"must be a version number, or empty for {empty}")
        return None
    else:
        served = int(text)
    if served not in repo.found:
        present = ", ".join(map(str, repo.found))
        r.problem(key, text, f"is not a version under {repo.base} (it has: {present})")
        return None
    directory = repo.found[served]
    try:
        signatures = read_signatures(directory / "saved_model.pb")
    except SavedModelError as error:
        r.problem("modelPath", repo.path, str(error))
        return None
    if not signatures:
        r.problem(
            "modelPath", repo.path, f"{directory / 'saved_model.pb'} has no signature to serve"
        )
        return None
    if repo.signature not in signatures:
        present = ", ".join(signatures)
        r.problem(
            "signatureName",
            repo.signature,
            f"is not a signature of {directory} (it has: {present})",
        )
        return None
    return directory, Contract(repo.model_name, served, repo.signature, signatures)


def _metrics(r: Reader) -> MetricsCollection:
    metrics = MetricsCollection(
        collector=r.choice("metricsCollector", METRICS_COLLECTORS),
        scrape_namespaces=r.strings(
            "metricsScrapeNamespaces", lambda n: bool(DNS_LABEL.match(n)), "must be a namespace"
        ),
        scrape_interval_seconds=r.integer("metricsScrapeIntervalSeconds", minimum=5, maximum=300),
        monitor_labels=r.labels("metricsMonitorLabels"),
        custom_metrics_adapter=r.choice("customMetricsAdapter", CUSTOM_METRICS_ADAPTERS),
        slo=Slo(
            max_error_ratio=r.fraction("sloMaxErrorRatio"),
            max_p99_latency_ms=r.integer("sloMaxP99LatencyMs", minimum=1, maximum=600_000),
        ),
    )
    if metrics.collector != "none" and not metrics.scrape_namespaces:
        r.problem(
            "metricsScrapeNamespaces",
            [],
            f"must name the namespace {metrics.collector} scrapes from (e.g. monitoring, "
            "gmp-system): the NetworkPolicy admits only listed namespaces",
        )
    if metrics.custom_metrics_adapter != "none" and metrics.collector == "none":
        r.problem(
            "customMetricsAdapter",
            metrics.custom_metrics_adapter,
            "needs metricsCollector: the adapter serves series that a Prometheus scraped",
        )
    return metrics


def _runtime_knob(r: Reader, key: str) -> int:
    limit = RUNTIME_LIMITS[key]
    return r.integer(key, minimum=int(limit["min"]), maximum=int(limit["max"]))


def _check_serving_processes(r: Reader, image: ImageSettings, server: ServerSettings) -> None:
    processes = server.serving_processes
    if processes == 1:
        return
    if server.runtime != "python":
        r.problem("servingProcesses", processes, f"must be 1 with servingRuntime {server.runtime}")
    elif image.variant == "gpu":
        r.problem(
            "servingProcesses",
            processes,
            "must be 1 with imageVariant gpu (each process would claim the whole GPU's memory)",
        )
    elif processes > (cores := math.ceil(server.resources.cpu_limit.value)):
        r.problem(
            "servingProcesses",
            processes,
            f"must be ≤ cpuLimit in whole cores ({cores}): a process keeps about one core busy",
        )


def _rollout(r: Reader, metrics: MetricsCollection) -> RolloutSettings:
    rollout = RolloutSettings(
        steps=r.integers("canarySteps", minimum=1, maximum=100),
        analysis_window_seconds=r.integer("canaryAnalysisWindowSeconds", minimum=10, maximum=3600),
        min_requests=r.integer("canaryMinRequests", minimum=1),
        max_error_ratio=r.fraction("canaryMaxErrorRatio"),
        max_p99_latency_ms=r.integer("canaryMaxP99LatencyMs", minimum=1, maximum=600_000),
        # Below one bucket of TF Serving's latency histogram (a factor 1.8) a ratio is noise.
        max_p99_latency_ratio=r.number("canaryMaxP99LatencyRatio", minimum=1.8, maximum=100),
    )
    steps = list(rollout.steps)
    if not steps or steps[-1] != 100 or steps != sorted(set(steps)):
        r.problem("canarySteps", steps, "must rise strictly and end at 100, such as [10, 50, 100]")
    # A rate needs two scrapes inside its range, and one missed scrape must not void a step.
    if rollout.analysis_window_seconds < 2 * metrics.scrape_interval_seconds:
        r.problem(
            "canaryAnalysisWindowSeconds",
            rollout.analysis_window_seconds,
            f"must be ≥ 2 times metricsScrapeIntervalSeconds ({metrics.scrape_interval_seconds}): "
            "each step's rates need two scrapes",
        )
    return rollout


def _check_across(r: Reader, pool: GpuPoolArgs, server: ServerSettings) -> None:
    if server.autoscaling.metric == "requests" and server.metrics.custom_metrics_adapter == "none":
        r.problem(
            "hpaMetric",
            "requests",
            "needs a source for the per-pod request rate: set customMetricsAdapter "
            "(prometheus-adapter) and metricsCollector, or scale on cpu",
        )
    if server.resources.gpu_count > pool.accelerators_per_node:
        r.problem(
            "gpuCount",
            server.resources.gpu_count,
            f"must be ≤ gpuAcceleratorsPerNode ({pool.accelerators_per_node}): "
            "a pod cannot span nodes",
        )
