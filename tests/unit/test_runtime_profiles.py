"""Each serving runtime's profile against the Dockerfile it builds from."""

from __future__ import annotations

import re

import pytest

from gpu_model_serving.runtime_profiles import SERVING_RUNTIMES, profile_for
from tests.unit.harness import ROOT

DOCKERFILE = (ROOT / "model" / "Dockerfile").read_text()


@pytest.mark.parametrize("runtime", SERVING_RUNTIMES)
def test_the_profile_names_a_stage_and_the_build_argument_that_sets_its_base(runtime: str) -> None:
    profile = profile_for(runtime)  # type: ignore[arg-type]
    stage = re.search(rf"^FROM (\S+) AS {re.escape(profile.dockerfile_target)}$", DOCKERFILE, re.M)
    assert stage, f"model/Dockerfile has no stage {profile.dockerfile_target}"
    # imageBaseImage reaches the stage's FROM only through this build argument.
    assert f"${{{profile.base_image_build_arg}" in stage.group(1)
    assert re.search(rf"^ARG {profile.base_image_build_arg}=", DOCKERFILE, re.M)
