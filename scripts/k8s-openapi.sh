#!/usr/bin/env bash
# Copies the official Kubernetes OpenAPI v3 documents of the pinned version out of the
# k8s.io/kubernetes Go module (the same module the local cluster is built from) into
# .state/openapi/<version>/, for offline validation of the manifests the program creates.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${KUBERNETES_VERSION:?set KUBERNETES_VERSION, e.g. v1.34.4}"
dest=".state/openapi/${version}"
if [[ -f "${dest}/.complete" ]]; then
  exit 0
fi
echo "openapi: fetching k8s.io/kubernetes@${version} through the Go module proxy"
module_dir="$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${version}" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])')"
mkdir -p "${dest}"
cp "${module_dir}"/api/openapi-spec/v3/*.json "${dest}/"
chmod -R u+w "${dest}"
touch "${dest}/.complete"
echo "openapi: $(find "${dest}" -maxdepth 1 -name "*.json" | wc -l) documents in ${dest}"
