"""ModelImage: builds the model server image from model/ and pushes it, pinned by digest.

It reads no stack config: any Pulumi program can declare one from ModelImageArgs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_docker_build as docker_build

from gpu_model_serving.runtime_profiles import ServingRuntime, profile_for

ImageVariant = Literal["cpu", "gpu"]
IMAGE_VARIANTS: tuple[ImageVariant, ...] = ("cpu", "gpu")
RegistryAuth = Literal["none", "basic", "gcp", "ecr"]
REGISTRY_AUTHS: tuple[RegistryAuth, ...] = ("none", "basic", "gcp", "ecr")
CacheMode = Literal["inline", "registry", "none"]
CACHE_MODES: tuple[CacheMode, ...] = ("inline", "registry", "none")
BuildNetwork = Literal["default", "host", "none"]
BUILD_NETWORKS: tuple[BuildNetwork, ...] = ("default", "host", "none")

# Build arguments of model/Dockerfile (see model/README.md, "Image").
VARIANT_BUILD_ARG = "VARIANT"
MODEL_NAME_BUILD_ARG = "MODEL_NAME"
MODEL_VERSION_BUILD_ARG = "MODEL_VERSION"
# The build context model/Dockerfile copies the served SavedModel version from: any directory,
# inside the repository or not, and only that version's bytes reach the image.
MODEL_CONTEXT = "model"
# BuildKit secret id through which model/Dockerfile trusts an extra CA bundle.
CA_BUNDLE_SECRET_ID = "ca_bundle"


def digest_or_pending(digest: str) -> pulumi.Input[str]:
    """The pushed digest; in a preview that would rebuild, a value known only after `up`.

    The provider previews a rebuild's digest as "" (a known value), which would show every pod
    template as moving to `<repository>@` and fail the policy pack's digest rule.
    """
    if digest:
        return digest
    if not pulumi.runtime.is_dry_run():
        raise ValueError("the image build reported no digest: the push did not happen")
    return _unknown_output()


def _unknown_output() -> pulumi.Output[str]:
    async def no_value() -> str:
        return ""

    async def not_known() -> bool:
        return False

    return pulumi.Output(set(), no_value(), not_known())


@dataclass(frozen=True)
class ModelImageArgs:
    registry: str
    """Registry the image is pushed to, host[:port]."""
    repository: str
    """Repository in the registry."""
    tag: str
    """Tag pushed beside the digest."""
    context_dir: str
    """Build context (the model/ directory), relative to the project so state is portable."""
    model_name: str
    """Model name baked into the image's serving configuration."""
    model_version: int
    """The version the image serves, under /models/<model_name>/<model_version>."""
    model_dir: str
    """The served version's SavedModel directory (relative to the project, or absolute)."""
    runtime: ServingRuntime = "python"
    """Which runtime's stage of model/Dockerfile to build."""
    variant: ImageVariant = "gpu"
    base_image: str | None = None
    """A base image in place of the stage's own (a local mirror)."""
    platform: str = "linux/amd64"
    build_network: BuildNetwork = "default"
    """Network for the build's RUN steps."""
    builder: str | None = None
    """A named buildx builder; the provider's default otherwise."""
    cache_mode: CacheMode = "inline"
    """Where the layer cache goes: inside the image, beside it in the registry, or nowhere."""
    build_on_preview: bool = False
    registry_auth: RegistryAuth = "none"
    """How to log in to the registry: a password, Google or AWS credentials, or not at all."""
    registry_username: str | None = None
    registry_password: pulumi.Input[str] | None = None
    ca_bundle: pulumi.Input[str] | None = None
    """PEM contents of an extra CA bundle for builds behind a TLS-intercepting proxy."""

    @property
    def repository_url(self) -> str:
        return f"{self.registry}/{self.repository}"


