"""modelPath, modelVersion and signatureName: any SavedModel repository, and every way one can be
unservable ends the preview with the key, the path and what is wrong."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pulumi
import pytest

from gpu_model_serving.settings import PROJECT_DIR
from model_contract.saved_model import SavedModelError, read_signatures
from tests.unit.harness import ROOT, run_stack, settings_for
from tests.unit.test_settings import problems_for

BUNDLED = ROOT / "model" / "export" / "digits"
# SavedModel { meta_graphs { meta_info_def { tags: "serve" } } }: a MetaGraph with no signature.
NO_SIGNATURE_PB = b"\x12\x09\x0a\x07\x22\x05serve"


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A copy of the bundled digits model outside the project, versions 1 and 2."""
    copy = tmp_path / "models" / "digits"
    shutil.copytree(BUNDLED, copy)
    return copy


def test_the_default_serves_the_highest_bundled_version() -> None:
    model = settings_for("dev").model
    highest = max(int(p.name) for p in BUNDLED.iterdir() if p.name.isdigit())
    assert model.path == "model/export/digits"
    assert model.contract.version == highest
    assert model.version_dir == BUNDLED / str(highest)
    assert model.contract.signature == "serving_default"
    assert model.contract.signatures["serving_default"]["inputs"] == {
        "images": {"dtype": "DT_FLOAT", "shape": [-1, 8, 8]}
    }


def test_a_repository_outside_the_project_and_a_chosen_version(repository: Path) -> None:
    model = settings_for("dev", modelPath=str(repository), modelVersion="1").model
    assert not model.version_dir.is_relative_to(PROJECT_DIR)
    assert (model.version_dir, model.contract.version) == (repository / "1", 1)


def test_a_relative_path_is_the_projects_whatever_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert settings_for("dev", modelVersion="1").model.version_dir == BUNDLED / "1"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("case", "key", "message"),
    [
        ("missing", "modelPath", r"models/absent is not a directory"),
        ("no-version", "modelPath", r"has no numeric version directory"),
        ("no-pb", "modelPath", r"cannot read .*/3/saved_model.pb: No such file"),
        ("unreadable-pb", "modelPath", r"cannot read .*/3/saved_model.pb: Is a directory"),
        ("truncated-pb", "modelPath", r"/3/saved_model.pb is not a readable SavedModel: truncated"),
        ("garbage-pb", "modelPath", r"/3/saved_model.pb is not a readable SavedModel"),
        ("no-signature", "modelPath", r"/3/saved_model.pb has no signature to serve"),
    ],
)
def test_an_unservable_repository_names_the_key_the_path_and_the_problem(
    repository: Path, case: str, key: str, message: str
) -> None:
    path = repository
    bad = repository / "3" / "saved_model.pb"
    if case == "missing":
        path = repository.parent / "absent"
    elif case == "no-version":
        shutil.rmtree(repository)
        (repository / "latest").mkdir(parents=True)
    elif case == "no-pb":
        (repository / "3").mkdir()
    elif case == "unreadable-pb":
        bad.mkdir(parents=True)
    elif case == "truncated-pb":
        data = (repository / "1" / "saved_model.pb").read_bytes()
        _write(bad, data[: len(data) // 2])
    elif case == "garbage-pb":
        _write(bad, bytes(range(256)) * 8)
    elif case == "no-signature":
        _write(bad, NO_SIGNATURE_PB)
    (problem,) = problems_for("dev", modelPath=str(path))
    assert problem.startswith(f'gpu-model-serving:{key} = "{path}": ')
    assert re.search(message, problem), problem


def test_a_version_that_is_not_there_lists_the_versions_that_are(repository: Path) -> None:
    shutil.copytree(repository / "1", repository / "10")
    present = ", ".join(sorted((p.name for p in repository.iterdir()), key=int))
    (problem,) = problems_for("dev", modelPath=str(repository), modelVersion="7")
    assert problem == (
        f'gpu-model-serving:modelVersion = "7": is not a version under {repository} '
        f"(it has: {present})"
    )
    assert present.endswith(", 10")  # in numeric order


def test_a_version_must_be_a_number() -> None:
    (problem,) = problems_for("dev", modelVersion="v2")
    assert 'modelVersion = "v2": must be a version number, or empty for the highest' in problem


def test_a_signature_that_is_not_there_lists_the_signatures_that_are() -> None:
    (problem,) = problems_for("dev", signatureName="predict")
    assert 'signatureName = "predict": is not a signature of ' in problem
    assert problem.endswith("(it has: serving_default)")


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("modelContractAcceptBreaking", "yes", "must be the fingerprint"),
        ("servingImage", "127.0.0.1:5000/model-server:dev", "must be an image pinned by digest"),
    ],
)
def test_override_keys_are_checked(key: str, value: str, rule: str) -> None:
    (problem,) = problems_for("dev", **{key: value})
    assert f'{key} = "{value}": {rule}' in problem


def test_an_unservable_model_ends_the_program_with_the_message_and_no_traceback(
    tmp_path: Path,
) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        run_stack("dev", modelPath=str(tmp_path / "nowhere"))
    assert f'modelPath = "{tmp_path / "nowhere"}": ' in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_the_reader_refuses_a_truncated_file_naming_it(tmp_path: Path) -> None:
    data = (BUNDLED / "1" / "saved_model.pb").read_bytes()
    for cut in (1, 7, len(data) // 3, len(data) - 1):
        truncated = _write(tmp_path / f"cut-{cut}.pb", data[:cut])
        with pytest.raises(SavedModelError, match=f"{truncated} is not a readable SavedModel"):
            read_signatures(truncated)
