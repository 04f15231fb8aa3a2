"""Unit-test harness: Pulumi mocks with realistic computed values, and the real stack config."""

from __future__ import annotations

import hashlib
import json
import runpy
import unittest.mock
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pulumi
import yaml
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from gpu_model_serving.config_reader import config_text, declared_config
from gpu_model_serving.settings import Settings, load_settings
from tests.unit.kubernetes_schema import integral_numbers

ROOT = Path(__file__).resolve().parents[2]
_T = TypeVar("_T")
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]


def stack_config(stack: str, **overrides: object) -> dict[str, str]:
    """Pulumi.yaml's declared defaults overlaid with Pulumi.<stack>.yaml, then `overrides`."""
    values = declared_config(ROOT / "Pulumi.yaml", ROOT / f"Pulumi.{stack}.yaml")
    overridden = {f"{PROJECT}:{k}": config_text(v) for k, v in overrides.items()}
    return {**values, **overridden}


# How the SDK marks a secret value on the wire (pulumi.runtime.rpc).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def _reveal(value: Any, path: str, secrets: set[str]) -> Any:
    """`value` without secret wrappers; the path of every secret found goes into `secrets`."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            secrets.add(path)
            return _reveal(value["value"], path, secrets)
        return {k: _reveal(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


@dataclass
class Created:
    """One resource the program registered: its type token, name, inputs and secret paths."""

    type: str
    name: str
    inputs: dict[str, Any]
    secret_paths: set[str] = field(default_factory=set)
    provider: str | None = None
    """The provider reference the resource was registered with (urn::id), if any."""
    read_id: str | None = None
    """The id of an existing object the program only reads (`Resource.get`)."""


@dataclass
class StackMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs, adding the fields a real provider computes."""

    created: list[Created] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        secret_paths: set[str] = set()
        inputs = _reveal(dict(args.inputs), "", secret_paths)
        # The mock monitor leaves `custom` unset only for reads.
        read_id = args.resource_id if args.custom is None else None
        self.created.append(
            Created(args.typ, args.name, inputs, secret_paths, args.provider, read_id)
        )
        outputs = dict(args.inputs)
        if args.typ == "docker-build:index:Image":
            # A content digest: identical inputs give an identical digest, as in a registry.
            content = json.dumps(inputs, sort_keys=True, default=str).encode()
            digest = "sha256:" + hashlib.sha256(content).hexdigest()
            outputs.update(digest=digest, ref=f"{inputs['tags'][0]}@{digest}")
            outputs["contextHash"] = hashlib.sha256(b"context").hexdigest()
        elif args.typ == "kubernetes:core/v1:Service":
            outputs.setdefault("spec", {})["clusterIP"] = "10.96.12.34"
        elif args.typ == "gcp:container/nodePool:NodePool":
            outputs["instanceGroupUrls"] = ["https://compute.googleapis.com/mock-igm"]
        elif args.typ == "aws:eks/nodeGroup:NodeGroup":
            outputs["arn"] = f"arn:aws:eks:us-east-1:123456789012:nodegroup/{args.name}"
        if args.typ.startswith("kubernetes:") and "metadata" in outputs:
            outputs["metadata"] = {**outputs["metadata"], "uid": f"uid-{args.name}"}
        return f"{args.name}-id", outputs

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append(args.token)
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": "ya29.mock-token", "project": "mock", "id": "mock"}, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {"userName": "AWS", "password": "mock-ecr-password", "id": "mock"}, []
        return {}, []

    def of_type(self, type_token: str) -> list[Created]:
        return [c for c in self.created if c.type == type_token]

    def one(self, type_token: str) -> Created:
        found = self.of_type(type_token)
        assert len(found) == 1, f"expected one {type_token}, found {[c.name for c in found]}"
        return found[0]

    def kubernetes_objects(self) -> list[dict[str, Any]]:
        """Every Kubernetes object the program would send to the API server, as its JSON."""
        return [
            integral_numbers(c.inputs)
            for c in self.created
            if c.type.startswith("kubernetes:") and c.read_id is None
        ]


def install_mocks() -> StackMocks:
    """Fresh mocks and the dev stack's config; nothing exists before a test builds it."""
    installed = StackMocks()
    pulumi.runtime.set_mocks(installed, project=PROJECT, stack="dev", preview=False)
    use_config("dev")
    return installed


def use_config(stack: str, **overrides: object) -> None:
    pulumi.runtime.set_all_config(stack_config(stack, **overrides))


def settings_for(stack: str, **overrides: object) -> Settings:
    use_config(stack, **overrides)
    return load_settings()


def run(program: Callable[[], None]) -> None:
    """Run `program` under the mocks and wait until every resource has been registered."""
    _sync_await(run_pulumi_func(program))


def construct(factory: Callable[[], _T]) -> _T:
    """Build a component under the mocks, wait for its registrations, and return it."""
    built: list[_T] = []
    run(lambda: built.append(factory()))
    return built[0]


def run_stack(stack: str, **overrides: object) -> dict[str, Any]:
    """Evaluate __main__.py for `stack` from its real stack file; returns the stack's outputs
    (every `pulumi.export` the program made, resolved), as `pulumi stack output` shows them."""
    use_config(stack, **overrides)
    exports: dict[str, Any] = {}
    real_export = pulumi.export

    def record(name: str, value: Any) -> None:
        exports[name] = value
        real_export(name, value)

    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"))

    with unittest.mock.patch.object(pulumi, "export", record):
        run(program)
    return {name: resolve(value) for name, value in exports.items()}


def resolve(output: pulumi.Input[Any]) -> Any:
    """The value of an Output, once the mocks have produced it."""
    box: list[Any] = []

    def program() -> None:
        pulumi.Output.from_input(output).apply(box.append)

    run(program)
    return box[0] if box else None
