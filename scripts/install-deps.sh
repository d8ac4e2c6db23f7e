#!/bin/sh
# Installs the Debian packages sluice needs, and only those that are
# missing, so a machine that has everything pays for a few lookups.
# Used by `make test`, `make run` and the other targets; safe to run again.
#
#   install-deps.sh            build and run: libraries, pkg-config, redis
#   install-deps.sh --test     also what the tests use (shellcheck, docker-compose,
#                              promtool from prometheus, luac5.1 from lua5.1,
#                              python3-redis, nodejs, npm, systemd-analyze from
#                              systemd, python3-yaml, groff, chromium)
#   install-deps.sh --valgrind also valgrind
set -eu

missing=""
want() { missing="$missing $1"; }

for pc in hiredis:libhiredis-dev libevent:libevent-dev libevent_openssl:libevent-dev \
          openssl:libssl-dev jansson:libjansson-dev check:check; do
    mod=${pc%%:*}
    pkg=${pc#*:}
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$mod" 2>/dev/null; then
        want "$pkg"
    fi
done
command -v pkg-config >/dev/null 2>&1 || want pkg-config
command -v redis-server >/dev/null 2>&1 || want redis-server
command -v redis-cli >/dev/null 2>&1 || want redis-tools
command -v cc >/dev/null 2>&1 || want gcc
command -v make >/dev/null 2>&1 || want make

for arg in "$@"; do
    case "$arg" in
    --test)
        command -v shellcheck >/dev/null 2>&1 || want shellcheck
        command -v groff >/dev/null 2>&1 || want groff-base     # tests/man/check.sh
        command -v docker-compose >/dev/null 2>&1 || want docker-compose
        command -v promtool >/dev/null 2>&1 || want prometheus
        command -v luac5.1 >/dev/null 2>&1 || want lua5.1
        # The producer examples (docs/producers.md): Debian's redis-py for
        # Debian's python3, node and npm for the Node one.
        /usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || want python3-redis
        command -v node >/dev/null 2>&1 || want nodejs
        command -v npm >/dev/null 2>&1 || want npm
        # The dashboard's browser test (tests/browser/): Debian's chromium.
        command -v chromium >/dev/null 2>&1 || want chromium
        # The deploy kit's checks (tests/deploy/check.sh): systemd-analyze
        # verifies the unit, Debian's python3 reads YAML.
        command -v systemd-analyze >/dev/null 2>&1 || want systemd
        /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || want python3-yaml
        ;;
    --valgrind)
        command -v valgrind >/dev/null 2>&1 || want valgrind
        ;;
    *)
        echo "install-deps: unknown option $arg" >&2
        exit 2
        ;;
    esac
done

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
