#!/usr/bin/env bash
# The project's local Kubernetes cluster: a real control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) with simulated nodes (kwok), plus the Docker engine and
# the registry on 127.0.0.1:5000 (scripts/docker.sh).
#
#   scripts/cluster.sh start    start Docker + registry, create the cluster and its nodes, wait
#                               until every node is Ready; prints the kubeconfig path on stdout
#   scripts/cluster.sh stop     delete the cluster (its processes, by kwokctl's pid files; checked
#                               gone), then scripts/docker.sh stop
#   scripts/cluster.sh status   what runs: components and PIDs, nodes, listening sockets, Docker
#   scripts/cluster.sh env      shell exports for using the cluster: eval "$(scripts/cluster.sh env)"
#
# Builds nothing: the binaries come from .bin/ (scripts/toolchain.sh cluster). kwokctl runs them
# with `--runtime binary` from those paths (and kubectl from .bin/ first on PATH, which kwokctl
# also calls), so nothing is ever downloaded. kwokctl's configuration is
# scripts/cluster/kwokctl.yaml (binds every component to 127.0.0.1; kwokctl's default is 0.0.0.0);
# the nodes are scripts/cluster/nodes.yaml (3 GPU nodes nvidia-l4, 2 CPU nodes).
#
# State: $STATE_DIR/kwok (KWOK_WORKDIR; default .state/kwok): the cluster's configuration, PKI
# (CA, admin client certificate), kubeconfig, etcd data, logs and pid files under
# clusters/gpu-serving/. Ports are picked free by kwokctl at creation, all on 127.0.0.1.
# The user's ~/.kube/config and ~/.kwok are neither read nor written.
#
# Every start checks, with `ss -ltunp`, that each listening socket of each process it started
# (the cluster's components, and dockerd/containerd/registry when scripts/docker.sh started them)
# is bound to 127.0.0.1; otherwise it deletes the cluster and fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.bin"
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
export STATE_DIR # scripts/docker.sh keeps its state there too
export KWOK_WORKDIR="$STATE_DIR/kwok"
CLUSTER_NAME="gpu-serving"
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$CLUSTER_NAME"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig.yaml"
KWOKCTL_CONFIG="$ROOT/scripts/cluster/kwokctl.yaml"
NODES_MANIFEST="$ROOT/scripts/cluster/nodes.yaml"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)
REQUIRED_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl kubectl)
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-120}"
STOP_TIMEOUT_SECONDS="${STOP_TIMEOUT_SECONDS:-30}"

# kwokctl runs `kubectl` from PATH (else downloads one): ours comes first. kubectl's discovery
# cache stays in the project's state, not ~/.kube/cache.
export PATH="$BIN:$PATH"
export KUBECACHEDIR="$STATE_DIR/kube-cache"
export KWOK_KUBECTL_BINARY="$BIN/kubectl"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

