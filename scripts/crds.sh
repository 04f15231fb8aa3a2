#!/usr/bin/env bash
# Copies the CustomResourceDefinitions of the objects the stack may declare (the monitor and rule
# kinds of each metricsCollector, the Gateway API's HTTPRoute for a canary's traffic split) out of
# their projects' Go modules into .state/crds/: the schemas the unit tests validate those objects
# against, and the CRDs the cluster and engine tests install. The Go module proxy is the only place
# here that serves them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# module@version, the sha256 of its zip on the proxy, and the CRD file inside it. The zip is read
# directly rather than through `go mod download`, which refuses a module whose go.mod asks for a
# newer Go than the one built here (gateway-api v1.7.0 asks for 1.27); the pin stands in for the
# checksum database.
CRDS=(
  "github.com/prometheus-operator/prometheus-operator@v0.85.0 0bdb88ed823d0f2e86cf909638439b6ad1da744a228172c7411d9987527dc5d1 example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  "github.com/prometheus-operator/prometheus-operator@v0.85.0 0bdb88ed823d0f2e86cf909638439b6ad1da744a228172c7411d9987527dc5d1 example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
  "github.com/GoogleCloudPlatform/prometheus-engine@v0.13.0 240ddfcc19a5c7ea908ce947177e478c4da106de723b220718ee57036e96b47e charts/operator/crds/monitoring.googleapis.com_podmonitorings.yaml"
  "github.com/GoogleCloudPlatform/prometheus-engine@v0.13.0 240ddfcc19a5c7ea908ce947177e478c4da106de723b220718ee57036e96b47e charts/operator/crds/monitoring.googleapis.com_rules.yaml"
  "sigs.k8s.io/gateway-api@v1.7.0 f9041f93ad3b2572089afa858ceac74e0545e7769490ae774039ed0f841f3d6d config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
)
dest=".state/crds"
stamp="${dest}/.complete-$(printf '%s\n' "${CRDS[@]}" | sha256sum | cut -c1-16)"
if [[ -f "${stamp}" ]]; then
  exit 0
fi
rm -rf "${dest}"
mkdir -p "${dest}/.zips"
for entry in "${CRDS[@]}"; do
  read -r module sha256 file <<<"${entry}"
  log "crds: ${file##*/} from ${module}"
  zip="${dest}/.zips/${sha256}.zip"
  [[ -f "${zip}" ]] || go_module_zip "${module}" "${sha256}" "${zip}"
  python3 - "${zip}" "${module}/${file}" "${dest}/${file##*/}" <<'PY'
import sys
import zipfile

zip_path, member, target = sys.argv[1:]
with zipfile.ZipFile(zip_path) as archive, open(target, "wb") as out:
    out.write(archive.read(member))
PY
done
rm -rf "${dest}/.zips"
touch "${stamp}"
