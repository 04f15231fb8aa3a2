"""What a preview would do, recorded from the engine's events as JSON for reviewers' tools.

`python -m engine preview --record FILE` writes it; `python -m review comment` renders it as the
pull-request comment. The record is plain data, so the comment is unit-tested on recorded
previews without an engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pulumi.automation import EngineEvent, OpType, StepEventMetadata, StepEventStateMetadata

from engine.drift import MISSING, object_changes, resource_name, value_at
from gpu_model_serving.stack_outputs import ROLLOUT_PLAN
from model_contract import diff as contract_diff
from model_contract.contract import CONFIG_MAP_COMPONENT, Contract
from policy.rules import COMPONENT_LABEL, PACK_NAME, RULES

# The engine's placeholder for a value known only after the update (sdk/go/common/resource).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# The policy SDK's advisory note for a rule it could not run on values known only after `up`.
NOT_CHECKABLE_IN_PREVIEW = "can't be known during preview"
GENERIC_FAILURE = "preview failed"
# A replacement shows as one logical `replace` step plus these two physical ones.
REPLACEMENT_HALVES = {OpType.CREATE_REPLACEMENT, OpType.DELETE_REPLACED}
# Steps whose states both hold what is deployed (a refresh's old and new are the live object).
NOT_PLANNED_OPS = {*REPLACEMENT_HALVES, OpType.REFRESH, OpType.READ}
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
# The labels that name one model server's objects: its Deployment and its contract share them.
INSTANCE_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of")
FIRST_DEPLOY = "new"
STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class FieldChange:
    path: str
    """Property path as the provider reports it, e.g. spec.template.spec.containers[0].image."""
    kind: str
    """add, update, delete, or their -replace variants (the change forces a replacement)."""
    old: Any
    new: Any


@dataclass(frozen=True)
class Step:
    op: str
    type: str
    name: str
    urn: str
    replace_keys: list[str] = field(default_factory=list)
    """Properties whose change forces the replacement (op replace)."""
    fields: list[FieldChange] = field(default_factory=list)


@dataclass(frozen=True)
class PolicyResult:
    rule: str
    level: str
    """mandatory (fails the preview), advisory, or not-checked (known only after `up`)."""
    urn: str
    message: str


@dataclass(frozen=True)
class ImageRoll:
    resource: str
    """The workload (`Deployment model-server-deployment`) whose pods would change image."""
    old: str
    new: str
    """The new reference; UNKNOWN when the build that produces its digest runs only in `up`."""


@dataclass(frozen=True)
class ContractChange:
    text: str
    """The change in words, naming the signature and tensor (model_contract.diff)."""
    breaking: bool


@dataclass(frozen=True)
class ModelChange:
    """What the preview does to the served model, from its contract's ConfigMap."""

    name: str
    old: dict[str, Any] | None
    """The deployed contract (Contract.output()); None when none is deployed (a first deploy)."""
    new: dict[str, Any]
    """The planned contract (Contract.output())."""
    verdict: str
    """unchanged, compatible or breaking (model_contract.diff); FIRST_DEPLOY without an old."""
    changes: list[ContractChange] = field(default_factory=list)
    image_roll: ImageRoll | None = None
    """The serving Deployment's image roll, when its image changes."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelChange:
        roll = data["image_roll"]
        return cls(
            name=data["name"],
            old=data["old"],
            new=data["new"],
            verdict=data["verdict"],
            changes=[ContractChange(**c) for c in data["changes"]],
            image_roll=ImageRoll(**roll) if roll else None,
        )


@dataclass
class PreviewRecord:
    stack: str
    succeeded: bool = True
    steps: list[Step] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    policy_pack: str = PACK_NAME
    rules: list[str] = field(default_factory=lambda: [rule.name for rule in RULES])
    policy: list[PolicyResult] = field(default_factory=list)
    image_rolls: list[ImageRoll] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    model: ModelChange | None = None
    """None when the stack declares no contract ConfigMap (and in records made before one)."""
    rollout_plan: dict[str, Any] | None = None
    """The stack's rolloutPlan output while it declares a canary (RolloutSettings.plan)."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreviewRecord:
        return cls(
            stack=data["stack"],
            succeeded=data["succeeded"],
            steps=[
                Step(**{**s, "fields": [FieldChange(**f) for f in s["fields"]]})
                for s in data["steps"]
            ],
            counts=data["counts"],
            policy_pack=data["policy_pack"],
            rules=data["rules"],
            policy=[PolicyResult(**p) for p in data["policy"]],
            image_rolls=[ImageRoll(**r) for r in data["image_rolls"]],
            errors=data["errors"],
            model=ModelChange.from_json(data["model"]) if data.get("model") else None,
            rollout_plan=data.get("rollout_plan"),
        )


def preview_record(stack: str, events: list[EngineEvent], succeeded: bool) -> PreviewRecord:
    record = PreviewRecord(stack=stack, succeeded=succeeded)
    for step in object_changes(events):
        if step.op not in REPLACEMENT_HALVES:
            _add_step(record, step)
    for event in events:
        if event.policy_event:
            _add_policy_result(record, event)
        elif event.summary_event:
            record.counts = {
                str(getattr(op, "value", op)): n
                for op, n in event.summary_event.resource_changes.items()
            }
        elif event.diagnostic_event and event.diagnostic_event.severity == "error":
            message = event.diagnostic_event.message.strip()
            # The engine's closing line says only what `succeeded` already does.
            if message != GENERIC_FAILURE:
                record.errors.append(message)
    record.model = _model_change(events, record.image_rolls)
    record.rollout_plan = _rollout_plan(events)
    return record


