"""Nodes that already exist, labelled with their accelerator and tainted: nothing to create."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.config_reader import LABEL_KEY, LABEL_VALUE, Reader
from gpu_model_serving.gpu_pools.common import PoolShape, Scheduling


@dataclass(frozen=True, kw_only=True)
class ExistingPoolArgs(PoolShape):
    """Nodes that already carry GPUs: labelled `node_label_key: accelerator_type`, tainted
    `nvidia.com/gpu`."""

    provider: Literal["existing"] = "existing"
    """The tag of the pool args union."""
    node_label_key: str = "nvidia.com/gpu.product"
    """Node label whose value is the accelerator type (the GPU operator's, by default)."""

    def declare(
        self, parent: pulumi.Resource, name: str, kubernetes_provider: k8s.Provider | None
    ) -> pulumi.Output[str]:
        return pulumi.Output.from_input(self.name)

    def scheduling(self) -> Scheduling:
        return self.scheduling_on({self.node_label_key: self.accelerator_type})


def read(r: Reader, shape: PoolShape) -> ExistingPoolArgs:
    if not (shape.accelerator_type and LABEL_VALUE.match(shape.accelerator_type)):
        r.problem("gpuAcceleratorType", shape.accelerator_type, "must be a Kubernetes label value")
    return ExistingPoolArgs(
        **vars(shape),
        node_label_key=r.text("gpuNodeLabelKey", LABEL_KEY, "must be a Kubernetes label key"),
    )
