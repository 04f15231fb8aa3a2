"""The real engine's cost, measured side by side in one run (see bench/README.md, "Engine").

- `preview` of the dev program vs a minimal one-Deployment program on the same engine, the same
  provider and the same cluster, alternated so both see the same machine load; goal ≤ 1.5x.
- `preview` of the dev program with the policy pack (as `make preview` runs it) vs without it:
  what the mandatory policy pack costs every preview.
- `preview` of the dev program vs the same program given the model's signatures as a literal:
  what reading the served version's `saved_model.pb` costs every preview.
- `preview` of the dev program vs the same stack rolled back (`servingImage` pinned, so no
  Image resource and no docker-build provider): what the image build's provider costs.
- Where one dev preview's time goes: the engine's events, timed from the call.
- `up` of the dev stack with nothing to change (refresh included, as `make up` runs it).

Needs what `make up` needs running (cluster, registry, BuildKit). Stacks live in a temporary
backend and are destroyed at the end; nothing of the project's own state is touched.
"""

from __future__ import annotations

import argparse
import json
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
from engine.environment import private_backend_environment  # noqa: E402
from engine.scratch import copy_project  # noqa: E402
from model_contract.repository import versions  # noqa: E402
from model_contract.saved_model import read_signatures  # noqa: E402

PROJECT = "gpu-model-serving"
# Any digest-pinned reference: a preview does not pull it.
PINNED = "127.0.0.1:5000/engine-bench@sha256:" + "0" * 64
BUNDLED_MODEL = ROOT / "model" / "export" / "digits"


def newest_bundled_version() -> Path:
    found = versions(BUNDLED_MODEL)
    return found[max(found)]


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


def give_signatures_as_literal(project: Path, version_dir: Path) -> None:
    """Make the copied program take `version_dir`'s signatures from a literal read here once,
    so that its previews skip reading saved_model.pb and nothing else changes."""
    signatures = read_signatures(version_dir / "saved_model.pb")
    module = project / "model_contract" / "saved_model.py"
    module.write_text(
        module.read_text()
        + "\n\n# engine_bench: the signatures as a literal, read once by the bench.\n"
        + "def read_signatures(saved_model_pb: Path) -> dict[str, Signature]:\n"
        + f"    return {signatures!r}\n"
    )


def event_timeline(stack: auto.Stack, target: driver.StackTarget) -> list[tuple[float, str]]:
    """(seconds since the call, what happened) for one preview: where its time goes."""
    started = time.perf_counter()
    timeline: list[tuple[float, str]] = []

    def note(event: auto.EngineEvent) -> None:
        at = time.perf_counter() - started
        if event.prelude_event:
            timeline.append((at, "prelude (the engine has the plan's config)"))
        elif event.resource_pre_event:
            metadata = event.resource_pre_event.metadata
            timeline.append((at, f"pre {metadata.op.value} {metadata.type}"))
        elif event.res_outputs_event:
            metadata = event.res_outputs_event.metadata
            timeline.append((at, f"outputs {metadata.type}"))
        elif event.policy_event:
            timeline.append((at, f"policy {event.policy_event.policy_name}"))
        elif event.summary_event:
            timeline.append((at, "summary"))

    driver.preview(stack, target, lambda _line: None, on_event=note)
    timeline.append((time.perf_counter() - started, "returned"))
    return timeline


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
        env = private_backend_environment(root / "state")
        dev_config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
        dev_config["config"][f"{PROJECT}:namespace"] = "engine-bench"
        dev_config["config"][f"{PROJECT}:imageTag"] = "engine-bench"

        def stack(
            name: str, config: dict[str, Any], project: Path
        ) -> tuple[auto.Stack, driver.StackTarget]:
            config_file = root / f"{name}.yaml"
            config_file.write_text(yaml.safe_dump(config))
            target = driver.StackTarget(name, config_file, project)
            return driver.open_stack(target, env), target

        project = copy_project(root / "project")
        dev, target = stack("bench-dev", dev_config, project)
        literal_project = copy_project(root / "literal-project")
        give_signatures_as_literal(literal_project, newest_bundled_version())
        literal, literal_target = stack("bench-literal", dev_config, literal_project)
        pinned_config = {"config": {**dev_config["config"], f"{PROJECT}:servingImage": PINNED}}
        pinned, pinned_target = stack("bench-pinned", pinned_config, project)
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
        samples: dict[str, list[float]] = {
            name: [] for name in ("dev", "minimal", "unpoliced", "literal", "pinned")
        }
        try:
            timeline = event_timeline(dev, target)
            for _ in range(args.repeat):  # alternated, so that every variant sees the same load
                samples["dev"].append(timed(lambda: driver.preview(dev, target, quiet)))
                samples["minimal"].append(timed(lambda: minimal.preview(on_output=quiet)))
                samples["unpoliced"].append(
                    timed(lambda: dev.preview(config_file=str(target.config_file), on_output=quiet))
                )
                samples["literal"].append(
                    timed(lambda: driver.preview(literal, literal_target, quiet))
                )
                samples["pinned"].append(
                    timed(lambda: driver.preview(pinned, pinned_target, quiet))
                )
            driver.up(dev, target, quiet)
            noop_up = [timed(lambda: driver.up(dev, target, quiet)) for _ in range(args.repeat)]
        finally:
            driver.destroy(dev, target, quiet)

    median = {name: statistics.median(values) for name, values in samples.items()}
    result = {
        "repeat": args.repeat,
        "preview_dev_s": median["dev"],
        "preview_minimal_s": median["minimal"],
        "preview_ratio": median["dev"] / median["minimal"],
        "preview_dev_without_policy_s": median["unpoliced"],
        "policy_ratio": median["dev"] / median["unpoliced"],
        "unpoliced_ratio": median["unpoliced"] / median["minimal"],
        "preview_dev_signatures_literal_s": median["literal"],
        "contract_read_ratio": median["dev"] / median["literal"],
        "preview_dev_pinned_image_s": median["pinned"],
        "image_provider_ratio": median["dev"] / median["pinned"],
        "noop_up_dev_s": statistics.median(noop_up),
        "timeline": [[round(at, 3), what] for at, what in timeline],
        "samples": {**samples, "noop_up": noop_up},
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print("one dev preview, from the call:")
    for at, what in timeline:
        print(f"  {at:6.3f}s  {what}")
    print(
        f"preview: dev {median['dev']:.2f}s vs minimal {median['minimal']:.2f}s"
        f" = {result['preview_ratio']:.2f}x (goal <= 1.5x); without the policy pack"
        f" {median['unpoliced']:.2f}s = {result['unpoliced_ratio']:.2f}x minimal,"
        f" so the pack costs {result['policy_ratio']:.2f}x\n"
        f"contract read: dev {median['dev']:.2f}s vs signatures as a literal"
        f" {median['literal']:.2f}s = {result['contract_read_ratio']:.2f}x\n"
        f"image provider: dev {median['dev']:.2f}s vs servingImage pinned"
        f" {median['pinned']:.2f}s = {result['image_provider_ratio']:.2f}x\n"
        f"no-op up {result['noop_up_dev_s']:.2f}s (medians of {args.repeat})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
