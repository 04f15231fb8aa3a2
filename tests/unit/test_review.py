"""The review loop's GitHub side: the PR comment from recorded previews (real engine runs of the
dev stack, tests/unit/fixtures/previews/), and the comment and drift issue kept in place on a
local fake of GitHub's REST API."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pulumi.automation import EngineEvent

from engine.preview_record import (
    FIRST_DEPLOY,
    UNKNOWN,
    ContractChange,
    FieldChange,
    ImageRoll,
    ModelChange,
    PolicyResult,
    PreviewRecord,
    Step,
    preview_record,
)
from model_contract.contract import CONFIG_MAP_COMPONENT, Contract
from model_contract.diff import diff
from model_contract.saved_model import Signature
from review import comment, drift_issue
from review.__main__ import main as review_main
from tests.unit.test_canary_verdict import ROLLOUT
from tests.unit.test_model_contract import BOTH_OUTPUTS, OLD, signatures, tensor

FIXTURES = Path(__file__).parent / "fixtures" / "previews"
REPO = "acme/serving"


def recorded(name: str) -> PreviewRecord:
    return PreviewRecord.from_json(json.loads((FIXTURES / f"{name}.json").read_text()))


# The PR comment, rendered from the recorded previews.


def test_an_update_shows_counts_field_diffs_policy_and_the_image_that_would_roll() -> None:
    body = comment.render(recorded("scale-and-new-image"))
    assert body.startswith(comment.marker("dev") + "\n## Stack `dev`: ✅ preview passed")
    assert "**3 to update**, 10 unchanged." in body
    assert "  - spec.maxReplicas: 3\n  + spec.maxReplicas: 2" in body
    assert "+ spec.template.spec.containers[0].image: (known after up)" in body
    assert "### Image that would roll" in body
    assert "`127.0.0.1:5000/model-server@sha256:" in body and "→ a new build" in body
    assert "checked at `up` (values known only after the build): `image-digest`" in body


def test_replacements_are_called_out_with_the_fields_that_force_them() -> None:
    body = comment.render(recorded("namespace-move"))
    assert "### To replace (7)" in body
    assert "**`model-server-deployment`**, replaced because of `metadata.namespace`" in body
    assert '+ metadata.namespace: "model-serving-v2"  (forces replacement)' in body


def test_a_policy_violation_fails_the_verdict_and_names_rule_object_and_fix() -> None:
    body = comment.render(recorded("policy-violation"))
    assert "## Stack `dev`: ❌ preview failed" in body
    assert (
        "- **mandatory** `container-resources` on `Deployment model-server-deployment`: "
        "Deployment model-serving/digits-server runs on the GPU pool"
    ) in body
    assert "set gpuCount to 1 or more" in body
    passed = next(line for line in body.splitlines() if line.startswith("- passed:"))
    assert "container-resources" not in passed and "`probes`" in passed


def test_no_changes_says_so() -> None:
    body = comment.render(recorded("no-changes"))
    assert "**no changes**, 13 unchanged." in body
    assert "### To" not in body


def _big(record: PreviewRecord, copies: int) -> PreviewRecord:
    """The recorded preview with its steps repeated, each update carrying a long value."""
    long_value = {"env": ["X" * 200] * 3}
    steps = [
        dataclasses.replace(
            step,
            name=f"{step.name}-{i}",
            fields=[
                *step.fields,
                FieldChange("spec.template.metadata.annotations", "update", {}, long_value),
            ],
        )
        for i in range(copies)
        for step in record.steps
    ]
    return dataclasses.replace(record, steps=steps)


def test_a_long_preview_drops_update_diffs_first_and_says_what_was_cut() -> None:
    merged = recorded("scale-and-new-image")
    merged = dataclasses.replace(
        merged, steps=[*recorded("namespace-move").steps, *_big(merged, 60).steps]
    )
    full = comment.render(merged, limit=10**9)
    limit = len(full) // 2
    body = comment.render(merged, limit=limit)
    assert len(body) <= limit < len(full)
    assert "**7 to replace, 180 to update**" in body
    assert body.count(", replaced because of `metadata.") == 7
    assert "### Image that would roll" in body
    assert "_Cut to fit one comment: the field diffs of 180 update(s)." in body
    assert "spec.maxReplicas" not in body


def test_a_preview_too_long_even_for_its_summary_is_cut_at_a_line_with_a_note() -> None:
    merged = _big(recorded("namespace-move"), 40)
    body = comment.render(merged, limit=4000)
    assert len(body) <= 4000
    assert body.startswith(comment.marker("dev"))
    assert body.endswith(
        "_…cut at GitHub's comment limit; the full preview is in the workflow log._\n"
    )


def test_values_cannot_break_out_of_the_diff_block() -> None:
    step = Step(
        "update",
        "kubernetes:core/v1:ConfigMap",
        "cm",
        "urn:x::cm",
        fields=[FieldChange("data.x", "update", "a", "```\n# injected")],
    )
    body = comment.render(PreviewRecord(stack="dev", steps=[step]))
    assert body.count("```") == 2


HOSTILE = "x`\n## Approved by security\n<img src=x onerror=alert(1)> @everyone"


def outside_code(body: str) -> str:
    """What GitHub would read as Markdown: the body without its code spans and blocks."""
    fenced = False
    kept = []
    for line in body.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append("".join(line.split("`")[::2]))
    return "\n".join(kept)


def test_hostile_names_and_messages_stay_in_code_and_on_their_line() -> None:
    step = Step(
        "replace",
        f"kubernetes:core/v1:{HOSTILE}",
        HOSTILE,
        f"urn:x::{HOSTILE}",
        fields=[FieldChange(HOSTILE, "update", HOSTILE, "```" + HOSTILE)],
        replace_keys=[HOSTILE],
    )
    violation = PolicyResult(HOSTILE, "mandatory", f"urn:x::{HOSTILE}", HOSTILE)
    record = PreviewRecord(
        stack=HOSTILE,
        steps=[step],
        policy=[violation],
        image_rolls=[ImageRoll(HOSTILE, HOSTILE, HOSTILE)],
    )
    body = comment.render(record)
    assert comment.marker("engine-59610a22") == (
        "<!-- gpu-model-serving preview: stack=engine-59610a22 -->"  # stack names keep their -
    )
    markdown = outside_code(body)
    assert "<img" not in markdown and "@everyone" not in markdown, markdown
    assert "\n## Approved" not in body


def test_hostile_drift_reports_stay_in_code() -> None:
    report = {
        "stack": HOSTILE,
        "drifted": True,
        "resources": [
            {"type": HOSTILE, "name": HOSTILE, "op": HOSTILE, "fields": []},
            {
                "type": HOSTILE,
                "name": HOSTILE,
                "op": "update",
                "fields": [{"path": HOSTILE, "declared": HOSTILE, "live": {"k": HOSTILE}}],
            },
        ],
    }
    body = drift_issue.render(report)
    markdown = outside_code(body.partition("\n")[2])  # the hidden marker line is HTML
    assert "<img" not in markdown and "@everyone" not in markdown, markdown
    assert "\n## Approved" not in body


# The comment's model section: the contract's changes and the image that would roll.

OLD_IMAGE = "127.0.0.1:5000/model-server@sha256:" + "98" * 32
ROLL = ImageRoll("Deployment model-server-deployment", OLD_IMAGE, UNKNOWN)


def contract(version: int, signatures: dict[str, Signature] = OLD) -> Contract:
    return Contract(
        model="digits", version=version, signature="serving_default", signatures=signatures
    )


def model_change(
    old: Contract | None, new: Contract, image_roll: ImageRoll | None = ROLL
) -> ModelChange:
    """What preview_record() records for the contract, built here from the two contracts."""
    found = diff(old.signatures, new.signatures) if old else None
    return ModelChange(
        name=new.model,
        old=old.output() if old else None,
        new=new.output(),
        verdict=found.verdict if found else FIRST_DEPLOY,
        changes=[ContractChange(c.text, c.breaking) for c in found.changes] if found else [],
        image_roll=image_roll,
    )


def with_model(model: ModelChange, fixture: str = "scale-and-new-image") -> PreviewRecord:
    return dataclasses.replace(recorded(fixture), model=model)


def model_section(body: str) -> str:
    return body.partition("### Model ")[2].partition("\n### ")[0]


def test_a_new_version_with_the_same_signatures_is_an_unchanged_contract() -> None:
    body = comment.render(with_model(model_change(contract(3), contract(4))))
    section = model_section(body)
    assert section.startswith("`digits`\n\n**Contract: unchanged**, version 3 → 4.\n")
    assert "breaking" not in section and "compatible" not in section
    assert f"- image: `Deployment model-server-deployment`: `{OLD_IMAGE}` → a new build" in section
    # The summary, policy and model come first, in that order.
    assert body.index("### Policy pack") < body.index("### Model") < body.index("### To update")


def test_a_compatible_contract_lists_each_change_as_compatible() -> None:
    new = contract(4, signatures(outputs={**BOTH_OUTPUTS, "logits": tensor([-1, 10])}))
    section = model_section(comment.render(with_model(model_change(contract(3), new))))
    assert (
        "**Contract: compatible (every request that worked still works)**, version 3 → 4."
        in section
    )
    assert "- compatible: `serving_default`: output `logits` added (DT_FLOAT [-1, 10])" in section


def test_a_breaking_contract_marks_each_change_and_the_verdict() -> None:
    new = contract(
        4,
        signatures(
            inputs={"images": tensor([-1, 28, 28], "DT_UINT8")},
            outputs={**BOTH_OUTPUTS, "logits": tensor([-1, 10])},
        ),
    )
    section = model_section(comment.render(with_model(model_change(contract(3), new))))
    assert (
        "**Contract: breaking (a client that worked before may now fail)**, version 3 → 4."
        in section
    )
    assert "- **breaking**: `serving_default`: input `images`: dtype DT_FLOAT → DT_UINT8" in (
        section
    )
    assert "- compatible: `serving_default`: output `logits` added" in section


def test_a_first_deploy_names_the_model_and_lists_its_signatures() -> None:
    record = with_model(model_change(None, contract(3), image_roll=None), "no-changes")
    section = model_section(comment.render(record))
    assert section.startswith(
        "`digits`\n\n**New model `digits` version 3**, default signature `serving_default`; "
        "its signatures:\n"
    )
    assert (
        "- `serving_default` (tensorflow/serving/predict): `images` DT_FLOAT [-1, 28, 28] → "
        "`classes` DT_INT64 [-1], `probabilities` DT_FLOAT [-1, 10]"
    ) in section
    assert "- `embed` (tensorflow/serving/predict): `images`" in section
    assert "- image:" not in section


def test_a_record_without_a_contract_has_no_model_section() -> None:
    for fixture in ("no-changes", "scale-and-new-image", "namespace-move", "policy-violation"):
        record = recorded(fixture)
        assert record.model is None
        assert "### Model" not in comment.render(record)


def test_the_model_round_trips_through_the_record_json() -> None:
    record = with_model(model_change(contract(3), contract(4, signatures(inputs={}))))
    assert PreviewRecord.from_json(json.loads(json.dumps(record.as_json()))) == record
    first = with_model(model_change(None, contract(3), image_roll=None))
    assert PreviewRecord.from_json(json.loads(json.dumps(first.as_json()))) == first


def test_the_model_section_survives_the_cuts() -> None:
    merged = recorded("scale-and-new-image")
    merged = dataclasses.replace(
        _big(merged, 60), model=model_change(contract(3), contract(4, signatures(inputs={})))
    )
    full = comment.render(merged, limit=10**9)
    body = comment.render(merged, limit=len(full) // 2)
    assert "_Cut to fit one comment: the field diffs of 180 update(s)." in body
    assert model_section(body) == model_section(full)


def test_names_from_the_saved_model_cannot_break_out_of_inline_code() -> None:
    odd = {"x`<img src=x>": OLD["serving_default"]}
    section = model_section(comment.render(with_model(model_change(None, contract(3, odd)))))
    assert "- `x'<img src=x>` (" in section


# Synthetic engine events, shaped as the real engine sends them for a preview.
SERVING = "urn:pulumi:dev::gpu-model-serving::gpu-model-serving:serving:ModelServer$"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
INSTANCE = {"app.kubernetes.io/name": "model-server", "app.kubernetes.io/part-of": "digits"}


def _config_map_state(contract: Contract) -> dict[str, Any]:
    labels = {**INSTANCE, "app.kubernetes.io/component": CONFIG_MAP_COMPONENT}
    inputs = {
        "metadata": {"name": "digits-contract", "namespace": "model-serving", "labels": labels},
        "data": contract.config_map_data(),
    }
    return {"inputs": inputs, "outputs": {**inputs, "kind": "ConfigMap"}}


def _deployment_state(image: str) -> dict[str, Any]:
    labels = {**INSTANCE, "app.kubernetes.io/component": "inference"}
    containers = [{"name": "server", "image": image}]
    return {
        "inputs": {
            "metadata": {"name": "digits-server", "namespace": "model-serving", "labels": labels},
            "spec": {"template": {"spec": {"containers": containers}}},
        }
    }


def _step(op: str, type_: str, name: str, **metadata: Any) -> EngineEvent:
    urn = f"{SERVING}{type_}::{name}"
    return EngineEvent.from_json(
        {"resourcePreEvent": {"metadata": {"op": op, "urn": urn, "type": type_, **metadata}}}
    )


def _preview(config_map_op: str, old: Contract | None, new: Contract) -> PreviewRecord:
    config_map: dict[str, Any] = {"new": _config_map_state(new)}
    refreshed = []
    if old is not None:
        config_map["old"] = _config_map_state(old)
        # A preview with --refresh reads the live object first: old and new are both the old.
        live = {"old": config_map["old"], "new": config_map["old"]}
        refreshed = [_step("refresh", CONFIG_MAP, "model-server-contract", **live)]
    events = [
        *refreshed,
        _step(config_map_op, CONFIG_MAP, "model-server-contract", **config_map),
        _step(
            "update",
            "kubernetes:apps/v1:Deployment",
            "model-server-deployment",
            old=_deployment_state(OLD_IMAGE),
            new=_deployment_state(UNKNOWN),
            detailedDiff={"spec.template.spec.containers[0].image": {"diffKind": "update"}},
        ),
        EngineEvent.from_json({"summaryEvent": {"resourceChanges": {"same": 1, "update": 1}}}),
    ]
    return preview_record("dev", events, succeeded=True)


def test_the_engine_events_of_a_preview_give_the_model_and_its_image_roll() -> None:
    record = _preview("same", contract(3), contract(3))
    assert record.model is not None
    assert (record.model.name, record.model.verdict, record.model.changes) == (
        "digits",
        "unchanged",
        [],
    )
    assert record.model.old == record.model.new == contract(3).output()
    assert record.model.image_roll == ROLL
    assert [s.op for s in record.steps] == ["update"]
    assert "- image: `Deployment model-server-deployment`" in model_section(comment.render(record))


def test_the_engine_events_of_a_breaking_update_and_of_a_first_deploy() -> None:
    breaking = _preview("update", contract(3), contract(4, signatures(inputs={})))
    assert breaking.model is not None and breaking.model.verdict == "breaking"
    assert breaking.model.changes == [
        ContractChange("`serving_default`: input `images` removed (DT_FLOAT [-1, 28, 28])", True)
    ]
    first = _preview("create", None, contract(3))
    assert first.model is not None
    assert (first.model.old, first.model.verdict) == (None, FIRST_DEPLOY)
    assert "**New model `digits` version 3**" in comment.render(first)


class FakeGitHub:
    """Issues and comments of one repository, in memory, behind the REST paths we call."""

    def __init__(self) -> None:
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.issues: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_with: int | None = None
        self._next_id = 1000

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def handle(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, url))
        if self.fail_with:
            return self.fail_with, {"message": "Bad credentials"}
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        parts = parsed.path.removeprefix(f"/repos/{REPO}/").split("/")
        page, per_page = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["30"])[0])

        def paged(items: list[Any]) -> list[Any]:
            return items[(page - 1) * per_page : page * per_page]

        match method, parts:
            case "GET", ["issues", number, "comments"]:
                return 200, paged(self.comments.get(int(number), []))
            case "POST", ["issues", number, "comments"]:
                created = {"id": self.new_id(), "body": body["body"]}
                self.comments.setdefault(int(number), []).append(created)
                return 201, created
            case "PATCH", ["issues", "comments", comment_id]:
                for found in (c for cs in self.comments.values() for c in cs):
                    if found["id"] == int(comment_id):
                        found["body"] = body["body"]
                        return 200, found
                return 404, {"message": "Not Found"}
            case "GET", ["issues"]:
                labels = set(query.get("labels", [""])[0].split(","))
                state = query.get("state", ["open"])[0]
                matching = [
                    i for i in self.issues if i["state"] == state and labels <= set(i["labels"])
                ]
                return 200, paged(matching)
            case "POST", ["issues"]:
                issue = {"number": len(self.issues) + 1, "state": "open", **body}
                self.issues.append(issue)
                return 201, issue
            case "PATCH", ["issues", number]:
                issue = self.issues[int(number) - 1]
                issue.update(body)
                return 200, issue
        return 404, {"message": f"no route {method} {parsed.path}"}


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            assert self.headers["Authorization"] == "Bearer test-token"
            status, answer = fake.handle(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve  # noqa: N815 (the names http.server calls)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("GITHUB_TOKEN", "test-token")
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    yield fake
    server.shutdown()
    server.server_close()


def post(record: str, pr: int = 7) -> int:
    return review_main(
        ["post-comment", "--record", str(FIXTURES / f"{record}.json"), "--pr", str(pr)]
    )


def test_the_pr_comment_is_created_once_then_updated_in_place(
    github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    # 120 comments from people first: the stack's comment is on the second page.
    github.comments[7] = [{"id": i, "body": f"review comment {i}"} for i in range(120)]
    assert post("policy-violation") == 0
    assert post("scale-and-new-image") == 0
    ours = [c for c in github.comments[7] if comment.marker("dev") in c["body"]]
    assert len(ours) == 1 and len(github.comments[7]) == 121
    assert "✅ preview passed" in ours[0]["body"]
    assert [c["body"] for c in github.comments[7][:120]] == [
        f"review comment {i}" for i in range(120)
    ]
    assert "review: comment for stack dev on #7: created" in capsys.readouterr().out
    assert ("GET", "/repos/acme/serving/issues/7/comments?per_page=100&page=2") in github.requests


def drift_report(tmp_path: Path, drifted: bool) -> Path:
    resources = [
        {
            "urn": "urn:pulumi:prod::p::kubernetes:apps/v1:Deployment::server",
            "type": "kubernetes:apps/v1:Deployment",
            "name": "server",
            "op": "update",
            "fields": [
                {
                    "path": "spec.template.spec.containers[0].image",
                    "change": "update",
                    "declared": "a@sha256:1",
                    "live": "a:hand-edited",
                }
            ],
        }
    ]
    path = tmp_path / "drift-prod.json"
    path.write_text(
        json.dumps({"stack": "prod", "drifted": drifted, "resources": resources if drifted else []})
    )
    return path


def test_one_drift_issue_per_stack_is_opened_updated_and_closed(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.issues.append(
        {"number": 1, "state": "open", "labels": ["drift"], "body": "someone else's drift issue"}
    )
    for _ in range(2):
        assert (
            review_main(
                [
                    "drift-issue",
                    "--report",
                    str(drift_report(tmp_path, True)),
                    "--run-url",
                    "https://ci/run/1",
                ]
            )
            == 0
        )
    ours = [i for i in github.issues if "stack=prod" in i["body"]]
    assert (
        len(ours) == 1 and ours[0]["state"] == "open" and ours[0]["title"] == "Drift in stack prod"
    )
    assert (
        "`spec.template.spec.containers[0].image`: declared `a@sha256:1`, live `a:hand-edited`"
        in ours[0]["body"]
    )
    assert "https://ci/run/1" in ours[0]["body"]
    assert review_main(["drift-issue", "--report", str(drift_report(tmp_path, False))]) == 0
    assert ours[0]["state"] == "closed" and github.issues[0]["state"] == "open"
    assert "no drift; closing" in github.comments[ours[0]["number"]][0]["body"]


def test_a_github_error_names_the_call_and_exits_1(
    github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    github.fail_with = 401
    assert post("no-changes") == 1
    assert "review: GET /issues/7/comments?per_page=100&page=1: HTTP 401" in capsys.readouterr().err


def test_missing_token_and_bad_records_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert post("no-changes") == 1
    assert "GITHUB_TOKEN is not set" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert review_main(["comment", "--record", str(bad)]) == 1
    assert f"review: {bad} is not JSON" in capsys.readouterr().err
    assert review_main(["comment", "--record", str(tmp_path / "absent.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "content", "message"),
    [
        ("comment", '{"stack": "dev", "steps": [{"op"', "is not JSON"),
        ("comment", "\udcff{}", "is not JSON"),
        ("comment", '{"stack": "dev", "steps": 3}', "is not a preview record"),
        ("comment", '{"stack": "dev", "steps": [{"op": "update"}]}', "is not a preview record"),
        ("drift-issue", '{"stack": "dev"}', "is not a drift report: it has no 'drifted'"),
        ("drift-issue", '{"stack": "dev", "drifted": true}', "it has no 'resources'"),
        ("drift-issue", '{"stack": "dev", "drifted": true, "resources": [1]}', "not a drift"),
        ("drift-issue", '["stack"]', "is not a preview record or drift report"),
    ],
)
def test_truncated_and_foreign_files_are_errors_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, content: str, message: str
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content.encode(errors="surrogateescape"))  # \udcff: the byte 0xff
    flag = "--record" if command == "comment" else "--report"
    assert review_main([command, flag, str(path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"review: {path} ") and message in error, error
    assert "Traceback" not in error


# The comment's rollout plan.

SPLIT = "replica count: 1 canary pod(s) beside 3 stable (hpaMinReplicas) take 25 % of the traffic"


def rollout_section(body: str) -> str:
    return body.partition("### Rollout plan: ")[2].partition("\n### ")[0]


def test_the_rollout_plan_shows_steps_split_bounds_and_the_canarys_contract_against_stable() -> (
    None
):
    canary = contract(4, signatures(inputs={"images": tensor([-1, 28, 28], "DT_UINT8")}))
    record = dataclasses.replace(
        with_model(model_change(contract(3), contract(3))),
        rollout_plan=ROLLOUT.plan(canary, SPLIT),
    )
    section = rollout_section(comment.render(PreviewRecord.from_json(record.as_json())))
    assert section.startswith("canary version 4\n")
    assert "- steps: 10 % → 50 % → 100 % (the last is the promotion" in section
    assert f"- split: {SPLIT}" in section
    assert (
        "judged after 60 s, on at least 100 canary requests: error ratio ≤ 0.01, p99 ≤ 500 ms "
        "and ≤ 2.0 times stable's"
    ) in section
    assert "- canary contract against stable version 3: **breaking" in section
    assert (
        "  - **breaking**: `serving_default`: input `images`: dtype DT_FLOAT → DT_UINT8" in section
    )


def test_no_canary_no_rollout_plan() -> None:
    body = comment.render(with_model(model_change(contract(3), contract(4))))
    assert "Rollout plan" not in body


def test_the_rollout_plan_comes_from_the_stacks_planned_outputs() -> None:
    plan = ROLLOUT.plan(contract(4), SPLIT)
    outputs = EngineEvent.from_json(
        {
            "resOutputsEvent": {
                "metadata": {
                    "op": "same",
                    "urn": "urn:pulumi:dev::gpu-model-serving::pulumi:pulumi:Stack::dev",
                    "type": "pulumi:pulumi:Stack",
                    "new": {"outputs": {"rolloutPlan": plan, "namespace": "model-serving"}},
                }
            }
        }
    )
    assert preview_record("dev", [outputs], succeeded=True).rollout_plan == plan
    assert preview_record("dev", [], succeeded=True).rollout_plan is None
