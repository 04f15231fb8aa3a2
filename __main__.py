"""The model serving stack: settings -> args (stack_args) -> image, GPU pool, server -> outputs."""

import os
from pathlib import Path

import pulumi
import yaml

from gpu_model_serving import stack_outputs
from gpu_model_serving.components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from gpu_model_serving.components.model_image import ModelImage
from gpu_model_serving.components.model_server import CanaryArgs, ModelServer, Slot, other_slot
from gpu_model_serving.kubernetes_provider import kubernetes_provider
from gpu_model_serving.settings import ConfigError, load_settings
from gpu_model_serving.stack_args import model_image_args, model_server_args

# A property of the machine running the build (a TLS-intercepting proxy), not of the stack,
# so it comes from the environment: the path of a PEM bundle the image build should trust.
BUILD_CA_BUNDLE_ENV = "MODEL_BUILD_CA_BUNDLE"


def build_ca_bundle() -> str | None:
    """The PEM bundle named by $MODEL_BUILD_CA_BUNDLE, if set."""
    path = os.environ.get(BUILD_CA_BUNDLE_ENV)
    if not path:
        return None
    try:
        bundle = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise pulumi.RunError(f"{BUILD_CA_BUNDLE_ENV}={path}: cannot read it ({error})") from None
    if "-----BEGIN CERTIFICATE-----" not in bundle:
        raise pulumi.RunError(f"{BUILD_CA_BUNDLE_ENV}={path}: holds no PEM certificate")
    return bundle


try:
    settings = load_settings()
except ConfigError as error:
    # RunError ends the program with the message alone: no traceback for a config mistake.
    raise pulumi.RunError(str(error)) from None

provider = kubernetes_provider("kubernetes", settings.kubernetes)


def slot_image(slot: Slot, version_dir: Path, version: int) -> ModelImage:
    """The image of one fixed slot (a keeps the URN the single image always had): an image
    stays with its slot, so a promotion that flips the slots' roles rebuilds nothing."""
    return ModelImage(
        "model-image" if slot == "a" else "model-image-b",
        model_image_args(settings, version_dir, version, build_ca_bundle()),
    )


model = settings.model
image_ref: pulumi.Input[str]
image_digest: pulumi.Input[str]
if model.pinned_image is None:
    image = slot_image(model.stable_slot, model.version_dir, model.contract.version)
    image_ref, image_digest = image.image_ref, image.digest
else:
    # Rolled back (servingImage): an image the registry already holds, and no build.
    image_ref, image_digest = model.pinned_image, model.pinned_image.rpartition("@")[2]
canary: CanaryArgs | None = None
if model.canary is not None:
    canary_image = slot_image(
        other_slot(model.stable_slot), model.canary.version_dir, model.canary.contract.version
    )
    canary = CanaryArgs(canary_image.image_ref, model.canary.contract, model.canary.weight)
    pulumi.export(stack_outputs.CANARY_IMAGE_REF, canary_image.image_ref)
gpu_pool = GpuNodePool(
    "gpu-pool", GpuNodePoolArgs(pool=settings.gpu_pool, kubernetes_provider=provider)
)
server = ModelServer(
    "model-server",
    model_server_args(settings, image_ref, gpu_pool.scheduling, canary),
    # Pods only schedule once the pool exists.
    opts=pulumi.ResourceOptions(providers=[provider], depends_on=[gpu_pool]),
)

pulumi.export(stack_outputs.IMAGE_REF, image_ref)
pulumi.export(stack_outputs.IMAGE_DIGEST, image_digest)
pulumi.export(stack_outputs.MODEL_PATH, model.path)
pulumi.export(stack_outputs.MODEL_CONTRACT, model.contract.output())
pulumi.export(stack_outputs.GPU_POOL_NAME, gpu_pool.pool_name)
pulumi.export(stack_outputs.NAMESPACE, settings.kubernetes.namespace)
pulumi.export(stack_outputs.DEPLOYMENT_NAME, server.deployment_name)
pulumi.export(stack_outputs.SERVICE_NAME, server.service_name)
if model.canary is not None:
    pulumi.export(stack_outputs.CANARY_DEPLOYMENT_NAME, server.canary_deployment_name)
    pulumi.export(
        stack_outputs.ROLLOUT_PLAN,
        settings.rollout.plan(model.canary.contract, server.traffic_split or ""),
    )
pulumi.export(stack_outputs.PREDICT_URL, server.predict_url)
pulumi.export(stack_outputs.SLO_ALERT_RULES, yaml.safe_dump(server.slo_rules, sort_keys=False))
if server.adapter_rules is not None:
    # YAML, to paste under the prometheus-adapter config's `rules:` key.
    pulumi.export(
        stack_outputs.PROMETHEUS_ADAPTER_RULES,
        yaml.safe_dump(server.adapter_rules, sort_keys=False),
    )
