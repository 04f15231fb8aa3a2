"""ModelImage: builds the model server image from model/ and pushes it, pinned by digest."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build

from gpu_model_serving.runtime_profiles import profile_for
from gpu_model_serving.settings import ImageSettings

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
    image: ImageSettings
    """Registry, repository, runtime target, variant, cache and credentials."""
    context_dir: str
    """Build context (the model/ directory), relative to the project so state is portable."""
    model_name: str
    """Model name baked into the image's serving configuration."""
    model_version: int
    """The version the image serves, under /models/<model_name>/<model_version>."""
    model_dir: str
    """The served version's SavedModel directory (relative to the project, or absolute)."""
    ca_bundle: pulumi.Input[str] | None = None
    """PEM contents of an extra CA bundle for builds behind a TLS-intercepting proxy."""


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
        image = args.image
        profile = profile_for(image.runtime)
        build_args = {
            VARIANT_BUILD_ARG: image.variant,
            MODEL_NAME_BUILD_ARG: args.model_name,
            MODEL_VERSION_BUILD_ARG: str(args.model_version),
        }
        if image.base_image is not None:
            build_args[profile.base_image_build_arg] = image.base_image
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
            platforms=[docker_build.Platform(image.platform)],
            network=docker_build.NetworkMode(image.build_network),
            builder=docker_build.BuilderConfigArgs(name=image.builder) if image.builder else None,
            secrets=secrets,
            # The CA bundle differs between machines but never changes the image.
            ignore_secrets_in_diff_calculation=[CA_BUNDLE_SECRET_ID],
            tags=[f"{image.repository_url}:{image.tag}"],
            push=True,
            build_on_preview=image.build_on_preview,
            registries=self._registry_login(image),
            cache_from=self._cache_from(image),
            cache_to=self._cache_to(image),
            labels={
                "org.opencontainers.image.title": f"{args.model_name} model server",
                "org.opencontainers.image.description": f"{image.runtime} runtime, {image.variant}",
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.digest = built.digest.apply(digest_or_pending)
        self.image_ref = pulumi.Output.concat(image.repository_url, "@", self.digest)
        self.register_outputs({"image_ref": self.image_ref, "digest": self.digest})

    @staticmethod
    def _registry_login(image: ImageSettings) -> list[docker_build.RegistryArgs]:
        if image.registry_auth == "basic":
            return [
                docker_build.RegistryArgs(
                    address=image.registry,
                    username=image.registry_username,
                    password=image.registry_password,
                )
            ]
        if image.registry_auth == "gcp":
            import pulumi_gcp as gcp  # only stacks pushing to Artifact Registry need it

            token = gcp.organizations.get_client_config_output().access_token
            return [
                docker_build.RegistryArgs(
                    address=image.registry,
                    username="oauth2accesstoken",
                    password=pulumi.Output.secret(token),
                )
            ]
        if image.registry_auth == "ecr":
            import pulumi_aws as aws  # only stacks pushing to ECR need it

            registry_id = image.registry.split(".", 1)[0]
            token = aws.ecr.get_authorization_token_output(registry_id=registry_id)
            return [
                docker_build.RegistryArgs(
                    address=image.registry,
                    username=token.user_name,
                    password=pulumi.Output.secret(token.password),
                )
            ]
        return []

    @staticmethod
    def _cache_from(image: ImageSettings) -> list[docker_build.CacheFromArgs]:
        if image.cache_mode == "none":
            return []
        # Inline cache travels inside the pushed image; registry cache has its own ref.
        ref = image.tag if image.cache_mode == "inline" else "buildcache"
        return [
            docker_build.CacheFromArgs(
                registry=docker_build.CacheFromRegistryArgs(ref=f"{image.repository_url}:{ref}")
            )
        ]

    @staticmethod
    def _cache_to(image: ImageSettings) -> list[docker_build.CacheToArgs]:
        if image.cache_mode == "inline":
            # The generated CacheToInlineArgs has no annotated constructor.
            inline = docker_build.CacheToInlineArgs()  # type: ignore[no-untyped-call]
            return [docker_build.CacheToArgs(inline=inline)]
        if image.cache_mode == "registry":
            return [
                docker_build.CacheToArgs(
                    registry=docker_build.CacheToRegistryArgs(
                        ref=f"{image.repository_url}:buildcache",
                        mode=docker_build.CacheMode.MAX,
                        image_manifest=True,
                        oci_media_types=True,
                    )
                )
            ]
        return []
