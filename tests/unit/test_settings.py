"""Stack configuration: parsing, every validation rule, and errors that name key, value and rule."""

from __future__ import annotations

import importlib.util
import re
import string
import sys
from fractions import Fraction

import pulumi
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gpu_model_serving.gpu_pools.gke import GkePoolArgs
from gpu_model_serving.runtime_profiles import INFERENCE_ENGINES
from gpu_model_serving.settings import (
    RUNTIME_LIMITS,
    ConfigError,
    Quantity,
    RolloutSettings,
    load_settings,
)
from tests.unit.harness import PROJECT, ROOT, run_stack, settings_for, stack_config

DECLARED = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]


def problems_for(stack: str = "dev", /, **overrides: object) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        settings_for(stack, **overrides)
    return raised.value.problems


def test_dev_stack_settings_are_the_local_default() -> None:
    loaded = settings_for("dev")
    assert loaded.gpu_pool.provider == "existing"
    assert loaded.image.registry == "127.0.0.1:5000"
    assert loaded.image.runtime == "python"
    # One pod fewer than the pool's three GPUs, so a rollout surges instead of going a pod short.
    assert (loaded.server.autoscaling.min_replicas, loaded.server.autoscaling.max_replicas) == (
        1,
        2,
    )
    assert loaded.server.resources.memory_limit == Quantity("1Gi", Fraction(1024**3))
    assert (
        loaded.server.metrics.slo.max_error_ratio,
        loaded.server.metrics.slo.max_p99_latency_ms,
    ) == (0.01, 500)
    assert loaded.rollout == RolloutSettings(
        steps=(10, 50, 100),
        analysis_window_seconds=60,
        min_requests=100,
        max_error_ratio=0.01,
        max_p99_latency_ms=500,
        max_p99_latency_ratio=2.0,
    )


def test_prod_stack_settings_are_gke_with_l4_and_tensorflow_serving() -> None:
    loaded = settings_for("prod")
    assert loaded.gpu_pool.provider == "gke"
    assert loaded.gpu_pool.accelerator_type == "nvidia-l4"
    assert isinstance(loaded.gpu_pool, GkePoolArgs)
    assert str(loaded.gpu_pool.machine_type).startswith("g2-")
    assert loaded.image.runtime == "tensorflow-serving"
    assert loaded.image.registry.endswith("-docker.pkg.dev")
    assert loaded.server.autoscaling.min_replicas >= 3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2", Fraction(2)),
        ("1.5", Fraction(3, 2)),
        ("2Gi", Fraction(2 * 1024**3)),
        ("512Mi", Fraction(512 * 1024**2)),
        ("1e3", Fraction(1000)),
        ("1k", Fraction(1000)),
        (".5", Fraction(1, 2)),
    ],
)
def test_quantities_parse_to_their_exact_value(text: str, value: Fraction) -> None:
    parsed = Quantity.parse(text)
    assert parsed is not None and parsed.value == value


@pytest.mark.parametrize("text", ["", "2GB", "1.2.3", "Gi", "two", "1 Gi", "0x10", "1e"])
def test_malformed_quantities_do_not_parse(text: str) -> None:
    assert Quantity.parse(text) is None


