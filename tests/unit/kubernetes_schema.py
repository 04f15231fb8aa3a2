"""Offline validation of Kubernetes objects against the official OpenAPI v3 documents.

The documents come from the k8s.io/kubernetes module of the pinned version
(scripts/k8s-openapi.sh); custom resources are checked against their projects' CRDs
(scripts/crds.sh). Validation is strict, like the API server's
`fieldValidation=Strict`: a field the schema does not know is an error, so a typo fails.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION_FILE = ROOT / "tools" / "KUBERNETES_VERSION"
CRD_DIR = ROOT / ".state" / "crds"


def kubernetes_version() -> str:
    return KUBERNETES_VERSION_FILE.read_text().strip()


def openapi_dir() -> Path:
    directory = ROOT / ".state" / "openapi" / kubernetes_version()
    if not (directory / ".complete").exists():
        raise FileNotFoundError(
            f"{directory} is missing: run `make schemas` (copies the official OpenAPI documents)"
        )
    return directory


def _document_name(api_version: str) -> str:
    if "/" not in api_version:
        return f"api__{api_version}_openapi.json"
    group, version = api_version.split("/")
    return f"apis__{group}__{version}_openapi.json"


def _strict(schema: Any) -> Any:
    """Close every object schema that lists its properties."""
    if isinstance(schema, dict):
        closed = {key: _strict(value) for key, value in schema.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _custom_resource_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The openAPIV3Schema of `kind` from its CRD in CRD_DIR, or None for a built-in group."""
    group, _, version = api_version.rpartition("/")
    crds = sorted(CRD_DIR.glob(f"{group}_*.yaml")) if group else []
    if group and not crds and "." in group and not group.endswith(".k8s.io"):
        raise FileNotFoundError(f"no CRD of {group} in {CRD_DIR}: run `make schemas`")
    for path in crds:
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] != kind:
            continue
        for served in crd["spec"]["versions"]:
            if served["name"] == version:
                schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
                return schema
    return None


@cache
def _validator(api_version: str, kind: str) -> Draft202012Validator:
    custom = _custom_resource_schema(api_version, kind)
    if custom is not None:
        return Draft202012Validator(_strict(custom))
    document = json.loads((openapi_dir() / _document_name(api_version)).read_text())
    schemas = document["components"]["schemas"]
    group, _, version = api_version.rpartition("/")
    for name, schema in schemas.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (group, version, kind):
                root = {
                    "$ref": f"#/components/schemas/{name}",
                    "components": {"schemas": _strict(copy.deepcopy(schemas))},
                }
                return Draft202012Validator(root)
    raise KeyError(f"{api_version} {kind} is not in Kubernetes {kubernetes_version()}")


def integral_numbers(value: Any) -> Any:
    """Pulumi's wire format carries numbers as floats; Kubernetes integers are ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: integral_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral_numbers(item) for item in value]
    return value


def validation_errors(manifest: dict[str, Any]) -> list[str]:
    """Every schema violation of one object, as `path: message`."""
    obj = integral_numbers(manifest)
    validator = _validator(obj["apiVersion"], obj["kind"])
    return [
        f"{obj['kind']}/{obj.get('metadata', {}).get('name')} "
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(obj)
    ]
