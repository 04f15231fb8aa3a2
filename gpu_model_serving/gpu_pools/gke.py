"""A node pool with NVIDIA accelerators in an existing GKE cluster."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.config_reader import Reader
from gpu_model_serving.gpu_pools.common import (
    GPU_TAINT_KEY,
    GPU_TAINT_VALUE,
    PoolShape,
    Scheduling,
    require,
)

ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"
# GKE accelerator names and the machine family each one attaches to.
ACCELERATOR_MACHINE_FAMILIES: Mapping[str, str] = {
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
DRIVER_VERSIONS = ("DEFAULT", "LATEST", "INSTALLATION_DISABLED")


@dataclass(frozen=True, kw_only=True)
class GkePoolArgs(PoolShape):
    """A GKE node pool with `accelerator_type` attached, labelled and tainted for GPU pods."""

    provider: Literal["gke"] = "gke"
    """The tag of the pool args union."""
    project: pulumi.Input[str]
    """Google Cloud project of the cluster."""
    cluster: pulumi.Input[str]
    """Name of the existing GKE cluster."""
    location: pulumi.Input[str]
    """Region or zone of the cluster."""
    machine_type: pulumi.Input[str]
    """Machine type of the nodes, of the family the accelerator attaches to (g2-* for L4)."""
    spot: pulumi.Input[bool] = False
    """Spot VMs: cheaper, and preemptible."""
    driver_version: pulumi.Input[str] = "LATEST"
    """GPU driver GKE installs: DEFAULT, LATEST or INSTALLATION_DISABLED."""

    def declare(
        self, parent: pulumi.Resource, name: str, kubernetes_provider: k8s.Provider | None
    ) -> pulumi.Output[str]:
        import pulumi_gcp as gcp  # only stacks with a GKE pool need the GCP SDK and plugin

        node_pool = gcp.container.NodePool(
            f"{name}-gke",
            name=self.name,
            project=self.project,
            cluster=self.cluster,
            location=self.location,
            initial_node_count=self.min_nodes,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=self.min_nodes,
                total_max_node_count=self.max_nodes,
                location_policy="ANY",  # take GPUs from whichever zone has them
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=self.machine_type,
                spot=self.spot,
                guest_accelerators=[
                    gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                        type=self.accelerator_type,
                        count=self.accelerators_per_node,
                        gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                            gpu_driver_version=self.driver_version,
                        ),
                    )
                ],
                labels={ACCELERATOR_LABEL: self.accelerator_type},
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
                parent=parent,
                # The cluster autoscaler owns the node count once the pool exists.
                ignore_changes=["initialNodeCount"],
            ),
        )
        pool_name: pulumi.Output[str] = node_pool.name  # the SDK is untyped to mypy (pyproject)
        return pool_name

    def scheduling(self) -> Scheduling:
        return self.scheduling_on(
            {NODEPOOL_LABEL: self.name, ACCELERATOR_LABEL: self.accelerator_type}
        )


def read(r: Reader, shape: PoolShape) -> GkePoolArgs:
    accelerator = shape.accelerator_type
    family = ACCELERATOR_MACHINE_FAMILIES.get(accelerator)
    if family is None:
        r.problem(
            "gpuAcceleratorType",
            accelerator,
            "must be a GKE accelerator: " + ", ".join(ACCELERATOR_MACHINE_FAMILIES),
        )
    machine_type = r.text("gkeMachineType")
    if family is not None and not machine_type.startswith(f"{family}-"):
        r.problem(
            "gkeMachineType",
            machine_type,
            f"{accelerator} attaches only to {family}-* machine types",
        )
    return GkePoolArgs(
        **vars(shape),
        spot=r.boolean("gpuPoolSpot"),
        project=require(r, "gcpProject", "gke"),
        cluster=require(r, "gkeCluster", "gke"),
        location=require(r, "gkeLocation", "gke"),
        machine_type=machine_type,
        driver_version=r.choice("gkeGpuDriverVersion", DRIVER_VERSIONS),
    )
