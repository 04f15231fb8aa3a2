"""ModelServer: the Kubernetes objects that serve the model on the GPU pool.

What differs between the serving runtimes (image stage, environment, liveness) comes from their
profile (runtime_profiles.py); everything else is the same for both. The component reads no
stack config: any Pulumi program can declare one from ModelServerArgs (__main__.py maps this
project's settings to them). Values that only reach a resource are `pulumi.Input`s; the ones
the component decides with (counts, choices, names it derives others from) are plain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.components.metrics_collection import (
    CANARY_TRACK,
    METRICS_PATH,
    STABLE_TRACK,
    MetricsCollection,
    collector_kinds,
    monitor_spec,
    prometheus_adapter_rules,
    slo_alert_rules,
)
from gpu_model_serving.gpu_pools import Scheduling
from gpu_model_serving.runtime_profiles import (
    GRPC_PORT,
    REST_PORT,
    SERVING_PORTS,
    InferenceEngine,
    RuntimeProfile,
    ServingRuntime,
    profile_for,
)
from model_contract.contract import (
    ACCEPT_BREAKING_ANNOTATION,
    CONFIG_MAP_COMPONENT,
    CONTRACT_ANNOTATION,
    MODEL_VERSION_ANNOTATION,
    Contract,
)

MODELS_DIR = "/models"
# Kubernetes' recommended label for "the current version of the application": the model version.
VERSION_LABEL = "app.kubernetes.io/version"
# Numeric, so that the kubelet can verify runAsNonRoot; the image's USER (model/Dockerfile).
SERVER_UID = 10001
PROBE_PERIOD_SECONDS = 5
SPREAD_TOPOLOGY_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
DNS_PORT = 53
# Kubernetes sends SIGKILL this long after the grace period's other parts have passed.
GRACE_MARGIN_SECONDS = 5
# Server-side apply: an update takes back every field the stack declares from whichever field
# manager changed it by hand (kubectl edit/patch), so `up` restores drift instead of failing on
# a conflict. Fields the stack does not declare (the HPA's replica count) keep their owners.
TAKE_BACK_DECLARED_FIELDS = {"pulumi.com/patchForce": "true"}
# How long the Kubernetes provider awaits a Deployment's rollout (its default: 10 minutes).
AWAIT_TIMEOUT_ANNOTATION = "pulumi.com/timeoutSeconds"
# The role a slot's Deployment plays now (stable or canary), on the Deployment only: a promotion
# flips it without touching the pod template, so the canary's pods keep running.
TRACK_ANNOTATION = "gpu-model-serving/track"
INSTANCE_LABEL = "app.kubernetes.io/instance"
HTTP_ROUTE_CRD = "httproutes.gateway.networking.k8s.io"

Slot = Literal["a", "b"]
SLOTS: tuple[Slot, ...] = ("a", "b")
HpaMetric = Literal["cpu", "requests"]
HPA_METRICS: tuple[HpaMetric, ...] = ("cpu", "requests")
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
SERVICE_TYPES: tuple[ServiceType, ...] = ("ClusterIP", "NodePort", "LoadBalancer")


def other_slot(slot: Slot) -> Slot:
    return "b" if slot == "a" else "a"


@dataclass(frozen=True)
class GatewayRef:
    """A Gateway API Gateway an HTTPRoute attaches to."""

    namespace: str
    name: str


@dataclass(frozen=True)
class ServerResources:
    """What each server pod requests and may use, as Kubernetes quantities."""

    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "2Gi"
    memory_limit: str = "4Gi"
    ephemeral_storage_request: str = "512Mi"
    ephemeral_storage_limit: str = "1Gi"
    gpu_count: int = 1
    """GPUs per pod, of the pool's GPU resource; 0 runs on CPU."""


@dataclass(frozen=True)
class Autoscaling:
    """The HorizontalPodAutoscaler's bounds, metric and pace."""

    min_replicas: int = 1
    max_replicas: int = 2
    metric: HpaMetric = "cpu"
    """cpu utilisation, or the per-pod request rate (requests_metric_name)."""
    target_cpu_utilization: int = 70
    target_requests_per_second: int = 50
    requests_metric_name: str = "tensorflow_serving_requests_per_second"
    """The custom metric the adapter serves as each pod's request rate."""
    scale_down_stabilization_seconds: int = 300


