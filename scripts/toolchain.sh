#!/usr/bin/env bash
# Builds the project's tool binaries from Go modules into .bin/ (git-ignored).
#
#   scripts/toolchain.sh            engine tools: pulumi, pulumi-language-python (+ exec script),
#                                   pulumi-resource-kubernetes, pulumi-resource-docker-build,
#                                   buildkitd, buildctl, docker-buildx (the image builder)
#   scripts/toolchain.sh cluster    local control plane: etcd, kube-apiserver,
#                                   kube-controller-manager, kube-scheduler, kwok, kwokctl,
#                                   and kubectl to use it
#   scripts/toolchain.sh lint       actionlint (the workflow checker `make lint` runs)
#   scripts/toolchain.sh bench      ghz (the gRPC load generator `make bench` runs)
#   scripts/toolchain.sh metrics    prometheus and promtool (the rollout's analysis, the SLO rules)
#   scripts/toolchain.sh package    the Pulumi YAML language host (examples/model-server-yaml)
#   scripts/toolchain.sh all        all six
#   scripts/toolchain.sh verify     report the version of every binary present in .bin/
#   scripts/toolchain.sh NAME...    just those binaries (names as listed above)
#
# One module per upstream project under tools/<dir>/ (our own go.mod/go.sum, and our own main
# where upstream's cannot be built as a dependency). Binaries are built one at a time with
# `CGO_ENABLED=0 go build -p 2 -trimpath -ldflags "-s -w -X <version variable>=<version>"`.
# A binary is rebuilt only when its stamp changes: a hash of every file of its tools/<dir>/, the
# package, the build flags and ldflags, and `go env GOVERSION`. Go's module and build caches are
# reused (GOMODCACHE, GOCACHE), so a rerun with nothing changed takes a second or two, and each
# built binary is kept by stamp in $TOOLCHAIN_CACHE (default ~/.cache/gpu-model-serving/bin), so
# a clean clone of the same sources restores it instead of building.
#
# Layout: .bin/pulumi is the CLI; the Automation API driver (engine/) runs it through
# .bin/pulumi-engine/bin/pulumi with no language host beside it (so the engine can start Python
# policy packs through pulumi-analyzer-policy-python). .bin/cli/ holds the same CLI (a hard
# link) beside pulumi-language-python and its exec script: the plain `pulumi` users type
# (`eval "$(.venv/bin/python -m engine env)"` puts it first on PATH).
# If a `pulumi` of exactly $PULUMI_VERSION is on PATH (outside .bin/), it is used instead: the
# CLI and the language host are not built, and .bin/pulumi becomes a symlink to it.
#
# Providers are installed into a project-local PULUMI_HOME (.state/pulumi-home, override with
# PULUMI_HOME) with `pulumi plugin install resource NAME VERSION --file .bin/pulumi-resource-NAME`,
# so the engine finds the exact version the Python packages ask for without any download.
#
# Exits non-zero, after trying every requested binary, if any of them could not be built.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/.bin"
STAMPS="$BIN/.stamps"
# Built binaries by stamp, shared by every checkout on the machine like Go's own caches: a clean
# clone (CI) restores them instead of relinking. A stamp covers every input of the build.
BIN_CACHE="${TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-model-serving/bin}"
TOOLS="$ROOT/tools"
LOGS="$ROOT/.state/toolchain-logs"
export PULUMI_HOME="${PULUMI_HOME:-$ROOT/.state/pulumi-home}"

log() { printf '[toolchain] %s\n' "$*"; }
err() { printf '[toolchain] ERROR: %s\n' "$*" >&2; }