# One row per rule: the key, a bad value, and the text the error must carry.
RULES = [
    ("hpaMinReplicas", 0, "hpaMinReplicas = 0: must be ≥ 1"),
    ("hpaMinReplicas", "three", 'hpaMinReplicas = "three": must be an integer'),
    ("hpaMaxReplicas", 0, "hpaMaxReplicas = 0: must be ≥ 1"),
    ("hpaTargetCpuUtilization", 0, "hpaTargetCpuUtilization = 0: must be ≥ 1"),
    ("hpaTargetCpuUtilization", 101, "hpaTargetCpuUtilization = 101: must be ≤ 100"),
    ("hpaTargetRequestsPerSecond", 0, "hpaTargetRequestsPerSecond = 0: must be ≥ 1"),
    ("hpaMetric", "memory", 'hpaMetric = "memory": must be one of cpu, requests'),
    ("hpaRequestsMetricName", "req/s", "must be a Prometheus metric name"),
    ("gpuCount", -1, "gpuCount = -1: must be ≥ 0"),
    ("gpuCount", 1.5, 'gpuCount = "1.5": must be an integer'),
    ("cpuRequest", "lots", 'cpuRequest = "lots": must be a Kubernetes CPU quantity'),
    ("cpuLimit", "0", 'cpuLimit = "0": must be a positive CPU quantity'),
    ("memoryRequest", "2GB", 'memoryRequest = "2GB": must be a Kubernetes memory quantity'),
    ("memoryLimit", "-1Gi", 'memoryLimit = "-1Gi": must be a positive memory quantity'),
    ("registry", "http://127.0.0.1:5000", "must be a registry host[:port]"),
    ("registry", "registry:port", "must be a registry host[:port]"),
    ("imageRepository", "Model_Server", "must be lower-case path components"),
    ("imageRepository", "models//digits", "must be lower-case path components"),
    ("imageTag", "v1:2", 'imageTag = "v1:2": must be a Docker tag'),
    ("imageTag", "-dev", 'imageTag = "-dev": must be a Docker tag'),
    ("servingRuntime", "triton", "must be one of python, tensorflow-serving"),
    ("imageVariant", "tpu", "must be one of cpu, gpu"),
    ("inferenceEngine", "onnx", 'inferenceEngine = "onnx": must be one of tflite, session'),
    ("imagePlatform", "windows/amd64", "must be linux/amd64 or linux/arm64"),
    ("imageBuildNetwork", "bridge", "must be one of default, host, none"),
    ("imageCacheMode", "local", "must be one of inline, registry, none"),
    ("imageBuilder", "my builder", 'imageBuilder = "my builder": must be a buildx builder name'),
    ("imageBuildOnPreview", "yes", 'imageBuildOnPreview = "yes": must be true or false'),
    ("registryAuth", "token", "must be one of none, basic, gcp, ecr"),
    ("gpuPoolProvider", "aks", "must be one of existing, gke, eks"),
    ("gpuPoolName", "GPU_pool", "must be a DNS label"),
    ("gpuAcceleratorType", "nvidia l4!", "must be a Kubernetes label value"),
    ("gpuAcceleratorsPerNode", 0, "gpuAcceleratorsPerNode = 0: must be ≥ 1"),
    ("gpuPoolMinNodes", -1, "gpuPoolMinNodes = -1: must be ≥ 0"),
    ("gpuPoolMaxNodes", 0, "gpuPoolMaxNodes = 0: must be ≥ 1"),
    ("gpuNodeLabelKey", "nvidia.com/gpu/product", "must be a Kubernetes label key"),
    ("namespace", "Model-Serving", "must be a DNS label"),
    ("createNamespace", "1", 'createNamespace = "1": must be true or false'),
    ("modelName", "digits_v2", "must be a DNS label"),
    ("pdbMaxUnavailable", 0, "pdbMaxUnavailable = 0: must be ≥ 1"),
    ("startupTimeoutSeconds", 5, "startupTimeoutSeconds = 5: must be ≥ 10"),
    ("progressDeadlineSeconds", 7201, "progressDeadlineSeconds = 7201: must be ≤ 7200"),
    ("sloMaxErrorRatio", "1%", 'sloMaxErrorRatio = "1%": must be a number such as 0.01'),
    ("sloMaxErrorRatio", "0", "sloMaxErrorRatio = 0.0: must be between 0 and 1"),
    ("sloMaxErrorRatio", "1", "sloMaxErrorRatio = 1.0: must be between 0 and 1"),
    ("sloMaxErrorRatio", "nan", "sloMaxErrorRatio = nan: must be between 0 and 1"),
    ("sloMaxP99LatencyMs", 0, "sloMaxP99LatencyMs = 0: must be ≥ 1"),
    ("canarySteps", [10, 50], "canarySteps = [10, 50]: must rise strictly and end at 100"),
    ("canarySteps", [50, 10, 100], "must rise strictly and end at 100, such as [10, 50, 100]"),
    ("canarySteps", [10, 10, 100], "must rise strictly and end at 100"),
    ("canarySteps", [], "canarySteps = []: must rise strictly and end at 100"),
    ("canarySteps", [0, 100], "canarySteps = 0: must be between 1 and 100"),
    ("canarySteps", [10, 101], "canarySteps = 101: must be between 1 and 100"),
    ("canarySteps", ["10", 100], "must be a list of integers"),
    ("canarySteps", [True, 100], "must be a list of integers"),
    ("canaryAnalysisWindowSeconds", 5, "canaryAnalysisWindowSeconds = 5: must be ≥ 10"),
    ("canaryMinRequests", 0, "canaryMinRequests = 0: must be ≥ 1"),
    ("canaryMaxErrorRatio", "0", "canaryMaxErrorRatio = 0.0: must be between 0 and 1"),
    ("canaryMaxP99LatencyMs", 0, "canaryMaxP99LatencyMs = 0: must be ≥ 1"),
    ("canaryMaxP99LatencyRatio", "1.5", "canaryMaxP99LatencyRatio = 1.5: must be between 1.8"),
    ("canaryMaxP99LatencyRatio", "twice", 'canaryMaxP99LatencyRatio = "twice": must be a number'),
    ("canaryMaxP99LatencyRatio", "inf", "canaryMaxP99LatencyRatio = inf: must be between 1.8"),
    ("preStopSleepSeconds", -1, "preStopSleepSeconds = -1: must be ≥ 0"),
    ("shutdownTimeoutSeconds", 601, "shutdownTimeoutSeconds = 601: must be ≤ 600"),
    ("maxBatchSize", 0, "maxBatchSize = 0: must be ≥ 1"),
    ("batchTimeoutMicros", 20_000_000, "batchTimeoutMicros = 20000000: must be ≤ 10000000"),
    ("hpaScaleDownStabilizationSeconds", 7200, "must be ≤ 3600"),
    ("serviceType", "ExternalName", "must be one of ClusterIP, NodePort, LoadBalancer"),
    ("allowedIngressNamespaces", ["ok", "Not OK"], '"Not OK": must be a namespace'),
    ("allowedIngressNamespaces", "gateway", "must be a list of strings"),
    ("allowedIngressCidrs", ["10.0.0.0/33"], '"10.0.0.0/33": must be a CIDR'),
    ("allowedEgressCidrs", ["0.0.0.0/-1"], '"0.0.0.0/-1": must be a CIDR'),
    ("podSecurityStandardVersion", "latest", 'podSecurityStandardVersion = "latest": must be a'),
    ("ephemeralStorageLimit", "lots", '"lots": must be a Kubernetes storage quantity'),
    ("allowedIngressCidrs", ["10.0.0.1/8"], '"10.0.0.1/8": must be a CIDR'),
    ("metricsCollector", "datadog", "must be one of none, prometheus-operator, gke-managed"),
    ("metricsScrapeNamespaces", ["Monitoring"], '"Monitoring": must be a namespace'),
    ("metricsScrapeIntervalSeconds", 1, "must be ≥ 5"),
    ("metricsMonitorLabels", ["release"], "must be a map of label keys to string values"),
    ("metricsMonitorLabels", {"release": 1}, "must be a map of label keys to string values"),
    ("metricsMonitorLabels", {"bad key!": "x"}, '"bad key!": must be a Kubernetes label key'),
    ("metricsMonitorLabels", {"release": "a b"}, '"a b": must be a Kubernetes label value'),
    ("customMetricsAdapter", "keda", "must be one of none, prometheus-adapter"),
]


