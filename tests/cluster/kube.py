"""A small Kubernetes API client for the cluster tests.

HTTPS to the local API server only (127.0.0.1, refused otherwise), authenticated with the admin
client certificate kwokctl generated, verified against the cluster's own CA. Proxy variables are
ignored: nothing here may leave the machine. HTTP statuses are returned, not raised, so a test
can assert on a rejection (403 from an admission plugin) as precisely as on a success.
"""

from __future__ import annotations

import json
import shlex
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
LOOPBACK = "127.0.0.1"
# Server-side apply under the name the Pulumi Kubernetes provider applies with.
FIELD_MANAGER = "pulumi-kubernetes"

# kind -> (plural, namespaced) for every kind the tests touch; the API group comes from the
# object's apiVersion. A kind missing here fails loudly rather than being skipped.
RESOURCES: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ConfigMap": ("configmaps", True),
    "Service": ("services", True),
    "Pod": ("pods", True),
    "Event": ("events", True),
    "Deployment": ("deployments", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "NetworkPolicy": ("networkpolicies", True),
    "EndpointSlice": ("endpointslices", True),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "ServiceMonitor": ("servicemonitors", True),
    "PodMonitoring": ("podmonitorings", True),
    "PrometheusRule": ("prometheusrules", True),
    "Rules": ("rules", True),
    "HTTPRoute": ("httproutes", True),
    "Stage": ("stages", False),
}

T = TypeVar("T")


def resource_path(
    api_version: str, kind: str, namespace: str | None = None, name: str | None = None
) -> str:
    """The REST path of a collection (name None) or of one object."""
    plural, namespaced = RESOURCES[kind]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced:
        if namespace is None:
            raise ValueError(f"{kind} is namespaced: a namespace is needed")
        prefix += f"/namespaces/{namespace}"
    return f"{prefix}/{plural}" + (f"/{name}" if name else "")


def object_path(obj: dict[str, Any]) -> str:
    metadata = obj["metadata"]
    return resource_path(
        obj["apiVersion"], obj["kind"], metadata.get("namespace"), metadata["name"]
    )


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, Any]
    warnings: tuple[str, ...]

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


class KubeClient:
    """The API server named by a kubeconfig's current context."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.server = cluster["server"].rstrip("/")
        host = urllib.parse.urlsplit(self.server).hostname
        if host != LOOPBACK:
            raise AssertionError(f"{kubeconfig} points at {self.server}, not {LOOPBACK}")
        tls = ssl.create_default_context(cafile=cluster["certificate-authority"])
        tls.load_cert_chain(user["client-certificate"], user["client-key"])
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls)
        )

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> ApiResponse:
        url = self.server + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with self._opener.open(request, timeout=30) as response:
                status, raw, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, headers = error.code, error.read(), error.headers
        parsed = json.loads(raw) if raw else {}
        return ApiResponse(status, parsed, tuple(headers.get_all("Warning") or ()))

    def get(self, path: str, **params: str) -> dict[str, Any]:
        response = self.request("GET", path, params=params or None)
        assert response.status == 200, f"GET {path}: {response.status} {response.message}"
        return response.body

    def exists(self, path: str) -> bool:
        response = self.request("GET", path)
        assert response.status in (200, 404), f"GET {path}: {response.status} {response.message}"
        return response.status == 200

    def apply(self, obj: dict[str, Any], *, strict: bool = False) -> ApiResponse:
        """Server-side apply, as the Pulumi Kubernetes provider does (taking over conflicts);
        `strict` refuses a field the schema does not know instead of dropping it."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if strict:
            params["fieldValidation"] = "Strict"
        # JSON is YAML: the body goes out as the apply-patch content type.
        return self.request(
            "PATCH",
            object_path(obj),
            obj,
            content_type="application/apply-patch+yaml",
            params=params,
        )

    def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> ApiResponse:
        metadata = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], metadata.get("namespace"))
        return self.request("POST", path, obj, params={"dryRun": "All"} if dry_run else None)

    def delete(self, path: str, *, grace_seconds: int | None = None) -> ApiResponse:
        params = {"gracePeriodSeconds": str(grace_seconds)} if grace_seconds is not None else None
        response = self.request("DELETE", path, params=params)
        assert response.status in (200, 202, 404), (
            f"DELETE {path}: {response.status} {response.message}"
        )
        return response


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = 60,
    interval: float = 0.5,
    describe: Callable[[], object] | None = None,
) -> T:
    """The first truthy result of `probe`; fails after `timeout` seconds, showing `describe()`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            state = f"\nlast state: {describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{state}")
        time.sleep(interval)


def cluster_env() -> dict[str, str]:
    """The variables `scripts/cluster.sh env` exports (KUBECONFIG, KWOK_WORKDIR, ...)."""
    out = subprocess.run(
        [str(CLUSTER_SH), "env"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    exports: dict[str, str] = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            key, _, value = words[1].partition("=")
            exports[key] = value
    return exports


@dataclass(frozen=True)
class Listener:
    """One listening socket, as `ss -ltunp` reports it."""

    netid: str
    address: str
    pids: frozenset[int]

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]


def listeners() -> list[Listener]:
    out = subprocess.run(
        ["ss", "-H", "-ltunp"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        process = " ".join(fields[6:])
        pids = frozenset(int(p) for p in _pid_numbers(process))
        found.append(Listener(fields[0], fields[4], pids))
    return found


def _pid_numbers(process_field: str) -> list[str]:
    # users:(("etcd",pid=8350,fd=5),("etcd",pid=8350,fd=8))
    return [part.split(",")[0] for part in process_field.split("pid=")[1:]]