require_binaries() {
    local missing=() b
    for b in "${REQUIRED_BINARIES[@]}"; do
        [[ -x "$BIN/$b" ]] || missing+=("$b")
    done
    ((${#missing[@]} == 0)) ||
        die "missing in .bin/: ${missing[*]}. Build them first: scripts/toolchain.sh cluster"
    command -v ss >/dev/null 2>&1 || die "ss (iproute2) is needed to check the listening sockets"
    command -v go >/dev/null 2>&1 || die "go is needed to read kwok's default stages from its module (/usr/local/go/bin?)"
}

# -c: only our configuration, never ~/.kwok/kwok.yaml.
kwokctl() { "$BIN/kwokctl" -c "$KWOKCTL_CONFIG" --name "$CLUSTER_NAME" "$@"; }
kube() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# A PID that is running (a zombie is not), else failure.
# Numeric first: "/proc//stat" is /proc/stat, which would make an empty pid look alive.
alive() { [[ "$1" =~ ^[0-9]+$ ]] && [[ -r "/proc/$1/stat" ]] && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]; }

# "NAME PID" for each component whose pid file names a live process.
component_pids() {
    local name pidfile pid
    for name in "${COMPONENTS[@]}"; do
        pidfile="$CLUSTER_DIR/pids/$name.pid"
        [[ -s "$pidfile" ]] || continue
        pid="$(<"$pidfile")"
        [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" && printf '%s %s\n' "$name" "$pid"
    done
    return 0
}

# Docker processes that scripts/docker.sh started (its pid files; a reused daemon has none).
docker_pids() {
    local pidfile pid child
    for pidfile in "$STATE_DIR/docker/dockerd.pid" "$STATE_DIR/registry/registry.pid"; do
        [[ -s "$pidfile" ]] || continue
        pid="$(<"$pidfile")"
        { [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; } || continue
        printf '%s %s\n' "$(basename "$pidfile" .pid)" "$pid"
        for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
            printf '%s %s\n' "$(ps -o comm= -p "$child" 2>/dev/null || echo child)" "$child"
        done
    done
    return 0
}

server_url() { kube config view -o jsonpath='{.clusters[0].cluster.server}'; }

api_ready() { kube get --raw /readyz >/dev/null 2>&1; }

cluster_healthy() {
    [[ -f "$CLUSTER_DIR/kwok.yaml" ]] || return 1
    (($(component_pids | wc -l) == ${#COMPONENTS[@]})) && api_ready
}

# Prints "NAME PID ADDRESS" per listening socket of the given "NAME PID" lines; exit status 1
# if any of them is bound to something other than 127.0.0.1.
listeners() {
    local listing name pid addr host bad=0
    listing="$(ss -H -ltunp)"
    while read -r name pid; do
        [[ -n "$pid" ]] || continue
        grep -qF "pid=$pid," <<<"$listing" || printf '  %-24s pid %-7s (no TCP/UDP listener)\n' "$name" "$pid"
        while read -r addr; do
            [[ -n "$addr" ]] || continue
            host="${addr%:*}"
            if [[ "$host" == 127.0.0.1 ]]; then
                printf '  %-24s pid %-7s %s\n' "$name" "$pid" "$addr"
            else
                printf '  %-24s pid %-7s %s   <-- NOT 127.0.0.1\n' "$name" "$pid" "$addr"
                bad=1
            fi
        done < <(awk -v p="pid=$pid," 'index($0, p) {print $5}' <<<"$listing")
    done
    return "$bad"
}

check_listeners() {
    local table
    if ! table="$( { component_pids; docker_pids; } | listeners)"; then
        printf '%s\n' "$table" >&2
        # Do not leave a control plane reachable from outside: take the cluster down first.
        # (dockerd and the registry are scripts/docker.sh's; `scripts/cluster.sh stop` stops them.)
        delete_cluster
        die "a process started for the cluster listened on a non-loopback address (see above);" \
            "the cluster was deleted. Check scripts/cluster/kwokctl.yaml (options.bindAddress)"
    fi
    log "listening sockets (all on 127.0.0.1):"
    printf '%s\n' "$table" >&2
}

create_cluster() {
    if cluster_healthy; then
        log "cluster $CLUSTER_NAME already running"
        return 0
    fi
    if [[ -f "$CLUSTER_DIR/kwok.yaml" ]]; then
        # Left over from a crash or a reboot: its processes are gone or half there. The state is
        # disposable (the Pulumi program and the tests re-apply everything), so start over.
        log "cluster $CLUSTER_NAME exists but is not healthy: deleting it and creating it again"
        delete_cluster
    fi
    log "creating cluster $CLUSTER_NAME (state $CLUSTER_DIR)"
    # --kubeconfig "": do not add a context to ~/.kube/config (the cluster has its own file).
    if ! kwokctl create cluster \
        --runtime binary \
        --kubeconfig "" \
        --etcd-binary "$BIN/etcd" \
        --kube-apiserver-binary "$BIN/kube-apiserver" \
        --kube-controller-manager-binary "$BIN/kube-controller-manager" \
        --kube-scheduler-binary "$BIN/kube-scheduler" \
        --kwok-controller-binary "$BIN/kwok" \
        --wait "${READY_TIMEOUT_SECONDS}s" \
        >"$KWOK_WORKDIR/kwokctl-create.log" 2>&1; then
        tail -n 20 "$KWOK_WORKDIR/kwokctl-create.log" >&2
        die "kwokctl create cluster failed; see $KWOK_WORKDIR/kwokctl-create.log and $CLUSTER_DIR/logs/"
    fi
    local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
    until api_ready; do
        ((SECONDS < deadline)) || die "kube-apiserver not ready after ${READY_TIMEOUT_SECONDS}s; see $CLUSTER_DIR/logs/"
        sleep 0.2
    done
}

# kwok's default stages, as kwokctl would load them without enableCRDs (their source files in
# the kwok module we build; a status update frequency under their delays leaves them as is).
KWOK_DEFAULT_STAGES=(node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete)

apply_default_stages() {
    local module_dir stage files=()
    module_dir="$(cd "$ROOT/tools/kwok" && go mod download -json sigs.k8s.io/kwok |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" ||
        die "cannot download the kwok module (its default stages): go mod download sigs.k8s.io/kwok"
    for stage in "${KWOK_DEFAULT_STAGES[@]}"; do
        files+=(-f "$module_dir/kustomize/stage/$stage.yaml")
    done
    # The Stage CRD is installed by kwokctl; it is served a moment after the API is ready.
    local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
    until kube apply "${files[@]}" >/dev/null 2>"$KWOK_WORKDIR/stages.log"; do
        ((SECONDS < deadline)) || die "cannot apply kwok's default stages: $(cat "$KWOK_WORKDIR/stages.log")"
        sleep 0.5
    done
}

NODE_COLUMNS='NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status'
NODE_COLUMNS+=',GPU-PRODUCT:.metadata.labels.nvidia\.com/gpu\.product,GPUS:.status.allocatable.nvidia\.com/gpu'
NODE_COLUMNS+=',CPU:.status.allocatable.cpu,MEMORY:.status.allocatable.memory,TAINTS:.spec.taints[*].key'
show_nodes() { kube get nodes -o custom-columns="$NODE_COLUMNS" 2>&1 | sed 's/^/    /' >&2; }

create_nodes() {
    # Client-side apply: a Node's status (capacity, allocatable) is accepted on create only
    # through the main resource, which server-side apply would reset.
    kube apply -f "$NODES_MANIFEST" >/dev/null
    kube wait --for=condition=Ready -f "$NODES_MANIFEST" --timeout="${READY_TIMEOUT_SECONDS}s" >/dev/null ||
        die "nodes not Ready within ${READY_TIMEOUT_SECONDS}s; see $CLUSTER_DIR/logs/kwok-controller.log"
    # Ready as the scheduler sees it: the node lifecycle controller lifts the not-ready and
    # unreachable taints some seconds after the condition turns True (later on a loaded machine).
    local deadline=$((SECONDS + READY_TIMEOUT_SECONDS)) lifecycle_taints
    while lifecycle_taints="$(kube get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.taints[*].key}{"\n"}{end}' |
        grep -E 'node\.kubernetes\.io/' || true)" && [[ -n "$lifecycle_taints" ]]; do
        ((SECONDS < deadline)) ||
            die "nodes still tainted after ${READY_TIMEOUT_SECONDS}s: $lifecycle_taints; see $CLUSTER_DIR/logs/kube-controller-manager.log"
        sleep 0.5
    done
    log "nodes Ready:"
    show_nodes
}

# Waits until every PID in "NAME PID" lines on stdin has exited; TERM, then KILL, the stragglers
# (they are the cluster's own processes, named by kwokctl's pid files).
wait_gone() {
    local name pid entry left=() deadline
    local -a all=()
    # An empty input is one empty line from a here-string: no process to wait for.
    while read -r name pid; do [[ -n "$pid" ]] && all+=("$name:$pid"); done
    ((${#all[@]})) || return 0
    deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
    while :; do
        left=()
        for entry in "${all[@]}"; do alive "${entry#*:}" && left+=("$entry"); done
        ((${#left[@]})) || return 0
        ((SECONDS < deadline)) || break
        sleep 0.2
    done
    log "WARNING: still running after ${STOP_TIMEOUT_SECONDS}s: ${left[*]}; sending SIGKILL"
    for entry in "${left[@]}"; do kill -KILL "${entry#*:}" 2>/dev/null || true; done
    sleep 1
    for entry in "${left[@]}"; do
        alive "${entry#*:}" && die "could not stop ${entry%%:*} (pid ${entry#*:})"
    done
    return 0
}

delete_cluster() {
    [[ -f "$CLUSTER_DIR/kwok.yaml" ]] || { log "no cluster $CLUSTER_NAME"; return 0; }
    local running
    running="$(component_pids)"
    log "deleting cluster $CLUSTER_NAME${running:+ (pids $(awk '{print $2}' <<<"$running" | paste -sd' '))}"
    # --kubeconfig: kwokctl removes the cluster's context from that file; its own file (deleted
    # with the cluster) keeps ~/.kube/config untouched.
    kwokctl delete cluster --kubeconfig "$KUBECONFIG_PATH" >"$KWOK_WORKDIR/kwokctl-delete.log" 2>&1 ||
        { tail -n 20 "$KWOK_WORKDIR/kwokctl-delete.log" >&2; die "kwokctl delete cluster failed"; }
    wait_gone <<<"$running"
    log "cluster $CLUSTER_NAME deleted; none of its processes is left"
}

start() {
    require_binaries
    local t0=$SECONDS
    mkdir -p "$KWOK_WORKDIR"
    "$ROOT/scripts/docker.sh" start
    create_cluster
    check_listeners
    apply_default_stages
    create_nodes
    log "ready in $((SECONDS - t0))s: $(server_url) (Kubernetes $(kube get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p'))"
    log "use it with: eval \"\$(scripts/cluster.sh env)\"; kubectl get nodes"
    printf '%s\n' "$KUBECONFIG_PATH"
}

stop() {
    local t0=$SECONDS
    if [[ -x "$BIN/kwokctl" ]]; then
        delete_cluster
    elif [[ -d "$CLUSTER_DIR" ]]; then
        die "cannot delete $CLUSTER_DIR without .bin/kwokctl (scripts/toolchain.sh cluster)"
    fi
    "$ROOT/scripts/docker.sh" stop
    log "stopped in $((SECONDS - t0))s"
}

status() {
    local rc=0 running
    log "cluster $CLUSTER_NAME (state $CLUSTER_DIR)"
    if [[ ! -f "$CLUSTER_DIR/kwok.yaml" ]]; then
        log "  not created"
        rc=1
    else
        running="$(component_pids)"
        local name
        for name in "${COMPONENTS[@]}"; do
            if grep -q "^$name " <<<"$running"; then
                log "  $name: running (pid $(awk -v n="$name" '$1 == n {print $2}' <<<"$running"))"
            else
                log "  $name: NOT running"
                rc=1
            fi
        done
        if api_ready; then
            log "  kube-apiserver $(server_url): ready"
            log "  nodes:"
            show_nodes
        else
            log "  kube-apiserver: not ready"
            rc=1
        fi
        log "  kubeconfig: $KUBECONFIG_PATH"
    fi
    local table
    if table="$( { component_pids; docker_pids; } | listeners)"; then
        [[ -z "$table" ]] || { log "listening sockets (all on 127.0.0.1):"; printf '%s\n' "$table" >&2; }
    else
        log "listening sockets:"
        printf '%s\n' "$table" >&2
        rc=1
    fi
    "$ROOT/scripts/docker.sh" status || rc=1
    return "$rc"
}

env_exports() {
    # shellcheck disable=SC2016 # $PATH is expanded by the shell that evaluates this line
    printf 'export PATH=%q:"$PATH"\n' "$BIN"
    printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_PATH"
    printf 'export KUBECACHEDIR=%q\n' "$KUBECACHEDIR"
    printf 'export KWOK_WORKDIR=%q\n' "$KWOK_WORKDIR"
    printf 'export KWOK_KUBECTL_BINARY=%q\n' "$KWOK_KUBECTL_BINARY"
}

main() {
    case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) env_exports ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2
        ;;
    esac
}

main "$@"