# Pins. The engine tools follow the Python program's pins in requirements.txt (the engine matches
# plugin versions exactly); Kubernetes follows tools/KUBERNETES_VERSION (shared with the OpenAPI
# schemas). Each tools/<dir>/go.mod must require the same version: checked before building.
pin() { # PACKAGE: its ==version in requirements.txt (engine/pins.py, the one reader of pins)
    python3 "$ROOT/engine/pins.py" "$ROOT/requirements.txt" "$1"
}
PULUMI_VERSION=$(pin pulumi)
KUBERNETES_PROVIDER_VERSION=$(pin pulumi-kubernetes)
DOCKER_BUILD_PROVIDER_VERSION=$(pin pulumi-docker-build)
KUBERNETES_VERSION=$(cat "$TOOLS/KUBERNETES_VERSION" 2>/dev/null)
KUBERNETES_VERSION=${KUBERNETES_VERSION#v}
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0
BUILDKIT_VERSION=0.34.2
BUILDX_VERSION=0.38.2
ACTIONLINT_VERSION=1.7.12
GHZ_VERSION=0.120.0
PROMETHEUS_VERSION=3.16.0            # the release, as `prometheus --version` reports it
PROMETHEUS_MODULE_VERSION=v0.316.0   # the same release as a Go module (3.16.0 -> v0.316.0)
PULUMI_YAML_VERSION=1.25.0
for v in PULUMI_VERSION KUBERNETES_PROVIDER_VERSION DOCKER_BUILD_PROVIDER_VERSION KUBERNETES_VERSION; do
    [ -n "${!v}" ] || { err "cannot read $v (requirements.txt pins / tools/KUBERNETES_VERSION)"; exit 2; }
done

ENGINE_TOOLS=(pulumi pulumi-language-python pulumi-resource-kubernetes pulumi-resource-docker-build
    buildkitd buildctl docker-buildx)
CLUSTER_TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl kubectl)
LINT_TOOLS=(actionlint)
BENCH_TOOLS=(ghz)
METRICS_TOOLS=(prometheus promtool)
PACKAGE_TOOLS=(pulumi-language-yaml)

command -v go >/dev/null 2>&1 || { err "go is not on PATH (Go 1.26 is needed; /usr/local/go/bin?)"; exit 2; }
GO_VERSION=$(go env GOVERSION)
export CGO_ENABLED=0
BUILD_FLAGS=(-p 2 -trimpath -buildvcs=false) # -p 2: the machine has 2 cores; links need 1-2 GB
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
# The checksum database has no entry for several pulumi modules; each go.sum pins their hashes.
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/pulumi"

