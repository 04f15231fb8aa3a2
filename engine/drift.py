"""What a preview-only refresh found: which resources drifted, and each field declared vs live."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from pulumi.automation import EngineEvent, OpType, StepEventMetadata

# Steps that only read or keep a resource; every other planned step means live != declared.
UNCHANGED_OPS = {OpType.SAME, OpType.READ, OpType.REFRESH}
# The Stack and provider configurations are not objects in the cluster or registry.
NOT_LIVE_TYPES = ("pulumi:pulumi:Stack", "pulumi:providers:")
_PATH_TOKEN = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)')
MISSING = "<absent>"


@dataclass(frozen=True)
class FieldDrift:
    path: str
    """Property path as the provider reports it, e.g. spec.template.spec.containers[0].image."""
    change: str
    """What applying the program would do to it: add, update, delete (and -replace variants)."""
    declared: Any
    live: Any


@dataclass(frozen=True)
class ResourceDrift:
    urn: str
    type: str
    name: str
    op: str
    """The step `up` would take: create (gone from the cluster), update, replace, delete ..."""
    fields: list[FieldDrift] = field(default_factory=list)


@dataclass(frozen=True)
class DriftReport:
    stack: str
    resources: list[ResourceDrift]

    @property
    def drifted(self) -> bool:
        return bool(self.resources)

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "drifted": self.drifted, **asdict(self)}

    def describe(self) -> str:
        if not self.drifted:
            return f"stack {self.stack}: no drift"
        lines = [f"stack {self.stack}: {len(self.resources)} resource(s) drifted"]
        for resource in self.resources:
            if resource.op == OpType.CREATE.value:
                lines.append(f"  {resource.type} {resource.name}: missing from the cluster")
                continue
            lines.append(f"  {resource.type} {resource.name}: {resource.op}")
            lines += [
                f"    {f.path}: declared {_show(f.declared)}, live {_show(f.live)}"
                for f in resource.fields
            ]
        return "\n".join(lines)


def drift_report(stack: str, events: list[EngineEvent]) -> DriftReport:
    """The drift a `preview --refresh` found, from the engine's planned-step events."""
    drifted = []
    for step in object_changes(events):
        declared = step.new.inputs if step.new else {}
        live = step.old.outputs if step.old else {}
        fields = [
            FieldDrift(
                path=path,
                change=diff.diff_kind.value,
                declared=value_at(declared, path),
                live=value_at(live, path),
            )
            for path, diff in sorted((step.detailed_diff or {}).items())
        ]
        drifted.append(
            ResourceDrift(
                urn=step.urn,
                type=step.type,
                name=resource_name(step.urn),
                op=step.op.value,
                fields=fields,
            )
        )
    return DriftReport(stack=stack, resources=drifted)


def object_changes(events: list[EngineEvent]) -> Iterator[StepEventMetadata]:
    """The planned steps that change an object: not those that keep or read one, and not the
    Stack or provider configurations."""
    for event in events:
        step = event.resource_pre_event.metadata if event.resource_pre_event else None
        if step is None or step.op in UNCHANGED_OPS or step.type.startswith(NOT_LIVE_TYPES):
            continue
        yield step


def resource_name(urn: str) -> str:
    """The resource's name in the program, the URN's last part."""
    return urn.rsplit("::", 1)[-1]


def value_at(tree: Any, path: str) -> Any:
    """The value at a provider property path (`a.b[0]["c.d"]`), or MISSING."""
    node = tree
    for quoted, index, name in _PATH_TOKEN.findall(path):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return MISSING
            node = node[int(index)]
        else:
            key = quoted or name
            if not isinstance(node, dict) or key not in node:
                return MISSING
            node = node[key]
    return node


def _show(value: Any) -> str:
    return value if value == MISSING else repr(value)