@pytest.mark.parametrize(("key", "value", "message"), RULES, ids=[f"{r[0]}={r[1]}" for r in RULES])
def test_each_rule_names_the_key_the_value_and_the_rule(
    key: str, value: object, message: str
) -> None:
    problems = problems_for(**{key: value})
    assert any(message in p and p.startswith(f"{PROJECT}:{key}") for p in problems), problems


# Rules that span keys, or depend on the chosen cloud.
CROSS_RULES = [
    (
        "dev",
        {"ephemeralStorageRequest": "2Gi", "ephemeralStorageLimit": "1Gi"},
        'ephemeralStorageRequest = "2Gi": must be ≤ ephemeralStorageLimit (1Gi)',
    ),
    (
        "dev",
        {"hpaMinReplicas": 3, "hpaMaxReplicas": 2},
        "hpaMinReplicas = 3: must be ≤ hpaMaxReplicas (2)",
    ),
    (
        "dev",
        {"startupTimeoutSeconds": 300, "progressDeadlineSeconds": 300},
        "progressDeadlineSeconds = 300: must be > startupTimeoutSeconds (300), with room for "
        "the image pull",
    ),
    (
        "dev",
        {"cpuRequest": "2", "cpuLimit": "1500m"},
        'cpuRequest = "2": must be ≤ cpuLimit (1500m)',
    ),
    ("dev", {"memoryRequest": "2Gi", "memoryLimit": "1Gi"}, "must be ≤ memoryLimit (1Gi)"),
    ("dev", {"gpuPoolMinNodes": 4, "gpuPoolMaxNodes": 3}, "must be ≤ gpuPoolMaxNodes (3)"),
    ("dev", {"gpuCount": 2}, "gpuCount = 2: must be ≤ gpuAcceleratorsPerNode (1)"),
    (
        "dev",
        {"servingProcesses": 2},
        "servingProcesses = 2: must be ≤ cpuLimit in whole cores (1): a process keeps about one",
    ),
    (
        "dev",
        {"servingProcesses": 2, "cpuLimit": "2", "imageVariant": "gpu"},
        "servingProcesses = 2: must be 1 with imageVariant gpu (each process would claim the",
    ),
    (
        "prod",
        {"servingProcesses": 2},
        "servingProcesses = 2: must be 1 with servingRuntime tensorflow-serving",
    ),
    (
        "prod",
        {"renderYamlToDirectory": "rendered"},
        'kubeContext = "gke_ml-platform-prod_us-central1_serving": must be empty with '
        "renderYamlToDirectory (no cluster)",
    ),
    ("dev", {"registryAuth": "basic"}, "registryUsername"),
    ("dev", {"registryAuth": "basic", "registryUsername": "ci"}, "registryPassword"),
    ("prod", {"gpuAcceleratorType": "nvidia-a10g"}, "must be a GKE accelerator"),
    (
        "prod",
        {"gpuAcceleratorType": "nvidia-tesla-a100"},
        "nvidia-tesla-a100 attaches only to a2-*",
    ),
    ("prod", {"gkeCluster": ""}, 'gkeCluster = "": must be set when gpuPoolProvider is gke'),
    (
        "prod",
        {"gkeGpuDriverVersion": "530"},
        "must be one of DEFAULT, LATEST, INSTALLATION_DISABLED",
    ),
    ("dev", {"gpuPoolProvider": "eks"}, "eksSubnetIds"),
    (
        "dev",
        {"gpuPoolProvider": "eks", "eksInstanceTypes": ["m5.large"]},
        "must be a GPU instance type",
    ),
    (
        "dev",
        {"gpuPoolProvider": "eks", "eksInstanceTypes": ["g5.xlarge"]},
        "which carries nvidia-a10g",
    ),
    ("dev", {"gpuPoolProvider": "eks", "eksInstanceTypes": []}, "at least one GPU instance type"),
    (
        "dev",
        {"gpuPoolProvider": "eks", "eksAmiType": "AL2_x86_64"},
        "must be one of AL2023_x86_64_NVIDIA",
    ),
    # A request-rate HPA with nothing serving the metric never scales.
    (
        "dev",
        {"hpaMetric": "requests"},
        'hpaMetric = "requests": needs a source for the per-pod request rate: set '
        "customMetricsAdapter",
    ),
    (
        "prod",
        {"customMetricsAdapter": "none"},
        'hpaMetric = "requests": needs a source for the per-pod request rate',
    ),
    (
        "dev",
        {"customMetricsAdapter": "prometheus-adapter"},
        'customMetricsAdapter = "prometheus-adapter": needs metricsCollector',
    ),
    (
        "dev",
        {"metricsCollector": "prometheus-operator"},
        "metricsScrapeNamespaces = []: must name the namespace prometheus-operator scrapes from",
    ),
    (
        "dev",
        {"canaryAnalysisWindowSeconds": 20, "metricsScrapeIntervalSeconds": 15},
        "canaryAnalysisWindowSeconds = 20: must be ≥ 2 times metricsScrapeIntervalSeconds (15)",
    ),
]


