"""The Pulumi engine as this project runs it: the CLI on PATH, local state, no plugin downloads.

The environment (PULUMI_HOME, PULUMI_BACKEND_URL, passphrase, no update checks, no automatic
plugin acquisition) is set in one place, the Makefile, and inherited from there.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from pulumi import automation as auto

ROOT = Path(__file__).resolve().parent.parent
# Operations that load the program's plugins. The virtualenv also holds the prod stack's cloud
# SDKs (pulumi_gcp, pulumi_aws), whose plugins the engine would otherwise pre-install although
# the dev stack never uses them, and which cannot be downloaded here.
_PLUGIN_LOADING_COMMANDS = frozenset({"up", "preview", "refresh", "destroy"})
SKIP_PLUGIN_PRE_INSTALL = "--skip-plugin-pre-install"


class ProjectPulumiCommand(auto.PulumiCommand):
    """The `pulumi` on PATH, asked to load only the plugins the program actually uses."""

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: auto.OnOutput | None = None,
        on_error: auto.OnOutput | None = None,
    ) -> auto.CommandResult:
        if args and args[0] in _PLUGIN_LOADING_COMMANDS:
            args = [args[0], SKIP_PLUGIN_PRE_INSTALL, *args[1:]]
        return super().run(args, cwd, additional_env, on_output, on_error)


def workspace_options(env: Mapping[str, str] | None = None) -> auto.LocalWorkspaceOptions:
    return auto.LocalWorkspaceOptions(
        work_dir=str(ROOT),
        pulumi_command=ProjectPulumiCommand(),
        env_vars=dict(env or {}),
        secrets_provider="passphrase",
    )


def select_stack(name: str, env: Mapping[str, str] | None = None) -> auto.Stack:
    """An existing stack of this project, e.g. `dev`."""
    return auto.select_stack(name, work_dir=str(ROOT), opts=workspace_options(env))


def create_stack_like(
    name: str, template: str, overrides: Mapping[str, str], env: Mapping[str, str] | None = None
) -> auto.Stack:
    """A new stack whose config is `template`'s stack file plus `overrides` (plain values)."""
    shutil.copyfile(ROOT / f"Pulumi.{template}.yaml", ROOT / f"Pulumi.{name}.yaml")
    stack = auto.create_stack(name, work_dir=str(ROOT), opts=workspace_options(env))
    for key, value in overrides.items():
        stack.set_config(key, auto.ConfigValue(value))
    return stack


def remove_stack(stack: auto.Stack) -> None:
    """Destroy everything the stack manages, then delete the stack and its config file."""
    try:
        stack.destroy(on_output=print)
    finally:
        stack.workspace.remove_stack(stack.name)
        (ROOT / f"Pulumi.{stack.name}.yaml").unlink(missing_ok=True)
