"""GpuNodePool: the nodes the model runs on, and how pods get scheduled onto them.

`gke` and `eks` create a pool in an existing cluster; `existing` creates nothing and describes
nodes that are already labelled and tainted. Each provider's module (gpu_pools/) owns its args
and declares its own resources; all three yield the same `Scheduling`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.gpu_pools import GpuPoolArgs, Scheduling


@dataclass(frozen=True)
class GpuNodePoolArgs:
    pool: GpuPoolArgs
    """The pool, as its provider's args: ExistingPoolArgs, GkePoolArgs or EksPoolArgs."""
    kubernetes_provider: k8s.Provider | None = None
    """Cluster for the pool's Kubernetes objects (the EKS device plugin); default: opts'."""


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
