"""Engine layer: the real Pulumi CLI, language host and providers, through the Automation API.

One stack per test session, uniquely named, in render mode (manifests to a directory, no
cluster); the image build and push are real, against the local Docker engine and registry.
Teardown always destroys the stack and removes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pulumi import automation as auto

from ops import engine
from tests.unit.harness import PROJECT


@dataclass
class EngineStack:
    stack: auto.Stack
    render_dir: Path
    preview: auto.PreviewResult
    up: auto.UpResult
    events: list[auto.EngineEvent] = field(default_factory=list)

    @property
    def outputs(self) -> dict[str, object]:
        return {key: value.value for key, value in self.up.outputs.items()}


@pytest.fixture(scope="session")
def engine_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineStack]:
    name = f"engine-{uuid.uuid4().hex[:8]}"
    render_dir = tmp_path_factory.mktemp("rendered")
    stack = engine.create_stack_like(
        name,
        template="dev",
        overrides={
            f"{PROJECT}:renderYamlToDirectory": str(render_dir),
            # Its own tag, so that a concurrent `make up` of dev cannot move it under the test.
            f"{PROJECT}:imageTag": name,
        },
    )
    try:
        preview = stack.preview(on_output=print)
        up = stack.up(on_output=print)
        yield EngineStack(stack=stack, render_dir=render_dir, preview=preview, up=up)
    finally:
        engine.remove_stack(stack)
