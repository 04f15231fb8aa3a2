"""ModelServer: the Deployment's production defaults and its companion objects."""

from __future__ import annotations

from typing import Any

import pytest

from gpu_model_serving.components.model_server import ModelServer
from gpu_model_serving.runtime_profiles import SERVING_RUNTIMES
from gpu_model_serving.stack_args import model_server_args
from model_contract.contract import ACCEPT_BREAKING_ANNOTATION, Contract
from tests.unit.harness import StackMocks, construct, resolve, settings_for

IMAGE_REF = "127.0.0.1:5000/model-server@sha256:" + "ab" * 32


def serve(stack: str = "dev", /, **overrides: object) -> ModelServer:
    settings = settings_for(stack, **overrides)
    args = model_server_args(settings, IMAGE_REF, settings.gpu_pool.scheduling())
    return construct(lambda: ModelServer("model-server", args))


def pod_spec(mocks: StackMocks) -> dict[str, Any]:
    spec: dict[str, Any] = mocks.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"][
        "spec"
    ]
    return spec


def env_of(main: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in main["env"]}


def container(mocks: StackMocks) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(mocks)["containers"]
    assert len(containers) == 1
    return containers[0]


def test_the_deployment_runs_the_image_by_digest_on_the_gpu_pool(mocks: StackMocks) -> None:
    serve()
    assert container(mocks)["image"] == IMAGE_REF
    spec = pod_spec(mocks)
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "nvidia-l4"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    resources = container(mocks)["resources"]
    assert resources["limits"] == {
        "cpu": "1",
        "memory": "1Gi",
        "ephemeral-storage": "1Gi",
        "nvidia.com/gpu": "1",
    }
    assert resources["requests"] == {
        "cpu": "250m",
        "memory": "512Mi",
        "ephemeral-storage": "512Mi",
        "nvidia.com/gpu": "1",
    }


def test_ephemeral_storage_is_requested_and_bounded(mocks: StackMocks) -> None:
    """Without a limit the pod's logs and /tmp can fill the node's disk, and without a request
    the scheduler places pods without counting them."""
    serve(ephemeralStorageRequest="2Gi", ephemeralStorageLimit="8Gi")
    resources = container(mocks)["resources"]
    assert resources["requests"]["ephemeral-storage"] == "2Gi"
    assert resources["limits"]["ephemeral-storage"] == "8Gi"


def test_replicas_spread_across_zones_then_nodes(mocks: StackMocks) -> None:
    """The GKE pool spans zones; spreading only by hostname could put every replica in one
    zone, and one zone's outage would take them all."""
    serve()
    constraints = pod_spec(mocks)["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in constraints] == [
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
        ("kubernetes.io/hostname", "ScheduleAnyway"),
    ]


def test_zero_gpus_requests_none_but_still_lands_on_the_pool(mocks: StackMocks) -> None:
    serve(gpuCount=0)
    assert "nvidia.com/gpu" not in container(mocks)["resources"]["limits"]
    assert pod_spec(mocks)["nodeSelector"] == {"nvidia.com/gpu.product": "nvidia-l4"}