@pytest.mark.parametrize(("stack", "overrides", "message"), CROSS_RULES)
def test_rules_across_keys(stack: str, overrides: dict[str, object], message: str) -> None:
    assert any(message in p for p in problems_for(stack, **overrides)), problems_for(
        stack, **overrides
    )


def test_all_problems_are_reported_together() -> None:
    problems = problems_for(
        hpaMaxReplicas=0, cpuRequest="x", registry="not a registry", hpaMetric="rps"
    )
    keys = {p.split(" ")[0] for p in problems}
    assert {
        f"{PROJECT}:{k}" for k in ("hpaMaxReplicas", "cpuRequest", "registry", "hpaMetric")
    } <= keys
    assert "4 problems" in str(ConfigError(problems[:4]))


def test_a_key_missing_from_the_config_is_reported_not_defaulted() -> None:
    config = {k: v for k, v in stack_config("dev").items() if not k.endswith(":hpaMinReplicas")}
    pulumi.runtime.set_all_config(config)
    with pytest.raises(ConfigError, match=r"gpu-model-serving:hpaMinReplicas is not set"):
        load_settings()


def test_a_config_mistake_ends_the_program_with_the_message_and_no_traceback() -> None:
    with pytest.raises(pulumi.RunError) as raised:
        run_stack("dev", hpaMinReplicas=5)
    assert "hpaMinReplicas = 5: must be ≤ hpaMaxReplicas (2)" in str(raised.value)
    # RunError is the SDK's "clean exit": the engine prints its message without a stack trace.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_every_key_is_declared_once_with_type_description_and_default() -> None:
    for key, spec in DECLARED.items():
        assert {"type", "description", "default"} <= spec.keys(), key
        assert spec["type"] in ("string", "integer", "boolean", "array", "object"), key


