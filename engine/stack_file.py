"""The stack's config file, read and written as the engine reads it: the declared state that
`make rollback` and `make rollout` leave saying what is live, so `make drift` stays clean."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pulumi
import yaml
from pulumi import automation as auto

from gpu_model_serving.config_reader import declared_config
from gpu_model_serving.settings import Settings, load_settings


def write_config(
    stack: auto.Stack, config_file: Path, project: str, values: Mapping[str, str | None]
) -> None:
    """Set each key (None: remove it, if there) in the stack's config file, as `pulumi config
    set` and `pulumi config rm` do: comments and the other keys stay."""
    present = (yaml.safe_load(config_file.read_text()) or {}).get("config") or {}
    for key, value in values.items():
        if value is None and f"{project}:{key}" not in present:
            continue
        command = ["config", "set" if value is not None else "rm"]
        command += ["--stack", stack.name, "--config-file", str(config_file), f"{project}:{key}"]
        if value is not None:
            command.append(value)
        stack.workspace.pulumi_command.run(
            command, stack.workspace.work_dir, stack.workspace.env_vars
        )


def declared_settings(project_dir: Path, config_file: Path, project: str) -> Settings:
    """The stack's settings as its program reads them (defaults, then the stack file), validated
    the same way; a ConfigError names every problem."""
    pulumi.runtime.set_all_config(declared_config(project_dir / "Pulumi.yaml", config_file))
    return load_settings(pulumi.Config(project))
