"""The real engine's cost, measured side by side in one run (see bench/README.md, "Engine").

- `preview` of the dev program vs a minimal one-Deployment program on the same engine, the same
  provider and the same cluster, alternated so both see the same machine load; goal ≤ 1.5x.
- `preview` of the dev program with the policy pack (as `make preview` runs it) vs without it:
  what the mandatory policy pack costs every preview.
- `up` of the dev stack with nothing to change (refresh included, as `make up` runs it).

Needs what `make up` needs running (cluster, registry, BuildKit). Stacks live in a temporary
backend and are destroyed at the end; nothing of the project's own state is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi import automation as auto

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import driver  # noqa: E402
from engine.environment import engine_environment  # noqa: E402
from engine.scratch import copy_project  # noqa: E402

PROJECT = "gpu-model-serving"


def minimal_program() -> None:
    """One Deployment through an explicit provider: the floor any program pays."""
    provider = k8s.Provider("k8s", enable_server_side_apply=True)
    labels = {"app": "bench-minimal"}
    k8s.apps.v1.Deployment(
        "minimal",
        metadata=k8s.meta.v1.ObjectMetaArgs(name="bench-minimal", namespace="default"),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                spec=k8s.core.v1.PodSpecArgs(
                    containers=[k8s.core.v1.ContainerArgs(name="c", image="bench:minimal")]
                ),
            ),
        ),
        opts=pulumi.ResourceOptions(provider=provider),
    )


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "engine.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="engine-bench-") as scratch:
        root = Path(scratch)
        (root / "state").mkdir()
        env = engine_environment({**os.environ, "PULUMI_BACKEND_URL": (root / "state").as_uri()})
        dev_config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
        dev_config["config"][f"{PROJECT}:namespace"] = "engine-bench"
        dev_config["config"][f"{PROJECT}:imageTag"] = "engine-bench"
        config_file = root / "dev.yaml"
        config_file.write_text(yaml.safe_dump(dev_config))
        target = driver.StackTarget("bench-dev", config_file, copy_project(root / "project"))
        dev = driver.open_stack(target, env)
        minimal_dir = root / "minimal"
        minimal_dir.mkdir()
        (minimal_dir / "Pulumi.yaml").write_text("name: bench-minimal\nruntime: python\n")
        minimal = auto.create_or_select_stack(
            stack_name="bench-minimal",
            project_name="bench-minimal",
            program=minimal_program,
            opts=driver.workspace_options(minimal_dir, env),
        )
        quiet: Callable[[str], None] = lambda _line: None  # noqa: E731
        try:
            dev_preview, minimal_preview, unpoliced_preview = [], [], []
            for _ in range(args.repeat):
                dev_preview.append(timed(lambda: driver.preview(dev, target, quiet)))
                minimal_preview.append(timed(lambda: minimal.preview(on_output=quiet)))
                unpoliced_preview.append(
                    timed(lambda: dev.preview(config_file=str(config_file), on_output=quiet))
                )
            driver.up(dev, target, quiet)
            noop_up = [timed(lambda: driver.up(dev, target, quiet)) for _ in range(args.repeat)]
        finally:
            dev.destroy(config_file=str(config_file), on_output=quiet)

    result = {
        "repeat": args.repeat,
        "preview_dev_s": statistics.median(dev_preview),
        "preview_minimal_s": statistics.median(minimal_preview),
        "preview_ratio": statistics.median(dev_preview) / statistics.median(minimal_preview),
        "preview_dev_without_policy_s": statistics.median(unpoliced_preview),
        "policy_ratio": statistics.median(dev_preview) / statistics.median(unpoliced_preview),
        "noop_up_dev_s": statistics.median(noop_up),
        "samples": {
            "preview_dev": dev_preview,
            "preview_minimal": minimal_preview,
            "preview_dev_without_policy": unpoliced_preview,
            "noop_up": noop_up,
        },
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"preview: dev {result['preview_dev_s']:.2f}s vs minimal {result['preview_minimal_s']:.2f}s"
        f" = {result['preview_ratio']:.2f}x (goal <= 1.5x); with vs without the policy pack"
        f" {result['preview_dev_s']:.2f}s vs {result['preview_dev_without_policy_s']:.2f}s"
        f" = {result['policy_ratio']:.2f}x; no-op up {result['noop_up_dev_s']:.2f}s"
        f" (medians of {args.repeat})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
