"""One stack operation through the Automation API, with the repository's program and stack file."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pulumi import automation as auto

from engine.drift import DriftReport, drift_report
from engine.environment import (
    ENGINE_CLI_ROOT,
    POLICY_PACK_DIR,
    REPO,
    check_engine,
    engine_environment,
    ensure_local_backend,
    install_policy_analyzer,
)

# Mandatory on every preview and up: a violation fails the operation.
POLICY_PACKS = [str(POLICY_PACK_DIR)]


def project_name(work_dir: Path) -> str:
    return str(yaml.safe_load((work_dir / "Pulumi.yaml").read_text())["name"])


def inline_program(work_dir: Path) -> Callable[[], None]:
    """The repository's __main__.py, run in this process as the engine's inline program."""

    def program() -> None:
        if str(work_dir) not in sys.path:
            sys.path.insert(0, str(work_dir))
        runpy.run_path(str(work_dir / "__main__.py"), run_name="__main__")

    return program


@dataclass(frozen=True)
class StackTarget:
    name: str
    """Stack name in the backend."""
    config_file: Path
    """Stack configuration (default: Pulumi.<name>.yaml beside Pulumi.yaml)."""
    work_dir: Path = REPO


def workspace_options(work_dir: Path, engine_env: dict[str, str]) -> auto.LocalWorkspaceOptions:
    """A workspace on `work_dir` running our CLI (no language host beside it) with `engine_env`."""
    return auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        env_vars=engine_env,
        pulumi_command=auto.PulumiCommand(root=str(ENGINE_CLI_ROOT)),
    )


def open_stack(target: StackTarget, env: dict[str, str] | None = None) -> auto.Stack:
    engine_env = engine_environment(env)
    check_engine(engine_env)
    ensure_local_backend(engine_env)
    install_policy_analyzer(engine_env)
    return auto.create_or_select_stack(
        stack_name=target.name,
        project_name=project_name(target.work_dir),
        program=inline_program(target.work_dir),
        opts=workspace_options(target.work_dir, engine_env),
    )


def stack_names(work_dir: Path, env: dict[str, str] | None = None) -> list[str]:
    """The project's stacks in the backend `env` names."""
    opts = workspace_options(work_dir, engine_environment(env))
    workspace = auto.LocalWorkspace(
        work_dir=opts.work_dir, env_vars=opts.env_vars, pulumi_command=opts.pulumi_command
    )
    return [summary.name for summary in workspace.list_stacks()]


Printer = Callable[[str], None]
EventSink = Callable[[auto.EngineEvent], None] | None


def preview(
    stack: auto.Stack, target: StackTarget, out: Printer, on_event: EventSink = None
) -> auto.PreviewResult:
    return stack.preview(
        diff=True,
        config_file=str(target.config_file),
        policy_packs=POLICY_PACKS,
        on_output=out,
        on_event=on_event,
    )


def up(
    stack: auto.Stack, target: StackTarget, out: Printer, on_event: EventSink = None
) -> auto.UpResult:
    # Refresh first: without it the engine compares against its last state, not the cluster, and
    # an object edited or deleted by hand would stay that way.
    return stack.up(
        refresh=True,
        config_file=str(target.config_file),
        policy_packs=POLICY_PACKS,
        on_output=out,
        on_event=on_event,
    )


def refresh(
    stack: auto.Stack, target: StackTarget, out: Printer, on_event: EventSink = None
) -> auto.RefreshResult:
    return stack.refresh(config_file=str(target.config_file), on_output=out, on_event=on_event)


def destroy(
    stack: auto.Stack, target: StackTarget, out: Printer, on_event: EventSink = None
) -> auto.DestroyResult:
    return stack.destroy(config_file=str(target.config_file), on_output=out, on_event=on_event)


def drift(stack: auto.Stack, target: StackTarget, out: Printer) -> DriftReport:
    """Refresh against the live cluster and preview, writing nothing to state.

    No policy pack: drift compares the cluster with the declaration, which preview and up
    already held to policy; a violation here would turn a drift report into an error.
    """
    events: list[auto.EngineEvent] = []
    stack.preview(
        refresh=True,
        diff=True,
        config_file=str(target.config_file),
        on_output=out,
        on_event=events.append,
    )
    return drift_report(target.name, events)
