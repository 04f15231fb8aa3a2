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
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# The shared pins, read once. The engine tools follow the Python program's pins in
# requirements.txt (the engine matches plugin versions exactly); Kubernetes follows
# tools/KUBERNETES_VERSION (shared with the OpenAPI schemas). A version only one tool uses is
# pinned in that tool's branch of spec(). Each tools/<dir>/go.mod must require the same version:
# checked before building.
pin() { # PACKAGE: its ==version in requirements.txt (engine/pins.py, the one reader of pins)
    python3 "$ROOT/engine/pins.py" "$ROOT/requirements.txt" "$1"
}
PULUMI_VERSION=$(pin pulumi)
KUBERNETES_PROVIDER_VERSION=$(pin pulumi-kubernetes)
DOCKER_BUILD_PROVIDER_VERSION=$(pin pulumi-docker-build)
KUBERNETES_VERSION=$(cat "$TOOLS/KUBERNETES_VERSION" 2>/dev/null)
KUBERNETES_VERSION=${KUBERNETES_VERSION#v}
for v in PULUMI_VERSION KUBERNETES_PROVIDER_VERSION DOCKER_BUILD_PROVIDER_VERSION KUBERNETES_VERSION; do
    [ -n "${!v}" ] || { error "cannot read $v (requirements.txt pins / tools/KUBERNETES_VERSION)"; exit 2; }
done
# The version ldflags of every Kubernetes binary (component-base and client-go both report it).
KUBERNETES_MINOR=${KUBERNETES_VERSION#*.}
KUBERNETES_XFLAGS=""
for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    KUBERNETES_XFLAGS+=" -X $v.gitVersion=v$KUBERNETES_VERSION -X $v.gitMajor=${KUBERNETES_VERSION%%.*}"
    KUBERNETES_XFLAGS+=" -X $v.gitMinor=${KUBERNETES_MINOR%%.*} -X $v.gitTreeState=clean"
done
KUBERNETES_XFLAGS=${KUBERNETES_XFLAGS# }

command -v go >/dev/null 2>&1 || { error "go is not on PATH (Go 1.26 is needed; /usr/local/go/bin?)"; exit 2; }
GO_VERSION=$(go env GOVERSION)
export CGO_ENABLED=0
BUILD_FLAGS=(-p 2 -trimpath -buildvcs=false) # -p 2: the machine has 2 cores; links need 1-2 GB
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
# The checksum database has no entry for several pulumi modules; each go.sum pins their hashes.
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/pulumi"

# Every tool, in the order `all` builds and `verify` reports them. A group (engine, cluster, ...)
# is the tools whose spec says so, in this order. Adding a tool: its name here, its branch in spec.
ALL_TOOLS=(pulumi pulumi-language-python pulumi-resource-kubernetes pulumi-resource-docker-build
    buildkitd buildctl docker-buildx
    etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl kubectl
    actionlint ghz prometheus promtool pulumi-language-yaml)

# spec NAME: everything about one tool (1 for an unknown name). Sets
#   GROUP      the command-line group it belongs to
#   DIR, PKG   its module under tools/ and the main package built there
#   MOD        the upstream module; MODVER the version tools/DIR/go.mod must require (checked
#              before building, so the version ldflags cannot drift from what is built; empty
#              for a pseudo-version: not checked)
#   XFLAGS     -X version flags; TAGS build tags (most tools none)
#   OUT        the output path (default .bin/NAME)
#   PREPARE    a function run before building (generated sources)
#   COMPANION  a function run after every install, built or restored (files it needs beside it)
#   AFTER      a function run once after all the requested tools, when this one is among them
#   PLUGIN     "NAME VERSION": installed as that resource plugin into PULUMI_HOME
#   EXTERNAL   link or skip: a pulumi of the pinned version on PATH replaces it (link: .bin/NAME
#              becomes a symlink to that pulumi)
#   VERIFY     how `verify` asks for its version: the binary's arguments (the first line of its
#              output is reported; default --version), or a function of this script and its
#              arguments (called with OUT first)
# The functions named see the tool's values. DIR, PKG, XFLAGS and TAGS go into its build stamp.
spec() {
    GROUP="" DIR="" PKG="" MOD="" MODVER="" XFLAGS="" TAGS="" OUT="$BIN/$1"
    PREPARE="" COMPANION="" AFTER="" PLUGIN="" EXTERNAL="" VERIFY=(--version)
    local version
    case "$1" in
    pulumi)
        GROUP=engine DIR=pulumi PKG=github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
        MOD=github.com/pulumi/pulumi/pkg/v3 MODVER=v$PULUMI_VERSION
        XFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
        EXTERNAL=link AFTER=link_cli_layouts VERIFY=(version) ;;
    pulumi-language-python)
        # Only sdk/v3 up to v3.79.0 still contains the host (its own module is refused here).
        GROUP=engine DIR=pulumi-language-python PKG=github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
        MOD=github.com/pulumi/pulumi/sdk/v3 MODVER=v3.79.0 OUT="$BIN/cli/pulumi-language-python"
        XFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
        COMPANION=install_language_host_exec EXTERNAL=skip VERIFY=(language_host "stamped like the CLI") ;;
    pulumi-resource-kubernetes)
        # Our own main (PKG .); the module's version is the pseudo-version of the release commit.
        GROUP=engine DIR=pulumi-resource-kubernetes PKG=. PREPARE=write_kubernetes_embeds
        MOD=github.com/pulumi/pulumi-kubernetes/provider/v4
        XFLAGS="-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION"
        PLUGIN="kubernetes $KUBERNETES_PROVIDER_VERSION" AFTER=install_plugins VERIFY=(provider_version) ;;
    pulumi-resource-docker-build)
        GROUP=engine DIR=pulumi-resource-docker-build PKG=github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build
        MOD=github.com/pulumi/pulumi-docker-build MODVER=v$DOCKER_BUILD_PROVIDER_VERSION
        XFLAGS="-X github.com/pulumi/pulumi-docker-build/provider.Version=$DOCKER_BUILD_PROVIDER_VERSION"
        PLUGIN="docker-build $DOCKER_BUILD_PROVIDER_VERSION" AFTER=install_plugins VERIFY=(provider_version) ;;
    buildkitd | buildctl)
        version=0.34.2
        GROUP=engine DIR=buildkit PKG="github.com/moby/buildkit/cmd/$1" MOD=github.com/moby/buildkit MODVER=v$version
        XFLAGS="-X github.com/moby/buildkit/version.Version=v$version" ;;
    docker-buildx)
        version=0.38.2
        GROUP=engine DIR=buildx PKG=github.com/docker/buildx/cmd/buildx MOD=github.com/docker/buildx MODVER=v$version
        XFLAGS="-X github.com/docker/buildx/version.Version=v$version" VERIFY=(version) ;;
    etcd)
        version=3.6.16
        GROUP=cluster DIR=etcd PKG=go.etcd.io/etcd/server/v3 MOD=go.etcd.io/etcd/server/v3 MODVER=v$version
        # etcd's version.Version is a constant: the module version is what it reports.
        XFLAGS="" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl)
        GROUP=cluster DIR=kubernetes PKG="k8s.io/kubernetes/cmd/$1" XFLAGS="$KUBERNETES_XFLAGS"
        MOD=k8s.io/kubernetes MODVER=v$KUBERNETES_VERSION
        [ "$1" != kubectl ] || VERIFY=(version --client) ;;
    kwok | kwokctl)
        version=0.8.0
        GROUP=cluster DIR=kwok PKG="sigs.k8s.io/kwok/cmd/$1" MOD=sigs.k8s.io/kwok MODVER=v$version
        # Same spelling as upstream source (no "v"); KubeVersion is the default kwokctl assumes.
        XFLAGS="-X sigs.k8s.io/kwok/pkg/consts.Version=$version -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBERNETES_VERSION" ;;
    actionlint)
        version=1.7.12
        GROUP=lint DIR=actionlint PKG=github.com/rhysd/actionlint/cmd/actionlint
        MOD=github.com/rhysd/actionlint MODVER=v$version
        XFLAGS="-X github.com/rhysd/actionlint.version=v$version" VERIFY=(-version) ;;
    ghz)
        version=0.120.0
        GROUP=bench DIR=ghz PKG=github.com/bojand/ghz/cmd/ghz MOD=github.com/bojand/ghz MODVER=v$version
        XFLAGS="-X main.version=$version" ;;
    prometheus | promtool)
        version=3.16.0 # the release, as `prometheus --version` reports it
        GROUP=metrics DIR=prometheus PKG="github.com/prometheus/prometheus/cmd/$1"
        MOD=github.com/prometheus/prometheus MODVER=v0.316.0 # the same release as a Go module (3.16.0 -> v0.316.0)
        # Upstream's release tags are netgo and builtinassets (the web UI, built with npm: not
        # needed for the HTTP API). remove_all_sd leaves static and file service discovery,
        # all a local scrape uses, and halves the build.
        TAGS="netgo,remove_all_sd"
        XFLAGS="-X github.com/prometheus/common/version.Version=$version" ;;
    pulumi-language-yaml)
        version=1.25.0
        # Beside the plain CLI, which finds language hosts next to itself.
        GROUP=package DIR=pulumi-language-yaml PKG=github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml
        OUT="$BIN/cli/pulumi-language-yaml"
        MOD=github.com/pulumi/pulumi-yaml MODVER=v$version
        XFLAGS="-X github.com/pulumi/pulumi-yaml/pkg/version.Version=v$version" VERIFY=(language_host "v$version") ;;
    *) return 1 ;;
    esac
}

