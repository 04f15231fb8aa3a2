"""The collector's objects (metricsCollector: the monitor and the SLO rules), admitted by a
real API server that has their projects' CRDs (scripts/crds.sh): nothing pruned,
nothing warned about."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import Cluster
from tests.cluster.kube import KubeClient, object_path, resource_path, wait_for
from tests.cluster.stack import condition, declared_objects, delete_namespace

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / ".state" / "crds"
BUNDLED_MODEL = ROOT / "model" / "export" / "digits" / "1"
# Each collector's monitor kind and rule kind.
COLLECTORS = {
    "prometheus-operator": ("ServiceMonitor", "PrometheusRule"),
    "gke-managed-prometheus": ("PodMonitoring", "Rules"),
}
# Only what the monitor needs around it: its namespace, and the Service it may select.
APPLIED_KINDS = ("Namespace", "Service", "NetworkPolicy")


def _crds() -> list[dict[str, Any]]:
    crds = [yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml"))]
    kinds = {kind for pair in COLLECTORS.values() for kind in pair}
    assert {crd["spec"]["names"]["kind"] for crd in crds} >= kinds, f"{CRD_DIR}: run `make schemas`"
    return crds


def _established(client: KubeClient, path: str) -> bool:
    return condition(client.get(path), "Established").get("status") == "True"


@pytest.fixture(scope="module")
def monitor_crds(cluster: Cluster) -> Iterator[KubeClient]:
    """The CRDs installed and established; removed afterwards, so that the engine layer sees a
    cluster without them."""
    client = cluster.client
    crds = _crds()
    try:
        for crd in crds:
            response = client.apply(crd)
            assert response.status in (200, 201), response.message
            path = object_path(crd)
            wait_for(
                f"CRD {crd['metadata']['name']} to be established",
                functools.partial(_established, client, path),
                timeout=60,
            )
        yield client
    finally:
        for crd in crds:
            client.delete(object_path(crd))


@pytest.mark.parametrize("collector", sorted(COLLECTORS))
def test_the_monitor_and_the_slo_rules_are_admitted_whole_by_their_crds(
    monitor_crds: KubeClient, collector: str
) -> None:
    client = monitor_crds
    namespace = f"metrics-{collector}"
    objects = {
        o["kind"]: o
        for o in declared_objects(
            namespace=namespace,
            metricsCollector=collector,
            metricsScrapeNamespaces=["monitoring"],
            metricsMonitorLabels={"release": "kube-prometheus-stack"},
        )
    }
    monitor_kind, rules_kind = COLLECTORS[collector]
    try:
        for applied in APPLIED_KINDS:
            assert client.apply(objects[applied]).status in (200, 201), applied
        for kind in (monitor_kind, rules_kind):
            declared = objects[kind]
            response = client.apply(declared, strict=True)
            assert response.status == 201, (kind, response.message)
            assert response.warnings == (), response.warnings
            # The API server prunes fields its schema does not know: what it kept is all of it.
            stored = client.get(object_path(declared))
            assert stored["spec"] == declared["spec"], kind
            assert declared["metadata"]["labels"].items() <= stored["metadata"]["labels"].items()
        # ... and strict validation refuses a field the CRD does not know.
        monitor = objects[monitor_kind]
        misspelt = {**monitor, "spec": {**monitor["spec"], "endpoint": []}}
        refused = client.apply(misspelt, strict=True)
        assert refused.status >= 400, refused
        assert ".spec.endpoint: field not declared in schema" in refused.message
    finally:
        delete_namespace(client, namespace)
        assert not client.exists(resource_path("v1", "Namespace", name=namespace))


def test_the_canarys_http_route_is_admitted_whole_by_the_gateway_api_crd(
    monitor_crds: KubeClient, tmp_path: Path
) -> None:
    client = monitor_crds
    repository = tmp_path / "digits"
    shutil.copytree(BUNDLED_MODEL, repository / "1")
    shutil.copytree(repository / "1", repository / "2")
    namespace = "canary-route"
    objects = declared_objects(
        namespace=namespace,
        modelPath=str(repository),
        modelVersion="1",
        canaryModelVersion="2",
        canaryWeight=20,
        gatewayName="gateways/public",
    )
    (route,) = [o for o in objects if o["kind"] == "HTTPRoute"]
    try:
        for obj in objects:
            if obj["kind"] in ("Namespace", "Service"):
                assert client.apply(obj).status in (200, 201), object_path(obj)
        response = client.apply(route, strict=True)
        assert response.status == 201, response.message
        assert response.warnings == (), response.warnings
        stored = client.get(object_path(route))["spec"]
        # The API server adds the CRD's defaults (group, kind, a / path match); nothing the
        # stack declares is pruned.
        (rule,) = stored["rules"]
        assert [(b["name"], b["port"], b["weight"]) for b in rule["backendRefs"]] == [
            ("digits-server-a", 8501, 80),
            ("digits-server-b", 8501, 20),
        ]
        assert all(b["kind"] == "Service" for b in rule["backendRefs"])
        assert stored["parentRefs"][0]["name"] == "public"
        assert stored["parentRefs"][0]["namespace"] == "gateways"
        # ... and a weight the schema bounds is refused.
        (declared_rule,) = route["spec"]["rules"]
        over = [{**b, "weight": 2_000_000} for b in declared_rule["backendRefs"]]
        refused = client.apply(
            {**route, "spec": {**route["spec"], "rules": [{"backendRefs": over}]}}, strict=True
        )
        assert refused.status >= 400, refused
    finally:
        delete_namespace(client, namespace)
