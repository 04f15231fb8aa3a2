"""GpuNodePool: gke, eks and existing pools, one Scheduling shape, cloud SDKs only on demand."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from typing import get_args

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from gpu_model_serving.components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from gpu_model_serving.gpu_pools import POOL_PROVIDERS, GpuPoolArgs, PoolProvider
from gpu_model_serving.gpu_pools.common import GPU_TOLERATION, Scheduling
from gpu_model_serving.gpu_pools.eks import EksPoolArgs
from gpu_model_serving.gpu_pools.existing import ExistingPoolArgs
from gpu_model_serving.gpu_pools.gke import GkePoolArgs
from gpu_model_serving.settings import ConfigError
from tests.unit.harness import ROOT, StackMocks, construct, resolve, settings_for

GPU_TOLERATION_DICT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
EKS = {
    "gpuPoolProvider": "eks",
    "eksClusterName": "serving",
    "eksNodeRoleArn": "arn:aws:iam::123456789012:role/gpu-nodes",
    "eksSubnetIds": ["subnet-0abc", "subnet-0def"],
    "eksInstanceTypes": ["g6.xlarge", "g6.2xlarge"],
}


def pool(stack: str, **overrides: object) -> GpuNodePool:
    settings = settings_for(stack, **overrides)

    def program() -> GpuNodePool:
        provider = k8s.Provider("kubernetes", render_yaml_to_directory="unused")
        return GpuNodePool("gpu-pool", GpuNodePoolArgs(settings.gpu_pool, provider))

    return construct(program)


def cloud_resources(mocks: StackMocks) -> list[str]:
    return [c.type for c in mocks.created if c.type.startswith(("gcp:", "aws:", "kubernetes:"))]


def test_existing_pool_creates_nothing_and_describes_labelled_tainted_nodes(
    mocks: StackMocks,
) -> None:
    created = pool("dev")
    assert cloud_resources(mocks) == []
    assert created.scheduling == Scheduling(
        node_selector={"nvidia.com/gpu.product": "nvidia-l4"},
        tolerations=(GPU_TOLERATION,),
        gpu_resource_name="nvidia.com/gpu",
        pool_name="gpu-pool",
        max_nodes=3,
        gpus_per_node=1,
    )
    assert resolve(created.pool_name) == "gpu-pool"


def test_gke_pool_has_accelerators_managed_drivers_autoscaling_to_zero_and_the_gpu_taint(
    mocks: StackMocks,
) -> None:
    created = pool("prod", gpuPoolMinNodes=0, gpuPoolSpot=True)
    node_pool = mocks.one("gcp:container/nodePool:NodePool").inputs
    assert (node_pool["cluster"], node_pool["location"], node_pool["project"]) == (
        "serving",
        "us-central1",
        "ml-platform-prod",
    )
    assert node_pool["autoscaling"]["totalMinNodeCount"] == 0
    assert node_pool["autoscaling"]["totalMaxNodeCount"] == 9
    config = node_pool["nodeConfig"]
    assert config["machineType"] == "g2-standard-8"
    assert config["spot"] is True
    accelerator = config["guestAccelerators"][0]
    assert (accelerator["type"], accelerator["count"]) == ("nvidia-l4", 1)
    assert accelerator["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "LATEST"}
    assert config["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
    ]
    assert config["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert created.scheduling.node_selector == {
        "cloud.google.com/gke-nodepool": "gpu-pool",
        "cloud.google.com/gke-accelerator": "nvidia-l4",
    }
    assert created.scheduling.tolerations == (GPU_TOLERATION,)
    assert resolve(created.pool_name) == "gpu-pool"


def test_eks_node_group_uses_an_nvidia_ami_and_deploys_the_device_plugin(mocks: StackMocks) -> None:
    created = pool("dev", **EKS, gpuPoolSpot=True)
    group = mocks.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert group["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group["instanceTypes"] == ["g6.xlarge", "g6.2xlarge"]
    assert group["capacityType"] == "SPOT"
    assert group["scalingConfig"] == {"minSize": 0, "maxSize": 3, "desiredSize": 1}
    assert group["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
    ]
    assert group["labels"] == {"k8s.amazonaws.com/accelerator": "nvidia-l4"}
    plugin = mocks.one("kubernetes:apps/v1:DaemonSet").inputs
    pod = plugin["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "gpu-pool"}
    assert pod["tolerations"] == [GPU_TOLERATION_DICT]
    assert created.scheduling.node_selector == {
        "eks.amazonaws.com/nodegroup": "gpu-pool",
        "k8s.amazonaws.com/accelerator": "nvidia-l4",
    }


def test_the_device_plugin_is_hardened_to_what_it_tolerates(mocks: StackMocks) -> None:
    """It runs on every GPU node: unhardened, it ran BestEffort (first to be evicted), by a tag
    that can move, with a service account token it never uses, no seccomp profile and a
    writable root filesystem."""
    pool("dev", **EKS)
    pod = mocks.one("kubernetes:apps/v1:DaemonSet").inputs["spec"]["template"]["spec"]
    (plugin,) = pod["containers"]
    assert re.fullmatch(
        r"nvcr\.io/nvidia/k8s-device-plugin:v[\d.]+@sha256:[0-9a-f]{64}", plugin["image"]
    )
    resources = plugin["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "50m", "memory": "100Mi"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert plugin["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_the_device_plugin_image_must_be_pinned_by_digest() -> None:
    with pytest.raises(
        ConfigError, match=r"eksDevicePluginImage = .*must be an image pinned by digest"
    ):
        settings_for("dev", **EKS, eksDevicePluginImage="nvcr.io/nvidia/k8s-device-plugin:v0.20.0")


def test_bottlerocket_runs_its_own_device_plugin(mocks: StackMocks) -> None:
    pool("dev", **EKS, eksAmiType="BOTTLEROCKET_x86_64_NVIDIA")
    assert mocks.of_type("aws:eks/nodeGroup:NodeGroup")
    assert mocks.of_type("kubernetes:apps/v1:DaemonSet") == []


@pytest.mark.parametrize(
    ("stack", "overrides"),
    [("dev", {}), ("prod", {}), ("dev", EKS)],
    ids=["existing", "gke", "eks"],
)
def test_every_provider_yields_the_same_scheduling_shape(
    stack: str, overrides: dict[str, object]
) -> None:
    scheduling = pool(stack, **overrides).scheduling
    assert scheduling.gpu_resource_name == "nvidia.com/gpu"
    assert scheduling.tolerations == (GPU_TOLERATION,)
    assert scheduling.node_selector and scheduling.pool_name == "gpu-pool"


def test_the_dev_stack_never_imports_a_cloud_sdk() -> None:
    script = (
        "import sys\n"
        "from tests.unit import harness as conftest\n"
        "mocks = conftest.StackMocks()\n"
        "conftest.pulumi.runtime.set_mocks(mocks, project=conftest.PROJECT, stack='dev')\n"
        "conftest.run_stack('dev')\n"
        "clouds = ('pulumi_gcp', 'pulumi_aws')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in clouds)\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr


def test_each_provider_module_owns_one_member_of_the_args_union() -> None:
    """The tag of each union member is its provider's name, and every provider has one member
    (mypy holds each tag's default to its Literal)."""
    tags = [member.provider for member in get_args(GpuPoolArgs)]
    assert sorted(tags) == sorted(POOL_PROVIDERS) == sorted(get_args(PoolProvider))


@pytest.mark.parametrize(
    ("stack", "overrides", "args_type"),
    [("dev", {}, ExistingPoolArgs), ("prod", {}, GkePoolArgs), ("dev", EKS, EksPoolArgs)],
    ids=["existing", "gke", "eks"],
)
def test_the_provider_key_picks_its_modules_args_type(
    stack: str, overrides: dict[str, object], args_type: type
) -> None:
    loaded = settings_for(stack, **overrides)
    assert type(loaded.gpu_pool) is args_type


def test_another_program_declares_pools_from_args_alone_with_other_resources_outputs(
    mocks: StackMocks,
) -> None:
    """No stack config: the cloud-only fields take outputs (here of a config-free stand-in for
    another stack's resources), and the device plugin goes through opts' Kubernetes provider."""

    def program() -> tuple[GpuNodePool, GpuNodePool]:
        cluster = pulumi.Output.from_input("shared-serving")
        gke = GpuNodePool(
            "gke-l4",
            GpuNodePoolArgs(
                GkePoolArgs(
                    name="l4",
                    accelerator_type="nvidia-l4",
                    max_nodes=2,
                    project="ml-platform",
                    cluster=cluster,
                    location="europe-west4",
                    machine_type="g2-standard-8",
                )
            ),
        )
        eks = GpuNodePool(
            "eks-l4",
            GpuNodePoolArgs(
                EksPoolArgs(
                    name="l4",
                    accelerator_type="nvidia-l4",
                    max_nodes=4,
                    accelerators_per_node=4,
                    cluster_name=cluster,
                    node_role_arn="arn:aws:iam::123456789012:role/gpu-nodes",
                    subnet_ids=[pulumi.Output.from_input("subnet-0abc")],
                    instance_types=["g6.12xlarge"],
                    device_plugin_image="nvcr.io/nvidia/k8s-device-plugin:v0.17.0@sha256:"
                    + "ab" * 32,
                    # An Output is always truthy: the component must apply it, not test it.
                    spot=pulumi.Output.from_input(False),
                )
            ),
            opts=pulumi.ResourceOptions(
                providers=[k8s.Provider("kubernetes", render_yaml_to_directory="unused")]
            ),
        )
        return gke, eks

    gke, eks = construct(program)
    node_pool = mocks.one("gcp:container/nodePool:NodePool").inputs
    assert (node_pool["cluster"], node_pool["nodeConfig"]["spot"]) == ("shared-serving", False)
    group = mocks.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert (group["clusterName"], group["subnetIds"]) == ("shared-serving", ["subnet-0abc"])
    assert group["capacityType"] == "ON_DEMAND"
    assert mocks.one("kubernetes:apps/v1:DaemonSet").inputs["spec"]["template"]["spec"][
        "nodeSelector"
    ] == {"eks.amazonaws.com/nodegroup": "l4"}
    assert gke.scheduling.pods_that_fit(1) == 2 and eks.scheduling.pods_that_fit(2) == 8


@pytest.mark.parametrize(
    ("key", "args_type", "field"),
    [
        ("gpuAcceleratorsPerNode", ExistingPoolArgs, "accelerators_per_node"),
        ("gpuPoolMinNodes", ExistingPoolArgs, "min_nodes"),
        ("gpuNodeLabelKey", ExistingPoolArgs, "node_label_key"),
        ("gpuPoolSpot", GkePoolArgs, "spot"),
        ("gkeGpuDriverVersion", GkePoolArgs, "driver_version"),
        ("gpuPoolSpot", EksPoolArgs, "spot"),
        ("eksAmiType", EksPoolArgs, "ami_type"),
    ],
)
def test_a_program_without_config_gets_the_stacks_defaults(
    key: str, args_type: type, field: str
) -> None:
    """The args' defaults are the ones Pulumi.yaml declares: another program and a stack that
    leaves the key out get the same pool."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    (default,) = [f.default for f in dataclasses.fields(args_type) if f.name == field]
    assert default == declared[key]["default"]
