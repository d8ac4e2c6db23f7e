#!/usr/bin/env bash
# container-test.sh -- `make container-test`: the Dockerfile and
# docker-compose.yml run for real, with Debian's podman and
# podman-compose, on a Debian 12 machine that reaches no container
# registry.
#
#  1. installs podman, podman-compose, debootstrap, runc, netavark and
#     aardvark-dns from Debian when missing (netavark and aardvark-dns
#     give the compose network its DNS: the pool reaches "redis");
#  2. builds a local debian:12-slim base image with debootstrap
#     --variant=minbase from this machine's own Debian mirror and `podman
#     import`s it. It is kept between runs (the one thing left behind);
#     remove it with `podman rmi docker.io/library/debian:12-slim`;
#  3. builds the sluice image with --pull=never, and a stand-in for the
#     redis:7.0 image from Debian's redis-server 7.0 when no redis:7.0
#     image is there;
#  4. `podman-compose up -d` under a project name of its own, then the
#     README tour: entries added with redis-cli inside the redis
#     container, the hashes user:u-1, order:o-1 and order:o-2 polled
#     for their documented values;
#  5. `sluice workers` and `sluice stats` by `podman exec` without -c:
#     they must read /etc/sluice/sluice.json and reach the compose Redis;
#  6. `podman healthcheck run` on the pool (no systemd here: health checks
#     run only on demand), healthy, unhealthy while Redis is stopped,
#     healthy again; the pool runs as two replicas (SLUICE_REPLICAS=2),
#     which must get consumer names of their own;
#  7. `podman stop -t 20` of each pool (podman-compose 1.0.3 ignores
#     stop_grace_period), and each pool's exit code must be 0;
#  8. removes every container, image, volume and network it made, on any
#     exit.
#
# Facts of this machine kind, handled in a private containers.conf named
# by CONTAINERS_CONF (nothing in /etc is changed): podman's default
# open-files limit for containers is above the allowed maximum
# (default_ulimits at the hard limit, nproc 4096), and crun refuses hybrid
# cgroups (runtime runc).
#
# Prints one PASS or FAIL line per check and exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

STOP_TIMEOUT=20             # seconds; more than shutdown_timeout_ms (10 s)
BASE_IMAGE=docker.io/library/debian:12-slim
RUN_ID="sluice-ct-$$"
PROJECT="${RUN_ID//-/}"     # podman-compose names things <project>_<service>_1
SLUICE_IMAGE="localhost/${RUN_ID}:latest"
REDIS_IMAGE=docker.io/library/redis:7.0
WORK=$(mktemp -d "/tmp/${RUN_ID}.XXXXXX")
FAILED=0
IMAGES_BEFORE=""            # image IDs there before this run...
IMAGES_KNOWN=0              # ...once that list has been taken
STARTED=$(date +%s)

# ---------------------------------------------------------------------
# Reporting and cleanup
# ---------------------------------------------------------------------

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }
info() { echo "----: $*"; }
indent() { sed 's/^/     /'; }

# Stops the run after a failure that makes the later checks pointless.
die() { fail "$*"; exit 1; }

