"""A second Pulumi program: a ModelServer for an image that already exists, on a GpuNodePool
of nodes that already carry GPUs, declared from the components' args alone, with none of the
gpu-model-serving project's config or settings.

The nodes are the local cluster's simulated ones, or any cluster's nodes labelled the same way;
GkePoolArgs or EksPoolArgs in place of ExistingPoolArgs would create them.
"""

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from gpu_model_serving.components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from gpu_model_serving.components.model_server import (
    ModelServer,
    ModelServerArgs,
    ServerResources,
)
from gpu_model_serving.gpu_pools.existing import ExistingPoolArgs
from model_contract.repository import version_contract

config = pulumi.Config()
# The SavedModel version the image serves: its contract goes into a ConfigMap for clients.
contract = version_contract(Path(config.require("modelDir")))
gpu_nodes = GpuNodePool(
    "gpu-nodes",
    GpuNodePoolArgs(
        ExistingPoolArgs(name="existing-gpu-nodes", accelerator_type="nvidia-l4", max_nodes=3)
    ),
)
server = ModelServer(
    "model-server",
    ModelServerArgs(
        model_name=contract.model,
        namespace=config.get("namespace") or "model-server-example",
        image_ref=config.require("image"),
        contract=contract,
        scheduling=gpu_nodes.scheduling,
        resources=ServerResources(
            cpu_request="250m", cpu_limit="1", memory_request="512Mi", memory_limit="1Gi"
        ),
    ),
    # Pods only schedule once the pool exists (a GKE or EKS pool is created first).
    opts=pulumi.ResourceOptions(providers=[k8s.Provider("kubernetes")], depends_on=[gpu_nodes]),
)
pulumi.export("deploymentName", server.deployment_name)
pulumi.export("predictUrl", server.predict_url)
