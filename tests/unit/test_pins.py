"""engine/pins.py, the one reader of requirement pins (the engine, toolchain.sh, the Makefile)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.pins import PinError, pin

PINS = Path(__file__).resolve().parents[2] / "engine" / "pins.py"


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    file = tmp_path / "requirements.txt"
    file.write_text(
        "# the program's packages\n"
        "pulumi-kubernetes==4.30.0  # the provider plugin follows it\n"
        "pulumi==3.259.0; python_version >= '3.11'\n"
        "pyyaml>=6\n"
    )
    return file


def test_a_pin_is_the_version_alone_without_its_comment_or_marker(requirements: Path) -> None:
    assert pin("pulumi", requirements) == "3.259.0"
    assert pin("pulumi-kubernetes", requirements) == "4.30.0"


@pytest.mark.parametrize("package", ["pyyaml", "pulumi-docker-build", "pulumi-kube"])
def test_a_package_without_an_exact_pin_is_an_error_naming_it_and_the_file(
    requirements: Path, package: str
) -> None:
    with pytest.raises(PinError, match=f"{requirements} pins no version of {package} "):
        pin(package, requirements)


def test_the_scripts_read_pins_through_the_command_line_and_fail_on_a_missing_one(
    requirements: Path,
) -> None:
    found = subprocess.run(
        [sys.executable, str(PINS), str(requirements), "pulumi", "pulumi-kubernetes"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (found.returncode, found.stdout) == (0, "3.259.0\n4.30.0\n")
    missing = subprocess.run(
        [sys.executable, str(PINS), str(requirements), "pulumi", "pyyaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "pins no version of pyyaml" in missing.stderr
    assert missing.stdout == ""