def _rollout_plan(events: list[EngineEvent]) -> dict[str, Any] | None:
    """The root stack's planned rolloutPlan output (the program exports it with a canary)."""
    for event in events:
        step = event.res_outputs_event.metadata if event.res_outputs_event else None
        if step is None or step.type != STACK_TYPE or step.new is None:
            continue
        plan = (step.new.outputs or {}).get(ROLLOUT_PLAN)
        if isinstance(plan, dict):
            return plan
    return None


def _add_step(record: PreviewRecord, step: StepEventMetadata) -> None:
    fields = [
        FieldChange(
            path=path,
            kind=diff.diff_kind.value,
            old=_declared_or_reported(step.old, path),
            new=_declared_or_reported(step.new, path),
        )
        for path, diff in sorted((step.detailed_diff or {}).items())
    ]
    record.steps.append(
        Step(
            op=step.op.value,
            type=step.type,
            name=resource_name(step.urn),
            urn=step.urn,
            replace_keys=list(step.keys or []) if step.op == OpType.REPLACE else [],
            fields=fields,
        )
    )
    record.image_rolls += [
        ImageRoll(resource=_workload(step), old=f.old, new=f.new)
        for f in fields
        if f.path.endswith(".image") and ".containers[" in f.path and f.old != MISSING
    ]


def _workload(step: StepEventMetadata) -> str:
    """How an image roll names its workload: `Deployment model-server-deployment`."""
    return f"{step.type.rpartition(':')[2]} {resource_name(step.urn)}"


def _model_change(events: list[EngineEvent], image_rolls: list[ImageRoll]) -> ModelChange | None:
    """The contract ConfigMap's step, old contract against new. Not through object_changes: an
    unchanged contract is a `same` step, whose event carries the old and the new state too."""
    for event in events:
        step = event.resource_pre_event.metadata if event.resource_pre_event else None
        if step is None or step.type != CONFIG_MAP or step.op in NOT_PLANNED_OPS:
            continue
        new = _contract(step.new)
        if new is None:
            # Not a contract, or one being deleted: the steps list says so.
            continue
        old = _contract(step.old)
        verdict, changes = FIRST_DEPLOY, []
        if old is not None:
            found = contract_diff.diff(old.signatures, new.signatures)
            verdict = found.verdict
            changes = [ContractChange(c.text, c.breaking) for c in found.changes]
        return ModelChange(
            name=new.model,
            old=old.output() if old else None,
            new=new.output(),
            verdict=verdict,
            changes=changes,
            image_roll=_serving_roll(events, step.new, image_rolls),
        )
    return None


def _contract(state: StepEventStateMetadata | None) -> Contract | None:
    """The contract a ConfigMap's state holds, if it is a contract's ConfigMap."""
    if state is None:
        return None
    labels = _declared_or_reported(state, "metadata.labels")
    data = _declared_or_reported(state, "data")
    if not isinstance(labels, dict) or labels.get(COMPONENT_LABEL) != CONFIG_MAP_COMPONENT:
        return None
    try:
        return Contract.from_config_map_data(data if isinstance(data, dict) else {})
    except ValueError:
        return None


def _serving_roll(
    events: list[EngineEvent], contract: StepEventStateMetadata | None, image_rolls: list[ImageRoll]
) -> ImageRoll | None:
    """The image roll of the Deployment that serves the contract: the one in its namespace that
    carries its instance labels."""
    instance = _instance(contract)
    if instance is None or None in instance:
        return None
    for step in object_changes(events):
        if step.type == DEPLOYMENT and instance in (_instance(step.new), _instance(step.old)):
            return next((r for r in image_rolls if r.resource == _workload(step)), None)
    return None


def _instance(state: StepEventStateMetadata | None) -> tuple[Any, ...] | None:
    """The namespace and instance labels of an object's state."""
    if state is None:
        return None
    metadata = _declared_or_reported(state, "metadata")
    if not isinstance(metadata, dict):
        return None
    labels = metadata.get("labels") or {}
    return (metadata.get("namespace"), *(labels.get(key) for key in INSTANCE_LABELS))


def _declared_or_reported(state: StepEventStateMetadata | None, path: str) -> Any:
    """The input at `path`, else the provider's output there (a changed output, such as an
    image's context hash, is in the diff but not among the inputs)."""
    if state is None:
        return MISSING
    declared = value_at(state.inputs or {}, path)
    return declared if declared != MISSING else value_at(state.outputs or {}, path)


def _add_policy_result(record: PreviewRecord, event: EngineEvent) -> None:
    assert event.policy_event is not None
    policy = event.policy_event
    # The engine sends the rule's description, a newline, then the violation.
    message = policy.message.partition("\n")[2].strip() or policy.message.strip()
    level = policy.enforcement_level
    if NOT_CHECKABLE_IN_PREVIEW in message:
        level = "not-checked"
    record.policy.append(
        PolicyResult(
            rule=policy.policy_name,
            level=level,
            urn=policy.resource_urn or "",
            message=message,
        )
    )