# spec NAME: sets DIR (tools/ subdirectory), PKG (main package), XFLAGS (-X version flags), TAGS
# (build tags, most tools none), and MOD/MODVER (the module whose version tools/DIR/go.mod must require, checked against the pins
# above so the version ldflags cannot drift from what is built; empty for pseudo-versions).
spec() {
    MOD="" MODVER="" OUT="$BIN/$1" PREPARE="" TAGS=""
    local k8s_base="k8s.io/component-base/version" cg="k8s.io/client-go/pkg/version"
    local kv="v$KUBERNETES_VERSION" kmaj="${KUBERNETES_VERSION%%.*}" kmin
    kmin="${KUBERNETES_VERSION#*.}"; kmin="${kmin%%.*}"
    local k8s_x="-X $k8s_base.gitVersion=$kv -X $k8s_base.gitMajor=$kmaj -X $k8s_base.gitMinor=$kmin"
    k8s_x+=" -X $k8s_base.gitTreeState=clean -X $cg.gitVersion=$kv -X $cg.gitMajor=$kmaj -X $cg.gitMinor=$kmin"
    k8s_x+=" -X $cg.gitTreeState=clean"
    case "$1" in
    pulumi)
        DIR=pulumi PKG=github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
        MOD=github.com/pulumi/pulumi/pkg/v3 MODVER=v$PULUMI_VERSION
        XFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" ;;
    pulumi-language-python)
        # Only sdk/v3 up to v3.79.0 still contains the host (its own module is refused here).
        DIR=pulumi-language-python PKG=github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
        OUT="$BIN/cli/pulumi-language-python"
        XFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" ;;
    pulumi-resource-kubernetes)
        DIR=pulumi-resource-kubernetes PKG=. PREPARE=write_kubernetes_embeds
        XFLAGS="-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION" ;;
    buildkitd | buildctl)
        DIR=buildkit PKG="github.com/moby/buildkit/cmd/$1" MOD=github.com/moby/buildkit MODVER=v$BUILDKIT_VERSION
        XFLAGS="-X github.com/moby/buildkit/version.Version=v$BUILDKIT_VERSION" ;;
    docker-buildx)
        DIR=buildx PKG=github.com/docker/buildx/cmd/buildx MOD=github.com/docker/buildx MODVER=v$BUILDX_VERSION
        XFLAGS="-X github.com/docker/buildx/version.Version=v$BUILDX_VERSION" ;;
    pulumi-resource-docker-build)
        DIR=pulumi-resource-docker-build PKG=github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build
        MOD=github.com/pulumi/pulumi-docker-build MODVER=v$DOCKER_BUILD_PROVIDER_VERSION
        XFLAGS="-X github.com/pulumi/pulumi-docker-build/provider.Version=$DOCKER_BUILD_PROVIDER_VERSION" ;;
    etcd)
        DIR=etcd PKG=go.etcd.io/etcd/server/v3 MOD=go.etcd.io/etcd/server/v3 MODVER=v$ETCD_VERSION
        # etcd's version.Version is a constant: the module version is what it reports.
        XFLAGS="" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl)
        DIR=kubernetes PKG="k8s.io/kubernetes/cmd/$1" XFLAGS="$k8s_x"
        MOD=k8s.io/kubernetes MODVER=$kv ;;
    kwok | kwokctl)
        DIR=kwok PKG="sigs.k8s.io/kwok/cmd/$1" MOD=sigs.k8s.io/kwok MODVER=v$KWOK_VERSION
        # Same spelling as upstream source (no "v"); KubeVersion is the default kwokctl assumes.
        XFLAGS="-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBERNETES_VERSION" ;;
    actionlint)
        DIR=actionlint PKG=github.com/rhysd/actionlint/cmd/actionlint
        MOD=github.com/rhysd/actionlint MODVER=v$ACTIONLINT_VERSION
        XFLAGS="-X github.com/rhysd/actionlint.version=v$ACTIONLINT_VERSION" ;;
    ghz)
        DIR=ghz PKG=github.com/bojand/ghz/cmd/ghz MOD=github.com/bojand/ghz MODVER=v$GHZ_VERSION
        XFLAGS="-X main.version=$GHZ_VERSION" ;;
    pulumi-language-yaml)
        # Beside the plain CLI, which finds language hosts next to itself.
        DIR=pulumi-language-yaml PKG=github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml
        OUT="$BIN/cli/pulumi-language-yaml"
        MOD=github.com/pulumi/pulumi-yaml MODVER=v$PULUMI_YAML_VERSION
        XFLAGS="-X github.com/pulumi/pulumi-yaml/pkg/version.Version=v$PULUMI_YAML_VERSION" ;;
    prometheus | promtool)
        DIR=prometheus PKG="github.com/prometheus/prometheus/cmd/$1"
        MOD=github.com/prometheus/prometheus MODVER=$PROMETHEUS_MODULE_VERSION
        # Upstream's release tags are netgo and builtinassets (the web UI, built with npm: not
        # needed for the HTTP API). remove_all_sd leaves static and file service discovery,
        # all a local scrape uses, and halves the build.
        TAGS="netgo,remove_all_sd"
        XFLAGS="-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" ;;
    *) return 1 ;;
    esac
}

stamp_of() { # NAME: hash of the tool's inputs
    (
        cd "$TOOLS/$DIR" || exit 1
        find . -type f ! -name '*-embed.json' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
        printf '%s\n' "$1" "$PKG" "${BUILD_FLAGS[*]}" "$XFLAGS" "$GO_VERSION" "$(go env GOOS GOARCH)"
        # Only when set, so the stamps of the tools without tags stay what they were.
        [ -z "$TAGS" ] || printf 'tags %s\n' "$TAGS"
    ) | sha256sum | cut -d' ' -f1
}

# A pulumi of exactly the pinned version on PATH (not ours) replaces building CLI + host.
external_pulumi() {
    local p v
    p=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN" | paste -sd: -) command -v pulumi 2>/dev/null) || return 1
    v=$("$p" version 2>/dev/null) || return 1
    [ "$v" = "v$PULUMI_VERSION" ] && printf '%s\n' "$p"
}

