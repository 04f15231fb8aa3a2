"""The issue text for a drifted stack, from `make drift`'s JSON report."""

from __future__ import annotations

import json
from typing import Any

from model_contract.diff import code
from review.comment import clip, hidden

LABELS = ["drift"]


def marker(stack: str) -> str:
    """The hidden line by which the workflow finds this stack's drift issue."""
    return f"<!-- gpu-model-serving drift: stack={hidden(stack)} -->"


def title(stack: str) -> str:
    return f"Drift in stack {stack}"


def render(report: dict[str, Any], run_url: str = "") -> str:
    """Each drifted resource with each field declared vs live, and how to resolve it."""
    stack = report["stack"]
    resources = report["resources"]
    lines = [
        marker(stack),
        f"## Stack {code(stack)}: {len(resources)} resource(s) differ from the declaration",
        "",
    ]
    for resource in resources:
        if resource["op"] == "create":
            lines.append(
                f"- {code(resource['type'])} **{code(resource['name'])}**: missing from the cluster"
            )
            continue
        lines.append(
            f"- {code(resource['type'])} **{code(resource['name'])}** "
            f"(`up` would {code(resource['op'])})"
        )
        lines += [
            f"  - {code(f['path'])}: declared {_value(f['declared'])}, live {_value(f['live'])}"
            for f in resource["fields"]
        ]
    lines += [
        "",
        f"{code('make up STACK=' + stack)} restores the declared values (every object carries "
        "`pulumi.com/patchForce`); if the live change is wanted, declare it in the program or "
        f"{code('Pulumi.' + stack + '.yaml')} instead. This issue closes itself when a check "
        "finds no drift.",
    ]
    if run_url:
        lines += ["", f"Found by {run_url} (the JSON report is attached there)."]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return code(clip(text))
