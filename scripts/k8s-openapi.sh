#!/usr/bin/env bash
# Copies the official Kubernetes OpenAPI v3 documents of the pinned version out of the
# k8s.io/kubernetes Go module (the same module the local cluster is built from) into
# .state/openapi/<version>/, for offline validation of the manifests the program creates.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
version="${KUBERNETES_VERSION:?set KUBERNETES_VERSION, e.g. v1.34.4}"
dest=".state/openapi/${version}"
if [[ -f "${dest}/.complete" ]]; then
  exit 0
fi
log "fetching k8s.io/kubernetes@${version} through the Go module proxy"
module_dir="$(go_module_dir "k8s.io/kubernetes@${version}")"
mkdir -p "${dest}"
cp "${module_dir}"/api/openapi-spec/v3/*.json "${dest}/"
chmod -R u+w "${dest}"
touch "${dest}/.complete"
log "$(find "${dest}" -maxdepth 1 -name "*.json" | wc -l) documents in ${dest}"
