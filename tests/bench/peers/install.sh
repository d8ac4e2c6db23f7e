#!/bin/sh
# install.sh NODE_DIR -- installs what `make bench-peers` drives, then
# prints the versions it will measure:
#   - Debian's python3-redis, python3-hiredis and ruby-sidekiq, with
#     apt-get only when one is missing (the versions are Debian's);
#   - BullMQ and ioredis at the exact versions of package-lock.json, with
#     `npm ci` into NODE_DIR (a private directory; nothing global), again
#     only when NODE_DIR does not already hold this lock file's install.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
node_dir=${1:?usage: install.sh NODE_DIR}
debs="python3-redis python3-hiredis ruby-sidekiq"

missing=""
for p in $debs; do
    if ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "bench-peers: installing$missing"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
fi

mkdir -p "$node_dir"
if ! cmp -s "$here/package-lock.json" "$node_dir/package-lock.json" ||
   [ ! -d "$node_dir/node_modules/bullmq" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "bench-peers: versions"
# shellcheck disable=SC2086 # one word per package
dpkg-query -W -f '  ${Package} ${Version}\n' redis-server $debs ruby-redis ruby nodejs
/usr/bin/python3 -c 'import redis, redis.utils as u; print("  redis-py %s, hiredis parser: %s" % (redis.__version__, u.HIREDIS_AVAILABLE))'
echo "  node $(node --version)"
(cd "$node_dir" && node -e 'for (const p of ["bullmq", "ioredis"]) console.log("  " + p + " " + require(p + "/package.json").version)')
