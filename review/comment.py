"""The pull-request comment for one stack's preview, rendered from its record.

What a reviewer needs first comes first and is never cut: the verdict, the counts, policy
violations, the model (version, contract change, image), replacements (with the fields that
force them) and the image that would roll. When
the whole does not fit in one GitHub comment, the field diffs of updates go first, then the
lists of created and deleted resources, and the comment says what was cut.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.drift import MISSING
from engine.preview_record import UNKNOWN, FieldChange, ImageRoll, PreviewRecord, Step
from model_contract.contract import Contract
from model_contract.diff import code, describe
from model_contract.diff import diff as contract_diff

# GitHub refuses comment bodies over 65,536 characters; leave room for the marker line.
GITHUB_COMMENT_LIMIT = 65_536
MAX_VALUE_CHARS = 240
OP_ORDER = ("replace", "delete", "update", "create", "import")
OP_TITLES = {
    "replace": "To replace",
    "delete": "To delete",
    "update": "To update",
    "create": "To create",
    "import": "To import",
}
CHANGE_SIGNS = {"add": "+", "delete": "-", "update": "~"}
CONTRACT_VERDICTS = {
    "unchanged": "unchanged",
    "compatible": "compatible (every request that worked still works)",
    "breaking": "breaking (a client that worked before may now fail)",
}


def marker(stack: str) -> str:
    """The hidden line by which the workflow finds this stack's comment to update it in place."""
    return f"<!-- gpu-model-serving preview: stack={hidden(stack)} -->"


def hidden(text: str) -> str:
    """`text` for an HTML comment: Pulumi's stack-name characters only, so nothing in it can end
    the comment (`-->`) or the line."""
    return re.sub(r"[^A-Za-z0-9_./-]", "_", text)