# Removes what this run made: containers, volumes and networks of the
# compose project, the extra pool, and every image that was not there
# before (the sluice image, its build stage, the redis stand-in), except
# the cached base image.
cleanup() {
    local rc=$? id base_id
    set +e
    trap - EXIT INT TERM
    if command -v podman >/dev/null 2>&1; then
        for id in $(podman ps -aq --filter "label=io.podman.compose.project=${PROJECT}") \
                  $(podman ps -aq --filter "name=^${PROJECT}_"); do
            podman rm -f -t 0 "$id" >/dev/null 2>&1
        done
        for id in $(podman volume ls -q --filter "label=io.podman.compose.project=${PROJECT}") \
                  $(podman volume ls -q --filter "name=^${PROJECT}_"); do
            podman volume rm -f "$id" >/dev/null 2>&1
        done
        for id in $(podman network ls -q --filter "label=io.podman.compose.project=${PROJECT}") \
                  $(podman network ls -q --filter "name=^${PROJECT}_"); do
            podman network rm -f "$id" >/dev/null 2>&1
        done
        if [ "$IMAGES_KNOWN" -eq 1 ]; then
            base_id=$(podman image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null)
            # Newest first, so children go before their parents; twice,
            # for a parent that a child still held on the first pass.
            for _ in 1 2; do
                for id in $(podman images -aq --no-trunc); do
                    [ "${id#sha256:}" = "${base_id#sha256:}" ] && continue
                    grep -qx "$id" <<<"$IMAGES_BEFORE" && continue
                    podman rmi -f "$id" >/dev/null 2>&1
                done
            done
            left=0
            for id in $(podman images -aq --no-trunc); do
                [ "${id#sha256:}" = "${base_id#sha256:}" ] && continue
                grep -qx "$id" <<<"$IMAGES_BEFORE" || left=$((left + 1))
            done
            [ "$left" -eq 0 ] || { echo "FAIL: ${left} image(s) of this run left"; rc=1; }
        fi
        left=$(podman ps -aq --filter "label=io.podman.compose.project=${PROJECT}" | wc -l)
        [ "$left" -eq 0 ] || { echo "FAIL: ${left} container(s) of ${PROJECT} left"; rc=1; }
    fi
    rm -rf "$WORK"
    if [ "$rc" -eq 0 ] && [ "$FAILED" -eq 0 ]; then
        echo "container-test: PASS ($(( $(date +%s) - STARTED )) s)"
        exit 0
    fi
    echo "container-test: FAIL"
    exit 1
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------------
# Packages, podman's settings, the base image
# ---------------------------------------------------------------------

# Installs the Debian packages among $@ that are missing.
need_packages() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    info "installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# Prints the first Debian mirror of this machine's APT sources that
# serves bookworm (deb822 .sources files or one-line .list files).
debian_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        # deb822: a stanza's URIs and Suites lines; take a stanza whose
        # Suites has bookworm itself (not -security, -updates only).
        uri=$(awk '
            /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") s = 1 }
            END { if (u != "" && s) print u }' "$f" | head -n 1)
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { u = $i; if ($(i+1) == "bookworm") { print u; exit } break } }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    return 1
}

# Builds debian:12-slim with debootstrap unless it is there already.
base_image() {
    local mirror rootfs
    if podman image exists "$BASE_IMAGE"; then
        pass "base image ${BASE_IMAGE} is there (cached)"
        return 0
    fi
    mirror=$(debian_mirror) || die "no bookworm mirror in /etc/apt/sources.list*"
    info "debootstrap --variant=minbase bookworm from ${mirror}"
    rootfs="${WORK}/rootfs"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"${WORK}/debootstrap.log" 2>&1; then
        tail -n 20 "${WORK}/debootstrap.log"
        die "debootstrap failed"
    fi
    # The slim image has no package cache and no APT lists.
    rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null ||
        die "podman import of the base image failed"
    rm -rf "$rootfs"
    pass "base image ${BASE_IMAGE} built from ${mirror}"
}

need_packages podman podman-compose debootstrap runc netavark aardvark-dns

# The machine's settings for podman, in a file of our own.
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
cat >"${WORK}/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=${hard_nofile}:${hard_nofile}", "nproc=4096:4096"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
EOF
export CONTAINERS_CONF="${WORK}/containers.conf"

IMAGES_BEFORE=$(podman images -aq --no-trunc)
IMAGES_KNOWN=1
base_image

# ---------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------

info "building ${SLUICE_IMAGE}"
if ! podman build --pull=never -t "$SLUICE_IMAGE" -f Dockerfile . >"${WORK}/build.log" 2>&1; then
    tail -n 30 "${WORK}/build.log"
    die "podman build of the sluice image"
fi
pass "sluice image built with --pull=never"
if podman run --rm "$SLUICE_IMAGE" --version >/dev/null 2>&1 &&
   [ "$(podman image inspect -f '{{.Config.User}}' "$SLUICE_IMAGE")" = "10001:10001" ]; then
    pass "image runs sluice as UID/GID 10001"
else
    fail "image user is not 10001:10001"
fi
if ! grep -q -- "-o build/framework/cli.o" "${WORK}/build.log"; then
    fail "the build log shows no compiler command to check"
elif grep -q -- "-Itests/support" "${WORK}/build.log"; then
    fail "the image's compiler flags contain -Itests/support"
else
    pass "no test flags in the image's compiler commands"
fi

if podman image exists "$REDIS_IMAGE"; then
    pass "using the ${REDIS_IMAGE} image that is there"
else
    REDIS_IMAGE="localhost/${RUN_ID}-redis:7.0"
    mkdir -p "${WORK}/redis"
    cat >"${WORK}/redis/Dockerfile" <<'EOF'
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
EOF
    if ! podman build --pull=never -t "$REDIS_IMAGE" "${WORK}/redis" >"${WORK}/redis-build.log" 2>&1; then
        tail -n 30 "${WORK}/redis-build.log"
        die "podman build of the redis stand-in"
    fi
    pass "redis stand-in built from Debian's redis-server ($(podman run --rm "$REDIS_IMAGE" redis-server --version | grep -o 'v=[0-9.]*'))"
