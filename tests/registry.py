"""The local registry (scripts/docker.sh) as the tests reach it: HTTPS on 127.0.0.1:5000,
verified against the project's own CA, never through a proxy."""

from __future__ import annotations

import ssl
import urllib.request
from http.client import HTTPResponse

from engine.environment import LOCAL_REGISTRY_CA_DIR

REGISTRY = "127.0.0.1:5000"
MANIFEST_MEDIA_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def registry_request(path: str, method: str = "GET") -> HTTPResponse:
    """`method` on https://127.0.0.1:5000<path>, asking for any manifest type."""
    tls = ssl.create_default_context(cafile=str(LOCAL_REGISTRY_CA_DIR / "ca.crt"))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls)
    )
    request = urllib.request.Request(
        f"https://{REGISTRY}{path}", method=method, headers={"Accept": MANIFEST_MEDIA_TYPES}
    )
    response: HTTPResponse = opener.open(request, timeout=30)
    return response


def manifest_digest(repository: str, reference: str) -> str:
    """The digest the registry serves for a tag (or digest) of a repository."""
    with registry_request(f"/v2/{repository}/manifests/{reference}", "HEAD") as response:
        return str(response.headers["Docker-Content-Digest"])
