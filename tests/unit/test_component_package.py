"""The components' Pulumi package (provider/, gpu_model_serving/components/plugin.py): the schema
another language sees, and the Python component it builds from that schema's args."""

from __future__ import annotations

import pytest
from pulumi.provider.experimental.analyzer import Analyzer, PropertyType

from gpu_model_serving import PACKAGE_NAME
from gpu_model_serving.components import plugin
from gpu_model_serving.components.model_server import ServerResources
from gpu_model_serving.gpu_pools.common import GPU_TOLERATION
from tests.unit.harness import ROOT, StackMocks, construct

MODEL_DIR = ROOT / "model" / "export" / "digits" / "1"
IMAGE = "127.0.0.1:5000/model-server@sha256:" + "cd" * 32
REQUIRED = {"modelDir", "image", "namespace", "gpuAcceleratorType"}


def package_args(**extra: object) -> plugin.ModelServerArgs:
    args: dict[str, object] = {
        "model_dir": str(MODEL_DIR),
        "image": IMAGE,
        "namespace": "other-team",
        "gpu_accelerator_type": "nvidia-l4",
        **extra,
    }
    return args  # type: ignore[return-value]  # a TypedDict built from keywords


def test_the_schema_another_language_sees_is_inferred_from_the_annotations() -> None:
    analysed = Analyzer(PACKAGE_NAME).analyze([plugin.ModelServer])
    (component,) = analysed["component_definitions"].values()
    inputs = component.inputs
    assert {name for name, prop in inputs.items() if not prop.optional} == REQUIRED
    # The image may be another resource's output; the model directory is read at declaration.
    assert inputs["image"].plain is None and inputs["modelDir"].plain
    assert inputs["gpuAcceleratorType"].type == PropertyType.STRING
    assert inputs["minReplicas"].type == PropertyType.INTEGER
    assert set(component.outputs) == {"deploymentName", "serviceName", "predictUrl"}
    assert component.outputs["predictUrl"].description == "In-cluster URL of the predict endpoint."


def test_the_package_args_become_the_components_with_the_contract_read_from_the_model() -> None:
    args = plugin.python_args(package_args(gpu_nodes=3, max_replicas=3, cpu_request="250m"))
    assert (args.model_name, args.contract.model, args.contract.version) == ("digits", "digits", 1)
    assert args.contract.signature == "serving_default" and args.contract.signatures
    assert args.scheduling.node_selector == {"nvidia.com/gpu.product": "nvidia-l4"}
    assert args.scheduling.pods_that_fit(1) == 3
    assert args.autoscaling.max_replicas == 3
    assert args.resources.cpu_request == "250m"
    assert args.resources.memory_limit == ServerResources().memory_limit


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"runtime": "triton"}, "runtime 'triton': must be one of python, tensorflow-serving"),
        ({"model_dir": str(MODEL_DIR.parent)}, "must be <base>/<model>/<version>/saved_model.pb"),
    ],
)
def test_a_bad_package_arg_is_an_error_naming_it(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plugin.python_args(package_args(**extra))


def test_the_package_component_declares_the_model_server_under_itself(mocks: StackMocks) -> None:
    construct(lambda: plugin.ModelServer("served", package_args()))
    deployment = mocks.one("kubernetes:apps/v1:Deployment")
    assert deployment.inputs["metadata"]["namespace"] == "other-team"
    assert deployment.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert mocks.one("gpu-model-serving:serving:ModelServer").name == "served"


def test_the_gpu_nodes_are_selected_by_their_accelerator_label_and_their_taint_tolerated() -> None:
    scheduling = plugin.python_args(package_args(gpu_node_label_key="example.com/gpu")).scheduling
    assert scheduling.node_selector == {"example.com/gpu": "nvidia-l4"}
    assert scheduling.tolerations == (GPU_TOLERATION,)