# The download directory of MODULE at the version tools/DIR/go.mod requires (downloaded first:
# `go list -m` alone prints nothing for a module not in the cache yet).
module_dir() {
    local dir
    dir=$(cd "$TOOLS/$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2") || return 1
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        err "no download directory for $2"
        return 1
    fi
    printf '%s\n' "$dir"
}

# The provider's main embeds its schema (with the release version set) and its Terraform
# mapping; both are generated from the module download, as upstream's release build does.
# shellcheck disable=SC2317 # called through $PREPARE
write_kubernetes_embeds() {
    local src
    src=$(module_dir pulumi-resource-kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4) || return 1
    src+=/cmd/pulumi-resource-kubernetes
    python3 - "$src" "$TOOLS/pulumi-resource-kubernetes" "$KUBERNETES_PROVIDER_VERSION" <<'PY'
import json, pathlib, sys
src, dst, version = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
schema = json.loads((src / "schema.json").read_text())
schema["version"] = version
(dst / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
mapping = json.loads((src / "terraform-mapping.json").read_text())
(dst / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")))
PY
}

# The language host refuses to start without its exec script beside it.
install_language_host_exec() {
    local sdk
    sdk=$(module_dir pulumi-language-python github.com/pulumi/pulumi/sdk/v3) || return 1
    install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$BIN/cli/pulumi-language-python-exec"
}

# Two ways in to the one CLI. .bin/pulumi-engine/bin/pulumi (a symlink: the Automation API's
# PulumiCommand wants <root>/bin/pulumi) is what engine/ drives; nothing sits beside the
# resolved binary, so no language host is visible to it. .bin/cli/ is the plain CLI: the CLI
# finds language hosts beside its own executable with symlinks resolved, so it gets a hard link.
link_cli_layouts() {
    [ -e "$BIN/pulumi" ] || return 0
    mkdir -p "$BIN/pulumi-engine/bin" "$BIN/cli"
    ln -sfn ../../pulumi "$BIN/pulumi-engine/bin/pulumi"
    ln -f "$(readlink -f "$BIN/pulumi")" "$BIN/cli/pulumi" 2>/dev/null ||
        ln -sfn "$(readlink -f "$BIN/pulumi")" "$BIN/cli/pulumi"
}

# What every install of a binary ends with, built or restored: its companions and its stamp.
finish_install() {
    [ "$1" = pulumi-language-python ] && install_language_host_exec
    printf '%s\n' "$2" >"$STAMPS/$1"
}

FAILED=()
BUILT=()

build_one() {
    local name=$1 out stamp t0 secs logf
    spec "$name" || { err "unknown tool '$name'"; FAILED+=("$name"); return; }
    out=$OUT
    if [ ! -f "$TOOLS/$DIR/go.mod" ]; then
        err "$name: tools/$DIR/go.mod is missing"; FAILED+=("$name"); return
    fi
    local have
    if [ -n "$MOD" ] && have=$(cd "$TOOLS/$DIR" && go list -m -f '{{.Version}}' "$MOD" 2>/dev/null) &&
        [ "$have" != "$MODVER" ]; then
        err "$name: tools/$DIR/go.mod requires $MOD $have but scripts/toolchain.sh pins $MODVER"
        FAILED+=("$name")
        return
    fi
    stamp=$(stamp_of "$name")
    if [ -x "$out" ] && [ ! -L "$out" ] && [ "$(cat "$STAMPS/$name" 2>/dev/null)" = "$stamp" ]; then
        log "$name: up to date (stamp ${stamp:0:12})"
        return
    fi
    local cached="$BIN_CACHE/$name-$stamp"
    if [ -x "$cached" ]; then
        mkdir -p "$(dirname "$out")"
        cp -f "$cached" "$out.tmp" && mv -f "$out.tmp" "$out"
        finish_install "$name" "$stamp"
        log "$name: restored from the binary cache (stamp ${stamp:0:12})"
        return
    fi
    logf="$LOGS/$name.log"
    mkdir -p "$(dirname "$out")"
    if [ -n "$PREPARE" ] && ! "$PREPARE" >"$logf" 2>&1; then
        err "$name: preparing the sources failed; last lines of ${logf#"$ROOT"/}:"
        tail -n 8 "$logf" >&2
        FAILED+=("$name")
        return
    fi
    log "$name: building $PKG in tools/$DIR (log: ${logf#"$ROOT"/}) ..."
    t0=$(date +%s)
    # /usr/bin/time, where present, adds the peak memory of the compiler/linker to the log.
    local timer=() tags=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -f 'peak RSS %M KB')
    [ -z "$TAGS" ] || tags=(-tags "$TAGS")
    if ! (cd "$TOOLS/$DIR" && "${timer[@]}" go build "${BUILD_FLAGS[@]}" "${tags[@]}" -ldflags "-s -w $XFLAGS" -o "$out.tmp" "$PKG") >>"$logf" 2>&1; then
        rm -f "$out.tmp"
        secs=$(($(date +%s) - t0))
        if grep -q 'missing go.sum entry' "$logf"; then
            # go.sum could not be made: ask the proxy for the modules, to show why.
            (cd "$TOOLS/$DIR" && go mod download) >>"$logf" 2>&1
        fi
        err "$name: build failed after ${secs}s; last lines of ${logf#"$ROOT"/}:"
        grep -v '^go: downloading' "$logf" | tail -n 8 >&2
        if grep -q '403 Forbidden' "$logf"; then
            err "$name: the Go module proxy refuses a module this tool needs (see tools/README.md)"
        fi
        FAILED+=("$name")
        return
    fi
    mv -f "$out.tmp" "$out"
    finish_install "$name" "$stamp"
    # Keep one cached build per tool: the newest.
    mkdir -p "$BIN_CACHE"
    rm -f "$BIN_CACHE/$name"-*
    cp -f "$out" "$cached"
    secs=$(($(date +%s) - t0))
    log "$name: built in ${secs}s ($(du -h "$out" | cut -f1)$(grep -o 'peak RSS [0-9]* KB' "$logf" | tail -1 | sed 's/^/, /'))"
    BUILT+=("$name")
}

install_plugins() {
    # Copy each built provider into the project-local PULUMI_HOME at its exact version, so the
    # engine resolves it with no PATH lookup and no download.
    local cli=$BIN/pulumi name ver
    [ -x "$cli" ] || { log "plugins: no pulumi CLI in .bin/; provider install into PULUMI_HOME skipped"; return 0; }
    mkdir -p "$PULUMI_HOME"
    for name in kubernetes docker-build; do
        case $name in kubernetes) ver=$KUBERNETES_PROVIDER_VERSION ;; *) ver=$DOCKER_BUILD_PROVIDER_VERSION ;; esac
        [ -x "$BIN/pulumi-resource-$name" ] || continue
        if cmp -s "$BIN/pulumi-resource-$name" "$PULUMI_HOME/plugins/resource-$name-v$ver/pulumi-resource-$name"; then
            log "plugins: resource $name v$ver already installed"
            continue
        fi
        if PULUMI_SKIP_UPDATE_CHECK=true "$cli" plugin install resource "$name" "$ver" \
            --file "$BIN/pulumi-resource-$name" --reinstall >"$LOGS/plugin-$name.log" 2>&1; then
            log "plugins: resource $name v$ver installed into ${PULUMI_HOME#"$ROOT"/}"
        else
            err "plugins: installing resource $name v$ver failed (see ${LOGS#"$ROOT"/}/plugin-$name.log)"
            FAILED+=("plugin-$name")
        fi
    done
}

