"""A second Pulumi program: one ModelServer for an image that already exists, declared from the
component's args alone, with none of the gpu-model-serving project's config or settings.

It schedules onto nodes that already carry GPUs (the local cluster's simulated ones, or any
cluster's nodes labelled the same way), so it needs no GpuNodePool.
"""

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.components.model_server import (
    ModelServer,
    ModelServerArgs,
    ServerResources,
)
from gpu_model_serving.gpu_pools.common import GPU_RESOURCE_NAME, GPU_TOLERATION, Scheduling
from model_contract.repository import version_contract

config = pulumi.Config()
# The SavedModel version the image serves: its contract goes into a ConfigMap for clients.
contract = version_contract(Path(config.require("modelDir")))
gpu_nodes = Scheduling(
    node_selector={"nvidia.com/gpu.product": "nvidia-l4"},
    tolerations=(GPU_TOLERATION,),
    gpu_resource_name=GPU_RESOURCE_NAME,
    pool_name="existing-gpu-nodes",
    max_nodes=3,
    gpus_per_node=1,
)
server = ModelServer(
    "model-server",
    ModelServerArgs(
        model_name=contract.model,
        namespace=config.get("namespace") or "model-server-example",
        image_ref=config.require("image"),
        contract=contract,
        scheduling=gpu_nodes,
        resources=ServerResources(
            cpu_request="250m", cpu_limit="1", memory_request="512Mi", memory_limit="1Gi"
        ),
    ),
    opts=pulumi.ResourceOptions(providers=[k8s.Provider("kubernetes")]),
)
pulumi.export("deploymentName", server.deployment_name)
pulumi.export("predictUrl", server.predict_url)