# tools_in GROUP: the names of its tools, one a line, in ALL_TOOLS order (none: not a group).
tools_in() {
    local name
    for name in "${ALL_TOOLS[@]}"; do
        spec "$name"
        [ "$GROUP" != "$1" ] || printf '%s\n' "$name"
    done
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
# shellcheck disable=SC2317 # called by the steps below
module_dir() {
    local dir
    dir=$(cd "$TOOLS/$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2") || return 1
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        error "no download directory for $2"
        return 1
    fi
    printf '%s\n' "$dir"
}

# The provider's main embeds its schema (with the release version set) and its Terraform
# mapping; both are generated from the module download, as upstream's release build does.
# shellcheck disable=SC2317 # called through $PREPARE
write_kubernetes_embeds() {
    local src
    src=$(module_dir "$DIR" "$MOD") || return 1
    src+=/cmd/pulumi-resource-kubernetes
    python3 - "$src" "$TOOLS/$DIR" "$KUBERNETES_PROVIDER_VERSION" <<'PY'
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
# shellcheck disable=SC2317 # called through $COMPANION
install_language_host_exec() {
    local sdk
    sdk=$(module_dir "$DIR" "$MOD") || return 1
    install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$(dirname "$OUT")/pulumi-language-python-exec"
}

# Two ways in to the one CLI. .bin/pulumi-engine/bin/pulumi (a symlink: the Automation API's
# PulumiCommand wants <root>/bin/pulumi) is what engine/ drives; nothing sits beside the
# resolved binary, so no language host is visible to it. .bin/cli/ is the plain CLI: the CLI
# finds language hosts beside its own executable with symlinks resolved, so it gets a hard link.
# shellcheck disable=SC2317 # called through $AFTER
link_cli_layouts() {
    [ -e "$BIN/pulumi" ] || return 0
    mkdir -p "$BIN/pulumi-engine/bin" "$BIN/cli"
    ln -sfn ../../pulumi "$BIN/pulumi-engine/bin/pulumi"
    ln -f "$(readlink -f "$BIN/pulumi")" "$BIN/cli/pulumi" 2>/dev/null ||
        ln -sfn "$(readlink -f "$BIN/pulumi")" "$BIN/cli/pulumi"
}

# Copy each built provider (every tool with a PLUGIN) into the project-local PULUMI_HOME at its
# exact version, so the engine resolves it with no PATH lookup and no download.
# shellcheck disable=SC2317 # called through $AFTER
install_plugins() {
    local cli=$BIN/pulumi tool name ver
    [ -x "$cli" ] || { log "plugins: no pulumi CLI in .bin/; provider install into PULUMI_HOME skipped"; return 0; }
    mkdir -p "$PULUMI_HOME"
    for tool in "${ALL_TOOLS[@]}"; do
        spec "$tool"
        if [ -z "$PLUGIN" ] || [ ! -x "$OUT" ]; then continue; fi
        read -r name ver <<<"$PLUGIN"
        if cmp -s "$OUT" "$PULUMI_HOME/plugins/resource-$name-v$ver/pulumi-resource-$name"; then
            log "plugins: resource $name v$ver already installed"
            continue
        fi
        if PULUMI_SKIP_UPDATE_CHECK=true "$cli" plugin install resource "$name" "$ver" \
            --file "$OUT" --reinstall >"$LOGS/plugin-$name.log" 2>&1; then
            log "plugins: resource $name v$ver installed into ${PULUMI_HOME#"$ROOT"/}"
        else
            error "plugins: installing resource $name v$ver failed (see ${LOGS#"$ROOT"/}/plugin-$name.log)"
            FAILED+=("plugin-$name")
        fi
    done
}

# Language hosts are gRPC servers with no version flag: where it is, and NOTE.
# shellcheck disable=SC2317 # called through $VERIFY
language_host() { printf '%s (gRPC server; %s)\n' "${1#"$ROOT"/}" "$2"; }

# Providers have no --version flag: start one and ask it over gRPC (GetPluginInfo), with the
# Python SDK's generated stubs from a virtualenv that has pulumi (VERIFY_PYTHON, else .venv).
# shellcheck disable=SC2317 # called through $VERIFY
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

# What every install of a binary ends with, built or restored: its companions and its stamp.
finish_install() {
    [ -z "$COMPANION" ] || "$COMPANION"
    printf '%s\n' "$2" >"$STAMPS/$1"
}

FAILED=()
BUILT=()

build_one() {
    local name=$1 out stamp t0 secs logf
    spec "$name" || { error "unknown tool '$name'"; FAILED+=("$name"); return; }
    out=$OUT
    if [ ! -f "$TOOLS/$DIR/go.mod" ]; then
        error "$name: tools/$DIR/go.mod is missing"; FAILED+=("$name"); return
    fi
    local have
    if [ -n "$MODVER" ] && have=$(cd "$TOOLS/$DIR" && go list -m -f '{{.Version}}' "$MOD" 2>/dev/null) &&
        [ "$have" != "$MODVER" ]; then
        error "$name: tools/$DIR/go.mod requires $MOD $have but scripts/toolchain.sh pins $MODVER"
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
        error "$name: preparing the sources failed; last lines of ${logf#"$ROOT"/}:"
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
        error "$name: build failed after ${secs}s; last lines of ${logf#"$ROOT"/}:"
        grep -v '^go: downloading' "$logf" | tail -n 8 >&2
        if grep -q '403 Forbidden' "$logf"; then
            error "$name: the Go module proxy refuses a module this tool needs (see tools/README.md)"
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

verify() {
    local name v
    for name in "${ALL_TOOLS[@]}"; do
        spec "$name"
        [ -e "$OUT" ] || { printf '  %-30s (absent)\n' "$name"; continue; }
        if declare -F -- "${VERIFY[0]}" >/dev/null; then
            v=$("${VERIFY[0]}" "$OUT" "${VERIFY[@]:1}")
        else
            v=$("$OUT" "${VERIFY[@]}" 2>&1 | head -1)
        fi
        printf '  %-30s %s\n' "$name" "$v"
    done
}

main() {
    mkdir -p "$BIN" "$STAMPS" "$LOGS"
    local targets=() group=() after=() t0 ext name a step
    [ $# -eq 0 ] && set -- engine
    for a in "$@"; do
        case $a in
        all) targets+=("${ALL_TOOLS[@]}") ;;
        verify) verify; return 0 ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed 's/^# \{0,1\}//;$d'; return 0 ;;
        *)
            # A group's name (engine, cluster, ...) or a tool's.
            mapfile -t group < <(tools_in "$a")
            if [ ${#group[@]} -gt 0 ]; then targets+=("${group[@]}"); else targets+=("$a"); fi ;;
        esac
    done
    t0=$(date +%s)
    log "Go $GO_VERSION; output $BIN; GOMODCACHE $(go env GOMODCACHE); GOCACHE $(go env GOCACHE)"
    for name in "${targets[@]}"; do
        if spec "$name" && [ -n "$EXTERNAL" ]; then
            if ext=$(external_pulumi); then
                log "$name: using pulumi v$PULUMI_VERSION found on PATH at $ext (not building)"
                [ "$EXTERNAL" = link ] && ln -sfn "$ext" "$BIN/$name"
                continue
            fi
            # Drop a stale symlink from an earlier run that used an external pulumi.
            [ -L "$BIN/$name" ] && rm -f "$BIN/$name"
        fi
        build_one "$name"
    done
    # The AFTER steps of the requested tools, each once, in ALL_TOOLS order.
    for name in "${ALL_TOOLS[@]}"; do
        spec "$name"
        [ -n "$AFTER" ] && in_list "$name" "${targets[@]}" && ! in_list "$AFTER" "${after[@]}" && after+=("$AFTER")
    done
    for step in "${after[@]}"; do "$step"; done
    log "done in $(($(date +%s) - t0))s${BUILT:+; built: ${BUILT[*]}}"
    if [ ${#FAILED[@]} -gt 0 ]; then
        error "not built: ${FAILED[*]} (details above and in ${LOGS#"$ROOT"/}/; see tools/README.md)"
        return 1
    fi
}

main "$@"; exit $?