def canary_replicas(stable_replicas: int, weight: int) -> int:
    """Canary pods beside `stable_replicas` stable ones for `weight` % of one Service's traffic,
    which kube-proxy spreads evenly over ready pods: the nearest count, at least one."""
    return max(1, round(stable_replicas * weight / (100 - weight)))


def rollout_await_seconds(args: ModelServerArgs) -> int:
    """How long `up` waits for the rollout. The provider keeps waiting past the controller's
    ProgressDeadlineExceeded, so without this a model that never loads holds `up` for the
    provider's 10 minutes whatever the deadline. A healthy rollout makes progress at least once
    per deadline for each pod it replaces (at most hpaMaxReplicas), so it is never cut short."""
    return args.progress_deadline_seconds * args.autoscaling.max_replicas


def container_env(args: ModelServerArgs, profile: RuntimeProfile, signature: str) -> dict[str, str]:
    """The shared knobs both runtimes read (model/serving/limits.json), then the runtime's own.
    SIGNATURE_NAME is the Python runtime's default signature; TF Serving's is always
    serving_default, and its clients name any other."""
    return {
        "MODEL_NAME": args.model_name,
        "MODEL_BASE_PATH": f"{MODELS_DIR}/{args.model_name}",
        "SIGNATURE_NAME": signature,
        "PORT": str(REST_PORT),
        "GRPC_PORT": str(GRPC_PORT),
        "DRAIN_TIMEOUT_SECONDS": str(args.shutdown_timeout_seconds),
        "MAX_BATCH_SIZE": str(args.max_batch_size),
        "BATCH_TIMEOUT_MICROS": str(args.batch_timeout_micros),
        **profile.env,
        **profile.env_for(args.serving_processes, args.inference_engine),
    }


@dataclass(frozen=True)
class ModelServerArgs:
    model_name: str
    """The model's name: its URL (/v1/models/<name>) and its objects' names (<name>-args)."""
    namespace: str
    """Namespace of every object."""
    image_ref: pulumi.Input[str]
    """The model server image, pinned by digest."""
    contract: Contract
    """The served model version's signatures, declared in a ConfigMap for clients and reviews."""
    scheduling: Scheduling
    """Node selector, tolerations and GPU resource of the pool (GpuNodePool.scheduling)."""
    runtime: ServingRuntime = "python"
    """The image's serving runtime: python or tensorflow-serving."""
    resources: ServerResources = field(default_factory=ServerResources)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    pdb_max_unavailable: int = 1
    """Pods a voluntary disruption (a node drain) may take at once."""
    startup_timeout_seconds: int = 300
    """How long a pod may take to load the model before the kubelet restarts it."""
    progress_deadline_seconds: int = 600
    """How long a rollout may go without progress before it is failed (and `up` with it)."""
    pre_stop_sleep_seconds: int = 10
    """How long a stopping pod keeps serving while endpoints drop it."""
    shutdown_timeout_seconds: int = 30
    """How long the server drains requests in flight after SIGTERM."""
    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    serving_processes: int = 1
    """Python runtime: server processes per pod."""
    inference_engine: InferenceEngine = "tflite"
    """Python runtime: TFLite's interpreter, or the TF Session."""
    service_type: ServiceType = "ClusterIP"
    allowed_ingress_namespaces: tuple[str, ...] = ()
    """Namespaces whose pods may call the model, beside its own."""
    allowed_ingress_cidrs: tuple[str, ...] = ()
    """Address ranges outside the cluster that may call it (a load balancer's)."""
    allowed_egress_cidrs: tuple[str, ...] = ()
    """Where the servers may connect, beside DNS; none by default."""
    metrics: MetricsCollection = field(default_factory=MetricsCollection)
    gateway: GatewayRef | None = None
    """A Gateway to split a canary's traffic by HTTPRoute weights; else by replica count."""
    create_namespace: bool = True
    """Create the namespace (restricted Pod Security Standard enforced)."""
    pod_security_version: str = "v1.34"
    """Version of the Pod Security Standards the namespace pins."""
    cluster_reachable: bool = True
    """False when rendering manifests: nothing can be looked up in a cluster."""
    accept_breaking_contract: str | None = None
    """The fingerprint of a breaking contract change the stack accepts (policy model-contract)."""
    stable_slot: Slot = "a"
    """Which fixed Deployment serves stable: a is <model>-args, b is <model>-server-b."""
    canary: CanaryArgs | None = None
    """A second model version in the other slot, with its share of traffic."""


