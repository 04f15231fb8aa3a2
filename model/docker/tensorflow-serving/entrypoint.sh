#!/bin/bash
# Entrypoint of the tensorflow-serving image target.
#
# tensorflow_model_server installs no SIGTERM handler, and as PID 1 (or under the upstream
# image's non-exec'ing bash entrypoint) an unhandled SIGTERM is simply ignored: Kubernetes then
# waits out the whole grace period and SIGKILLs the pod. This wrapper stays PID 1, runs the
# server as its child and turns SIGTERM into a drain:
#   1. keep serving for DRAIN_TIMEOUT_SECONDS, while the pod's removal from the Service's
#      endpoints propagates and requests already routed here complete;
#   2. stop the server and exit 0.
# terminationGracePeriodSeconds must exceed DRAIN_TIMEOUT_SECONDS (see model/README.md).
#
# Environment: MODEL_NAME, MODEL_BASE_PATH (directory of version directories), PORT (REST),
# GRPC_PORT, DRAIN_TIMEOUT_SECONDS, BATCHING_PARAMETERS_FILE (empty: no batching),
# MONITORING_CONFIG_FILE. Arguments are passed on to tensorflow_model_server.
set -euo pipefail

: "${MODEL_NAME:?MODEL_NAME must be set}"
MODEL_BASE_PATH="${MODEL_BASE_PATH:-/models/$MODEL_NAME}"
PORT="${PORT:-8501}"
GRPC_PORT="${GRPC_PORT:-8500}"
DRAIN_TIMEOUT_SECONDS="${DRAIN_TIMEOUT_SECONDS:-10}"
MODEL_SERVER="${MODEL_SERVER:-tensorflow_model_server}"

log() { printf '%s entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

[[ "$DRAIN_TIMEOUT_SECONDS" =~ ^[0-9]+$ ]] ||
    { log "DRAIN_TIMEOUT_SECONDS must be a whole number of seconds, not '$DRAIN_TIMEOUT_SECONDS'"; exit 2; }

flags=(
    "--port=$GRPC_PORT"
    "--rest_api_port=$PORT"
    "--model_name=$MODEL_NAME"
    "--model_base_path=$MODEL_BASE_PATH"
    # The model is baked into the image: look for versions once, do not poll the filesystem.
    "--file_system_poll_wait_seconds=0"
)
if [[ -n "${BATCHING_PARAMETERS_FILE:-}" ]]; then
    flags+=("--enable_batching=true" "--batching_parameters_file=$BATCHING_PARAMETERS_FILE")
fi
if [[ -n "${MONITORING_CONFIG_FILE:-}" ]]; then
    flags+=("--monitoring_config_file=$MONITORING_CONFIG_FILE")
fi

draining=0
# shellcheck disable=SC2317 # invoked by the trap below
on_term() {
    # Further SIGTERMs (a kubelet retry, docker stop after docker kill -s TERM) neither restart
    # nor cut short the drain.
    trap '' TERM INT
    draining=1
    log "SIGTERM: serving for ${DRAIN_TIMEOUT_SECONDS}s more while endpoints drain"
    sleep "$DRAIN_TIMEOUT_SECONDS"
    log "drain window over: stopping the model server (pid $server_pid)"
    kill -TERM "$server_pid" 2>/dev/null || true
}
trap on_term TERM INT

log "starting $MODEL_SERVER ${flags[*]} $*"
"$MODEL_SERVER" "${flags[@]}" "$@" &
server_pid=$!

# `wait` returns early when a trapped signal arrives; keep waiting until the server is gone.
while :; do
    wait "$server_pid" && status=0 || status=$?
    kill -0 "$server_pid" 2>/dev/null || break
done
if ((draining)); then
    log "model server stopped after drain"
    exit 0
fi
log "model server exited on its own (status $status)"
exit "$status"
