#!/usr/bin/env bash
# Builds the local stand-in for the official Python base image (no public container registry is
# reachable here): Debian bookworm minbase + python3, python3-venv and ca-certificates, made with
# debootstrap from the Debian mirror apt already uses, and imported as $BASE_IMAGE.
#
#   scripts/base-image.sh [--force]
#
# Idempotent: does nothing when $BASE_IMAGE exists; imports the cached rootfs tarball
# ($CACHE_DIR, machine-level) when only the image is missing. --force rebuilds both.
# Drop-in for python:3.11-slim-bookworm as far as model/Dockerfile needs: `python3` (3.11) on
# PATH, the venv module, CA certificates, LANG=C.UTF-8.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
BASE_IMAGE="${BASE_IMAGE:-localhost/debian-python:bookworm}"
# The same image in the local registry, for BuildKit (scripts/buildkit.sh), which cannot see the
# Docker engine's images: the dev stack's imageBaseImage.
REGISTRY_BASE_IMAGE="${REGISTRY_BASE_IMAGE:-127.0.0.1:5000/debian-python:bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
# Machine-level, like pip's cache: a clean clone (CI) imports the rootfs instead of debootstrapping.
CACHE_DIR="${BASE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-model-serving/base-image}"
TARBALL="$CACHE_DIR/debian-python-$SUITE.tar.gz"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

parse_force_flag "$@"

# The first Debian mirror URI in apt's sources that serves the bookworm suite itself (not
# -updates or -security). DEBIAN_MIRROR overrides it.
find_mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        printf '%s' "$DEBIAN_MIRROR"
        return 0
    fi
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        if [[ "$file" == *.sources ]]; then
            # deb822 stanzas: Types / URIs / Suites / Enabled, separated by blank lines.
            awk -v suite="$SUITE" '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && uri != "") {
                        print uri; found = 1; exit
                    }
                    types = ""; suites = ""; uri = ""; enabled = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                tolower($1) == "types:" { $1 = ""; types = $0 }
                tolower($1) == "uris:" { uri = $2 }
                tolower($1) == "suites:" { $1 = ""; suites = $0 }
                tolower($1) == "enabled:" { enabled = tolower($2) }
                END { if (!found) flush() }
            ' "$file"
        else
            # one-line format: deb [options] URI SUITE COMPONENTS...
            awk -v suite="$SUITE" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit }
                }
            ' "$file"
        fi
    done | head -n 1
}

install_packages() {
    local missing=()
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
    ((${#missing[@]} == 0)) || "$ROOT/scripts/apt-install.sh" "${missing[@]}"
}

build_rootfs() {
    local mirror rootfs start=$SECONDS
    mirror="$(find_mirror)"
    [[ -n "$mirror" ]] || die "no Debian mirror for '$SUITE' in /etc/apt/sources.list*; set DEBIAN_MIRROR"
    mkdir -p "$CACHE_DIR"
    rootfs="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    # Removed on any exit; bind mounts debootstrap left behind would make rm fail loudly.
    trap 'rm -rf --one-file-system "$rootfs"' EXIT
    log "debootstrap --variant=minbase $SUITE from $mirror (packages: $PACKAGES)"
    debootstrap --variant=minbase --include="$PACKAGES" \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        "$SUITE" "$rootfs" "$mirror" >"$CACHE_DIR/debootstrap.log" 2>&1 ||
        { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed; see $CACHE_DIR/debootstrap.log"; }

    # Slim like the official -slim images: no docs, man pages or translations, now or after
    # later apt-get installs; no apt lists or caches.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/archives/partial/* \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    # Hosts' resolver settings must not leak into the image; the engine provides them at run time.
    : >"$rootfs/etc/resolv.conf"
    printf '%s\n' "$SUITE-local" >"$rootfs/etc/hostname"

    log "packing $TARBALL"
    tar --numeric-owner --xattrs -C "$rootfs" -czf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf --one-file-system "$rootfs"
    trap - EXIT
    log "rootfs built in $((SECONDS - start))s ($(du -h "$TARBALL" | cut -f1) compressed)"
}

import_image() {
    local start=$SECONDS
    log "importing $TARBALL as $BASE_IMAGE"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --message "debootstrap $SUITE minbase + $PACKAGES (scripts/base-image.sh)" \
        "$TARBALL" "$BASE_IMAGE" >/dev/null
    log "imported in $((SECONDS - start))s"
}

# Idempotent: the registry keeps what was pushed, a repeated push only checks the layers.
push_to_registry() {
    docker tag "$BASE_IMAGE" "$REGISTRY_BASE_IMAGE"
    docker push --quiet "$REGISTRY_BASE_IMAGE" >/dev/null || die "pushing $REGISTRY_BASE_IMAGE failed"
    log "$BASE_IMAGE is in the registry as $REGISTRY_BASE_IMAGE"
}

main() {
    local start=$SECONDS
    command -v docker >/dev/null 2>&1 || die "no docker CLI; run scripts/docker.sh start"
    docker info >/dev/null 2>&1 || die "the Docker engine does not answer; run scripts/docker.sh start"
    if ((!force)) && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "$BASE_IMAGE exists (--force rebuilds it)"
        push_to_registry
        return 0
    fi
    [[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
    if ((force)) || [[ ! -s "$TARBALL" ]]; then
        install_packages
        build_rootfs
    else
        log "using cached rootfs $TARBALL"
    fi
    import_image
    docker run --rm --network host "$BASE_IMAGE" python3 -c \
        'import ssl, sys, venv; print("python", sys.version.split()[0], "at", sys.executable)' >&2 ||
        die "$BASE_IMAGE does not run python3"
    push_to_registry
    log "$BASE_IMAGE ready: $(docker image inspect --format '{{.Size}}' "$BASE_IMAGE" |
        awk '{printf "%.0f MB", $1 / 1e6}'), $((SECONDS - start))s in all"
}

main