class ModelImage(pulumi.ComponentResource):
    """The model server image, built with BuildKit and pushed to the stack's registry."""

    image_ref: pulumi.Output[str]
    """`<registry>/<repository>@sha256:...`: what the Deployment runs."""
    digest: pulumi.Output[str]
    """The manifest digest the registry holds."""

    def __init__(
        self, name: str, args: ModelImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gpu-model-serving:image:ModelImage", name, None, opts)
        profile = profile_for(args.runtime)
        build_args = {
            VARIANT_BUILD_ARG: args.variant,
            MODEL_NAME_BUILD_ARG: args.model_name,
            MODEL_VERSION_BUILD_ARG: str(args.model_version),
        }
        if args.base_image is not None:
            build_args[profile.base_image_build_arg] = args.base_image
        secrets: dict[str, pulumi.Input[str]] = {}
        if args.ca_bundle is not None:
            secrets[CA_BUNDLE_SECRET_ID] = pulumi.Output.secret(args.ca_bundle)

        built = docker_build.Image(
            f"{name}-build",
            context=docker_build.BuildContextArgs(
                location=args.context_dir,
                named={MODEL_CONTEXT: docker_build.ContextArgs(location=args.model_dir)},
            ),
            dockerfile=docker_build.DockerfileArgs(location=f"{args.context_dir}/Dockerfile"),
            target=profile.dockerfile_target,
            build_args=build_args,
            platforms=[docker_build.Platform(args.platform)],
            network=docker_build.NetworkMode(args.build_network),
            builder=docker_build.BuilderConfigArgs(name=args.builder) if args.builder else None,
            secrets=secrets,
            # The CA bundle differs between machines but never changes the image.
            ignore_secrets_in_diff_calculation=[CA_BUNDLE_SECRET_ID],
            tags=[f"{args.repository_url}:{args.tag}"],
            push=True,
            build_on_preview=args.build_on_preview,
            registries=self._registry_login(args),
            cache_from=self._cache_from(args),
            cache_to=self._cache_to(args),
            labels={
                "org.opencontainers.image.title": f"{args.model_name} model server",
                "org.opencontainers.image.description": f"{args.runtime} runtime, {args.variant}",
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.digest = built.digest.apply(digest_or_pending)
        self.image_ref = pulumi.Output.concat(args.repository_url, "@", self.digest)
        self.register_outputs({"image_ref": self.image_ref, "digest": self.digest})

    @staticmethod
    def _registry_login(args: ModelImageArgs) -> list[docker_build.RegistryArgs]:
        if args.registry_auth == "basic":
            return [
                docker_build.RegistryArgs(
                    address=args.registry,
                    username=args.registry_username,
                    password=args.registry_password,
                )
            ]
        if args.registry_auth == "gcp":
            import pulumi_gcp as gcp  # only stacks pushing to Artifact Registry need it

            token = gcp.organizations.get_client_config_output().access_token
            return [
                docker_build.RegistryArgs(
                    address=args.registry,
                    username="oauth2accesstoken",
                    password=pulumi.Output.secret(token),
                )
            ]
        if args.registry_auth == "ecr":
            import pulumi_aws as aws  # only stacks pushing to ECR need it

            registry_id = args.registry.split(".", 1)[0]
            token = aws.ecr.get_authorization_token_output(registry_id=registry_id)
            return [
                docker_build.RegistryArgs(
                    address=args.registry,
                    username=token.user_name,
                    password=pulumi.Output.secret(token.password),
                )
            ]
        return []

    @staticmethod
    def _cache_from(args: ModelImageArgs) -> list[docker_build.CacheFromArgs]:
        if args.cache_mode == "none":
            return []
        # Inline cache travels inside the pushed image; registry cache has its own ref.
        ref = args.tag if args.cache_mode == "inline" else "buildcache"
        return [
            docker_build.CacheFromArgs(
                registry=docker_build.CacheFromRegistryArgs(ref=f"{args.repository_url}:{ref}")
            )
        ]

    @staticmethod
    def _cache_to(args: ModelImageArgs) -> list[docker_build.CacheToArgs]:
        if args.cache_mode == "inline":
            # The generated CacheToInlineArgs has no annotated constructor.
            inline = docker_build.CacheToInlineArgs()  # type: ignore[no-untyped-call]
            return [docker_build.CacheToArgs(inline=inline)]
        if args.cache_mode == "registry":
            return [
                docker_build.CacheToArgs(
                    registry=docker_build.CacheToRegistryArgs(
                        ref=f"{args.repository_url}:buildcache",
                        mode=docker_build.CacheMode.MAX,
                        image_manifest=True,
                        oci_media_types=True,
                    )
                )
            ]
        return []
