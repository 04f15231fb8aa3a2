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
# GRPC_PORT, MONITORING_CONFIG_FILE, and the knobs the python runtime takes too, with the same
# defaults and ranges (model/serving/limits.json; tests/image holds them equal):
#   MAX_BATCH_SIZE (32, 1-1024), BATCH_TIMEOUT_MICROS (2000, 0-10000000): written into the
#   BatchingParameters file the server reads, so the stack's maxBatchSize/batchTimeoutMicros
#   reach TF Serving as they reach the python runtime;
#   DRAIN_TIMEOUT_SECONDS (30, 0-600, whole seconds).
# Arguments are passed on to tensorflow_model_server.
set -euo pipefail

: "${MODEL_NAME:?MODEL_NAME must be set}"
MODEL_BASE_PATH="${MODEL_BASE_PATH:-/models/$MODEL_NAME}"
PORT="${PORT:-8501}"
GRPC_PORT="${GRPC_PORT:-8500}"
MAX_BATCH_SIZE="${MAX_BATCH_SIZE:-32}"
BATCH_TIMEOUT_MICROS="${BATCH_TIMEOUT_MICROS:-2000}"
DRAIN_TIMEOUT_SECONDS="${DRAIN_TIMEOUT_SECONDS:-30}"
MODEL_SERVER="${MODEL_SERVER:-tensorflow_model_server}"
BATCHING_PARAMETERS_FILE="${TMPDIR:-/tmp}/batching.config"

log() { printf '%s entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

problems=()
check_whole() { # NAME MIN MAX: the variable is a whole number in [MIN, MAX]
    local value=${!1}
    if ! [[ "$value" =~ ^[0-9]{1,9}$ ]] || ((10#$value < $2 || 10#$value > $3)); then
        problems+=("$1='$value': must be a whole number between $2 and $3")
    fi
}
check_whole MAX_BATCH_SIZE 1 1024
check_whole BATCH_TIMEOUT_MICROS 0 10000000
check_whole DRAIN_TIMEOUT_SECONDS 0 600
if ((${#problems[@]})); then
    log "invalid environment: $(IFS=';'; echo "${problems[*]}")"
    exit 2
fi

# Server-side dynamic batching: requests that arrive within BATCH_TIMEOUT_MICROS of each other
# run as one batch of up to MAX_BATCH_SIZE. Allowed sizes (powers of two, then the maximum)
# bound the distinct batch shapes the GPU compiles; the last must equal max_batch_size.
write_batching_parameters() {
    local size=1
    printf 'max_batch_size { value: %d }\n' "$((10#$MAX_BATCH_SIZE))"
    printf 'batch_timeout_micros { value: %d }\n' "$((10#$BATCH_TIMEOUT_MICROS))"
    # Back-pressure: beyond this many waiting batches requests fail fast with UNAVAILABLE.
    printf 'max_enqueued_batches { value: 64 }\n'
    # One GPU runs one batch at a time well; a second thread overlaps host-side work.
    printf 'num_batch_threads { value: 2 }\n'
    while ((size < 10#$MAX_BATCH_SIZE)); do
        printf 'allowed_batch_sizes: %d\n' "$size"
        size=$((size * 2))
    done
    printf 'allowed_batch_sizes: %d\n' "$((10#$MAX_BATCH_SIZE))"
}
write_batching_parameters >"$BATCHING_PARAMETERS_FILE"

flags=(
    "--port=$GRPC_PORT"
    "--rest_api_port=$PORT"
    "--model_name=$MODEL_NAME"
    "--model_base_path=$MODEL_BASE_PATH"
    # The model is baked into the image: look for versions once, do not poll the filesystem.
    "--file_system_poll_wait_seconds=0"
)
flags+=("--enable_batching=true" "--batching_parameters_file=$BATCHING_PARAMETERS_FILE")
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
