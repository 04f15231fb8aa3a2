"""The drift report engine/drift.py makes from the engine's planned steps."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import EngineEvent

from engine import scratch
from engine.drift import MISSING, drift_report, value_at
from engine.driver import inline_program
from tests.unit.harness import ROOT

URN = "urn:pulumi:dev::gpu-model-serving::gpu-model-serving:serving:ModelServer$"
DEPLOYMENT_URN = URN + "kubernetes:apps/v1:Deployment::model-server-deployment"
PDB_URN = URN + "kubernetes:policy/v1:PodDisruptionBudget::model-server-disruption-budget"


def step(op: str, urn: str, **metadata: Any) -> EngineEvent:
    kind = urn.split("::")[-2].rsplit("$", maxsplit=1)[-1]
    return EngineEvent.from_json(
        {"resourcePreEvent": {"metadata": {"op": op, "urn": urn, "type": kind, **metadata}}}
    )


def container(image: str, period: int) -> dict[str, Any]:
    return {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "readinessProbe": {"periodSeconds": period},
                        }
                    ]
                }
            }
        }
    }


def test_value_at_follows_names_indexes_and_quoted_keys() -> None:
    tree = {"a": {"b": [{"c.d": 1}]}, "e": None}
    assert value_at(tree, 'a.b[0]["c.d"]') == 1
    assert value_at(tree, "e") is None
    assert value_at(tree, "a.b[3]") == MISSING
    assert value_at(tree, "a.x") == MISSING
    assert value_at(tree, "e.f") == MISSING


def test_refreshes_and_unchanged_resources_are_not_drift() -> None:
    events = [
        step("refresh", DEPLOYMENT_URN),
        step("same", DEPLOYMENT_URN),
        step("read", PDB_URN),
        step("update", "urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev"),
        step("update", "urn:pulumi:dev::p::pulumi:providers:kubernetes::kubernetes"),
        EngineEvent.from_json({"stdoutEvent": {"message": "x", "color": "never"}}),
    ]
    report = drift_report("dev", events)
    assert not report.drifted
    assert report.as_json() == {"stack": "dev", "drifted": False, "resources": []}
    assert report.describe() == "stack dev: no drift"


def test_an_update_reports_each_field_declared_vs_live_and_a_deleted_object_as_missing() -> None:
    events = [
        step(
            "update",
            DEPLOYMENT_URN,
            old={"outputs": container("hand-edited", 30)},
            new={"inputs": container("registry/model@sha256:ab", 5)},
            detailedDiff={
                "spec.template.spec.containers[0].image": {"diffKind": "update"},
                "spec.template.spec.containers[0].readinessProbe.periodSeconds": {
                    "diffKind": "update"
                },
            },
        ),
        step("create", PDB_URN, new={"inputs": {"spec": {"maxUnavailable": 1}}}),
    ]
    report = drift_report("dev", events)
    assert report.drifted
    deployment, pdb = report.as_json()["resources"]
    assert deployment["name"] == "model-server-deployment"
    assert deployment["op"] == "update"
    assert [(f["path"], f["declared"], f["live"]) for f in deployment["fields"]] == [
        ("spec.template.spec.containers[0].image", "registry/model@sha256:ab", "hand-edited"),
        ("spec.template.spec.containers[0].readinessProbe.periodSeconds", 5, 30),
    ]
    assert (pdb["type"], pdb["op"], pdb["fields"]) == (
        "kubernetes:policy/v1:PodDisruptionBudget",
        "create",
        [],
    )
    text = report.describe()
    assert "stack dev: 2 resource(s) drifted" in text
    assert "image: declared 'registry/model@sha256:ab', live 'hand-edited'" in text
    assert "PodDisruptionBudget model-server-disruption-budget: missing from the cluster" in text


@pytest.mark.parametrize("op", ["delete", "replace", "create-replacement"])
def test_every_other_planned_step_is_drift(op: str) -> None:
    assert drift_report("dev", [step(op, DEPLOYMENT_URN)]).drifted


def test_the_project_copy_holds_every_local_module_the_program_imports() -> None:
    """A module the program imports but the copy leaves out fails every engine stack."""
    copied = {Path(name).stem for name in scratch.PROJECT_FILES} | set(scratch.PROJECT_DIRS)
    local = {p.stem for p in ROOT.glob("*.py")} | {p.name for p in ROOT.iterdir() if p.is_dir()}
    sources = [ROOT / n for n in scratch.PROJECT_FILES if n.endswith(".py")]
    sources += [p for d in scratch.PROJECT_DIRS for p in (ROOT / d).rglob("*.py") if d != "model"]
    imported = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert (imported & local) - copied == set()


def test_an_inline_program_imports_its_own_copys_modules(tmp_path: Path) -> None:
    """Two copies of a project run in one process (the checkout, then a scratch copy): each run
    must import its own copy's modules, not the first one's cached in sys.modules."""
    seen = []
    for copy in ("checkout", "scratch"):
        project = tmp_path / copy
        (project / "probe_components").mkdir(parents=True)
        (project / "probe_components" / "__init__.py").write_text(f"WHERE = {copy!r}\n")
        (project / "probe_settings.py").write_text(f"WHERE = {copy!r}\n")
        (project / "__main__.py").write_text(
            "from pathlib import Path\nimport probe_components, probe_settings\n"
            "Path(__file__).with_name('seen').write_text("
            "probe_settings.WHERE + ' ' + probe_components.WHERE)\n"
        )
        inline_program(project)()
        seen.append((project / "seen").read_text())
    assert seen == ["checkout checkout", "scratch scratch"]
