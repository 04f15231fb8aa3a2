#!/usr/bin/env bash
# Installs Debian packages, as root, without letting their maintainer scripts start services
# (the Debian registry service would listen on all interfaces, the Debian dockerd would create
# a bridge). Versions come from the machine's Debian release.
#
#   scripts/apt-install.sh PACKAGE...
set -euo pipefail

(($# > 0)) || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
[[ "$(id -u)" == 0 ]] || { echo "[apt-install.sh] ERROR: run as root: apt-get install -y $*" >&2; exit 1; }
echo "[apt-install.sh] installing $* (apt-get)" >&2
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    added_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
    status=$?
((added_policy)) && rm -f "$policy"
((status == 0)) || { echo "[apt-install.sh] ERROR: apt-get install $* failed (exit $status)" >&2; exit "$status"; }
