"""The program's layout: its package's layers import one way, and every Python file the program
runs is previewed by a pull request and copied into the engine tests' scratch project."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

import gpu_model_serving
from engine.scratch import PROJECT_DIRS, PROJECT_FILES

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gpu_model_serving"
PREVIEW_WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path | None:
    """The repository file of module `name`, or None for one outside the repository."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The modules `path` imports that live in the repository (a `from package import name`
    counts as the submodule when `name` is one)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing file's package up
                package = path.relative_to(ROOT).parent.parts
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if module_file(submodule) else base)
    return {name for name in found if module_file(name)}


def layer_of(module: str) -> int:
    """The index in gpu_model_serving.LAYERS of a module of the package."""
    top = module.split(".")[1]
    assert top in gpu_model_serving.LAYERS, f"{module} is in no layer of gpu_model_serving.LAYERS"
    return gpu_model_serving.LAYERS.index(top)


PACKAGE_FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_of_the_package_imports_only_layers_above_it(path: Path) -> None:
    importer = module_name(path)
    if importer == "gpu_model_serving":
        return  # the package itself, which lists the layers
    upward = [
        imported
        for imported in imported_modules(path)
        if imported.startswith("gpu_model_serving.") and layer_of(imported) > layer_of(importer)
    ]
    assert not upward, f"{importer} imports {upward}, listed below it in LAYERS"


def test_every_layer_is_a_module_of_the_package_and_every_module_is_in_a_layer() -> None:
    tops = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE_FILES}
    assert tops - {"__init__"} == set(gpu_model_serving.LAYERS)


def test_the_program_imports_no_module_twice_round_a_cycle() -> None:
    graph = {module_name(path): imported_modules(path) for path in program_files()}
    path: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        assert module not in path, "import cycle: " + " -> ".join([*path, module])
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        path.pop()
        done.add(module)

    visit("__main__")


def program_files() -> list[Path]:
    """Every repository file the program (`__main__.py`) imports, transitively."""
    seen: dict[str, Path] = {"__main__": ROOT / "__main__.py"}
    queue = ["__main__"]
    while queue:
        for imported in imported_modules(seen[queue.pop()]):
            file = module_file(imported)
            if imported not in seen and file is not None:
                seen[imported] = file
                queue.append(imported)
    return sorted(seen.values())


def test_the_program_is_the_package_and_the_model_contract_reader() -> None:
    """What the README and the lists below call the program: a new top-level module would
    have to be named in each of them."""
    tops = {path.relative_to(ROOT).parts[0] for path in program_files()}
    assert tops == {"__main__.py", "gpu_model_serving", "model_contract"}


def matches(pattern: str, path: str) -> bool:
    """GitHub's `paths` filter: `**` matches across directories, `*` and `?` within one."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    wildcards = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.fullmatch("".join(wildcards.get(p, re.escape(p)) for p in parts), path) is not None


def preview_paths() -> list[str]:
    workflow = yaml.safe_load(PREVIEW_WORKFLOW.read_text())
    # PyYAML reads the key `on` as True (YAML 1.1).
    paths: list[str] = workflow[True]["pull_request"]["paths"]
    return paths


@pytest.mark.parametrize("path", program_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_pull_request_changing_a_file_of_the_program_gets_a_preview(path: Path) -> None:
    relative = str(path.relative_to(ROOT))
    assert any(matches(pattern, relative) for pattern in preview_paths()), (
        f"{relative} is not under {PREVIEW_WORKFLOW.name}'s paths: a pull request changing it "
        "gets no preview"
    )


@pytest.mark.parametrize("path", program_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_tests_scratch_copy_holds_every_file_of_the_program(path: Path) -> None:
    relative = path.relative_to(ROOT)
    assert str(relative) in PROJECT_FILES or relative.parts[0] in PROJECT_DIRS
