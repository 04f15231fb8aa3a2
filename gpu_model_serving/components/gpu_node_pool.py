"""GpuNodePool: the nodes the model runs on, and how pods get scheduled onto them.

`gke` and `eks` create a pool in an existing cluster; `existing` creates nothing and describes
nodes that are already labelled and tainted. Each provider's module (components/gpu_pools/)
declares its own resources; all three yield the same `Scheduling`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.gpu_pools import GpuPool, Scheduling


@dataclass(frozen=True)
class GpuNodePoolArgs:
    pool: GpuPool
    """The pool's settings, of its provider's type (components/gpu_pools/)."""
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
        self.pool_name = args.pool.declare(self, name, args.kubernetes_provider)
        self.scheduling = args.pool.scheduling()
        self.register_outputs({"pool_name": self.pool_name})
