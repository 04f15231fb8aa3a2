"""ModelImage: what is built, where it is pushed, and the digest-pinned reference it exposes."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from gpu_model_serving.components.model_image import (
    CA_BUNDLE_SECRET_ID,
    ModelImage,
    digest_or_pending,
)
from gpu_model_serving.settings import PROJECT_DIR
from gpu_model_serving.stack_args import model_image_args
from tests.unit.harness import StackMocks, resolve, run, settings_for

IMAGE = "docker-build:index:Image"


def build(stack: str, ca_bundle: str | None = None, **overrides: object) -> ModelImage:
    settings = settings_for(stack, **overrides)
    box: list[ModelImage] = []
    run(
        lambda: box.append(
            ModelImage(
                "model-image",
                model_image_args(settings, PROJECT_DIR / "model/export/digits/2", 2, ca_bundle),
            )
        )
    )
    return box[0]


def test_dev_builds_the_python_cpu_target_from_model_and_pushes_to_the_local_registry(
    mocks: StackMocks,
) -> None:
    build("dev")
    image = mocks.one(IMAGE).inputs
    # The served version through its own named context: only its bytes reach the image.
    assert image["context"] == {
        "location": "model",
        "named": {"model": {"location": "model/export/digits/2"}},
    }
    assert image["dockerfile"] == {"location": "model/Dockerfile"}
    assert image["target"] == "python"
    assert image["buildArgs"] == {
        "VARIANT": "cpu",
        "MODEL_NAME": "digits",
        "MODEL_VERSION": "2",
        "PYTHON_BASE": "127.0.0.1:5000/debian-python:bookworm",
    }
    assert image["push"] is True
    assert image["tags"] == ["127.0.0.1:5000/model-server:dev"]
    assert image["network"] == "host"
    assert image["platforms"] == ["linux/amd64"]
    # The OCI annotation keys registries and scanners read.
    assert image["labels"] == {
        "org.opencontainers.image.title": "digits model server",
        "org.opencontainers.image.description": "python runtime, cpu",
    }
    assert "registries" not in image or not image["registries"]


def test_a_preview_that_rebuilds_shows_the_digest_as_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider previews a rebuild's digest as "": passed on, every pod template would
    preview as `<repository>@` and the policy pack's digest rule would fail the preview."""
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    pending = digest_or_pending("")
    assert isinstance(pending, pulumi.Output)
    assert _sync_await(pending.is_known()) is False
    assert digest_or_pending("sha256:" + "ab" * 32) == "sha256:" + "ab" * 32


def test_an_update_without_a_digest_is_an_error_not_an_unpinned_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    with pytest.raises(ValueError, match="reported no digest"):
        digest_or_pending("")


def test_prod_builds_the_tensorflow_serving_gpu_target_and_logs_in_with_a_gcp_token(
    mocks: StackMocks,
) -> None:
    image = build("prod")
    inputs = mocks.one(IMAGE).inputs
    assert inputs["target"] == "tensorflow-serving"
    assert inputs["buildArgs"]["VARIANT"] == "gpu"
    assert "PYTHON_BASE" not in inputs["buildArgs"]
    login = inputs["registries"][0]
    assert login["address"] == "us-central1-docker.pkg.dev"
    assert login["username"] == "oauth2accesstoken"
    assert login["password"] == "ya29.mock-token"
    assert "gcp:organizations/getClientConfig:getClientConfig" in mocks.calls
    assert resolve(image.image_ref).startswith(
        "us-central1-docker.pkg.dev/ml-platform-prod/models/digits-server@sha256:"
    )


def test_registry_credentials_stay_secret(mocks: StackMocks) -> None:
    build("dev", registryAuth="basic", registryUsername="ci", registryPassword="s3cret")
    image = mocks.one(IMAGE)
    assert image.inputs["registries"][0]["username"] == "ci"
    assert image.inputs["registries"][0]["password"] == "s3cret"
    assert "registries[0].password" in image.secret_paths or "registries" in image.secret_paths


def test_ecr_login_uses_the_registry_account_token(mocks: StackMocks) -> None:
    build("dev", registry="123456789012.dkr.ecr.us-east-1.amazonaws.com", registryAuth="ecr")
    login = mocks.one(IMAGE).inputs["registries"][0]
    assert (login["username"], login["password"]) == ("AWS", "mock-ecr-password")
    assert "aws:ecr/getAuthorizationToken:getAuthorizationToken" in mocks.calls


def test_the_ca_bundle_is_a_build_secret_that_never_forces_a_rebuild(mocks: StackMocks) -> None:
    build("dev", ca_bundle="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    inputs = mocks.one(IMAGE).inputs
    assert inputs["secrets"][CA_BUNDLE_SECRET_ID].startswith("-----BEGIN CERTIFICATE-----")
    assert inputs["ignoreSecretsInDiffCalculation"] == [CA_BUNDLE_SECRET_ID]
    assert mocks.one(IMAGE).secret_paths & {"secrets", f"secrets.{CA_BUNDLE_SECRET_ID}"}


def test_inline_cache_reuses_the_pushed_tag(mocks: StackMocks) -> None:
    build("dev")
    inputs = mocks.one(IMAGE).inputs
    assert inputs["cacheFrom"] == [{"registry": {"ref": "127.0.0.1:5000/model-server:dev"}}]
    assert inputs["cacheTo"] == [{"inline": {}}]


def test_registry_cache_uses_its_own_ref_with_every_layer(mocks: StackMocks) -> None:
    build("dev", imageCacheMode="registry")
    inputs = mocks.one(IMAGE).inputs
    assert inputs["cacheFrom"] == [{"registry": {"ref": "127.0.0.1:5000/model-server:buildcache"}}]
    assert inputs["cacheTo"][0]["registry"]["ref"] == "127.0.0.1:5000/model-server:buildcache"
    assert inputs["cacheTo"][0]["registry"]["mode"] == "max"


def test_no_cache_mode_sends_no_cache_settings(mocks: StackMocks) -> None:
    build("dev", imageCacheMode="none")
    inputs = mocks.one(IMAGE).inputs
    assert not inputs.get("cacheFrom") and not inputs.get("cacheTo")


def test_the_stack_can_name_its_buildx_builder(mocks: StackMocks) -> None:
    build("dev", imageBuilder="local-buildkitd")
    assert mocks.one(IMAGE).inputs["builder"] == {"name": "local-buildkitd"}


def test_without_a_builder_name_the_provider_chooses(mocks: StackMocks) -> None:
    build("dev", imageBuilder="")
    assert "builder" not in mocks.one(IMAGE).inputs


def test_dev_builds_with_the_local_buildkit_daemon(mocks: StackMocks) -> None:
    build("dev")
    assert mocks.one(IMAGE).inputs["builder"] == {"name": "gpu-serving-local"}