@dataclass(frozen=True)
class CanaryArgs:
    image_ref: pulumi.Input[str]
    """The canary's image, pinned by digest."""
    contract: Contract
    """The canary's model version and signatures."""
    weight: int
    """Its share of traffic in percent (1-99)."""


@dataclass(frozen=True)
class SlotRole:
    """What one of the two fixed Deployments serves now, and at what scale."""

    slot: Slot
    track: str
    """stable or canary: the `track` label its metrics get."""
    image_ref: pulumi.Input[str]
    contract: Contract
    min_replicas: int
    max_replicas: int


def _namespace_peer(namespace: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    """Every pod of one namespace, by the name label the API server sets on each namespace."""
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels={"kubernetes.io/metadata.name": namespace}
        )
    )


class ModelServer(pulumi.ComponentResource):
    """Deployments (stable, and a canary when one runs), Service, HPAs, PDBs, ServiceAccount,
    NetworkPolicy, and an HTTPRoute when a Gateway splits the traffic, for one model."""

    deployment_name: pulumi.Output[str]
    """Name of the stable Deployment."""
    canary_deployment_name: pulumi.Output[str] | None
    """Name of the canary's Deployment, while one runs."""
    service_name: pulumi.Output[str]
    """Name of the Service (its DNS name inside the cluster)."""
    predict_url: pulumi.Output[str]
    """In-cluster URL of the predict endpoint."""
    adapter_rules: list[dict[str, Any]] | None
    """prometheus-adapter rules serving the HPA's request rate (customMetricsAdapter)."""
    slo_rules: dict[str, Any]
    """The SLO alerts as a Prometheus rule file (metrics_collection.slo_alert_rules)."""
    traffic_split: str | None
    """How the canary's share is made, in words (the rollout plan's), while one runs."""

    def __init__(
        self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gpu-model-serving:serving:ModelServer", name, None, opts)
        self._name = name
        self._model_name = args.model_name
        self._namespace = args.namespace
        # What every pod of the model carries, whichever slot: the Service, the NetworkPolicy
        # and the monitor select by these.
        self._labels = {
            "app.kubernetes.io/name": "model-server",
            "app.kubernetes.io/part-of": args.model_name,
            "app.kubernetes.io/component": "inference",
            "app.kubernetes.io/managed-by": "pulumi",
        }
        self._profile = profile_for(args.runtime)
        self._canary_args = args.canary
        self.traffic_split = None
        roles = self._roles(args)
        self._rolling_update = self._rollout(args, args.scheduling)

        namespace_dependency = (
            [self._namespace_object(name, args.pod_security_version)]
            if args.create_namespace
            else []
        )
        child = pulumi.ResourceOptions(parent=self, depends_on=namespace_dependency)
        account = self._service_account(name, child)
        # The contract first, and the Deployments after it: the policy judges the ConfigMap, so
        # an `up` that the model-contract rule stops has not rolled the new model yet.
        contract = self._contract(name, args, child)
        after_contract = pulumi.ResourceOptions.merge(
            child, pulumi.ResourceOptions(depends_on=[contract])
        )
        deployments = {
            role.track: self._deployment(role, args, account, after_contract) for role in roles
        }
        for role in roles:
            self._autoscaler(role, args, deployments[role.track], child)
            self._disruption_budget(role, args, child)
        # After the Deployments: a Service whose selector changes must find the new pods ready.
        service = self._service(
            name,
            args,
            pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=list(deployments.values()))
            ),
        )
        if args.gateway is not None:
            self._http_route(roles, args.gateway, args.cluster_reachable, child)
        self._network_policy(name, args, child)
        self.slo_rules = slo_alert_rules(
            args.namespace,
            args.model_name,
            self._slot_object_name(args.stable_slot),
            args.metrics.slo,
        )
        self._collector_objects(name, args, roles, args.cluster_reachable, child)
        self.adapter_rules = (
            prometheus_adapter_rules(
                args.namespace, args.model_name, args.autoscaling.requests_metric_name
            )
            if args.metrics.custom_metrics_adapter == "prometheus-adapter"
            else None
        )

        self.deployment_name = deployments[STABLE_TRACK].metadata.name
        canary = deployments.get(CANARY_TRACK)
        self.canary_deployment_name = None if canary is None else canary.metadata.name
        self.service_name = service.metadata.name
        self.predict_url = pulumi.Output.format(
            "http://{0}.{1}.svc.cluster.local:{2}/v1/models/{3}:predict",
            service.metadata.name,
            self._namespace,
            REST_PORT,
            args.model_name,
        )
        self.register_outputs(
            {
                "deployment_name": self.deployment_name,
                "service_name": self.service_name,
                "predict_url": self.predict_url,
            }
        )

    def _roles(self, args: ModelServerArgs) -> list[SlotRole]:
        """Stable in its slot at the HPA's bounds; the canary, if any, in the other slot, with
        the capacity both need checked against the GPU pool."""
        scaling = args.autoscaling
        stable = SlotRole(
            args.stable_slot,
            STABLE_TRACK,
            args.image_ref,
            args.contract,
            scaling.min_replicas,
            scaling.max_replicas,
        )
        if args.canary is None:
            return [stable]
        weight = args.canary.weight
        gateway = args.gateway
        if gateway is not None:
            # The route's weights split the traffic: the canary scales on its share like stable.
            low, high = scaling.min_replicas, scaling.max_replicas
            self.traffic_split = (
                f"HTTPRoute weights on Gateway {gateway.namespace}/{gateway.name}: {weight} %"
            )
        else:
            low = high = canary_replicas(scaling.min_replicas, weight)
            achieved = 100 * low / (low + scaling.min_replicas)
            self.traffic_split = (
                f"replica count: {low} canary pod(s) beside {scaling.min_replicas} stable "
                f"(hpaMinReplicas) take {achieved:.0f} % of the Service's traffic (canaryWeight "
                f"asks {weight} %), less as the HPA scales stable up"
            )
            pulumi.log.info(
                f"canary share by {self.traffic_split}; set gatewayName for an exact split"
            )
        canary = SlotRole(
            other_slot(args.stable_slot),
            CANARY_TRACK,
            args.canary.image_ref,
            args.canary.contract,
            low,
            high,
        )
        self._check_capacity(args, stable, canary)
        return [stable, canary]

    @staticmethod
    def _check_capacity(args: ModelServerArgs, stable: SlotRole, canary: SlotRole) -> None:
        """The canary's pods count against the GPU pool: at stable's minimum they must fit,
        or the canary never starts; at full scale they should, or some wait Pending."""
        gpus = args.resources.gpu_count
        fit = args.scheduling.pods_that_fit(gpus)
        if fit is None:
            return
        pool = (
            f"the GPU pool fits {fit} pod(s) (gpuPoolMaxNodes {args.scheduling.max_nodes} * "
            f"{args.scheduling.gpus_per_node} GPU(s) per node / gpuCount {gpus})"
        )
        least = stable.min_replicas + canary.min_replicas
        if fit < least:
            raise pulumi.RunError(
                f"the canary cannot start: {pool}, and stable's {stable.min_replicas} "
                f"(hpaMinReplicas) + the canary's {canary.min_replicas} need {least}; raise "
                "gpuPoolMaxNodes or lower canaryWeight"
            )
        most = stable.max_replicas + canary.max_replicas
        if fit < most:
            pulumi.log.warn(
                f"at full scale the canary's pods wait Pending: {pool}, and stable's "
                f"{stable.max_replicas} (hpaMaxReplicas) + the canary's {canary.max_replicas} "
                f"need {most}; raise gpuPoolMaxNodes to {most} pods' worth for a canary at "
                "full scale"
            )

    def _slot_object_name(self, slot: Slot) -> str:
        # Slot a keeps the name (and so the selector) the single Deployment always had.
        return f"{self._model_name}-server" if slot == "a" else f"{self._model_name}-server-b"

    def _slot_resource_name(self, slot: Slot) -> str:
        return self._name if slot == "a" else f"{self._name}-b"

    def _slot_labels(self, slot: Slot) -> dict[str, str]:
        """The slot's Deployment selector: immutable, so fixed per slot whatever role it
        plays. Slot a's is the selector the single Deployment always had."""
        instance = self._model_name if slot == "a" else f"{self._model_name}-b"
        return {
            "app.kubernetes.io/name": "model-server",
            INSTANCE_LABEL: instance,
            "app.kubernetes.io/component": "inference",
            "app.kubernetes.io/managed-by": "pulumi",
        }

    def _metadata(self) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=f"{self._model_name}-server",
            namespace=self._namespace,
            labels=self._labels,
            annotations=TAKE_BACK_DECLARED_FIELDS,
        )

    def _slot_metadata(self, slot: Slot) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=self._slot_object_name(slot),
            namespace=self._namespace,
            labels={**self._labels, **self._slot_labels(slot)},
            annotations=TAKE_BACK_DECLARED_FIELDS,
        )

    def _namespace_object(self, name: str, version: str) -> k8s.core.v1.Namespace:
        modes = ("enforce", "warn", "audit")
        restricted = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in modes}
        # Pinned: with `latest`, a cluster upgrade could tighten the standard under running pods.
        pinned = {f"pod-security.kubernetes.io/{mode}-version": version for mode in modes}
        return k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=self._namespace,
                labels={**restricted, **pinned},
                annotations=TAKE_BACK_DECLARED_FIELDS,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _service_account(
        self, name: str, opts: pulumi.ResourceOptions
    ) -> k8s.core.v1.ServiceAccount:
        return k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=self._metadata(),
            automount_service_account_token=False,
            opts=opts,
        )

    def _deployment(
        self,
        role: SlotRole,
        args: ModelServerArgs,
        account: k8s.core.v1.ServiceAccount,
        opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        selector = self._slot_labels(role.slot)
        # The contract on the Deployment, not its pod template: a new model comes with a new
        # image, which rolls the pods already. The version is on the pods too (the standard
        # label, not in the selector): `kubectl get pods -L app.kubernetes.io/version` and the
        # metrics say which version each pod serves mid-rollout, and it changes only with the
        # image.
        metadata = self._slot_metadata(role.slot)
        metadata.annotations = {
            **TAKE_BACK_DECLARED_FIELDS,
            MODEL_VERSION_ANNOTATION: str(role.contract.version),
            CONTRACT_ANNOTATION: role.contract.fingerprint,
            TRACK_ANNOTATION: role.track,
            AWAIT_TIMEOUT_ANNOTATION: str(rollout_await_seconds(args)),
        }
        return k8s.apps.v1.Deployment(
            f"{self._slot_resource_name(role.slot)}-deployment",
            metadata=metadata,
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # No replicas: the HPA owns the count. Declaring one would reset the HPA's
                # choice on every update and show its scaling as drift.
                revision_history_limit=5,
                # A model that never loads stalls the rollout; the old pods keep serving and
                # the controller marks it ProgressDeadlineExceeded (rollout_await_seconds).
                progress_deadline_seconds=args.progress_deadline_seconds,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate", rolling_update=self._rolling_update
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels={
                            **self._labels,
                            **selector,
                            VERSION_LABEL: str(role.contract.version),
                        },
                        annotations={
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(REST_PORT),
                            "prometheus.io/path": METRICS_PATH,
                        },
                    ),
                    spec=self._pod_spec(role, args, account, selector),
                ),
            ),
            opts=opts,
        )

    def _pod_spec(
        self,
        role: SlotRole,
        args: ModelServerArgs,
        account: k8s.core.v1.ServiceAccount,
        selector: dict[str, str],
    ) -> k8s.core.v1.PodSpecArgs:
        return k8s.core.v1.PodSpecArgs(
            service_account_name=account.metadata.name,
            automount_service_account_token=False,
            enable_service_links=False,
            node_selector=dict(args.scheduling.node_selector),
            tolerations=[t.args() for t in args.scheduling.tolerations],
            # Across zones (a regional pool) and then nodes, preferred rather than required:
            # a GPU pod that cannot be spread still beats no pod.
            topology_spread_constraints=[
                k8s.core.v1.TopologySpreadConstraintArgs(
                    max_skew=1,
                    topology_key=topology_key,
                    when_unsatisfiable="ScheduleAnyway",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                )
                for topology_key in SPREAD_TOPOLOGY_KEYS
            ],
            termination_grace_period_seconds=args.pre_stop_sleep_seconds
            + args.shutdown_timeout_seconds
            + GRACE_MARGIN_SECONDS,
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True,
                run_as_user=SERVER_UID,
                run_as_group=SERVER_UID,
                fs_group=SERVER_UID,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            containers=[self._container(role, args)],
            volumes=[
                k8s.core.v1.VolumeArgs(
                    name="tmp",
                    empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="256Mi"),
                )
            ],
        )

    def _container(self, role: SlotRole, args: ModelServerArgs) -> k8s.core.v1.ContainerArgs:
        model_status = k8s.core.v1.HTTPGetActionArgs(
            path=f"/v1/models/{args.model_name}", port="http"
        )
        env = container_env(args, self._profile, role.contract.signature)
        return k8s.core.v1.ContainerArgs(
            name="server",
            image=role.image_ref,
            image_pull_policy="IfNotPresent",
            env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in env.items()],
            ports=[
                k8s.core.v1.ContainerPortArgs(name=port_name, container_port=port, protocol="TCP")
                for port_name, port in SERVING_PORTS.items()
            ],
            resources=self._resources(args, args.scheduling),
            startup_probe=k8s.core.v1.ProbeArgs(
                http_get=model_status,
                period_seconds=PROBE_PERIOD_SECONDS,
                timeout_seconds=2,
                failure_threshold=math.ceil(args.startup_timeout_seconds / PROBE_PERIOD_SECONDS),
            ),
            readiness_probe=k8s.core.v1.ProbeArgs(
                http_get=model_status,
                period_seconds=PROBE_PERIOD_SECONDS,
                timeout_seconds=2,
                failure_threshold=2,
            ),
            liveness_probe=self._profile.liveness,
            lifecycle=self._lifecycle(args),
            security_context=k8s.core.v1.SecurityContextArgs(
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                run_as_non_root=True,
                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            ),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
        )

    @staticmethod
    def _rollout(
        args: ModelServerArgs, scheduling: Scheduling
    ) -> k8s.apps.v1.RollingUpdateDeploymentArgs:
        """Surge one pod, then retire one, so capacity never drops during a rollout: when the
        pool has room for a pod beyond hpaMaxReplicas. At a full pool the surge pod could never
        schedule and the rollout would stall until its deadline failed `up`; there one old pod
        goes first, and the preview says so."""
        fit = scheduling.pods_that_fit(args.resources.gpu_count)
        most = args.autoscaling.max_replicas
        if fit is None or fit > most:
            return k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0)
        pulumi.log.warn(
            f"rollouts replace pods one at a time without a surge pod: the GPU pool fits {fit} "
            f"pod(s) (gpuPoolMaxNodes {scheduling.max_nodes} * {scheduling.gpus_per_node} GPU(s) "
            f"per node / gpuCount {args.resources.gpu_count}) and hpaMaxReplicas is {most}, "
            f"so at full scale a rollout runs one pod short; raise gpuPoolMaxNodes so the pool "
            f"fits {most + 1} for rollouts at full capacity"
        )
        return k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=0, max_unavailable=1)

    @staticmethod
    def _resources(
        args: ModelServerArgs, scheduling: Scheduling
    ) -> k8s.core.v1.ResourceRequirementsArgs:
        resources = args.resources
        requests = {
            "cpu": resources.cpu_request,
            "memory": resources.memory_request,
            "ephemeral-storage": resources.ephemeral_storage_request,
        }
        limits = {
            "cpu": resources.cpu_limit,
            "memory": resources.memory_limit,
            "ephemeral-storage": resources.ephemeral_storage_limit,
        }
        if resources.gpu_count > 0:
            # Extended resources cannot be overcommitted: request and limit must be equal.
            requests[scheduling.gpu_resource_name] = str(resources.gpu_count)
            limits[scheduling.gpu_resource_name] = str(resources.gpu_count)
        return k8s.core.v1.ResourceRequirementsArgs(requests=requests, limits=limits)

    @staticmethod
    def _lifecycle(args: ModelServerArgs) -> k8s.core.v1.LifecycleArgs | None:
        if args.pre_stop_sleep_seconds == 0:
            return None
        # The kubelet's own sleep: endpoints drop the pod before the server hears SIGTERM,
        # and the image needs no shell.
        return k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                sleep=k8s.core.v1.SleepActionArgs(seconds=args.pre_stop_sleep_seconds)
            )
        )

    def _service(
        self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions
    ) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            f"{name}-service",
            metadata=self._metadata(),
            spec=k8s.core.v1.ServiceSpecArgs(
                type=args.service_type,
                selector=self._labels,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name=port_name, port=port, target_port=port_name, protocol="TCP"
                    )
                    for port_name, port in SERVING_PORTS.items()
                ],
            ),
            opts=opts,
        )

    def _autoscaler(
        self,
        role: SlotRole,
        args: ModelServerArgs,
        deployment: k8s.apps.v1.Deployment,
        opts: pulumi.ResourceOptions,
    ) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
        scaling = args.autoscaling
        if scaling.metric == "cpu":
            metric = k8s.autoscaling.v2.MetricSpecArgs(
                type="Resource",
                resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                    name="cpu",
                    target=k8s.autoscaling.v2.MetricTargetArgs(
                        type="Utilization", average_utilization=scaling.target_cpu_utilization
                    ),
                ),
            )
        else:
            metric = k8s.autoscaling.v2.MetricSpecArgs(
                type="Pods",
                pods=k8s.autoscaling.v2.PodsMetricSourceArgs(
                    metric=k8s.autoscaling.v2.MetricIdentifierArgs(
                        name=scaling.requests_metric_name
                    ),
                    target=k8s.autoscaling.v2.MetricTargetArgs(
                        type="AverageValue",
                        average_value=str(scaling.target_requests_per_second),
                    ),
                ),
            )
        return k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self._slot_resource_name(role.slot)}-autoscaler",
            metadata=self._slot_metadata(role.slot),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=deployment.metadata.name
                ),
                min_replicas=role.min_replicas,
                max_replicas=role.max_replicas,
                metrics=[metric],
                # GPU pods take minutes to start: add capacity quickly, remove it reluctantly.
                behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                    scale_up=k8s.autoscaling.v2.HPAScalingRulesArgs(
                        stabilization_window_seconds=0,
                        select_policy="Max",
                        policies=[
                            k8s.autoscaling.v2.HPAScalingPolicyArgs(
                                type="Percent", value=100, period_seconds=30
                            ),
                            k8s.autoscaling.v2.HPAScalingPolicyArgs(
                                type="Pods", value=2, period_seconds=30
                            ),
                        ],
                    ),
                    scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(
                        stabilization_window_seconds=scaling.scale_down_stabilization_seconds,
                        select_policy="Min",
                        policies=[
                            k8s.autoscaling.v2.HPAScalingPolicyArgs(
                                type="Percent", value=50, period_seconds=60
                            )
                        ],
                    ),
                ),
            ),
            opts=opts,
        )

    def _disruption_budget(
        self, role: SlotRole, args: ModelServerArgs, opts: pulumi.ResourceOptions
    ) -> k8s.policy.v1.PodDisruptionBudget:
        return k8s.policy.v1.PodDisruptionBudget(
            f"{self._slot_resource_name(role.slot)}-disruption-budget",
            metadata=self._slot_metadata(role.slot),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=args.pdb_max_unavailable,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._slot_labels(role.slot)),
                # A pod that never became ready must not block a node drain.
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
            opts=opts,
        )

    @staticmethod
    def _egress(args: ModelServerArgs) -> list[k8s.networking.v1.NetworkPolicyEgressRuleArgs]:
        # DNS to any address: cluster DNS may be a Service, a node-local cache or the VPC's.
        dns = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
            ports=[
                k8s.networking.v1.NetworkPolicyPortArgs(port=DNS_PORT, protocol=protocol)
                for protocol in ("UDP", "TCP")
            ]
        )
        if not args.allowed_egress_cidrs:
            return [dns]
        allowed = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
            to=[
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr)
                )
                for cidr in args.allowed_egress_cidrs
            ]
        )
        return [dns, allowed]

    def _network_policy(
        self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions
    ) -> k8s.networking.v1.NetworkPolicy:
        sources = [
            k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs())
        ]
        sources += [_namespace_peer(namespace) for namespace in args.allowed_ingress_namespaces]
        sources += [
            k8s.networking.v1.NetworkPolicyPeerArgs(
                ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr)
            )
            for cidr in args.allowed_ingress_cidrs
        ]
        ingress = [
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=sources,
                ports=[
                    k8s.networking.v1.NetworkPolicyPortArgs(port=port, protocol="TCP")
                    for port in SERVING_PORTS.values()
                ],
            )
        ]
        if args.metrics.scrape_namespaces:
            # The scraper reaches only the port the metrics are on.
            ingress.append(
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[_namespace_peer(n) for n in args.metrics.scrape_namespaces],
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=REST_PORT, protocol="TCP")],
                )
            )
        return k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata=self._metadata(),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._labels),
                # Egress too: neither runtime calls out (the model is in the image), so only
                # DNS and the configured ranges are open.
                policy_types=["Ingress", "Egress"],
                egress=self._egress(args),
                ingress=ingress,
            ),
            opts=opts,
        )

    def _contract(
        self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions
    ) -> k8s.core.v1.ConfigMap:
        """The served version's signatures where clients, reviewers and the next preview read
        them: a contract change shows as a field diff, and the policy pack compares it with
        what the live stack serves."""
        annotations = dict(TAKE_BACK_DECLARED_FIELDS)
        if args.accept_breaking_contract is not None:
            annotations[ACCEPT_BREAKING_ANNOTATION] = args.accept_breaking_contract
        return k8s.core.v1.ConfigMap(
            f"{name}-contract",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{args.model_name}-contract",
                namespace=self._namespace,
                labels={**self._labels, "app.kubernetes.io/component": CONFIG_MAP_COMPONENT},
                annotations=annotations,
            ),
            data=args.contract.config_map_data(),
            opts=opts,
        )

    def _collector_objects(
        self,
        name: str,
        args: ModelServerArgs,
        roles: list[SlotRole],
        cluster_reachable: bool,
        opts: pulumi.ResourceOptions,
    ) -> None:
        """The ServiceMonitor or PodMonitoring that points the cluster's collector at the
        servers, and the PrometheusRule or Rules that alerts on their SLO."""
        metrics = args.metrics
        kinds = collector_kinds(metrics.collector)
        if kinds is None:
            return
        tracks = {self._slot_labels(role.slot)[INSTANCE_LABEL]: role.track for role in roles}
        monitor = monitor_spec(
            kinds.monitor, self._labels, "http", metrics.scrape_interval_seconds, tracks
        )
        for suffix, kind, spec in (
            ("monitor", kinds.monitor, monitor),
            ("slo-rules", kinds.rules, self.slo_rules),
        ):
            self._custom_object(
                f"{name}-{suffix}",
                api_version=kind.api_version,
                kind=kind.kind,
                crd_name=kind.crd_name,
                spec=spec,
                # Prometheus selects rules by label as it selects monitors.
                labels={**self._labels, **metrics.monitor_labels},
                cluster_reachable=cluster_reachable,
                opts=opts,
            )

    def _custom_object(
        self,
        resource_name: str,
        *,
        api_version: str,
        kind: str,
        crd_name: str,
        spec: dict[str, Any],
        labels: dict[str, str],
        cluster_reachable: bool,
        opts: pulumi.ResourceOptions,
    ) -> k8s.apiextensions.CustomResource:
        object_opts = opts
        if cluster_reachable:
            # The provider skips a custom resource whose kind the cluster lacks in preview
            # and fails only at `up`, half-way through. Reading the CRD fails the preview
            # instead, naming it.
            crd = k8s.apiextensions.v1.CustomResourceDefinition.get(
                f"{resource_name}-crd", crd_name, opts=pulumi.ResourceOptions(parent=self)
            )
            object_opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[crd])
            )
        return k8s.apiextensions.CustomResource(
            resource_name,
            api_version=api_version,
            kind=kind,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{self._model_name}-server",
                namespace=self._namespace,
                labels=labels,
                annotations=TAKE_BACK_DECLARED_FIELDS,
            ),
            spec=spec,
            opts=object_opts,
        )

    def _http_route(
        self,
        roles: list[SlotRole],
        gateway: GatewayRef,
        cluster_reachable: bool,
        opts: pulumi.ResourceOptions,
    ) -> None:
        """The Gateway's HTTPRoute to one Service per serving slot, weighted by the canary's
        share: promotion retargets the route, no pod restarts. REST only; gRPC clients use the
        Service, split by replica count."""
        canary_weight = 0 if self._canary_args is None else self._canary_args.weight
        backends = []
        for role in roles:
            service = self._slot_service(role.slot, opts)
            weight = canary_weight if role.track == CANARY_TRACK else 100 - canary_weight
            backends.append({"name": service.metadata.name, "port": REST_PORT, "weight": weight})
        self._custom_object(
            f"{self._name}-http-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            crd_name=HTTP_ROUTE_CRD,
            spec={
                "parentRefs": [{"name": gateway.name, "namespace": gateway.namespace}],
                "rules": [{"backendRefs": backends}],
            },
            labels=self._labels,
            cluster_reachable=cluster_reachable,
            opts=opts,
        )

    def _slot_service(self, slot: Slot, opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
        """One slot's pods alone, for the route to weigh; its labels are the slot's, so the
        ServiceMonitor (which selects the model's Service) does not scrape each pod twice."""
        return k8s.core.v1.Service(
            f"{self._slot_resource_name(slot)}-slot-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{self._model_name}-server-{slot}",
                namespace=self._namespace,
                labels=self._slot_labels(slot),
                annotations=TAKE_BACK_DECLARED_FIELDS,
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=self._slot_labels(slot),
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name=port_name, port=port, target_port=port_name, protocol="TCP"
                    )
                    for port_name, port in SERVING_PORTS.items()
                ],
            ),
            opts=opts,
        )
