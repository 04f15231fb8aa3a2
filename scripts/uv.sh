#!/usr/bin/env bash
# Runs uv (the pinned version below), installing it from PyPI on first use into a machine-level
# directory shared by every checkout, like pip's cache: `scripts/uv.sh ARGS...` = `uv ARGS...`.
# The virtualenvs are made with it: a clean clone's two venvs install in seconds from uv's
# cache instead of minutes with pip.
#
# Offline settings: never download a Python build (it would come from GitHub), and take the
# machine's pip settings (local wheel directory, CA bundle) as uv's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
UV_VERSION=0.13.8
PYTHON="${PYTHON:-python3}"
UV_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/gpu-model-serving/uv-$UV_VERSION"
UV="$UV_DIR/bin/uv"

if [[ ! -f "$UV_DIR/.installed" ]]; then
    log "installing uv $UV_VERSION into $UV_DIR"
    rm -rf "$UV_DIR"
    "$PYTHON" -m venv "$UV_DIR"
    "$UV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    touch "$UV_DIR/.installed" # last: an interrupted install is redone
fi

export UV_PYTHON_DOWNLOADS=never
export UV_NO_PROGRESS=1
if [[ -n "${PIP_FIND_LINKS:-}" && -z "${UV_FIND_LINKS:-}" ]]; then
    export UV_FIND_LINKS="$PIP_FIND_LINKS"
fi
if [[ -n "${PIP_CERT:-}" && -z "${SSL_CERT_FILE:-}" ]]; then
    export SSL_CERT_FILE="$PIP_CERT"
fi
exec "$UV" "$@"
