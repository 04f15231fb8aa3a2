#!/usr/bin/env bash
# Creates the KServe peer's virtualenv (bench/.venv-kserve) and installs
# bench/requirements-kserve.txt into it, for bench/kserve_peer.py.
#
#   scripts/kserve-venv.sh [--force]
#
# Separate from model/.venv: kserve 0.21.0 holds protobuf below 7 (see the requirements file's
# header) and brings its own server stack (FastAPI, grpcio-tools, kubernetes, pandas).
# Idempotent: installs only when the requirements file (or the Python version, or the install
# flags below) changed since the last successful install, tracked by a hash stamp inside the
# venv. --force reinstalls.
# PYTHON picks the interpreter (default python3, 3.11, as scripts/model-venv.sh).
# Offline: scripts/uv.sh never downloads a Python build and takes the machine's pip settings;
# uv sends no telemetry; packages come from PyPI (or the local wheel directory) only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="$ROOT/bench"
VENV="$BENCH_DIR/.venv-kserve"
REQUIREMENTS="$BENCH_DIR/requirements-kserve.txt"
PYTHON="${PYTHON:-python3}"
# --compile-bytecode: the .pyc files are written now, once. Python never writes them where
# PYTHONDONTWRITEBYTECODE is set, nor do KServe's spawned workers (they run with -B then), and
# without them importing TensorFlow takes 12 s instead of 5, and importing kserve eats most of
# the 5 s in which a new worker must answer its parent's first ping (see bench/kserve_peer.py).
INSTALL_FLAGS=(--quiet --strict --compile-bytecode)

# disable=SC1091: clean when checked alone too (`make lint` passes lib.sh along, and it is followed).
# shellcheck source=scripts/lib.sh disable=SC1091
source "$ROOT/scripts/lib.sh"

parse_force_flag "$@"

[[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"

wanted="$(venv_inputs_hash "$PYTHON" "${INSTALL_FLAGS[*]}" "$REQUIREMENTS")"
venv_needs_install "$VENV" "$PYTHON" "$wanted" "$force" || exit 0
log "installing bench/requirements-kserve.txt"
# The file pins every package, transitive ones included, so it is synced as it stands: exactly
# those versions, anything an older list had installed removed, and --strict checks afterwards
# that no package misses a dependency (a line dropped from the file).
"$ROOT/scripts/uv.sh" pip sync "${INSTALL_FLAGS[@]}" --python "$VENV/bin/python" "$REQUIREMENTS"
venv_mark_ready "$VENV" "$wanted"