fi

# ---------------------------------------------------------------------
# Compose up and the README tour
# ---------------------------------------------------------------------

# Prints a loopback TCP port nothing listens on, below the kernel's
# ephemeral range: a port in that range can be held at any moment by a
# client connection (not listening, so the probe below cannot see it),
# and then publishing it fails and the redis container never starts
# ("container state improper"), which one CI run hit.
free_port() {
    local p low=32768
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
    [ "$low" -gt 11000 ] || low=32768
    for _ in $(seq 1 50); do
        p=$(( 10000 + RANDOM % (low - 10000) ))
        (exec 3<>"/dev/tcp/127.0.0.1/${p}") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

export SLUICE_IMAGE REDIS_IMAGE
SLUICE_REDIS_PORT=$(free_port)
export SLUICE_REDIS_PORT
export SLUICE_REPLICAS=2
compose() { podman-compose -p "$PROJECT" -f docker-compose.yml "$@"; }

info "podman-compose -p ${PROJECT} up -d"
compose up -d >"${WORK}/up.log" 2>&1 || { tail -n 30 "${WORK}/up.log"; die "podman-compose up"; }
REDIS_C="${PROJECT}_redis_1"
POOL_C="${PROJECT}_sluice_1"
POOL2_C="${PROJECT}_sluice_2"
for c in "$REDIS_C" "$POOL_C" "$POOL2_C"; do
    podman container exists "$c" || { tail -n 30 "${WORK}/up.log"; die "compose did not create ${c}"; }
done
# A redis container that was created but could not start says why here
# (podman exec would only say "container state improper").
st=$(podman inspect --format '{{.State.Status}} {{.State.Error}}' "$REDIS_C" 2>&1 || true)
case "$st" in
running*) ;;
*)
    tail -n 30 "${WORK}/up.log"
    podman logs "$REDIS_C" 2>&1 | tail -n 20
    die "${REDIS_C} is not running after compose up: ${st}"
    ;;
esac
pass "compose started ${REDIS_C}, ${POOL_C} and ${POOL2_C}"

# Runs redis-cli inside the redis container.
rcli() { podman exec "$REDIS_C" redis-cli "$@"; }

