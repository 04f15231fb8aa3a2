"""The versions requirement files pin (`package==version` lines): the one reader of them, for
the engine (its plugin versions must equal the Python packages'), scripts/toolchain.sh (the
engine tools it builds) and the Makefile (the cloud plugins). Standard library only, so the
scripts run it with the machine's python3 before any virtualenv exists:

    python3 engine/pins.py requirements.txt pulumi pulumi-kubernetes
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


class PinError(Exception):
    """The file pins no version of the package; the message names both."""


def pin(package: str, requirements: Path) -> str:
    text = requirements.read_text()
    match = re.search(rf"^{re.escape(package)}==([^\s#;]+)", text, re.MULTILINE)
    if match is None:
        raise PinError(f"{requirements} pins no version of {package} (a {package}==X line)")
    return match.group(1)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: pins.py REQUIREMENTS_FILE PACKAGE...", file=sys.stderr)
        return 2
    requirements, *packages = argv
    try:
        versions = [pin(package, Path(requirements)) for package in packages]
    except (PinError, OSError) as error:
        print(f"pins.py: {error}", file=sys.stderr)
        return 2
    print("\n".join(versions))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