def render(record: PreviewRecord, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The comment, at most `limit` characters; the first plan that fits wins."""
    plans: list[tuple[bool, bool]] = [(True, True), (False, True), (False, False)]
    for update_diffs, minor_lists in plans:
        body = _render(record, update_diffs=update_diffs, minor_lists=minor_lists)
        if len(body) <= limit:
            return body
    # Even the summary, policy and replacements overflow: cut at a line, and say so.
    note = "\n\n_…cut at GitHub's comment limit; the full preview is in the workflow log._\n"
    return body[: limit - len(note)].rsplit("\n", 1)[0] + note


def _render(record: PreviewRecord, *, update_diffs: bool, minor_lists: bool) -> str:
    by_op: dict[str, list[Step]] = {}
    for step in record.steps:
        by_op.setdefault(step.op, []).append(step)
    lines = [marker(record.stack), *_header(record, by_op)]
    lines += _policy_section(record)
    lines += _model_section(record)
    lines += _rollout_section(record)
    lines += _image_section(record)
    cut: list[str] = []
    for op in [*OP_ORDER, *sorted(set(by_op) - set(OP_ORDER))]:
        steps = by_op.get(op, [])
        if not steps:
            continue
        if op in ("create", "delete", "import") and not minor_lists:
            cut.append(f"the list of {len(steps)} resource(s) to {op}")
            continue
        with_diffs = op == "replace" or (op == "update" and update_diffs)
        if op == "update" and not update_diffs:
            cut.append(f"the field diffs of {len(steps)} update(s)")
        lines += [f"### {OP_TITLES.get(op, op)} ({len(steps)})", ""]
        for step in steps:
            lines += _step_lines(step, with_diffs)
        lines.append("")
    if record.errors:
        lines += ["### Errors", "", "```", *_fence_safe(record.errors), "```", ""]
    if cut:
        lines += [
            f"_Cut to fit one comment: {'; '.join(cut)}. The full preview is in the workflow log._",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _header(record: PreviewRecord, by_op: dict[str, list[Step]]) -> list[str]:
    verdict = "✅ preview passed" if record.succeeded else "❌ preview failed"
    changes = ", ".join(f"{len(by_op[op])} to {op}" for op in OP_ORDER if op in by_op)
    unchanged = record.counts.get("same", 0)
    summary = changes or "no changes"
    return [
        f"## Stack {_code(record.stack)}: {verdict}",
        "",
        f"**{summary}**, {unchanged} unchanged.",
        "",
    ]


def _policy_section(record: PreviewRecord) -> list[str]:
    enforced = [p for p in record.policy if p.level != "not-checked"]
    deferred = [p for p in record.policy if p.level == "not-checked"]
    failed_rules = {p.rule for p in enforced}
    passed = [rule for rule in record.rules if rule not in failed_rules]
    lines = [f"### Policy pack `{record.policy_pack}`", ""]
    if enforced:
        lines += [
            f"- **{p.level}** {_code(p.rule)} on {_code(_resource(p.urn))}: {_one_line(p.message)}"
            for p in enforced
        ]
    lines.append(f"- passed: {', '.join(map(_code, passed))}" if passed else "- passed: none")
    if deferred:
        checks = sorted({f"{_code(p.rule)} on {_code(_resource(p.urn))}" for p in deferred})
        lines.append(f"- checked at `up` (values known only after the build): {', '.join(checks)}")
    return [*lines, ""]


def _image_section(record: PreviewRecord) -> list[str]:
    if not record.image_rolls:
        return []
    lines = ["### Image that would roll", ""]
    lines += [f"- {_roll(roll)}" for roll in record.image_rolls]
    return [*lines, ""]


def _roll(roll: ImageRoll) -> str:
    new = (
        "a new build (its digest is known once `up` has built and pushed it)"
        if roll.new == UNKNOWN
        else _code(roll.new)
    )
    return f"{_code(roll.resource)}: {_code(roll.old)} → {new}"


def _model_section(record: PreviewRecord) -> list[str]:
    model = record.model
    if model is None:
        return []
    new = Contract.from_output(model.new)
    lines = [f"### Model {_code(model.name)}", ""]
    if model.old is None:
        lines.append(
            f"**New model {_code(new.model)} version {new.version}**, default signature "
            f"{_code(new.signature)}; its signatures:"
        )
        lines.append("")
        lines += [f"- {_signature(name, new)}" for name in sorted(new.signatures)]
    else:
        old = Contract.from_output(model.old)
        version = (
            f"version {old.version} → {new.version}"
            if old.version != new.version
            else f"version {new.version}"
        )
        if old.model != new.model:
            version = f"replaces model {_code(old.model)}, {version}"
        lines.append(
            f"**Contract: {CONTRACT_VERDICTS.get(model.verdict, model.verdict)}**, {version}."
        )
        lines.append("")
        lines += [
            f"- {'**breaking**' if change.breaking else 'compatible'}: {clip(change.text)}"
            for change in model.changes
        ]
        if old.signature != new.signature:
            lines.append(
                f"- default signature {_code(old.signature)} → {_code(new.signature)}: requests "
                "without `signature_name` get the new one"
            )
    if model.image_roll is not None:
        lines.append(f"- image: {_roll(model.image_roll)}")
    return [*lines, ""]


def _rollout_section(record: PreviewRecord) -> list[str]:
    """What `make rollout` will do after merge: the canary's version and contract against what
    stable serves, the steps, the split and the bounds each step is judged by."""
    plan = record.rollout_plan
    if plan is None:
        return []
    canary = Contract.from_output(plan["canaryContract"])
    steps = " → ".join(f"{step} %" for step in plan["steps"])
    lines = [
        f"### Rollout plan: canary version {canary.version}",
        "",
        f"- steps: {steps} (the last is the promotion: stableSlot flips, no pod restarts)",
        f"- split: {clip(str(plan['trafficSplit']))}",
        f"- each step judged after {plan['analysisWindowSeconds']} s, on at least "
        f"{plan['minRequests']} canary requests: error ratio ≤ {plan['maxErrorRatio']}, p99 ≤ "
        f"{plan['maxP99LatencyMs']} ms and ≤ {plan['maxP99LatencyRatio']} times stable's; a "
        "failed step or no verdict rolls back",
    ]
    if record.model is not None:
        stable = Contract.from_output(record.model.new)
        found = contract_diff(stable.signatures, canary.signatures)
        lines.append(
            f"- canary contract against stable version {stable.version}: "
            f"**{CONTRACT_VERDICTS.get(found.verdict, found.verdict)}**"
        )
        lines += [
            f"  - {'**breaking**' if change.breaking else 'compatible'}: {clip(change.text)}"
            for change in found.changes
        ]
    return [*lines, ""]


def _signature(name: str, contract: Contract) -> str:
    """`serving_default` (method): `input` DT_FLOAT [-1, 8] → `output` DT_FLOAT [-1, 10]."""
    signature = contract.signatures[name]

    def tensors(group: dict[str, Any]) -> str:
        return ", ".join(f"{_code(t)} {describe(group[t])}" for t in sorted(group)) or "none"

    return clip(
        f"{_code(name)} ({signature['method']}): {tensors(dict(signature['inputs']))} → "
        f"{tensors(dict(signature['outputs']))}"
    )


def _step_lines(step: Step, with_diffs: bool) -> list[str]:
    title = f"- {_code(step.type)} **{_code(step.name)}**"
    if step.replace_keys:
        title += f", replaced because of {', '.join(map(_code, step.replace_keys))}"
    if not (with_diffs and step.fields):
        return [title]
    return [title, "  ```diff", *(f"  {line}" for line in _diff_lines(step.fields)), "  ```"]


def _diff_lines(fields: list[FieldChange]) -> list[str]:
    lines = []
    for change in fields:
        path = change.path.replace("\r", "\\r").replace("\n", "\\n")  # one line per change
        kind, _, replace = change.kind.partition("-")
        suffix = "  (forces replacement)" if replace else ""
        if kind == "update":
            # A changed output (an image's context hash) has no new value until `up`.
            new = UNKNOWN if change.new == MISSING else change.new
            lines += [
                f"- {path}: {_value(change.old)}",
                f"+ {path}: {_value(new)}{suffix}",
            ]
        else:
            value = change.new if kind == "add" else change.old
            lines.append(f"{CHANGE_SIGNS.get(kind, '~')} {path}: {_value(value)}{suffix}")
    return _fence_safe(lines)


def _value(value: Any) -> str:
    if value == UNKNOWN:
        return "(known after up)"
    if value == MISSING:
        return "(absent)"
    return clip(json.dumps(value, sort_keys=True, ensure_ascii=False))


def clip(text: str) -> str:
    """`text`, cut to MAX_VALUE_CHARS with an ellipsis: one long value cannot fill a comment."""
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _resource(urn: str) -> str:
    """`Deployment model-server-deployment` from a URN."""
    type_, _, name = urn.rpartition("::")
    return f"{type_.rpartition(':')[2]} {name}" if urn else "the stack"


def _code(name: str) -> str:
    """`name` as inline code; a backtick in it would end the code early."""
    return code(clip(name))


def _one_line(text: str) -> str:
    """A message on its list item's line: a line break in it would start Markdown of its own."""
    return " ".join(text.split())


def _fence_safe(lines: list[str]) -> list[str]:
    # A value holding ``` would close the code block early.
    return [line.replace("```", "'''") for line in lines]
