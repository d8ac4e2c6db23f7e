#!/bin/sh
# Installs the Debian packages sluice needs, and only those that are
# missing, so a machine that has everything pays for one pkg-config call.
# Used by `make test` and `make run`; safe to run again at any time.
set -eu

missing=""
for pc in hiredis:libhiredis-dev libevent:libevent-dev jansson:libjansson-dev check:check; do
    mod=${pc%%:*}
    pkg=${pc#*:}
    if ! pkg-config --exists "$mod" 2>/dev/null; then
        missing="$missing $pkg"
    fi
done
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v cc >/dev/null 2>&1 || missing="$missing gcc"

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y -q --no-install-recommends $missing
