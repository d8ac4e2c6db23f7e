#!/bin/sh
# start-pool.sh -- runs the sluice pool in the foreground (it replaces
# this shell, so a service manager's signals reach the supervisor).
#
#   start-pool.sh [-c FILE] [--redis URL] [--workers NAME[:N],...] [--metrics ADDR]
#
# Every argument goes to `sluice run` as it is. Without -c, the pool reads
# config/sluice.json of the current directory when there is one, else
# that of this checkout. The binary is $SLUICE_BIN, else build/sluice of
# this checkout, else `sluice` from PATH (e.g. after make install). When
# $SLUICE_REDIS_URL is unset, $REDIS_URL is used for it, as enqueue.sh
# and pending.sh do. SIGTERM or SIGINT stops the pool gracefully.
set -eu

prog=start-pool.sh
root=$(cd "$(dirname "$0")/.." && pwd)

bin=${SLUICE_BIN:-}
if [ -z "$bin" ]; then
    if [ -x "$root/build/sluice" ]; then
        bin=$root/build/sluice
    elif command -v sluice >/dev/null 2>&1; then
        bin=sluice
    else
        echo "$prog: no sluice binary: run make in $root, or set SLUICE_BIN" >&2
        exit 2
    fi
fi

if [ -z "${SLUICE_REDIS_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
    SLUICE_REDIS_URL=$REDIS_URL
    export SLUICE_REDIS_URL
fi

has_config=0
for arg in "$@"; do
    case $arg in
        -c | --config | --config=*) has_config=1 ;;
    esac
done
if [ "$has_config" -eq 0 ] && [ ! -f config/sluice.json ] && [ -f "$root/config/sluice.json" ]; then
    exec "$bin" run -c "$root/config/sluice.json" "$@"
fi
exec "$bin" run "$@"
