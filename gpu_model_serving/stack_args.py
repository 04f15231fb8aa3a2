"""The one place this project's settings become the components' args: `__main__.py` declares
the components with them, and the unit tests build the same args from a stack's settings."""

from __future__ import annotations

from pathlib import Path

import pulumi

from gpu_model_serving.components.model_image import ModelImageArgs
from gpu_model_serving.components.model_server import (
    CanaryArgs,
    ModelServerArgs,
    ServerResources,
)
from gpu_model_serving.gpu_pools import Scheduling
from gpu_model_serving.settings import PROJECT_DIR, ResourceSettings, Settings

# model/Dockerfile's directory, relative to the project so the state stays portable.
BUILD_CONTEXT = "model"


def model_context(version_dir: Path) -> str:
    """The served version's directory as the build reads it: relative to the project when it is
    inside (state stays portable between checkouts), else absolute."""
    return str(
        version_dir.relative_to(PROJECT_DIR)
        if version_dir.is_relative_to(PROJECT_DIR)
        else version_dir
    )


def model_image_args(
    settings: Settings, version_dir: Path, version: int, ca_bundle: str | None
) -> ModelImageArgs:
    image = settings.image
    return ModelImageArgs(
        registry=image.registry,
        repository=image.repository,
        tag=image.tag,
        context_dir=BUILD_CONTEXT,
        model_name=settings.server.model_name,
        model_version=version,
        model_dir=model_context(version_dir),
        runtime=image.runtime,
        variant=image.variant,
        base_image=image.base_image,
        platform=image.platform,
        build_network=image.build_network,
        builder=image.builder,
        cache_mode=image.cache_mode,
        build_on_preview=image.build_on_preview,
        registry_auth=image.registry_auth,
        registry_username=image.registry_username,
        registry_password=image.registry_password,
        ca_bundle=ca_bundle,
    )


def server_resources(resources: ResourceSettings) -> ServerResources:
    return ServerResources(
        cpu_request=resources.cpu_request.text,
        cpu_limit=resources.cpu_limit.text,
        memory_request=resources.memory_request.text,
        memory_limit=resources.memory_limit.text,
        ephemeral_storage_request=resources.ephemeral_storage_request.text,
        ephemeral_storage_limit=resources.ephemeral_storage_limit.text,
        gpu_count=resources.gpu_count,
    )


def model_server_args(
    settings: Settings,
    image_ref: pulumi.Input[str],
    scheduling: Scheduling,
    canary: CanaryArgs | None = None,
) -> ModelServerArgs:
    server, cluster, model = settings.server, settings.kubernetes, settings.model
    return ModelServerArgs(
        model_name=server.model_name,
        namespace=cluster.namespace,
        image_ref=image_ref,
        contract=model.contract,
        scheduling=scheduling,
        runtime=server.runtime,
        resources=server_resources(server.resources),
        autoscaling=server.autoscaling,
        pdb_max_unavailable=server.pdb_max_unavailable,
        startup_timeout_seconds=server.startup_timeout_seconds,
        progress_deadline_seconds=server.progress_deadline_seconds,
        pre_stop_sleep_seconds=server.pre_stop_sleep_seconds,
        shutdown_timeout_seconds=server.shutdown_timeout_seconds,
        max_batch_size=server.max_batch_size,
        batch_timeout_micros=server.batch_timeout_micros,
        serving_processes=server.serving_processes,
        inference_engine=server.inference_engine,
        service_type=server.service_type,
        allowed_ingress_namespaces=server.allowed_ingress_namespaces,
        allowed_ingress_cidrs=server.allowed_ingress_cidrs,
        allowed_egress_cidrs=server.allowed_egress_cidrs,
        metrics=server.metrics,
        gateway=server.gateway,
        create_namespace=cluster.create_namespace,
        pod_security_version=cluster.pod_security_version,
        cluster_reachable=cluster.render_yaml_to_directory is None,
        accept_breaking_contract=model.accept_breaking,
        stable_slot=model.stable_slot,
        canary=canary,
    )
