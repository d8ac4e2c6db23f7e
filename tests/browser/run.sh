#!/bin/sh
# run.sh -- the browser test of the dashboard (dashboard.mjs): installs
# puppeteer-core (the exact version of package-lock.json) with npm ci
# into NODE_DIR when missing, then runs the test with Debian's chromium.
#
#   sh tests/browser/run.sh SLUICE_BIN NODE_DIR OUT_DIR
#
# `make test` installs chromium, node and npm (scripts/install-deps.sh
# --test) before it runs this.
set -eu

bin=$1 nodedir=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -f "$nodedir/node_modules/.package-lock.json" ] ||
   ! cmp -s "$here/package-lock.json" "$nodedir/package-lock.json"; then
    mkdir -p "$nodedir"
    cp "$here/package.json" "$here/package-lock.json" "$nodedir/"
    (cd "$nodedir" && npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$here/dashboard.mjs" "$nodedir/"
exec node "$nodedir/dashboard.mjs" "$bin" "$out"
