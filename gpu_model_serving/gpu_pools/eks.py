"""A managed node group on an NVIDIA AMI in an existing EKS cluster, and the device plugin
where the AMI lacks it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.config_reader import DIGEST_PINNED_IMAGE, Reader
from gpu_model_serving.gpu_pools.common import (
    GPU_TAINT_KEY,
    GPU_TAINT_VALUE,
    GPU_TOLERATION,
    PoolShape,
    Scheduling,
    require,
)

if TYPE_CHECKING:
    import pulumi_aws as aws

ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
# EC2 GPU instance families and the accelerator each carries.
INSTANCE_FAMILY_ACCELERATORS: Mapping[str, str] = {
    "g4dn": "nvidia-tesla-t4",
    "g5": "nvidia-a10g",
    "g6": "nvidia-l4",
    "g6e": "nvidia-l40s",
    "p3": "nvidia-tesla-v100",
    "p4d": "nvidia-a100",
    "p5": "nvidia-h100",
}
AMI_TYPES = (
    "AL2023_x86_64_NVIDIA",
    "AL2_x86_64_GPU",
    "BOTTLEROCKET_x86_64_NVIDIA",
    "BOTTLEROCKET_ARM_64_NVIDIA",
)
# The accelerated AL2/AL2023 AMIs ship the driver and container toolkit but not the device
# plugin; Bottlerocket's NVIDIA variants run it themselves.
AMI_TYPES_WITHOUT_DEVICE_PLUGIN = ("AL2023_x86_64_NVIDIA", "AL2_x86_64_GPU")
# Guaranteed QoS for a system-node-critical agent: never the first the kubelet evicts or
# OOM-kills. The plugin idles at a few MiB and a few millicores.
DEVICE_PLUGIN_RESOURCES = {"cpu": "50m", "memory": "100Mi"}


@dataclass(frozen=True, kw_only=True)
class EksPoolArgs(PoolShape):
    """An EKS managed node group on an NVIDIA AMI, labelled and tainted for GPU pods, with the
    device plugin where the AMI lacks it."""

    provider: Literal["eks"] = "eks"
    """The tag of the pool args union."""
    cluster_name: pulumi.Input[str]
    """Name of the existing EKS cluster."""
    node_role_arn: pulumi.Input[str]
    """IAM role the nodes run as."""
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Subnets the nodes are placed in."""
    instance_types: pulumi.Input[Sequence[pulumi.Input[str]]]
    """GPU instance types the group may launch (g6.xlarge, ...)."""
    device_plugin_image: pulumi.Input[str]
    """NVIDIA device plugin image, pinned by digest (deployed for AL2023/AL2 AMIs)."""
    ami_type: str = "AL2023_x86_64_NVIDIA"
    """The group's AMI; plain, because it decides whether the device plugin is deployed."""
    spot: pulumi.Input[bool] = False
    """Spot capacity: cheaper, and interruptible."""

    def declare(
        self, parent: pulumi.Resource, name: str, kubernetes_provider: k8s.Provider | None
    ) -> pulumi.Output[str]:
        node_group = self._node_group(parent, name)
        if self.ami_type in AMI_TYPES_WITHOUT_DEVICE_PLUGIN:
            self._device_plugin(parent, name, kubernetes_provider, node_group)
        group_name: pulumi.Output[str] = node_group.node_group_name  # untyped SDK (pyproject)
        return group_name

    def scheduling(self) -> Scheduling:
        return self.scheduling_on(
            {NODEGROUP_LABEL: self.name, ACCELERATOR_LABEL: self.accelerator_type}
        )

    def _node_group(self, parent: pulumi.Resource, name: str) -> aws.eks.NodeGroup:
        import pulumi_aws as aws  # only stacks with an EKS pool need the AWS SDK and plugin

        return aws.eks.NodeGroup(
            f"{name}-eks",
            node_group_name=self.name,
            cluster_name=self.cluster_name,
            node_role_arn=self.node_role_arn,
            subnet_ids=self.subnet_ids,
            instance_types=self.instance_types,
            ami_type=self.ami_type,
            capacity_type=pulumi.Output.from_input(self.spot).apply(
                lambda spot: "SPOT" if spot else "ON_DEMAND"
            ),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=self.min_nodes,
                max_size=self.max_nodes,
                desired_size=max(self.min_nodes, 1),
            ),
            labels={ACCELERATOR_LABEL: self.accelerator_type},
            taints=[
                aws.eks.NodeGroupTaintArgs(
                    key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE"
                )
            ],
            opts=pulumi.ResourceOptions(
                parent=parent,
                # The cluster autoscaler owns the desired size once the group exists.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

    def _device_plugin(
        self,
        parent: pulumi.Resource,
        name: str,
        provider: k8s.Provider | None,
        node_group: pulumi.Resource,
    ) -> k8s.apps.v1.DaemonSet:
        labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
        return k8s.apps.v1.DaemonSet(
            f"{name}-device-plugin",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{self.name}-nvidia-device-plugin", namespace="kube-system", labels=labels
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
                        node_selector={NODEGROUP_LABEL: self.name},
                        tolerations=[GPU_TOLERATION.args()],
                        automount_service_account_token=False,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
                        ),
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="nvidia-device-plugin",
                                image=self.device_plugin_image,
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
            opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=[node_group]),
        )


def _is_gpu_instance_type(instance_type: str) -> bool:
    family, dot, _size = instance_type.partition(".")
    return bool(dot) and family in INSTANCE_FAMILY_ACCELERATORS


def read(r: Reader, shape: PoolShape) -> EksPoolArgs:
    accelerator = shape.accelerator_type
    known = ", ".join(f"{f}.* ({a})" for f, a in INSTANCE_FAMILY_ACCELERATORS.items())
    instance_types = r.strings(
        "eksInstanceTypes",
        _is_gpu_instance_type,
        f"must be a GPU instance type of a known family: {known}",
    )
    if not instance_types:
        r.problem("eksInstanceTypes", [], "must list at least one GPU instance type")
    for instance_type in instance_types:
        carried = INSTANCE_FAMILY_ACCELERATORS.get(instance_type.split(".")[0])
        if carried is not None and carried != accelerator:
            r.problem(
                "gpuAcceleratorType",
                accelerator,
                f"must match the instance type {instance_type}, which carries {carried}",
            )
    if accelerator not in INSTANCE_FAMILY_ACCELERATORS.values():
        r.problem(
            "gpuAcceleratorType",
            accelerator,
            "must be an EKS accelerator: "
            + ", ".join(sorted(set(INSTANCE_FAMILY_ACCELERATORS.values()))),
        )
    subnet_ids = r.strings(
        "eksSubnetIds", lambda s: s.startswith("subnet-"), "must be a subnet id (subnet-...)"
    )
    if not subnet_ids:
        r.problem("eksSubnetIds", [], "must list at least one subnet when gpuPoolProvider is eks")
    return EksPoolArgs(
        **vars(shape),
        spot=r.boolean("gpuPoolSpot"),
        cluster_name=require(r, "eksClusterName", "eks"),
        node_role_arn=require(r, "eksNodeRoleArn", "eks"),
        subnet_ids=subnet_ids,
        instance_types=instance_types,
        ami_type=r.choice("eksAmiType", AMI_TYPES),
        device_plugin_image=r.text(
            "eksDevicePluginImage",
            DIGEST_PINNED_IMAGE,
            "must be an image pinned by digest (repository[:tag]@sha256:<64 hex>)",
        ),
    )