# Polls `cmd...` until its output equals want, for up to $1 seconds.
# Leaves the last output in $GOT.
GOT=""
poll_eq() {
    local secs=$1 want=$2 deadline
    shift 2
    deadline=$(( $(date +%s) + secs ))
    while :; do
        GOT=$("$@" 2>&1 || true)
        [ "$GOT" = "$want" ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.5
    done
}

poll_eq 60 PONG rcli PING || die "redis does not answer PING: ${GOT}"
# The pool is ready when its health check says so.
if poll_eq 60 0 sh -c "podman exec '$POOL_C' sluice health >/dev/null 2>&1; echo \$?"; then
    pass "sluice health inside the pool: $(podman exec "$POOL_C" sluice health 2>&1)"
else
    podman logs --tail 30 "$POOL_C" 2>&1
    die "the pool never became healthy: $(podman exec "$POOL_C" sluice health 2>&1)"
fi

rcli XADD users '*' type user.created \
    data '{"user_id":"u-1","name":"Ada","email":"ada@example.com","balance_cents":5000}' >/dev/null
rcli XADD orders '*' type order.created \
    data '{"order_id":"o-1","user_id":"u-1","amount_cents":1999,"currency":"USD"}' >/dev/null
rcli XADD orders '*' type order.created \
    data '{"order_id":"o-2","user_id":"u-1","amount_cents":999999,"currency":"USD"}' >/dev/null

check_field() {
    local key=$1 field=$2 want=$3
    if poll_eq 30 "$want" rcli HGET "$key" "$field"; then
        pass "HGET ${key} ${field} = ${GOT}"
    else
        fail "HGET ${key} ${field} = '${GOT}', wanted '${want}'"
    fi
}
check_field user:u-1 balance_cents 3001
check_field order:o-1 status paid
check_field order:o-2 status failed
check_field order:o-2 reason insufficient_funds
echo "---- redis-cli HGETALL user:u-1 (in ${REDIS_C})"
rcli HGETALL user:u-1 | paste - - | indent
echo "---- redis-cli HGETALL order:o-1"
rcli HGETALL order:o-1 | paste - - | indent
echo "---- redis-cli HGETALL order:o-2"
rcli HGETALL order:o-2 | paste - - | indent
pending() { rcli XPENDING orders order-workers | head -n 1; }
if poll_eq 30 0 pending; then
    pass "XPENDING orders order-workers: 0"
else
    fail "XPENDING orders order-workers: ${GOT}"
fi

# ---------------------------------------------------------------------
# Admin commands without -c, health check, a second pool
# ---------------------------------------------------------------------

# Runs an admin command in the pool's container until it succeeds, for up
# to 15 s: the compose network's DNS (aardvark) has been seen to refuse a
# name for a moment ("No address associated with hostname") while the
# pool itself stayed connected. Each refusal is shown.
admin_exec() {
    local i out
    for i in $(seq 15); do
        if out=$(podman exec "$@" 2>&1); then
            printf '%s\n' "$out"
            return 0
        fi
        echo "---- try ${i}: ${out}" >&2
        sleep 1
    done
    printf '%s\n' "$out"
    return 1
}

if out=$(admin_exec -e SLUICE_LOG_LEVEL=debug "$POOL_C" sluice workers) &&
   grep -q 'event=config path=/etc/sluice/sluice.json' <<<"$out" &&
   grep -q ':payment:1 ' <<<"$out"; then
    pass "podman exec sluice workers (no -c) read /etc/sluice/sluice.json and reached redis"
    grep -v 'event=config' <<<"$out" | indent
else
    fail "podman exec sluice workers: ${out}"
fi
if out=$(admin_exec "$POOL_C" sluice stats) && grep -q 'payment-workers' <<<"$out"; then
    pass "podman exec sluice stats (no -c)"
    indent <<<"$out"
else
    fail "podman exec sluice stats: ${out}"
fi

if out=$(podman healthcheck run "$POOL_C" 2>&1); then
    pass "podman healthcheck run ${POOL_C}: ${out:-healthy}"
else
    fail "podman healthcheck run ${POOL_C}: ${out}"
fi

# The second replica (SLUICE_REPLICAS=2): its consumer names must
# differ from the first's, so both pools run.
hosts() {
    local out
    out=$(podman exec "$POOL_C" sluice workers --json 2>&1) || { echo "error: ${out}"; return; }
    grep -o '"host": *"[^"]*"' <<<"$out" | sort -u | wc -l
}
if poll_eq 30 2 hosts; then
    pass "two pool replicas run side by side with consumer names of their own (2 hosts in sluice workers)"
else
    fail "two replicas: ${GOT} host(s) in sluice workers; the second's log:"
    podman logs --tail 20 "$POOL2_C" 2>&1 | indent
fi

# Redis gone: the pool's health check must say so, and recover after.
podman stop -t 10 "$REDIS_C" >/dev/null 2>&1
health_rc() { podman healthcheck run "$POOL_C" >/dev/null 2>&1; echo $?; }
if poll_eq 30 1 health_rc; then
    pass "redis stopped: podman healthcheck run says unhealthy ($(podman exec "$POOL_C" sluice health 2>&1))"
else
    fail "redis stopped: podman healthcheck run still exits ${GOT}"
fi
podman start "$REDIS_C" >/dev/null 2>&1
if poll_eq 60 0 health_rc; then
    pass "redis back: podman healthcheck run says healthy again"
else
    fail "redis back: podman healthcheck run exits ${GOT}"
fi

# ---------------------------------------------------------------------
# Stop
# ---------------------------------------------------------------------

for c in "$POOL_C" "$POOL2_C"; do
    t0=$(date +%s%N)
    echo "---- $(date -u +%H:%M:%S.%3N) podman stop -t ${STOP_TIMEOUT} ${c}"
    podman stop -t "$STOP_TIMEOUT" "$c" >/dev/null 2>"${WORK}/stop.log" ||
        { cat "${WORK}/stop.log"; fail "podman stop ${c}"; }
    t1=$(date +%s%N)
    code=$(podman inspect -f '{{.State.ExitCode}}' "$c")
    ms=$(( (t1 - t0) / 1000000 ))
    echo "---- ${c}'s last log lines"
    podman logs --tail 3 "$c" 2>&1 | indent
    if [ "$code" = 0 ]; then
        pass "podman stop -t ${STOP_TIMEOUT} ${c}: exit code ${code} after ${ms} ms"
    else
        fail "podman stop -t ${STOP_TIMEOUT} ${c}: exit code ${code} after ${ms} ms"
    fi
done
