"""The monitor objects (metricsCollector), admitted by a real API server that has their
projects' CRDs (scripts/monitoring-crds.sh): nothing pruned, nothing warned about."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import Cluster
from tests.cluster.kube import KubeClient, object_path, resource_path, wait_for
from tests.cluster.stack import condition, declared_objects, delete_namespace

pytestmark = pytest.mark.cluster

CRD_DIR = Path(__file__).resolve().parents[2] / ".state" / "crds"
COLLECTORS = {"ServiceMonitor": "prometheus-operator", "PodMonitoring": "gke-managed-prometheus"}
# Only what the monitor needs around it: its namespace, and the Service it may select.
APPLIED_KINDS = ("Namespace", "Service", "NetworkPolicy")


def _crds() -> list[dict[str, Any]]:
    crds = [yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml"))]
    assert {crd["spec"]["names"]["kind"] for crd in crds} == set(COLLECTORS), (
        f"{CRD_DIR}: run `make schemas`"
    )
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


@pytest.mark.parametrize("kind", sorted(COLLECTORS))
def test_the_monitor_is_admitted_whole_by_its_crd(monitor_crds: KubeClient, kind: str) -> None:
    client = monitor_crds
    namespace = f"metrics-{kind.lower()}"
    objects = {
        o["kind"]: o
        for o in declared_objects(
            namespace=namespace,
            metricsCollector=COLLECTORS[kind],
            metricsScrapeNamespaces=["monitoring"],
            metricsMonitorLabels={"release": "kube-prometheus-stack"},
        )
    }
    monitor = objects[kind]
    try:
        for applied in APPLIED_KINDS:
            assert client.apply(objects[applied]).status in (200, 201), applied
        response = client.apply(monitor, strict=True)
        assert response.status == 201, response.message
        assert response.warnings == (), response.warnings
        # The API server prunes fields its schema does not know: what it kept is all of it.
        stored = client.get(object_path(monitor))
        assert stored["spec"] == monitor["spec"]
        assert monitor["metadata"]["labels"].items() <= stored["metadata"]["labels"].items()
        # ... and strict validation refuses a field the CRD does not know.
        misspelt = {**monitor, "spec": {**monitor["spec"], "endpoint": []}}
        refused = client.apply(misspelt, strict=True)
        assert refused.status >= 400, refused
        assert ".spec.endpoint: field not declared in schema" in refused.message
    finally:
        delete_namespace(client, namespace)
        assert not client.exists(resource_path("v1", "Namespace", name=namespace))
