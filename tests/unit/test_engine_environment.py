"""The engine's environment: offline settings, and a backend of its own for benches and tests."""

from __future__ import annotations

from pathlib import Path

from engine.environment import DEFAULT_BACKEND_DIR, private_backend_environment


def test_a_private_backend_is_created_and_replaces_the_projects_keeping_the_rest(
    tmp_path: Path,
) -> None:
    base = {"PATH": "/usr/bin", "PULUMI_BACKEND_URL": DEFAULT_BACKEND_DIR.as_uri(), "KEPT": "1"}
    env = private_backend_environment(tmp_path / "state", base)
    assert (tmp_path / "state").is_dir()
    assert env["PULUMI_BACKEND_URL"] == (tmp_path / "state").as_uri()
    assert env["KEPT"] == "1" and env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert base["PULUMI_BACKEND_URL"] == DEFAULT_BACKEND_DIR.as_uri()  # the caller's is untouched