# Providers have no --version flag: start one and ask it over gRPC (GetPluginInfo), with the
# Python SDK's generated stubs from a virtualenv that has pulumi (VERIFY_PYTHON, else .venv).
provider_version() {
    local py=${VERIFY_PYTHON:-$ROOT/.venv/bin/python}
    "$py" -c 'import pulumi.runtime.proto' >/dev/null 2>&1 ||
        { echo "(not asked: $py cannot import pulumi; set VERIFY_PYTHON)"; return; }
    "$py" - "$1" <<'PY' 2>&1 | tail -1
import subprocess, sys
import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2_grpc
p = subprocess.Popen([sys.argv[1]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    port = p.stdout.readline().strip()
    stub = provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    print("v" + stub.GetPluginInfo(empty_pb2.Empty(), timeout=30).version)
finally:
    p.terminate()
    p.wait(10)
PY
}

verify() {
    local name v
    for name in "${ENGINE_TOOLS[@]}" "${CLUSTER_TOOLS[@]}" "${LINT_TOOLS[@]}" "${BENCH_TOOLS[@]}" "${METRICS_TOOLS[@]}" "${PACKAGE_TOOLS[@]}"; do
        spec "$name"
        [ -e "$OUT" ] || { printf '  %-30s (absent)\n' "$name"; continue; }
        case $name in
        pulumi) v=$("$BIN/pulumi" version 2>&1) ;;
        pulumi-language-python) v="${OUT#"$ROOT"/} (gRPC server; stamped like the CLI)" ;;
        pulumi-language-yaml) v="${OUT#"$ROOT"/} (gRPC server; v$PULUMI_YAML_VERSION)" ;;
        buildkitd | buildctl) v=$("$OUT" --version 2>&1 | head -1) ;;
        docker-buildx) v=$("$OUT" version 2>&1 | head -1) ;;
        pulumi-resource-*) v=$(provider_version "$BIN/$name") ;;
        etcd) v=$("$BIN/etcd" --version 2>&1 | head -1) ;;
        kube-*) v=$("$BIN/$name" --version 2>&1 | head -1) ;;
        kubectl) v=$("$BIN/kubectl" version --client 2>&1 | head -1) ;;
        kwok | kwokctl) v=$("$BIN/$name" --version 2>&1 | head -1) ;;
        actionlint) v=$("$BIN/actionlint" -version 2>&1 | head -1) ;;
        ghz) v=$("$BIN/ghz" --version 2>&1 | head -1) ;;
        prometheus | promtool) v=$("$OUT" --version 2>&1 | head -1) ;;
        esac
        printf '  %-30s %s\n' "$name" "$v"
    done
}