def test_probes_are_sized_for_model_load_and_read_the_model_status(mocks: StackMocks) -> None:
    serve(startupTimeoutSeconds=300)
    main = container(mocks)
    status = {"path": "/v1/models/digits", "port": "http"}
    assert main["startupProbe"]["httpGet"] == status
    assert main["startupProbe"]["periodSeconds"] * main["startupProbe"]["failureThreshold"] >= 300
    assert main["readinessProbe"]["httpGet"] == status
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_a_rollout_that_never_becomes_ready_fails_at_the_stacks_deadline(
    mocks: StackMocks,
) -> None:
    serve(startupTimeoutSeconds=60, progressDeadlineSeconds=90, hpaMaxReplicas=2)
    deployment = mocks.one("kubernetes:apps/v1:Deployment").inputs
    assert deployment["spec"]["progressDeadlineSeconds"] == 90
    # The provider gives up one deadline per pod the rollout may replace, not at its own 10 min.
    assert deployment["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "180"


def strategy(mocks: StackMocks) -> dict[str, int]:
    rolling: dict[str, int] = mocks.one("kubernetes:apps/v1:Deployment").inputs["spec"]["strategy"][
        "rollingUpdate"
    ]
    return rolling


@pytest.mark.parametrize(
    ("overrides", "rolling"),
    [
        # 3 one-GPU nodes, at most 2 pods: room for the surge pod.
        ({"hpaMaxReplicas": 2}, {"maxSurge": 1, "maxUnavailable": 0}),
        # 3 nodes, 3 pods: no room at full scale, so one old pod goes first.
        ({"hpaMaxReplicas": 3}, {"maxSurge": 0, "maxUnavailable": 1}),
        # 2 GPUs per node, 2 per pod: 3 pods fit; 4 nodes of 2: 4 pods fit, one more than 3.
        (
            {"gpuAcceleratorsPerNode": 2, "gpuCount": 2, "hpaMaxReplicas": 3},
            {"maxSurge": 0, "maxUnavailable": 1},
        ),
        (
            {"gpuAcceleratorsPerNode": 2, "gpuCount": 2, "gpuPoolMaxNodes": 4, "hpaMaxReplicas": 3},
            {"maxSurge": 1, "maxUnavailable": 0},
        ),
        # Pods claiming no GPU are not bounded by the pool's GPUs.
        ({"gpuCount": 0}, {"maxSurge": 1, "maxUnavailable": 0}),
    ],
)
def test_the_rollout_surges_only_when_the_pool_fits_a_pod_beyond_max_replicas(
    mocks: StackMocks, overrides: dict[str, object], rolling: dict[str, int]
) -> None:
    """With maxSurge 1 and hpaMaxReplicas equal to the pool's GPU capacity, the surge pod finds
    no GPU and every rollout at full scale stalls (tests/cluster shows both on the simulated
    pool)."""
    serve(**overrides)
    assert strategy(mocks) == rolling


def test_prod_keeps_a_node_for_the_surge_pod_at_full_scale(mocks: StackMocks) -> None:
    serve("prod")
    assert strategy(mocks) == {"maxSurge": 1, "maxUnavailable": 0}


def test_rollouts_never_reduce_capacity_and_pods_drain_before_they_stop(mocks: StackMocks) -> None:
    serve(preStopSleepSeconds=10, shutdownTimeoutSeconds=30, hpaMaxReplicas=2)
    assert strategy(mocks)["maxUnavailable"] == 0
    assert container(mocks)["lifecycle"]["preStop"] == {"sleep": {"seconds": 10}}
    assert env_of(container(mocks))["DRAIN_TIMEOUT_SECONDS"] == "30"
    # SIGKILL must not come before the preStop pause plus the server's own drain.
    assert pod_spec(mocks)["terminationGracePeriodSeconds"] > 10 + 30


def test_no_pre_stop_hook_when_the_pause_is_zero(mocks: StackMocks) -> None:
    serve(preStopSleepSeconds=0)
    assert "lifecycle" not in container(mocks)


def test_the_pod_meets_the_restricted_security_profile(mocks: StackMocks) -> None:
    serve()
    pod = pod_spec(mocks)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container(mocks)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {m["mountPath"] for m in container(mocks)["volumeMounts"]} == {"/tmp"}


@pytest.mark.parametrize("runtime", SERVING_RUNTIMES)
def test_prometheus_scrapes_the_same_path_for_both_runtimes(
    mocks: StackMocks, runtime: str
) -> None:
    serve(servingRuntime=runtime)
    annotations = mocks.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8501",
        "prometheus.io/path": "/monitoring/prometheus/metrics",
    }


