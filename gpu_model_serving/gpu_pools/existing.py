"""Nodes that already exist, labelled with their accelerator and tainted: nothing to create."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.config_reader import LABEL_KEY, LABEL_VALUE, Reader
from gpu_model_serving.gpu_pools.common import PoolShape, Scheduling


@dataclass(frozen=True)
class ExistingPool(PoolShape):
    provider: Literal["existing"]
    node_label_key: str
    """Node label whose value is the accelerator type."""

    def declare(
        self, parent: pulumi.Resource, name: str, kubernetes_provider: k8s.Provider
    ) -> pulumi.Output[str]:
        return pulumi.Output.from_input(self.name)

    def scheduling(self) -> Scheduling:
        return self.scheduling_on({self.node_label_key: self.accelerator_type})


def read(r: Reader, shape: PoolShape) -> ExistingPool:
    if not (shape.accelerator_type and LABEL_VALUE.match(shape.accelerator_type)):
        r.problem("gpuAcceleratorType", shape.accelerator_type, "must be a Kubernetes label value")
    return ExistingPool(
        **vars(shape),
        provider="existing",
        node_label_key=r.text("gpuNodeLabelKey", LABEL_KEY, "must be a Kubernetes label key"),
    )
