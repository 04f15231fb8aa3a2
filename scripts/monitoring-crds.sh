#!/usr/bin/env bash
# Copies the CustomResourceDefinitions of the monitor objects the stack may declare
# (metricsCollector) out of their projects' Go modules into .state/crds/: the schemas the unit
# tests validate ServiceMonitor, PodMonitoring and their rule kinds against, and the CRDs the cluster tests
# install. The Go module proxy is the only place here that serves them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# module@version and the CRD file inside it; both versions are ones the proxy serves.
CRDS=(
  "github.com/prometheus-operator/prometheus-operator@v0.85.0 example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  "github.com/prometheus-operator/prometheus-operator@v0.85.0 example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
  "github.com/GoogleCloudPlatform/prometheus-engine@v0.13.0 charts/operator/crds/monitoring.googleapis.com_podmonitorings.yaml"
  "github.com/GoogleCloudPlatform/prometheus-engine@v0.13.0 charts/operator/crds/monitoring.googleapis.com_rules.yaml"
)
dest=".state/crds"
stamp="${dest}/.complete-$(printf '%s\n' "${CRDS[@]}" | sha256sum | cut -c1-16)"
if [[ -f "${stamp}" ]]; then
  exit 0
fi
rm -rf "${dest}"
mkdir -p "${dest}"
for entry in "${CRDS[@]}"; do
  read -r module file <<<"${entry}"
  log "crds: ${file##*/} from ${module}"
  module_dir="$(go_module_dir "${module}")"
  cp "${module_dir}/${file}" "${dest}/"
done
chmod -R u+w "${dest}"
touch "${stamp}"
