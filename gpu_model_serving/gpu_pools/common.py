"""What every GPU pool shares, whoever creates it: its shape, its taint, and `Scheduling`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.config_reader import DNS_LABEL, Reader

GPU_RESOURCE_NAME = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "present"


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


@dataclass(frozen=True, kw_only=True)
class PoolShape:
    """What every provider's args share: which accelerator, how many per node, how many nodes.

    Plain values, not `pulumi.Input`: the node selector and the capacity checks are decided with
    them while the program runs (a preview must be able to say "the pods cannot fit").
    """

    name: str
    """Name of the pool (or node group), a DNS label; pods select it."""
    accelerator_type: str
    """The accelerator every node carries, as the provider names it (nvidia-l4, ...)."""
    accelerators_per_node: int = 1
    """GPUs on each node."""
    min_nodes: int = 0
    """Fewest nodes the pool scales to (0: none while nothing runs)."""
    max_nodes: int
    """Most nodes the pool scales to (or the nodes that exist)."""

    def scheduling_on(self, node_selector: Mapping[str, str]) -> Scheduling:
        """Pods on this pool: the given labels, the GPU taint tolerated."""
        return Scheduling(
            node_selector=node_selector,
            tolerations=(GPU_TOLERATION,),
            gpu_resource_name=GPU_RESOURCE_NAME,
            pool_name=self.name,
            max_nodes=self.max_nodes,
            gpus_per_node=self.accelerators_per_node,
        )


def read_shape(r: Reader) -> PoolShape:
    min_nodes = r.integer("gpuPoolMinNodes", minimum=0)
    max_nodes = r.integer("gpuPoolMaxNodes", minimum=1)
    if min_nodes > max_nodes:
        r.problem("gpuPoolMinNodes", min_nodes, f"must be ≤ gpuPoolMaxNodes ({max_nodes})")
    return PoolShape(
        name=r.text("gpuPoolName", DNS_LABEL, "must be a DNS label (lower case, digits, '-')"),
        accelerator_type=r.text("gpuAcceleratorType"),
        accelerators_per_node=r.integer("gpuAcceleratorsPerNode", minimum=1, maximum=16),
        min_nodes=min_nodes,
        max_nodes=max_nodes,
    )


def require(r: Reader, key: str, provider: str) -> str:
    """A text key that must not be empty for this provider."""
    value = r.text(key)
    if not value:
        r.problem(key, value, f"must be set when gpuPoolProvider is {provider}")
    return value


class GpuPool(Protocol):
    """What each provider's args do: declare its resources, say where pods go."""

    def declare(
        self, parent: pulumi.Resource, name: str, kubernetes_provider: k8s.Provider | None
    ) -> pulumi.Output[str]:
        """Create the pool's resources as children of `parent`; return the pool's name."""
        ...

    def scheduling(self) -> Scheduling: ...