def test_inference_engines_are_the_python_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's inferenceEngine choices and default are those the runtime reads."""
    spec = importlib.util.spec_from_file_location(
        "runtime_config", ROOT / "model" / "serving" / "config.py"
    )
    assert spec is not None and spec.loader is not None
    runtime_config = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, runtime_config)  # its dataclasses look it up
    spec.loader.exec_module(runtime_config)
    assert INFERENCE_ENGINES == runtime_config.INFERENCE_ENGINES
    assert DECLARED["inferenceEngine"]["default"] == runtime_config.Settings.inference_engine


@pytest.mark.parametrize("key", sorted(RUNTIME_LIMITS))
def test_runtime_knobs_have_the_runtimes_default_and_range(key: str) -> None:
    """Separate copies of the batching and drain bounds and defaults drift apart (the settings,
    the python server and the TF Serving entrypoint once said 1024 vs 4096, 1e6 vs 1e7 µs, drain
    30 / 20 / 10 s), so a value one accepts another rejects. All three now read
    model/serving/limits.json or are held to it."""
    limit = RUNTIME_LIMITS[key]
    assert DECLARED[key]["default"] == limit["default"]
    low, high = int(limit["min"]), int(limit["max"])
    # What the highest value needs from other keys to be valid.
    room = {"servingProcesses": {"cpuLimit": str(high + 1)}}.get(key, {})
    assert settings_for("dev", **{key: low}) and settings_for("dev", **{key: high}, **room)
    assert problems_for("dev", **{key: low - 1}) == [
        f"{PROJECT}:{key} = {low - 1}: must be ≥ {low}"
    ]
    assert problems_for("dev", **{key: high + 1}, **room) == [
        f"{PROJECT}:{key} = {high + 1}: must be ≤ {high}"
    ]


def test_stack_files_set_only_declared_keys_and_never_repeat_a_default() -> None:
    for stack in ("dev", "prod"):
        values = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        for full_key, value in values.items():
            project, key = full_key.split(":", 1)
            assert project == PROJECT and key in DECLARED, f"{stack}: undeclared key {full_key}"
            assert value != DECLARED[key]["default"], f"{stack}: {key} repeats its default"


def test_settings_read_every_declared_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A declared key the program never reads is dead configuration."""
    read: set[str] = set()
    original = pulumi.Config.get

    def recording_get(self: pulumi.Config, key: str, *args: object, **kwargs: object) -> str | None:
        read.add(key)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(pulumi.Config, "get", recording_get)
    for stack, overrides in (("dev", {}), ("prod", {}), ("dev", _eks_overrides())):
        settings_for(stack, **overrides)
    assert set(DECLARED) - read == set()


def _eks_overrides() -> dict[str, object]:
    return {
        "gpuPoolProvider": "eks",
        "eksClusterName": "serving",
        "eksNodeRoleArn": "arn:aws:iam::123456789012:role/gpu-nodes",
        "eksSubnetIds": ["subnet-0abc", "subnet-0def"],
        "registryAuth": "basic",
        "registryUsername": "ci",
        "registryPassword": "not-a-real-password",
    }


# Malformed values of every shape, for every key: whatever they are, the answer is a
# ConfigError naming the key, never another exception.
_junk = st.one_of(
    st.text(alphabet=string.printable + "µ≥é\x00", max_size=12),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stack=st.sampled_from(["dev", "prod"]),
    broken=st.dictionaries(st.sampled_from(sorted(DECLARED)), _junk, min_size=1, max_size=6),
)
def test_random_malformed_configs_yield_clear_errors_never_a_traceback(
    stack: str, broken: dict[str, object]
) -> None:
    try:
        settings_for(stack, **broken)
    except ConfigError as error:
        event("rejected")
        assert error.problems
        for problem in error.problems:
            assert re.match(
                rf"^{PROJECT}:[A-Za-z][A-Za-z0-9]*( = .*: .+| is not set: .+)$", problem, re.S
            )
            assert "Traceback" not in problem
    else:
        # Accepted: every value was one the rules allow, so the whole program runs with it.
        event("accepted")
        run_stack(stack, **broken)
