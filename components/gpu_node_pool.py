"""GpuNodePool: the nodes the model runs on, and how pods get scheduled onto them.

`gke` and `eks` create a pool in an existing cluster; `existing` creates nothing and describes
nodes that are already labelled and tainted. All three yield the same `Scheduling`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s

from settings import EksPoolSettings, GkePoolSettings, GpuPoolSettings

if TYPE_CHECKING:
    import pulumi_aws as aws
    import pulumi_gcp as gcp

GPU_RESOURCE_NAME = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "present"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
GKE_NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"
EKS_ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
EKS_NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
# The accelerated AL2/AL2023 AMIs ship the driver and container toolkit but not the device
# plugin; Bottlerocket's NVIDIA variants run it themselves.
AMI_TYPES_WITHOUT_DEVICE_PLUGIN = ("AL2023_x86_64_NVIDIA", "AL2_x86_64_GPU")
# Guaranteed QoS for a system-node-critical agent: never the first the kubelet evicts or
# OOM-kills. The plugin idles at a few MiB and a few millicores.
DEVICE_PLUGIN_RESOURCES = {"cpu": "50m", "memory": "100Mi"}


@dataclass(frozen=True)
class Toleration:
    """A pod toleration, as plain data so that Scheduling values compare equal."""

    key: str
    operator: str
    effect: str

    def args(self) -> k8s.core.v1.TolerationArgs:
        return k8s.core.v1.TolerationArgs(key=self.key, operator=self.operator, effect=self.effect)


GPU_TOLERATION = Toleration(key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")


@dataclass(frozen=True)
class Scheduling:
    """Where GPU pods go: the same shape whatever created the pool."""

    node_selector: Mapping[str, str]
    """Labels a node must carry."""
    tolerations: tuple[Toleration, ...]
    """Tolerations for the pool's taints."""
    gpu_resource_name: str
    """Extended resource a pod requests GPUs by."""
    pool_name: str
    """Name of the pool (or node group)."""
    max_nodes: int
    """Most nodes the pool has (its autoscaler's bound, or the nodes that exist)."""
    gpus_per_node: int

    def pods_that_fit(self, gpus_per_pod: int) -> int | None:
        """How many pods claiming `gpus_per_pod` GPUs the pool holds at its largest; None when
        pods claim no GPU (the GPUs do not bound them)."""
        if gpus_per_pod == 0:
            return None
        return self.max_nodes * (self.gpus_per_node // gpus_per_pod)


@dataclass(frozen=True)
class GpuNodePoolArgs:
    pool: GpuPoolSettings
    """Provider, accelerator and sizes of the pool."""
    kubernetes_provider: k8s.Provider
    """Cluster the pool belongs to (for the EKS device plugin)."""


class GpuNodePool(pulumi.ComponentResource):
    """A GPU node pool on GKE or EKS, or the description of nodes that already exist."""

    scheduling: Scheduling
    """Node selector, tolerations and GPU resource name for pods on this pool."""
    pool_name: pulumi.Output[str]
    """Name of the pool, known once the cloud has created it."""

    def __init__(
        self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gpu-model-serving:gpu:GpuNodePool", name, None, opts)
        pool = args.pool
        if pool.gke is not None:
            self.pool_name = self._gke_node_pool(name, pool, pool.gke).name
        elif pool.eks is not None:
            node_group = self._eks_node_group(name, pool, pool.eks)
            if pool.eks.ami_type in AMI_TYPES_WITHOUT_DEVICE_PLUGIN:
                self._device_plugin(name, pool, pool.eks, args.kubernetes_provider, node_group)
            self.pool_name = node_group.node_group_name
        else:
            self.pool_name = pulumi.Output.from_input(pool.name)
        self.scheduling = scheduling_for(pool)
        self.register_outputs({"pool_name": self.pool_name})

    def _gke_node_pool(
        self, name: str, pool: GpuPoolSettings, gke: GkePoolSettings
    ) -> gcp.container.NodePool:
        import pulumi_gcp as gcp  # only stacks with a GKE pool need the GCP SDK and plugin

        return gcp.container.NodePool(
            f"{name}-gke",
            name=pool.name,
            project=gke.project,
            cluster=gke.cluster,
            location=gke.location,
            initial_node_count=pool.min_nodes,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=pool.min_nodes,
                total_max_node_count=pool.max_nodes,
                location_policy="ANY",  # take GPUs from whichever zone has them
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=gke.machine_type,
                spot=pool.spot,
                guest_accelerators=[
                    gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                        type=pool.accelerator_type,
                        count=pool.accelerators_per_node,
                        gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                            gpu_driver_version=gke.driver_version,
                        ),
                    )
                ],
                labels={GKE_ACCELERATOR_LABEL: pool.accelerator_type},
                taints=[
                    gcp.container.NodePoolNodeConfigTaintArgs(
                        key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE"
                    )
                ],
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The cluster autoscaler owns the node count once the pool exists.
                ignore_changes=["initialNodeCount"],
            ),
        )

    def _eks_node_group(
        self, name: str, pool: GpuPoolSettings, eks: EksPoolSettings
    ) -> aws.eks.NodeGroup:
        import pulumi_aws as aws  # only stacks with an EKS pool need the AWS SDK and plugin

        return aws.eks.NodeGroup(
            f"{name}-eks",
            node_group_name=pool.name,
            cluster_name=eks.cluster_name,
            node_role_arn=eks.node_role_arn,
            subnet_ids=list(eks.subnet_ids),
            instance_types=list(eks.instance_types),
            ami_type=eks.ami_type,
            capacity_type="SPOT" if pool.spot else "ON_DEMAND",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=pool.min_nodes,
                max_size=pool.max_nodes,
                desired_size=max(pool.min_nodes, 1),
            ),
            labels={EKS_ACCELERATOR_LABEL: pool.accelerator_type},
            taints=[
                aws.eks.NodeGroupTaintArgs(
                    key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE"
                )
            ],
            opts=pulumi.ResourceOptions(
                parent=self,
                # The cluster autoscaler owns the desired size once the group exists.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

    def _device_plugin(
        self,
        name: str,
        pool: GpuPoolSettings,
        eks: EksPoolSettings,
        provider: k8s.Provider,
        node_group: pulumi.Resource,
    ) -> k8s.apps.v1.DaemonSet:
        labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
        return k8s.apps.v1.DaemonSet(
            f"{name}-device-plugin",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{pool.name}-nvidia-device-plugin", namespace="kube-system", labels=labels
            ),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(type="RollingUpdate"),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    # As locked down as the plugin allows: it runs as root only to write its
                    # socket into the kubelet's root-owned device-plugins directory (hostPath),
                    # and needs no API access, no capability and no writable image.
                    spec=k8s.core.v1.PodSpecArgs(
                        priority_class_name="system-node-critical",
                        node_selector={EKS_NODEGROUP_LABEL: pool.name},
                        tolerations=[GPU_TOLERATION.args()],
                        automount_service_account_token=False,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
                        ),
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="nvidia-device-plugin",
                                image=eks.device_plugin_image,
                                env=[
                                    k8s.core.v1.EnvVarArgs(name="FAIL_ON_INIT_ERROR", value="false")
                                ],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests=DEVICE_PLUGIN_RESOURCES,
                                    limits=DEVICE_PLUGIN_RESOURCES,
                                ),
                                security_context=k8s.core.v1.SecurityContextArgs(
                                    allow_privilege_escalation=False,
                                    read_only_root_filesystem=True,
                                    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                                ),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(
                                        name="device-plugins",
                                        mount_path="/var/lib/kubelet/device-plugins",
                                    )
                                ],
                            )
                        ],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="device-plugins",
                                host_path=k8s.core.v1.HostPathVolumeSourceArgs(
                                    path="/var/lib/kubelet/device-plugins"
                                ),
                            )
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[node_group]),
        )


def scheduling_for(pool: GpuPoolSettings) -> Scheduling:
    """The node selector and tolerations that land pods on this pool, and only on it."""
    if pool.provider == "gke":
        selector = {GKE_NODEPOOL_LABEL: pool.name, GKE_ACCELERATOR_LABEL: pool.accelerator_type}
    elif pool.provider == "eks":
        selector = {EKS_NODEGROUP_LABEL: pool.name, EKS_ACCELERATOR_LABEL: pool.accelerator_type}
    else:
        selector = {pool.node_label_key: pool.accelerator_type}
    return Scheduling(
        node_selector=selector,
        tolerations=(GPU_TOLERATION,),
        gpu_resource_name=GPU_RESOURCE_NAME,
        pool_name=pool.name,
        max_nodes=pool.max_nodes,
        gpus_per_node=pool.accelerators_per_node,
    )
