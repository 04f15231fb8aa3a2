"""One stack operation through the Automation API, with the repository's program and stack file."""

from __future__ import annotations

import contextlib
import json
import runpy
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from engine.rollback import RollbackError, choose, kubectl_for, pin, revisions, serving
from engine.unready_pods import unready_pod_reasons
from gpu_model_serving import stack_outputs

# Mandatory on every preview and up: a violation fails the operation.
POLICY_PACKS = [str(POLICY_PACK_DIR)]
# The rule that compares a planned model contract with the live one (policy/rules.py).
MODEL_CONTRACT_RULE = "model-contract"


def project_name(work_dir: Path) -> str:
    return str(yaml.safe_load((work_dir / "Pulumi.yaml").read_text())["name"])


def inline_program(work_dir: Path) -> Callable[[], None]:
    """The repository's __main__.py, run in this process as the engine's inline program."""

    def program() -> None:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(work_dir))
        sys.path.insert(0, str(work_dir))
        forget_other_copies(work_dir)
        runpy.run_path(str(work_dir / "__main__.py"), run_name="__main__")

    return program


def forget_other_copies(work_dir: Path) -> None:
    """Forgets the program's modules (settings, components, ...) imported from another copy of
    the project, so that this run imports `work_dir`'s own: in one process (tests, benchmarks)
    a scratch copy would otherwise run the checkout's settings, which resolve modelPath against
    the checkout while `__main__.py` relates it to the copy."""
    root = work_dir.resolve()
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if not ((root / f"{top}.py").is_file() or (root / top / "__init__.py").is_file()):
            continue
        file = getattr(module, "__file__", None)
        if file is not None and not Path(file).resolve().is_relative_to(root):
            del sys.modules[name]


@dataclass(frozen=True)
class StackTarget:
    name: str
    """Stack name in the backend."""
    config_file: Path
    """Stack configuration (default: Pulumi.<name>.yaml beside Pulumi.yaml)."""
    work_dir: Path = REPO
    policy_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Policy pack settings by rule (e.g. productionStacks), over the rules' defaults."""


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


@contextlib.contextmanager
def policy_pack_configs(stack: auto.Stack, target: StackTarget) -> Iterator[list[str]]:
    """The policy pack's config for one operation: the target's settings, and the contract the
    live stack serves now (its last update's output, none before the first), which the
    model-contract rule compares the planned one with."""
    live = stack.outputs().get(stack_outputs.MODEL_CONTRACT)
    config = {rule: dict(settings) for rule, settings in target.policy_config.items()}
    config.setdefault(MODEL_CONTRACT_RULE, {})["liveContract"] = live.value if live else None
    with tempfile.TemporaryDirectory(prefix="policy-config-") as directory:
        path = Path(directory) / "policy-config.json"
        path.write_text(json.dumps(config))
        yield [str(path)]


@contextlib.contextmanager
def explain_unready_pods(stack: auto.Stack, target: StackTarget, out: Printer) -> Iterator[None]:
    """On a failed `up`, print why the serving pods are not ready (engine/unready_pods.py)."""
    try:
        yield
    except auto.CommandError:
        with contextlib.suppress(RollbackError):  # never deployed: no pods to ask
            namespace, deployment = serving(stack)
            kubectl = kubectl_for(target.config_file, project_name(target.work_dir))
            for line in unready_pod_reasons(namespace, deployment, kubectl):
                out(line)
        raise


def preview(
    stack: auto.Stack, target: StackTarget, out: Printer, on_event: EventSink = None
) -> auto.PreviewResult:
    with policy_pack_configs(stack, target) as configs:
        return stack.preview(
            diff=True,
            config_file=str(target.config_file),
            policy_packs=POLICY_PACKS,
            policy_pack_configs=configs,
            on_output=out,
            on_event=on_event,
        )


def up(
    stack: auto.Stack, target: StackTarget, out: Printer, on_event: EventSink = None
) -> auto.UpResult:
    # Refresh first: without it the engine compares against its last state, not the cluster, and
    # an object edited or deleted by hand would stay that way.
    with policy_pack_configs(stack, target) as configs, explain_unready_pods(stack, target, out):
        return stack.up(
            refresh=True,
            config_file=str(target.config_file),
            policy_packs=POLICY_PACKS,
            policy_pack_configs=configs,
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


def rollback(
    stack: auto.Stack,
    target: StackTarget,
    out: Printer,
    on_event: EventSink = None,
    to: str | None = None,
) -> auto.UpResult:
    """Pin the stack's config to an image its Deployment ran before (`to`: a digest, reference
    or model version; default: the one before the current image), then `up`: no build."""
    namespace, deployment = serving(stack)
    project = project_name(target.work_dir)
    history = revisions(namespace, deployment, kubectl_for(target.config_file, project))
    chosen = choose(history, to)
    out(f"rollback: {namespace}/{deployment} from {history[0].describe()}")
    out(f"rollback: to {chosen.describe()}; pinned in {target.config_file}")
    pin(stack, target.config_file, project, chosen)
    return up(stack, target, out, on_event)
