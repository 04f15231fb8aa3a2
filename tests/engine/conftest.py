"""Engine layer: the real Pulumi CLI and providers, driven by engine/ against the local cluster.

Each session deploys a copy of the project (so a test may change the model without touching the
checkout) as a stack of a unique name, in a unique namespace, with its state in a temporary
file backend; teardown always destroys the stack and removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from engine import driver
from engine.drift import UNCHANGED_OPS
from engine.environment import BIN, PLAIN_CLI_DIR, REPO, STATE, engine_environment
from engine.scratch import copy_project
from tests.cluster.conftest import Cluster, cluster  # noqa: F401  (the session's cluster)

PROJECT = "gpu-model-serving"
ENGINE_TIMEOUT_SECONDS = 900
# Rendered PR comments and drift reports the tests produced, for people to read (CI, notes).
ARTIFACTS = STATE / "test-artifacts"
# What `pulumi up` asks, holding the stack's lock, before it applies anything.
UP_PROMPT = b"Do you want to perform this update?"


@dataclass
class EngineStack:
    """One stack of the project copy, with its own config file and backend."""

    name: str
    work_dir: Path
    config_file: Path
    env: dict[str, str]
    base_config: dict[str, Any]
    log: list[str] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return str(self.base_config[f"{PROJECT}:namespace"])

    @property
    def target(self) -> driver.StackTarget:
        return driver.StackTarget(self.name, self.config_file, self.work_dir)

    def write_config(self, **overrides: Any) -> None:
        """The stack's config: the dev stack's plus these keys (unprefixed names)."""
        config = {**self.base_config, **{f"{PROJECT}:{k}": v for k, v in overrides.items()}}
        self.config_file.write_text(yaml.safe_dump({"config": config}))

    @contextlib.contextmanager
    def configured(self, **overrides: Any) -> Iterator[None]:
        """The dev stack's config plus these keys while the block runs, then the dev stack's."""
        self.write_config(**overrides)
        try:
            yield
        finally:
            self.write_config()

    def run(self, operation: str) -> tuple[Any, list[auto.EngineEvent]]:
        """An operation of engine.driver in this process: its result and the engine's events."""
        events: list[auto.EngineEvent] = []
        stack = driver.open_stack(self.target, self.env)
        result = getattr(driver, operation)(stack, self.target, self.log.append, events.append)
        return result, events

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`python -m engine ARGS --stack NAME --config-file F`, as `make` runs it."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "engine",
                *args,
                "--stack",
                self.name,
                "--config-file",
                str(self.config_file),
            ],
            cwd=REPO,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=ENGINE_TIMEOUT_SECONDS,
            check=False,
        )

    def plain_cli(
        self, command: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pulumi COMMAND` in the project copy, as a user types it after
        `eval "$(python -m engine env)"`: the CLI beside its Python host, the venv's python."""
        return subprocess.run(
            [
                "pulumi",
                command,
                "--stack",
                self.name,
                "--config-file",
                str(self.config_file),
                "--non-interactive",
                *args,
            ],
            cwd=self.work_dir,
            env=self._plain_cli_env(env),
            capture_output=True,
            text=True,
            timeout=ENGINE_TIMEOUT_SECONDS,
            check=False,
        )

    def _plain_cli_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        base = env or self.env
        path = os.pathsep.join([str(REPO / ".venv" / "bin"), str(PLAIN_CLI_DIR), base["PATH"]])
        return {**base, "PATH": path}

    @contextlib.contextmanager
    def up_waiting_at_its_prompt(self, config_file: Path) -> Iterator[list[Path]]:
        """A user's interactive `pulumi up` (with `config_file`) stopped at its confirmation
        prompt, where it holds the stack's lock; yields the backend's lock files. Answers with
        Ctrl-C on exit, which releases the lock."""
        controller, terminal = pty.openpty()
        command = ["pulumi", "up", "--stack", self.name, "--config-file", str(config_file)]
        process = subprocess.Popen(
            command,
            cwd=self.work_dir,
            env=self._plain_cli_env(),
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            start_new_session=True,
        )
        os.close(terminal)
        try:
            shown = b""
            deadline = time.monotonic() + ENGINE_TIMEOUT_SECONDS
            while UP_PROMPT not in shown and process.poll() is None:
                assert time.monotonic() < deadline, shown.decode(errors="replace")[-2000:]
                if select.select([controller], [], [], 1)[0]:
                    shown += os.read(controller, 65536)
            assert UP_PROMPT in shown, shown.decode(errors="replace")[-2000:]
            backend = Path(self.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
            yield sorted((backend / ".pulumi" / "locks").rglob("*.json"))
        finally:
            with contextlib.suppress(OSError):
                os.write(controller, b"\x03")
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(controller)

    def outputs(self) -> dict[str, Any]:
        stack = driver.open_stack(self.target, self.env)
        return {key: value.value for key, value in stack.outputs().items()}


def planned_steps(events: list[auto.EngineEvent]) -> list[auto.StepEventMetadata]:
    """The steps a preview or update planned, except keeping or reading a resource."""
    return [
        e.resource_pre_event.metadata
        for e in events
        if e.resource_pre_event and e.resource_pre_event.metadata.op not in UNCHANGED_OPS
    ]


def buildkit_builds() -> int:
    """How many builds the local BuildKit daemon has run (its build history)."""
    socket = STATE / "buildkit" / "buildkitd.sock"
    listing = subprocess.run(
        [str(BIN / "buildctl"), "--addr", f"unix://{socket}", "debug", "histories"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return sum(1 for line in listing.splitlines()[1:] if line.strip())


@contextlib.contextmanager
def throwaway_stack(cluster: Cluster, root: Path, **config: Any) -> Iterator[EngineStack]:  # noqa: F811
    """A stack of a unique name in its own namespace, deploying a copy of the project with the
    dev stack's config plus `config` (unprefixed keys); destroyed and removed afterwards."""
    suffix = secrets.token_hex(4)
    backend = root / "state"
    backend.mkdir()
    env = engine_environment({**os.environ, **cluster.env, "PULUMI_BACKEND_URL": backend.as_uri()})
    dev = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    stack = EngineStack(
        name=f"engine-{suffix}",
        work_dir=copy_project(root / "project"),
        config_file=root / "stack.yaml",
        env=env,
        base_config={
            **dev,
            f"{PROJECT}:namespace": f"engine-{suffix}",
            f"{PROJECT}:imageTag": f"engine-{suffix}",
            **{f"{PROJECT}:{key}": value for key, value in config.items()},
        },
    )
    stack.write_config()
    # The inline program runs in this process, and the Kubernetes SDK reads KUBECONFIG from it
    # into the provider's inputs: the same environment as `make` gives `python -m engine`.
    patch = pytest.MonkeyPatch()
    patch.setenv("KUBECONFIG", cluster.env["KUBECONFIG"])
    try:
        yield stack
    finally:
        patch.undo()
        stack.write_config()
        destroyed = stack.cli("destroy", "--remove")
        if destroyed.returncode != 0:
            print(destroyed.stdout[-3000:], destroyed.stderr[-3000:], file=sys.stderr)


@pytest.fixture(scope="session")
def engine_stack(
    cluster: Cluster,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EngineStack]:
    with throwaway_stack(cluster, tmp_path_factory.mktemp("engine")) as stack:
        yield stack


def keep_artifact(name: str, text: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_text(text)


def report_of(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
