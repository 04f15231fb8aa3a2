"""Everything that differs between the serving runtimes: one exhaustive profile each.

Both speak TensorFlow Serving's REST and gRPC APIs on the same ports (SERVING_PORTS) and read
the same knobs from their environment (MODEL_NAME, PORT, GRPC_PORT, MAX_BATCH_SIZE,
BATCH_TIMEOUT_MICROS, DRAIN_TIMEOUT_SECONDS: model/serving/limits.json), so probes, the Service,
the NetworkPolicy and clients do not change with the runtime.
What does is here. A profile has no defaults, so it cannot leave a part out, and `profile_for`
matches every ServingRuntime: a runtime added here without a profile fails mypy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, assert_never

import pulumi_kubernetes as k8s

ServingRuntime = Literal["python", "tensorflow-serving"]
SERVING_RUNTIMES: tuple[ServingRuntime, ...] = ("python", "tensorflow-serving")
# How the Python runtime runs the model: TFLite's interpreter, or the TF Session (every op).
InferenceEngine = Literal["tflite", "session"]
INFERENCE_ENGINES: tuple[InferenceEngine, ...] = ("tflite", "session")

REST_PORT = 8501
GRPC_PORT = 8500
# Container and Service ports by name; `http` (REST, also the metrics port) first.
SERVING_PORTS: Mapping[str, int] = {"http": REST_PORT, "grpc": GRPC_PORT}


@dataclass(frozen=True)
class RuntimeProfile:
    dockerfile_target: str
    """Stage of model/Dockerfile that builds this runtime's image."""
    base_image_build_arg: str
    """Build argument that replaces the stage's base image (imageBaseImage)."""
    env: Mapping[str, str]
    """Environment only this runtime reads, beside the shared knobs."""
    env_for: Callable[[int, InferenceEngine], Mapping[str, str]]
    """The knobs only this runtime reads (serving processes, inference engine), as environment."""
    liveness: k8s.core.v1.ProbeArgs
    """How the kubelet tells a hung server from a live one."""


PYTHON = RuntimeProfile(
    dockerfile_target="python",
    base_image_build_arg="PYTHON_BASE",
    # The pod's own network namespace: the Service and the probes need the pod IP.
    env={"HOST": "0.0.0.0"},
    env_for=lambda processes, engine: {
        "SERVING_PROCESSES": str(processes),
        "INFERENCE_ENGINE": engine,
    },
    liveness=k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="http"),
        period_seconds=10,
        timeout_seconds=2,
        failure_threshold=3,
    ),
)

TENSORFLOW_SERVING = RuntimeProfile(
    dockerfile_target="tensorflow-serving",
    base_image_build_arg="TFSERVING_BASE",
    env={},
    env_for=lambda _processes, _engine: {},
    # TF Serving has no liveness endpoint; an open REST port is its sign of life.
    liveness=k8s.core.v1.ProbeArgs(
        tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="http"),
        period_seconds=10,
        timeout_seconds=2,
        failure_threshold=3,
    ),
)


def profile_for(runtime: ServingRuntime) -> RuntimeProfile:
    match runtime:
        case "python":
            return PYTHON
        case "tensorflow-serving":
            return TENSORFLOW_SERVING
        case _:
            assert_never(runtime)