def test_python_runtime_is_configured_by_environment_on_the_rest_and_grpc_ports(
    mocks: StackMocks,
) -> None:
    serve(maxBatchSize=16, batchTimeoutMicros=4000)
    main = container(mocks)
    assert "args" not in main
    assert env_of(main) == {
        "MODEL_NAME": "digits",
        "MODEL_BASE_PATH": "/models/digits",
        "SIGNATURE_NAME": "serving_default",
        "HOST": "0.0.0.0",
        "PORT": "8501",
        "GRPC_PORT": "8500",
        "MAX_BATCH_SIZE": "16",
        "BATCH_TIMEOUT_MICROS": "4000",
        "DRAIN_TIMEOUT_SECONDS": "30",
        "SERVING_PROCESSES": "1",
        "INFERENCE_ENGINE": "tflite",
    }
    # TF Serving's gRPC API too, so a client can switch runtimes without changing protocol.
    assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [
        ("http", 8501),
        ("grpc", 8500),
    ]
    service_ports = mocks.one("kubernetes:core/v1:Service").inputs["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in service_ports] == [("http", 8501), ("grpc", 8500)]


def test_serving_processes_follow_the_stack_within_its_cpu_limit(mocks: StackMocks) -> None:
    serve(servingProcesses=3, cpuLimit="2500m")
    assert env_of(container(mocks))["SERVING_PROCESSES"] == "3"


def test_the_inference_engine_follows_the_stack(mocks: StackMocks) -> None:
    serve(inferenceEngine="session")
    assert env_of(container(mocks))["INFERENCE_ENGINE"] == "session"


def test_tensorflow_serving_gets_the_same_contract_and_a_grpc_port(mocks: StackMocks) -> None:
    """Prod's batching keys (64, 5000 µs) must reach TF Serving's entrypoint, which writes them
    into its BatchingParameters (tests/image); without them it batches with the defaults."""
    serve("prod")
    main = container(mocks)
    assert "args" not in main
    assert env_of(main) == {
        "MODEL_NAME": "digits",
        "MODEL_BASE_PATH": "/models/digits",
        "SIGNATURE_NAME": "serving_default",
        "PORT": "8501",
        "GRPC_PORT": "8500",
        "DRAIN_TIMEOUT_SECONDS": "30",
        "MAX_BATCH_SIZE": "64",
        "BATCH_TIMEOUT_MICROS": "5000",
    }
    assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [
        ("http", 8501),
        ("grpc", 8500),
    ]
    assert main["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/v1/models/digits", "port": "http"}
    service_ports = mocks.one("kubernetes:core/v1:Service").inputs["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in service_ports] == [("http", 8501), ("grpc", 8500)]


def test_hpa_scales_the_deployment_on_cpu(mocks: StackMocks) -> None:
    serve()
    hpa = mocks.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "digits-server",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 2)
    assert hpa["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0


SCRAPED_BY_PROMETHEUS = {
    "metricsCollector": "prometheus-operator",
    "metricsScrapeNamespaces": ["monitoring"],
    "customMetricsAdapter": "prometheus-adapter",
}


def test_hpa_can_scale_on_a_per_pod_request_rate(mocks: StackMocks) -> None:
    server = serve(**SCRAPED_BY_PROMETHEUS, hpaMetric="requests", hpaTargetRequestsPerSecond=120)
    metric = mocks.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"][
        "metrics"
    ][0]
    assert metric == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "tensorflow_serving_requests_per_second"},
            "target": {"type": "AverageValue", "averageValue": "120"},
        },
    }
    # ... the very name the adapter rule serves, from the series both runtimes export.
    (rule,) = server.adapter_rules or []
    assert rule["name"] == {
        "matches": "^:tensorflow:serving:request_count$",
        "as": "tensorflow_serving_requests_per_second",
    }
    assert (
        rule["seriesQuery"]
        == ':tensorflow:serving:request_count{namespace="model-serving",pod!=""}'
    )
    assert 'model_name="digits"' in rule["metricsQuery"]
    assert rule["metricsQuery"].startswith("sum(rate(<<.Series>>{<<.LabelMatchers>>,")


