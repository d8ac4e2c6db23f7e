#!/usr/bin/env bash
# check-deps.sh -- an object built before the .d files existed (a build
# directory from an older checkout) is still rebuilt when sluice.h, which
# holds SL_ABI_VERSION, changes; otherwise `make run` links a worker built
# for the old ABI and the pool refuses to start.
#
#   bash scripts/check-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "check-deps: FAIL: $*" >&2; exit 1; }

for obj in workers/noop.o framework/log.o; do
    env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s BUILD="$tmp" "$tmp/$obj" >/dev/null
    rm -f "$tmp/${obj%.o}.d"
    # -W: as if sluice.h had just changed; -n: print what would be rebuilt.
    if ! env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -n -W framework/sluice.h BUILD="$tmp" \
            "$tmp/$obj" | grep -q -- "-o $tmp/$obj "; then
        fail "$obj without its .d file is not rebuilt when framework/sluice.h changes"
    fi
    echo "check-deps: ok: $obj without its .d file is rebuilt when framework/sluice.h changes"
done
