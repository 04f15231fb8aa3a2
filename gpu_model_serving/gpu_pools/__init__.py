"""The GPU pool providers, one module each (gke, eks, existing), behind one dispatch.

Each module owns its args type (a member of the `GpuPoolArgs` tagged union, which any program
can build without config), its catalogue, its config reader, its resources and its `Scheduling`.
`read_gpu_pool` is the only place that picks a provider from config; after it, the args value
itself declares and schedules. A provider added to
`PoolProvider` without a reader fails mypy at the `assert_never`.
"""

from __future__ import annotations

from typing import Literal, assert_never

from gpu_model_serving.config_reader import Reader
from gpu_model_serving.gpu_pools import eks, existing, gke
from gpu_model_serving.gpu_pools.common import GpuPool, Scheduling, read_shape

PoolProvider = Literal["existing", "gke", "eks"]
POOL_PROVIDERS: tuple[PoolProvider, ...] = ("existing", "gke", "eks")
GpuPoolArgs = existing.ExistingPoolArgs | gke.GkePoolArgs | eks.EksPoolArgs

__all__ = ["POOL_PROVIDERS", "GpuPool", "GpuPoolArgs", "PoolProvider", "Scheduling"]


def read_gpu_pool(r: Reader) -> GpuPoolArgs:
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