@pytest.mark.parametrize(
    ("collector", "api_version", "kind", "rules_kind"),
    [
        ("prometheus-operator", "monitoring.coreos.com/v1", "ServiceMonitor", "PrometheusRule"),
        ("gke-managed-prometheus", "monitoring.googleapis.com/v1", "PodMonitoring", "Rules"),
    ],
)
def test_the_collector_gets_a_monitor_and_the_network_policy_admits_it_to_metrics_only(
    mocks: StackMocks, collector: str, api_version: str, kind: str, rules_kind: str
) -> None:
    """Without a monitor and an ingress rule for the collector's namespace, a Prometheus in a
    monitoring namespace is neither told to scrape the servers nor allowed to."""
    serve(
        metricsCollector=collector,
        metricsScrapeNamespaces=["monitoring"],
        metricsMonitorLabels={"release": "kube-prometheus-stack"},
        metricsScrapeIntervalSeconds=30,
    )
    monitor = mocks.one(f"kubernetes:{api_version}:{kind}").inputs
    rules = mocks.one(f"kubernetes:{api_version}:{rules_kind}").inputs
    # The CRDs are read, not declared: a cluster without one fails the preview, not `up`.
    group = api_version.split("/", maxsplit=1)[0]
    crds = [c for c in mocks.created if c.read_id is not None]
    assert {c.type for c in crds} == {"kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"}
    assert {c.read_id for c in crds} == {
        f"{kind.lower()}s.{group}",
        f"{rules_kind.lower().removesuffix('s')}s.{group}",  # rules, prometheusrules
    }
    # The model's labels, which both slots' pods carry; the Service selects by them.
    labels = mocks.one("kubernetes:core/v1:Service").inputs["spec"]["selector"]
    assert monitor["metadata"]["labels"] == {**labels, "release": "kube-prometheus-stack"}
    # The SLO alerts beside it, selected by the same labels; its spec is the rule file.
    assert rules["metadata"]["labels"] == monitor["metadata"]["labels"]
    assert rules["metadata"]["namespace"] == "model-serving"
    (slo,) = rules["spec"]["groups"]
    assert [r["alert"] for r in slo["rules"]] == [
        "ModelServerErrorBudgetBurn",
        "ModelServerLatencyP99High",
        "ModelServerNoAvailableReplica",
        "ModelServerCanaryWorseThanStable",
    ]
    assert monitor["metadata"]["namespace"] == "model-serving"
    # Each series gets its pod's track (stable here: no canary runs) from the monitor.
    track = {
        "regex": "digits",
        "targetLabel": "track",
        "replacement": "stable",
        "action": "replace",
    }
    endpoint: dict[str, Any] = {
        "port": "http",
        "path": "/monitoring/prometheus/metrics",
        "interval": "30s",
    }
    if kind == "ServiceMonitor":
        source = "__meta_kubernetes_pod_label_app_kubernetes_io_instance"
        endpoint["relabelings"] = [{"sourceLabels": [source], **track}]
        assert monitor["spec"] == {"selector": {"matchLabels": labels}, "endpoints": [endpoint]}
    else:
        endpoint["metricRelabeling"] = [{"sourceLabels": ["slot"], **track}]
        assert monitor["spec"] == {
            "selector": {"matchLabels": labels},
            "targetLabels": {"fromPod": [{"from": "app.kubernetes.io/instance", "to": "slot"}]},
            "endpoints": [endpoint],
        }
    # The Service (a ServiceMonitor's target) carries the labels the monitor selects.
    service = mocks.one("kubernetes:core/v1:Service").inputs
    assert labels.items() <= service["metadata"]["labels"].items()
    assert {"name": "http", "port": 8501, "targetPort": "http", "protocol": "TCP"} in service[
        "spec"
    ]["ports"]
    policy = mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    serving, scraping = policy["ingress"]
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert monitoring not in serving["from"]
    assert scraping == {"from": [monitoring], "ports": [{"port": 8501, "protocol": "TCP"}]}


def test_the_grpc_port_stays_closed_to_the_scraper(mocks: StackMocks) -> None:
    serve("prod")
    policy = mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    serving, scraping = policy["ingress"]
    assert {"port": 8500, "protocol": "TCP"} in serving["ports"]
    assert scraping["ports"] == [{"port": 8501, "protocol": "TCP"}]
    assert mocks.of_type("kubernetes:monitoring.googleapis.com/v1:PodMonitoring")


def test_without_a_collector_no_monitor_is_declared(mocks: StackMocks) -> None:
    server = serve()
    assert [c for c in mocks.created if "monitoring" in c.type] == []
    assert (
        len(mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]["ingress"])
        == 1
    )
    assert server.adapter_rules is None


