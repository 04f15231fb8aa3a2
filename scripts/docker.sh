#!/usr/bin/env bash
# Local Docker engine and image registry for development and CI.
#
#   scripts/docker.sh start|stop|status
#
# start: installs docker.io and docker-registry when missing, starts dockerd (host networking
#        only: no bridge, no iptables; unix socket only) unless a daemon already answers on the
#        default socket, then the registry on 127.0.0.1:5000 unless one already answers there.
# stop:  stops what `start` started, by the PIDs in its pid files, and waits for them to exit.
#        A daemon or registry that was already running is left alone.
#
# State (data-root, pid files, logs, registry storage) lives in $STATE_DIR (default .state/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
DOCKER_STATE="$STATE_DIR/docker"
REGISTRY_STATE="$STATE_DIR/registry"
DOCKERD_PIDFILE="$DOCKER_STATE/dockerd.pid"
DOCKERD_LOG="$DOCKER_STATE/dockerd.log"
REGISTRY_PIDFILE="$REGISTRY_STATE/registry.pid"
REGISTRY_LOG="$REGISTRY_STATE/registry.log"
REGISTRY_CONFIG="$REGISTRY_STATE/config.yml"
# TLS with a CA of our own, so every client verifies the registry: the docker-build provider
# (engine/environment.py adds the CA directory to SSL_CERT_DIR), BuildKit (its config), the
# tests. dockerd treats 127.0.0.0/8 as an insecure registry and accepts it as well.
REGISTRY_TLS="$REGISTRY_STATE/tls"
REGISTRY_CA="$REGISTRY_TLS/ca/ca.crt"
REGISTRY_ADDR="127.0.0.1:5000"
# The default socket, so every client (docker CLI, Pulumi's docker-build provider) finds the
# engine without DOCKER_HOST.
DOCKER_SOCKET="/var/run/docker.sock"
START_TIMEOUT_SECONDS="${START_TIMEOUT_SECONDS:-60}"
# dockerd stops running containers first (up to its shutdown timeout, 15 s by default).
STOP_TIMEOUT_SECONDS="${STOP_TIMEOUT_SECONDS:-60}"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# Talk to the engine on the default socket whatever DOCKER_HOST or a docker context says.
docker_cli() { DOCKER_HOST="unix://$DOCKER_SOCKET" docker "$@"; }

daemon_answers() { docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1; }

registry_answers() {
    curl -fsS --max-time 2 --cacert "$REGISTRY_CA" -o /dev/null "https://$REGISTRY_ADDR/v2/" 2>/dev/null
}

