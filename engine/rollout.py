"""`make rollout`: the canary walked through its steps by the engine, judged at each step by
Prometheus, then promoted or rolled back, every step a stack-file change and an `up`.

Each step writes canaryWeight into the stack file and runs `up`, waits the analysis window, and
judges the canary's own series against the bounds and against stable's (canary_analysis). A pass
goes on; the last step (100 %) is the promotion: stableSlot flips to the canary's slot and
modelVersion becomes the canary's, so the canary's pods serve on as stable without a restart. A
failed step, and any step without a verdict (Prometheus unreachable, a query error, too few
requests), rolls back: the canary keys leave the stack file and `up` removes the canary. Either
way the stack file says what is live, so `make drift` stays clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pulumi import automation as auto

from engine import driver
from engine.canary_analysis import Prometheus, Verdict, analyse
from engine.stack_file import declared_settings, write_config
from gpu_model_serving.components.model_server import other_slot
from gpu_model_serving.settings import Settings

Outcome = Literal["promoted", "rolled back", "no verdict"]
CANARY_KEYS = ("canaryModelVersion", "canaryWeight")


class RolloutError(Exception):
    """Nothing to roll out; the message says why."""


@dataclass
class StepRecord:
    weight: int
    outcome: str
    up_seconds: float
    wait_seconds: float
    verdict: dict[str, Any]


@dataclass
class RolloutReport:
    stack: str
    canary_version: int
    stable_version: int
    outcome: Outcome | None = None
    steps: list[StepRecord] = field(default_factory=list)
    final_up_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def rollout(
    stack: auto.Stack,
    target: driver.StackTarget,
    out: driver.Printer,
    prometheus: Prometheus,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutReport:
    project = driver.project_name(target.work_dir)
    settings = declared_settings(target.work_dir, target.config_file, project)
    canary = settings.model.canary
    if canary is None:
        raise RolloutError(
            f"{target.config_file} declares no canary: set canaryModelVersion to the version "
            "to roll out"
        )
    report = RolloutReport(target.name, canary.contract.version, settings.model.contract.version)
    window = settings.rollout.analysis_window_seconds
    for weight in settings.rollout.steps[:-1]:
        out(f"rollout: step {weight} %: canary model version {canary.contract.version}")
        up_seconds = _timed_up(stack, target, out, project, {"canaryWeight": str(weight)})
        out(f"rollout: step {weight} %: judging the next {window} s")
        started = time.monotonic()
        sleep(window)
        verdict = analyse(
            prometheus, settings.kubernetes.namespace, settings.server.model_name, settings.rollout
        )
        wait_seconds = time.monotonic() - started
        report.steps.append(
            StepRecord(weight, verdict.outcome, up_seconds, wait_seconds, verdict.report())
        )
        out(_decision(weight, verdict))
        if verdict.outcome != "pass":
            out("rollout: rolling back: only stable serves, the canary keys leave the stack file")
            report.final_up_seconds = _timed_up(
                stack, target, out, project, dict.fromkeys(CANARY_KEYS)
            )
            report.outcome = "rolled back" if verdict.outcome == "fail" else "no verdict"
            return report
    out(f"rollout: promoting model version {canary.contract.version}: {_promotion(settings)}")
    report.final_up_seconds = _timed_up(stack, target, out, project, _promotion_keys(settings))
    report.outcome = "promoted"
    return report


def _decision(weight: int, verdict: Verdict) -> str:
    lines = [f"rollout: step {weight} %: {verdict.outcome}"]
    lines += [f"  {finding}" for finding in verdict.findings]
    return "\n".join(lines)


def _promotion_keys(settings: Settings) -> dict[str, str | None]:
    canary = settings.model.canary
    assert canary is not None
    return {
        "modelVersion": str(canary.contract.version),
        "stableSlot": other_slot(settings.model.stable_slot),
        **dict.fromkeys(CANARY_KEYS),
    }


def _promotion(settings: Settings) -> str:
    keys = _promotion_keys(settings)
    return f"stableSlot {keys['stableSlot']}, modelVersion {keys['modelVersion']}, no canary"


def _timed_up(
    stack: auto.Stack,
    target: driver.StackTarget,
    out: driver.Printer,
    project: str,
    keys: dict[str, str | None],
) -> float:
    write_config(stack, target.config_file, project, keys)
    started = time.monotonic()
    driver.up(stack, target, out)
    return time.monotonic() - started
