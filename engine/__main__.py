"""`python -m engine COMMAND --stack NAME`: the make targets' way into the real engine.

Exit codes: 0 success (drift: none; rollout: promoted); 1 error (engine, program or config);
2 drift found; rollout: 3 rolled back on a failed step, 4 rolled back without a verdict
(Prometheus unreachable, a query error, too few requests).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from engine import driver
from engine.canary_analysis import Prometheus
from engine.environment import (
    REPO,
    EngineMissingError,
    engine_environment,
    install_component_package,
    install_policy_analyzer,
    shell_exports,
)
from engine.preview_record import preview_record
from engine.rollback import RollbackError
from engine.rollout import RolloutError, rollout
from gpu_model_serving.config_reader import ConfigError

EXIT_ERROR = 1
EXIT_DRIFT = 2
EXIT_ROLLED_BACK = 3
EXIT_NO_VERDICT = 4
ROLLOUT_EXIT = {"promoted": 0, "rolled back": EXIT_ROLLED_BACK, "no verdict": EXIT_NO_VERDICT}
OPERATIONS = {
    "preview": driver.preview,
    "up": driver.up,
    "refresh": driver.refresh,
    "destroy": driver.destroy,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("command", choices=[*OPERATIONS, "drift", "rollback", "rollout", "env"])
    parser.add_argument("--stack", default="dev", help="stack name (default: dev)")
    parser.add_argument(
        "--config-file",
        type=Path,
        help="stack configuration (default: Pulumi.<stack>.yaml in the project)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="drift, rollout: also write the report as JSON to this file",
    )
    parser.add_argument(
        "--prometheus",
        default="http://127.0.0.1:9090",
        help="rollout: the Prometheus whose HTTP API judges each step",
    )
    parser.add_argument(
        "--record",
        type=Path,
        help="preview: also write what it would do (steps, field diffs, policy) as JSON here",
    )
    parser.add_argument(
        "--remove", action="store_true", help="destroy: also remove the stack and its history"
    )
    parser.add_argument(
        "--to",
        help="rollback: an image digest or reference, or a model version, the Deployment ran "
        "before (default: the image before the current one)",
    )
    parser.add_argument(
        "--policy-config",
        type=Path,
        help="JSON file of policy pack settings by rule, e.g. "
        '{"model-contract": {"productionStacks": ["prod", "staging"]}}',
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "env":
        env = engine_environment()
        # What the plain CLI finds in PULUMI_HOME: the policy pack's analyzer, the components'
        # package (examples/model-server-yaml).
        install_policy_analyzer(env)
        install_component_package(env)
        print(shell_exports(env))
        return 0
    try:
        policy_config = _policy_config(args.policy_config) if args.policy_config else {}
    except ValueError as error:
        print(f"engine: {error}", file=sys.stderr)
        return EXIT_ERROR
    target = driver.StackTarget(
        name=args.stack,
        config_file=args.config_file or REPO / f"Pulumi.{args.stack}.yaml",
        policy_config=policy_config,
    )
    if not target.config_file.is_file():
        print(f"engine: no stack configuration {target.config_file}", file=sys.stderr)
        return EXIT_ERROR
    # Drift prints its own report on stdout; the engine's progress goes to stderr.
    progress = print if args.command != "drift" else _to_stderr
    try:
        stack = driver.open_stack(target)
        if args.command == "drift":
            report = driver.drift(stack, target, progress)
            if args.report:
                _write_json(args.report, report.as_json())
            print(report.describe())
            return EXIT_DRIFT if report.drifted else 0
        if args.command == "rollout":
            walked = rollout(stack, target, progress, Prometheus(args.prometheus))
            if args.report:
                _write_json(args.report, walked.as_json())
            print(f"rollout: {walked.outcome}")
            return ROLLOUT_EXIT[walked.outcome or "no verdict"]
        if args.command == "rollback":
            driver.rollback(stack, target, progress, to=args.to)
        elif args.command == "preview" and args.record:
            _recorded_preview(stack, target, args.record)
        else:
            OPERATIONS[args.command](stack, target, progress)
        if args.command == "destroy" and args.remove:
            stack.workspace.remove_stack(target.name)
    except (EngineMissingError, RollbackError, RolloutError, ConfigError) as error:
        print(f"engine: {error}", file=sys.stderr)
        return EXIT_ERROR
    except auto.CommandError as error:
        # The engine printed its diagnostics (config errors included) as progress; what it
        # wrote to stderr (a missing backend, a locked stack) is only in the error.
        print(f"engine: {args.command} of stack {target.name} failed", file=sys.stderr)
        print(_engine_stderr(error), file=sys.stderr)
        return EXIT_ERROR
    return 0


def _recorded_preview(stack: auto.Stack, target: driver.StackTarget, record: Path) -> None:
    """A preview whose record is written whether it passes or not: a failing preview (a policy
    violation) is exactly what the reviewer must see. Its failure still propagates."""
    events: list[auto.EngineEvent] = []
    succeeded = False
    try:
        driver.preview(stack, target, print, on_event=events.append)
        succeeded = True
    finally:
        _write_json(record, preview_record(target.name, events, succeeded).as_json())


def _policy_config(path: Path) -> dict[str, dict[str, Any]]:
    """--policy-config's file: a JSON object of rule name to an object of settings."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--policy-config {path}: {error}") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
        raise ValueError(
            f"--policy-config {path}: must be a JSON object of rule name to an object of "
            'settings, e.g. {"model-contract": {"productionStacks": ["prod"]}}'
        )
    return loaded


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _engine_stderr(error: auto.CommandError) -> str:
    return str(error).partition(" stderr: ")[2].strip()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