main() {
    mkdir -p "$BIN" "$STAMPS" "$LOGS"
    local targets=() t0 ext name
    [ $# -eq 0 ] && set -- engine
    for a in "$@"; do
        case $a in
        engine) targets+=("${ENGINE_TOOLS[@]}") ;;
        cluster) targets+=("${CLUSTER_TOOLS[@]}") ;;
        lint) targets+=("${LINT_TOOLS[@]}") ;;
        bench) targets+=("${BENCH_TOOLS[@]}") ;;
        metrics) targets+=("${METRICS_TOOLS[@]}") ;;
        package) targets+=("${PACKAGE_TOOLS[@]}") ;;
        all) targets+=("${ENGINE_TOOLS[@]}" "${CLUSTER_TOOLS[@]}" "${LINT_TOOLS[@]}" "${BENCH_TOOLS[@]}" "${METRICS_TOOLS[@]}" "${PACKAGE_TOOLS[@]}") ;;
        verify) verify; return 0 ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed 's/^# \{0,1\}//;$d'; return 0 ;;
        *) targets+=("$a") ;;
        esac
    done
    t0=$(date +%s)
    log "Go $GO_VERSION; output $BIN; GOMODCACHE $(go env GOMODCACHE); GOCACHE $(go env GOCACHE)"
    for name in "${targets[@]}"; do
        if [ "$name" = pulumi ] || [ "$name" = pulumi-language-python ]; then
            if ext=$(external_pulumi); then
                log "$name: using pulumi v$PULUMI_VERSION found on PATH at $ext (not building)"
                [ "$name" = pulumi ] && ln -sfn "$ext" "$BIN/pulumi"
                continue
            fi
            # Drop a stale symlink from an earlier run that used an external pulumi.
            [ -L "$BIN/$name" ] && rm -f "$BIN/$name"
        fi
        build_one "$name"
    done
    case " ${targets[*]} " in *" pulumi "*) link_cli_layouts ;; esac
    case " ${targets[*]} " in *" pulumi-resource-"*) install_plugins ;; esac
    log "done in $(($(date +%s) - t0))s${BUILT:+; built: ${BUILT[*]}}"
    if [ ${#FAILED[@]} -gt 0 ]; then
        err "not built: ${FAILED[*]} (details above and in ${LOGS#"$ROOT"/}/; see tools/README.md)"
        return 1
    fi
}

main "$@"; exit $?
