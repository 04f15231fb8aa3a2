"""Every command the GitHub workflows run is one the test suite runs too.

Each `run:` line of .github/ must match exactly one entry below, which names the test that runs
the same command (or, for the two that only a runner can run, says why). The make targets the
workflows call are checked to expand to the `python -m engine` commands those tests run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.harness import ROOT

# run: line pattern -> "tests/<file>::<test>" that runs the same command, or "untestable: why".
WORKFLOW_COMMANDS = {
    r'make preview STACK="\$STACK" PREVIEW_RECORD="\$RECORD"': (
        "tests/engine/test_engine.py::"
        "test_a_config_that_breaks_a_rule_fails_the_preview_naming_the_rule"
    ),
    r'\.venv/bin/python -m review post-comment --record "\$RECORD" --pr "\$PR_NUMBER"': (
        "tests/unit/test_review.py::test_the_pr_comment_is_created_once_then_updated_in_place"
    ),
    r'make drift STACK="\$STACK" DRIFT_REPORT="\$REPORT"': (
        "tests/engine/test_engine.py::"
        "test_hand_edits_are_drift_and_up_restores_exactly_the_declared_fields"
    ),
    r'\.venv/bin/python -m review drift-issue --report "\$REPORT" --run-url "\$RUN_URL"': (
        "tests/unit/test_review.py::test_one_drift_issue_per_stack_is_opened_updated_and_closed"
    ),
    r"make venv engine-toolchain": "untestable: CI's own setup (`make test` runs both targets)",
    r'echo "PULUMI_BACKEND_URL=\$BACKEND_URL" >> "\$GITHUB_ENV"': (
        "untestable: writes the runner's step environment file"
    ),
    r"make cloud-plugins": "untestable: downloads provider plugins, unreachable offline",
    r'make rollout STACK="\$STACK" PROMETHEUS_URL="\$PROMETHEUS_URL" ROLLOUT_REPORT="\$REPORT"': (
        "tests/engine/test_rollout.py::"
        "test_prometheus_down_rolls_back_with_no_verdict_and_its_own_exit_code"
    ),
    r"echo \"canaries=\$\(grep -c ':canaryModelVersion:' \"Pulumi\.\$STACK\.yaml\" \|\| true\)\" "
    r'>> "\$GITHUB_OUTPUT"': "untestable: writes the runner's step output file",
    r"git -c user\.name=.* commit .*": "untestable: commits on the runner's checkout",
    r"git push": "untestable: pushes to the repository",
}
# What the make targets run, with the workflow's variables filled in.
MAKE_EXPANSIONS = {
    (
        "preview",
        "STACK=prod",
        "PREVIEW_RECORD=r.json",
    ): "-m engine preview --stack prod --record r.json",
    ("drift", "STACK=prod", "DRIFT_REPORT=d.json"): "-m engine drift --stack prod --report d.json",
    (
        "rollout",
        "STACK=prod",
        "PROMETHEUS_URL=http://p:9090",
        "ROLLOUT_REPORT=r.json",
    ): "-m engine rollout --stack prod --prometheus http://p:9090 --report r.json",
}


def run_lines() -> list[tuple[str, str]]:
    """(file, command line) for every line of every `run:` in workflows and local actions."""
    files = sorted((ROOT / ".github").rglob("*.yml"))
    assert files, "no workflows found"
    found = []
    for path in files:
        document = yaml.safe_load(path.read_text())
        jobs = document.get("jobs", {}).values() if "jobs" in document else [document["runs"]]
        for job in jobs:
            for step in job.get("steps", []):
                for line in str(step.get("run", "")).splitlines():
                    if line.strip():
                        found.append((str(path.relative_to(ROOT)), line.strip()))
    return found


def test_every_workflow_command_is_one_a_test_runs() -> None:
    lines = run_lines()
    assert len(lines) >= 6
    for path, line in lines:
        matches = [p for p in WORKFLOW_COMMANDS if re.fullmatch(p, line)]
        assert len(matches) == 1, f"{path}: `{line}` is not a command the tests run"


@pytest.mark.parametrize("tested_by", [t for t in WORKFLOW_COMMANDS.values() if "::" in t])
def test_the_named_tests_exist(tested_by: str) -> None:
    file, _, name = tested_by.partition("::")
    assert re.search(rf"^def {name}\(", (ROOT / file).read_text(), re.MULTILINE), tested_by


@pytest.mark.parametrize("target", list(MAKE_EXPANSIONS))
def test_the_make_targets_run_the_tested_engine_commands(target: tuple[str, ...]) -> None:
    # -n prints the recipes without running them (prerequisites included).
    shown = subprocess.run(
        ["make", "-n", *target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert MAKE_EXPANSIONS[target] in shown.stdout, shown.stdout


def test_the_workflows_match_the_documented_concurrency() -> None:
    preview = yaml.safe_load((ROOT / ".github/workflows/preview.yml").read_text())
    job = preview["jobs"]["preview"]
    assert job["concurrency"]["group"].endswith("${{ matrix.stack }}")
    assert "pull_request.number" in job["concurrency"]["group"]
    assert job["strategy"]["matrix"]["stack"] == sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in Path(ROOT).glob("Pulumi.*.yaml")
    )