def test_disruption_budget_and_service_account(mocks: StackMocks) -> None:
    serve(pdbMaxUnavailable=2)
    pdb = mocks.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["maxUnavailable"] == 2
    assert pdb["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "digits"
    account = mocks.one("kubernetes:core/v1:ServiceAccount").inputs
    assert account["automountServiceAccountToken"] is False
    deployment = mocks.one("kubernetes:apps/v1:Deployment").inputs
    assert pod_spec(mocks)["serviceAccountName"] == account["metadata"]["name"] == "digits-server"
    assert deployment["metadata"]["namespace"] == "model-serving"


def test_network_policy_admits_only_configured_sources_on_serving_ports(mocks: StackMocks) -> None:
    serve(allowedIngressNamespaces=["gateway"], allowedIngressCidrs=["10.128.0.0/20"])
    policy = mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["ingress"]
    # REST and gRPC, for both runtimes.
    assert rule["ports"] == [{"port": 8501, "protocol": "TCP"}, {"port": 8500, "protocol": "TCP"}]
    assert rule["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}},
        {"ipBlock": {"cidr": "10.128.0.0/20"}},
    ]


def test_egress_is_denied_except_dns_unless_ranges_are_allowed(mocks: StackMocks) -> None:
    """Neither runtime needs egress, and with it open a compromised server could reach
    anything. The cluster layer applies the same policy to a real API server."""
    serve()
    policy = mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    dns = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert "Egress" in policy["policyTypes"]
    assert policy["egress"] == [dns]


def test_allowed_egress_ranges_open_only_those(mocks: StackMocks) -> None:
    serve(allowedEgressCidrs=["10.0.0.0/8"])
    policy = mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    assert policy["egress"][1] == {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}


@pytest.mark.parametrize("create", [True, False])
def test_the_namespace_enforces_the_restricted_pod_security_standard(
    mocks: StackMocks, create: bool
) -> None:
    serve(createNamespace=create)
    namespaces = mocks.of_type("kubernetes:core/v1:Namespace")
    if not create:
        assert namespaces == []
        return
    labels = namespaces[0].inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # Pinned to the target cluster's version, not `latest`, which would move with upgrades.
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v1.34"
    assert namespaces[0].inputs["metadata"]["name"] == "model-serving"


def test_the_predict_url_is_the_service_dns_name() -> None:
    server = serve()
    assert resolve(server.predict_url) == (
        "http://digits-server.model-serving.svc.cluster.local:8501/v1/models/digits:predict"
    )


def test_the_contract_is_declared_in_a_config_map_and_on_the_deployment(
    mocks: StackMocks,
) -> None:
    contract = settings_for("dev").model.contract
    serve()
    config_map = mocks.one("kubernetes:core/v1:ConfigMap").inputs
    assert config_map["metadata"]["name"] == "digits-contract"
    assert config_map["metadata"]["labels"]["app.kubernetes.io/component"] == "model-contract"
    assert Contract.from_config_map_data(config_map["data"]) == contract
    assert ACCEPT_BREAKING_ANNOTATION not in config_map["metadata"]["annotations"]
    annotations = mocks.one("kubernetes:apps/v1:Deployment").inputs["metadata"]["annotations"]
    assert annotations["gpu-model-serving/model-version"] == str(contract.version)
    assert annotations["gpu-model-serving/model-contract"] == contract.fingerprint
    # Not on the pod template: a new contract comes with a new image, which rolls the pods.
    spec = mocks.one("kubernetes:apps/v1:Deployment").inputs["spec"]
    assert "gpu-model-serving/model-contract" not in spec["template"]["metadata"]["annotations"]
    # The version is, as Kubernetes' recommended label, and stays out of the immutable selector.
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == str(
        contract.version
    )
    assert "app.kubernetes.io/version" not in spec["selector"]["matchLabels"]


def test_an_accepted_breaking_contract_is_annotated_for_the_policy(mocks: StackMocks) -> None:
    serve(modelContractAcceptBreaking="sha256:0123456789abcdef")
    annotations = mocks.one("kubernetes:core/v1:ConfigMap").inputs["metadata"]["annotations"]
    assert annotations[ACCEPT_BREAKING_ANNOTATION] == "sha256:0123456789abcdef"


def test_the_python_runtime_serves_the_stacks_signature(mocks: StackMocks) -> None:
    serve()
    assert env_of(container(mocks))["SIGNATURE_NAME"] == "serving_default"
