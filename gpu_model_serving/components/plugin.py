"""The components as a Pulumi component package, for programs in other languages (Pulumi YAML,
TypeScript, Go): `provider/` serves ModelServer from here, and the package's schema is inferred
from these annotations by the Python SDK's component provider host.

The inferred schema knows strings, numbers, booleans, lists, maps and annotated classes, not
Python's Literal, tuple or frozen dataclasses with defaults, which ModelServerArgs uses. So the
package takes this flat, schema-typed args class, checks its choices, and builds the Python
component's args from it: one component, two front doors.

No `from __future__ import annotations` here: the analyzer reads the annotations as objects.
"""

from pathlib import Path
from typing import NotRequired, TypedDict, get_args

import pulumi

from gpu_model_serving import PACKAGE_NAME
from gpu_model_serving.components import model_server as python_component
from gpu_model_serving.components.model_server import Autoscaling, ServerResources
from gpu_model_serving.gpu_pools.existing import ExistingPoolArgs
from gpu_model_serving.runtime_profiles import SERVING_RUNTIMES, ServingRuntime
from model_contract.repository import ModelRepositoryError, version_contract


class ModelServerArgs(TypedDict):
    model_dir: str
    """The SavedModel version directory the image serves (<base>/<model>/<version>): its
    directory names give the model's name and version, and its signatures the contract."""
    image: pulumi.Input[str]
    """The model server image, pinned by digest."""
    namespace: str
    """Namespace of every object, created with the restricted Pod Security Standard."""
    gpu_accelerator_type: str
    """The accelerator of the GPU nodes the pods run on (nvidia-l4, ...); their GPU taint is
    tolerated."""
    gpu_node_label_key: NotRequired[str]
    """Node label whose value is the accelerator type; default nvidia.com/gpu.product."""
    gpu_nodes: NotRequired[int]
    """How many such nodes there are at most (for the capacity checks); default 1."""
    gpus_per_node: NotRequired[int]
    """GPUs each node has; default 1."""
    gpu_count: NotRequired[int]
    """GPUs per pod; default 1, 0 runs on CPU."""
    runtime: NotRequired[str]
    """python or tensorflow-serving (the image's runtime); default python."""
    signature: NotRequired[str]
    """The signature a request without signature_name gets; default serving_default."""
    min_replicas: NotRequired[int]
    max_replicas: NotRequired[int]
    cpu_request: NotRequired[str]
    cpu_limit: NotRequired[str]
    memory_request: NotRequired[str]
    memory_limit: NotRequired[str]


class ModelServer(pulumi.ComponentResource):
    """ModelServer for another language: Deployment, Service, HPA, PDB, NetworkPolicy and the
    model's contract ConfigMap, for an image that already exists."""

    deployment_name: pulumi.Output[str]
    """Name of the Deployment."""
    service_name: pulumi.Output[str]
    """Name of the Service."""
    predict_url: pulumi.Output[str]
    """In-cluster URL of the predict endpoint."""

    def __init__(
        self,
        name: str,
        args: ModelServerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{PACKAGE_NAME}:index:ModelServer", name, {}, opts)
        server = python_component.ModelServer(
            name,
            python_args(args),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.deployment_name = server.deployment_name
        self.service_name = server.service_name
        self.predict_url = server.predict_url
        self.register_outputs(
            {
                "deploymentName": self.deployment_name,
                "serviceName": self.service_name,
                "predictUrl": self.predict_url,
            }
        )


def python_args(args: ModelServerArgs) -> python_component.ModelServerArgs:
    """The Python component's args from the package's, with a clear error for a bad choice."""
    runtime = args.get("runtime", "python")
    if runtime not in get_args(ServingRuntime):
        raise ValueError(f"runtime {runtime!r}: must be one of {', '.join(SERVING_RUNTIMES)}")
    try:
        contract = version_contract(
            Path(args["model_dir"]), args.get("signature", "serving_default")
        )
    except ModelRepositoryError as error:
        raise ValueError(f"model_dir {error}") from None
    defaults = ServerResources()
    scaling = Autoscaling()
    existing_nodes = ExistingPoolArgs(name="existing", accelerator_type="", max_nodes=1)
    return python_component.ModelServerArgs(
        model_name=contract.model,
        namespace=args["namespace"],
        image_ref=args["image"],
        contract=contract,
        scheduling=ExistingPoolArgs(
            name="existing",
            accelerator_type=args["gpu_accelerator_type"],
            node_label_key=args.get("gpu_node_label_key", existing_nodes.node_label_key),
            accelerators_per_node=args.get("gpus_per_node", existing_nodes.accelerators_per_node),
            max_nodes=args.get("gpu_nodes", 1),
        ).scheduling(),
        runtime=runtime,  # type: ignore[arg-type]  # checked against ServingRuntime above
        resources=ServerResources(
            cpu_request=args.get("cpu_request", defaults.cpu_request),
            cpu_limit=args.get("cpu_limit", defaults.cpu_limit),
            memory_request=args.get("memory_request", defaults.memory_request),
            memory_limit=args.get("memory_limit", defaults.memory_limit),
            gpu_count=args.get("gpu_count", defaults.gpu_count),
        ),
        autoscaling=Autoscaling(
            min_replicas=args.get("min_replicas", scaling.min_replicas),
            max_replicas=args.get("max_replicas", scaling.max_replicas),
        ),
    )
