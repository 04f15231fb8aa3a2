# shellcheck shell=bash
# Sourced by the project's scripts: logging and errors prefixed with the script's name, and the
# pid-file helpers of the scripts that start servers. Every server is stopped by the PID its
# start recorded, never by name.

LOG_PREFIX="[$(basename "$0")]"
log() { printf '%s %s\n' "$LOG_PREFIX" "$*" >&2; }
# An error that the script carries on from (die: one that ends it).
error() { printf '%s ERROR: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
    error "$@"
    exit 1
}

# True when WORD is one of the further arguments: `in_list WORD "${array[@]}"`.
in_list() {
    local word="$1" item
    shift
    for item; do
        [[ "$item" == "$word" ]] && return 0
    done
    return 1
}

# The directory of a Go module version, downloaded through the module proxy (outside any module,
# so no go.mod is touched); dies with the proxy's error.
go_module_dir() {
    local module="$1"
    (cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "$module") |
        python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])'
}

# Fetches a Go module version's zip from the module proxy (GOPROXY's first entry) into $3 and
# dies unless its sha256 is $2. Go's escaping applies: an upper-case letter is "!" and its lower case.
go_module_zip() {
    local module="$1" sha256="$2" target="$3" proxy path version escaped
    proxy="$(go env GOPROXY)"
    proxy="${proxy%%,*}"
    path="${module%@*}"
    version="${module#*@}"
    escaped="$(printf '%s' "$path" | sed -E 's/([A-Z])/!\L\1/g')"
    curl --fail --silent --show-error --location -o "$target.part" "${proxy}/${escaped}/@v/${version}.zip" ||
        die "${module}: the module proxy did not serve its zip"
    echo "${sha256}  ${target}.part" | sha256sum --check --quiet - ||
        die "${module}: the zip's sha256 is not the pinned ${sha256}"
    mv "$target.part" "$target"
}

# Sets `force` from the scripts' one optional argument, --force; anything else is a usage error.
parse_force_flag() {
    force=0
    case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
    esac
}

# A virtualenv is kept in step with its requirements by a hash stamp inside it: the hash of
# everything the install depends on (interpreter, install flags, requirements files).
venv_inputs_hash() {
    local python="$1" flags="$2"
    shift 2
    {
        "$python" --version 2>&1
        echo "$flags"
        cat "$@"
    } | sha256sum | cut -d' ' -f1
}

# True when the virtualenv needs an install (stamp missing or stale, or force=1); it is then
# created if missing and its stamp dropped, so an interrupted install leaves none and is redone
# next time. False, with a log line, when it is up to date.
venv_needs_install() {
    local venv="$1" python="$2" wanted="$3" force="$4"
    if [[ $force -eq 0 && -x "$venv/bin/python" && -f "$venv/.requirements.sha256" ]] &&
        [[ "$(<"$venv/.requirements.sha256")" == "$wanted" ]]; then
        log "up to date: $venv"
        return 1
    fi
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating $venv"
        "$(dirname "${BASH_SOURCE[0]}")/uv.sh" venv --quiet --python "$python" "$venv"
    fi
    rm -f "$venv/.requirements.sha256"
}

# Written last, after a successful install.
venv_mark_ready() {
    local venv="$1" wanted="$2"
    printf '%s\n' "$wanted" >"$venv/.requirements.sha256"
    log "ready: $venv"
}

# The PID in a pid file if that process is alive and runs the expected program (guards against
# a stale pid file whose PID was reused by something else).
live_pid() {
    local pidfile="$1" program="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(<"$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/exe" ]] || return 1
    [[ "$(basename "$(readlink "/proc/$pid/exe")")" == "$program" ]] || return 1
    printf '%s' "$pid"
}

# TERM the process of a pid file and wait (up to STOP_TIMEOUT_SECONDS) until it has exited.
stop_pid() {
    local what="$1" pidfile="$2" program="$3" pid
    if ! pid="$(live_pid "$pidfile" "$program")"; then
        log "$what: not started by us (no live pid in $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $what (pid $pid)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
    while [[ -e "/proc/$pid" ]]; do
        ((SECONDS < deadline)) || die "$what (pid $pid) did not exit within ${STOP_TIMEOUT_SECONDS}s"
        sleep 0.2
    done
    rm -f "$pidfile"
    log "$what stopped"
}