install_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v runc >/dev/null 2>&1 || missing+=(runc) # also BuildKit's worker (scripts/buildkit.sh)
    command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    ((${#missing[@]} == 0)) || "$ROOT/scripts/apt-install.sh" "${missing[@]}"
}

# The docker CLI on PATH may be newer than the Debian engine; it negotiates the API version.
check_cli() {
    command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH"
    local client server
    client="$(docker_cli version --format '{{.Client.Version}} (API {{.Client.APIVersion}})' 2>/dev/null || true)"
    server="$(docker_cli version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || true)"
    log "docker CLI $(command -v docker) ${client:-?} -> engine ${server:-?}"
}

start_dockerd() {
    local pid launched=""
    if daemon_answers; then
        if live_pid "$DOCKERD_PIDFILE" dockerd >/dev/null; then
            log "dockerd already running (ours, pid $(<"$DOCKERD_PIDFILE"))"
        else
            log "a Docker daemon already answers on $DOCKER_SOCKET: reusing it (it will not be stopped)"
        fi
        return 0
    fi
    if pid="$(live_pid "$DOCKERD_PIDFILE" dockerd)"; then
        log "dockerd (pid $pid) is running but not answering yet"
    else
        [[ "$(id -u)" == 0 ]] || die "dockerd must be started as root"
        [[ -S "$DOCKER_SOCKET" ]] && rm -f "$DOCKER_SOCKET" # stale socket of a dead daemon
        mkdir -p "$DOCKER_STATE/data" "$(exec_root)"
        log "starting dockerd (data-root $DOCKER_STATE/data, log $DOCKERD_LOG)"
        # --bridge=none/--iptables=false: no docker0, no NAT rules; containers and builds use
        # --network host. Only the unix socket, no TCP listener.
        setsid dockerd \
            --host "unix://$DOCKER_SOCKET" \
            --bridge=none \
            --iptables=false \
            --ip-masq=false \
            --data-root "$DOCKER_STATE/data" \
            --exec-root "$(exec_root)" \
            --pidfile "$DOCKERD_PIDFILE" \
            </dev/null >>"$DOCKERD_LOG" 2>&1 &
        launched=$!
    fi
    local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
    until daemon_answers; do
        if [[ -n "${launched:-}" ]] && ! kill -0 "$launched" 2>/dev/null; then
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            die "dockerd exited during start-up; see $DOCKERD_LOG"
        fi
        ((SECONDS < deadline)) || { tail -n 20 "$DOCKERD_LOG" >&2 || true; die "dockerd did not answer within ${START_TIMEOUT_SECONDS}s; see $DOCKERD_LOG"; }
        sleep 0.5
    done
    local driver
    driver="$(docker_cli info --format '{{.Driver}}')"
    log "dockerd ready (pid $(<"$DOCKERD_PIDFILE"), storage driver $driver)"
    [[ "$driver" == overlay2 ]] || log "WARNING: storage driver is $driver, not overlay2: builds will be slow and large"
}

# Unix socket paths are limited to 108 bytes; containerd puts its sockets under the exec-root,
# so a deep checkout falls back to a short path under /run.
exec_root() {
    local preferred="$DOCKER_STATE/run"
    if ((${#preferred} <= 60)); then
        printf '%s' "$preferred"
    else
        printf '/run/docker-%s' "$(printf '%s' "$DOCKER_STATE" | sha256sum | cut -c1-12)"
    fi
}

# A CA and a server certificate for 127.0.0.1 and localhost, made once; the CA's key never
# leaves the state directory.
write_registry_certificates() {
    [[ -s "$REGISTRY_CA" && -s "$REGISTRY_TLS/server.crt" ]] && return 0
    mkdir -p "$REGISTRY_TLS/ca"
    chmod 0700 "$REGISTRY_TLS"
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=gpu-model-serving local registry CA" \
        -keyout "$REGISTRY_TLS/ca.key" -out "$REGISTRY_CA" 2>/dev/null
    openssl req -newkey rsa:3072 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$REGISTRY_TLS/server.key" -out "$REGISTRY_TLS/server.csr" 2>/dev/null
    openssl x509 -req -in "$REGISTRY_TLS/server.csr" -CA "$REGISTRY_CA" -CAkey "$REGISTRY_TLS/ca.key" \
        -CAcreateserial -days 825 -out "$REGISTRY_TLS/server.crt" \
        -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') 2>/dev/null
    log "registry TLS: CA $REGISTRY_CA"
}

write_registry_config() {
    mkdir -p "$REGISTRY_STATE/data"
    write_registry_certificates
    # No http.debug section: the debug/metrics listener stays off.
    cat >"$REGISTRY_CONFIG" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_STATE/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  tls:
    certificate: $REGISTRY_TLS/server.crt
    key: $REGISTRY_TLS/server.key
  headers:
    X-Content-Type-Options: [nosniff]
EOF
}

start_registry() {
    local pid
    if registry_answers; then
        if pid="$(live_pid "$REGISTRY_PIDFILE" docker-registry)"; then
            log "registry already running (ours, pid $pid) on $REGISTRY_ADDR"
        else
            log "a registry already answers on $REGISTRY_ADDR: reusing it (it will not be stopped)"
        fi
        return 0
    fi
    if ! pid="$(live_pid "$REGISTRY_PIDFILE" docker-registry)"; then
        write_registry_config
        log "starting registry on $REGISTRY_ADDR (storage $REGISTRY_STATE/data, log $REGISTRY_LOG)"
        setsid docker-registry serve "$REGISTRY_CONFIG" </dev/null >>"$REGISTRY_LOG" 2>&1 &
        pid=$!
        echo "$pid" >"$REGISTRY_PIDFILE"
    fi
    local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
    until registry_answers; do
        if ! live_pid "$REGISTRY_PIDFILE" docker-registry >/dev/null; then
            tail -n 20 "$REGISTRY_LOG" >&2 || true
            die "registry exited during start-up (is $REGISTRY_ADDR taken?); see $REGISTRY_LOG"
        fi
        ((SECONDS < deadline)) || die "registry did not answer within ${START_TIMEOUT_SECONDS}s; see $REGISTRY_LOG"
        sleep 0.2
    done
    log "registry ready (pid $pid): https://$REGISTRY_ADDR/v2/ (CA $REGISTRY_CA)"
}

# dockerd leaves the bind mount of its network namespace (<exec-root>/netns/default) behind
# when it exits; release whatever is still mounted under our exec-root once it is gone.
release_mounts() {
    local root mount
    root="$(exec_root)"
    live_pid "$DOCKERD_PIDFILE" dockerd >/dev/null && return 0
    while read -r mount; do
        umount "$mount" && log "released mount $mount"
    done < <(awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r)
}

status() {
    local rc=0 pid
    if daemon_answers; then
        if pid="$(live_pid "$DOCKERD_PIDFILE" dockerd)"; then
            log "dockerd: running (ours, pid $pid)"
        else
            log "dockerd: running (not ours)"
        fi
        check_cli
    else
        log "dockerd: not running"
        rc=1
    fi
    if registry_answers; then
        if pid="$(live_pid "$REGISTRY_PIDFILE" docker-registry)"; then
            log "registry: running on $REGISTRY_ADDR (ours, pid $pid)"
        else
            log "registry: running on $REGISTRY_ADDR (not ours)"
        fi
    else
        log "registry: not running"
        rc=1
    fi
    return "$rc"
}

main() {
    case "${1:-}" in
    start)
        install_packages
        mkdir -p "$DOCKER_STATE" "$REGISTRY_STATE"
        start_dockerd
        check_cli
        start_registry
        ;;
    stop)
        # Registry first: it does not depend on the engine, but a push in flight does.
        stop_pid registry "$REGISTRY_PIDFILE" docker-registry
        stop_pid dockerd "$DOCKERD_PIDFILE" dockerd
        release_mounts
        ;;
    status) status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
    esac
}

main "$@"
