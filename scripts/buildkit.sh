#!/usr/bin/env bash
# The local BuildKit daemon that Pulumi's docker-build provider builds the model image with.
#
#   scripts/buildkit.sh start|stop|status
#
# The provider drives only docker-container, kubernetes or remote builders; with none named it
# creates a docker-container builder from moby/buildkit on Docker Hub, out of reach here. So
# `start` runs buildkitd (from .bin/, scripts/toolchain.sh) as root with the OCI worker on
# Debian's runc, on a unix socket only, and registers it as the buildx `remote` builder
# $BUILDER_NAME in the project's Docker CLI configuration (DOCKER_CONFIG=.state/docker-config,
# with .bin/docker-buildx as its buildx plugin): the stack's `imageBuilder` names it.
# Builds use the host network (dockerd has no bridge), hence the network.host entitlement.
# The local registry on 127.0.0.1:5000 speaks TLS with the project's own CA (scripts/docker.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.bin"
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
BUILDKIT_STATE="$STATE_DIR/buildkit"
PIDFILE="$BUILDKIT_STATE/buildkitd.pid"
LOG="$BUILDKIT_STATE/buildkitd.log"
CONFIG="$BUILDKIT_STATE/buildkitd.toml"
SOCKET="$BUILDKIT_STATE/buildkitd.sock"
REGISTRY_ADDR="127.0.0.1:5000"
REGISTRY_CA="$STATE_DIR/registry/tls/ca/ca.crt"
BUILDER_NAME="${BUILDER_NAME:-gpu-serving-local}"
export DOCKER_CONFIG="${DOCKER_CONFIG:-$STATE_DIR/docker-config}"
START_TIMEOUT_SECONDS="${START_TIMEOUT_SECONDS:-60}"
STOP_TIMEOUT_SECONDS="${STOP_TIMEOUT_SECONDS:-60}"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

buildctl() { "$BIN/buildctl" --addr "unix://$SOCKET" "$@"; }
daemon_answers() { buildctl debug workers >/dev/null 2>&1; }

preflight() {
    local b
    for b in buildkitd buildctl docker-buildx; do
        [[ -x "$BIN/$b" ]] || die "missing .bin/$b; build it first: scripts/toolchain.sh $b"
    done
    command -v runc >/dev/null 2>&1 || die "runc is missing (Debian's runc; scripts/docker.sh start installs it with docker.io)"
    [[ "$(id -u)" == 0 ]] || die "buildkitd must be started as root"
    [[ -s "$REGISTRY_CA" ]] || die "no registry CA at $REGISTRY_CA; start the registry first: scripts/docker.sh start"
    # Unix socket paths are limited to 108 bytes.
    ((${#SOCKET} < 100)) || die "socket path too long for a unix socket: $SOCKET (set STATE_DIR)"
}

# Writes the daemon's configuration; exit status 0 when it changed.
write_config() {
    mkdir -p "$BUILDKIT_STATE/root"
    cat >"$CONFIG.new" <<CONF
# Written by scripts/buildkit.sh.
root = "$BUILDKIT_STATE/root"
insecure-entitlements = ["network.host"]

[grpc]
  address = ["unix://$SOCKET"]

[worker.oci]
  enabled = true
  binary = "$(command -v runc)"
  # Keep the cache bounded (pip cache mounts and layers of every build).
  gc = true
  gckeepstorage = "10GB"

[worker.containerd]
  enabled = false

# The project's registry, verified against its own CA. http = false: BuildKit would otherwise
# speak plain HTTP to a loopback registry.
[registry."$REGISTRY_ADDR"]
  http = false
  ca = ["$REGISTRY_CA"]
CONF
    if cmp -s "$CONFIG.new" "$CONFIG"; then
        rm -f "$CONFIG.new"
        return 1
    fi
    mv -f "$CONFIG.new" "$CONFIG"
}

start_daemon() {
    if write_config && live_pid "$PIDFILE" buildkitd >/dev/null; then
        log "configuration changed: restarting buildkitd"
        stop_pid buildkitd "$PIDFILE" buildkitd
    fi
    if daemon_answers; then
        log "buildkitd already answers on $SOCKET"
        return 0
    fi
    rm -f "$SOCKET"
    log "starting buildkitd (state $BUILDKIT_STATE, log $LOG)"
    setsid "$BIN/buildkitd" --config "$CONFIG" --oci-worker-net host </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
    until daemon_answers; do
        live_pid "$PIDFILE" buildkitd >/dev/null || { tail -n 20 "$LOG" >&2; die "buildkitd exited during start-up; see $LOG"; }
        ((SECONDS < deadline)) || die "buildkitd did not answer within ${START_TIMEOUT_SECONDS}s; see $LOG"
        sleep 0.2
    done
    log "buildkitd ready (pid $(<"$PIDFILE"))"
}

register_builder() {
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    ln -sfn "$BIN/docker-buildx" "$DOCKER_CONFIG/cli-plugins/docker-buildx"
    if docker buildx inspect "$BUILDER_NAME" >/dev/null 2>&1; then
        log "builder $BUILDER_NAME already registered"
        return 0
    fi
    docker buildx create --name "$BUILDER_NAME" --driver remote "unix://$SOCKET" >/dev/null
    log "builder $BUILDER_NAME registered (remote, unix://$SOCKET)"
}

main() {
    case "${1:-}" in
    start)
        preflight
        start_daemon
        register_builder
        ;;
    stop) stop_pid buildkitd "$PIDFILE" buildkitd ;;
    status)
        if daemon_answers; then
            log "buildkitd: running on $SOCKET"
            buildctl debug workers >&2
        else
            log "buildkitd: not running"
            return 1
        fi
        ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
    esac
}

main "$@"
