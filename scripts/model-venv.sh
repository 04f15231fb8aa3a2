#!/usr/bin/env bash
# Creates the model's virtualenv (model/.venv) and installs model/requirements-dev.txt into it.
#
#   scripts/model-venv.sh [--force]
#
# Separate from the Pulumi program's .venv: TensorFlow resolves protobuf 7, pulumi pins < 7.
# Idempotent: installs only when the requirements files (or the Python version) changed since
# the last successful install, tracked by a hash stamp inside the venv. --force reinstalls.
# PYTHON picks the interpreter (default python3, 3.11).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_DIR="$ROOT/model"
VENV="$MODEL_DIR/.venv"
PYTHON="${PYTHON:-python3}"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

parse_force_flag "$@"

wanted="$(venv_inputs_hash "$PYTHON" compile-bytecode "$MODEL_DIR/requirements.txt" \
    "$MODEL_DIR/requirements-protos.txt" "$MODEL_DIR/requirements-dev.txt")"
venv_needs_install "$VENV" "$PYTHON" "$wanted" "$force" || exit 0
log "installing model/requirements-dev.txt"
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (CI here), Python never caches
# bytecode, and every process that imports TensorFlow (each test server) would compile it from
# source again: 12 s instead of 4 per import, against ~20 s once here.
"$ROOT/scripts/uv.sh" pip install --quiet --compile-bytecode --python "$VENV/bin/python" \
    -r "$MODEL_DIR/requirements-dev.txt"
# Without dependencies: see the file's header.
"$ROOT/scripts/uv.sh" pip install --quiet --compile-bytecode --python "$VENV/bin/python" --no-deps \
    -r "$MODEL_DIR/requirements-protos.txt"
venv_mark_ready "$VENV" "$wanted"
