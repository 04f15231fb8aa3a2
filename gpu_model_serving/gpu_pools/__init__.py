"""The GPU pool providers, one module each (gke, eks, existing), behind one dispatch.

Each module owns its settings type (a member of the `GpuPoolSettings` tagged union), its
catalogue, its resources and its `Scheduling`. `read_gpu_pool` is the only place that picks a
provider; after it, the settings value itself declares and schedules. A provider added to
`PoolProvider` without a reader fails mypy at the `assert_never`.
"""

from __future__ import annotations

from typing import Literal, assert_never

from gpu_model_serving.config_reader import Reader
from gpu_model_serving.gpu_pools import eks, existing, gke
from gpu_model_serving.gpu_pools.common import GpuPool, Scheduling, read_shape

PoolProvider = Literal["existing", "gke", "eks"]
POOL_PROVIDERS: tuple[PoolProvider, ...] = ("existing", "gke", "eks")
GpuPoolSettings = existing.ExistingPool | gke.GkePool | eks.EksPool

__all__ = ["POOL_PROVIDERS", "GpuPool", "GpuPoolSettings", "PoolProvider", "Scheduling"]


def read_gpu_pool(r: Reader) -> GpuPoolSettings:
    provider = r.choice("gpuPoolProvider", POOL_PROVIDERS)
    shape = read_shape(r)
    match provider:
        case "existing":
            return existing.read(r, shape)
        case "gke":
            return gke.read(r, shape)
        case "eks":
            return eks.read(r, shape)
        case _:
            assert_never(provider)
