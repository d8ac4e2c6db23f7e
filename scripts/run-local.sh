#!/bin/sh
# Used by `make run`: makes sure a Redis answers on 127.0.0.1:6379 (starting
# one with its data under var/ when none does), then runs the pool in the
# foreground with config/sluice.json. A Redis started here is stopped again
# when the pool exits; one that was already running is left alone.
#
# When the local webhook receiver is built (the second argument), it is
# started on 127.0.0.1:8089 with a secret of its own in var/webhook-secret
# (made once, mode 600), and the pool runs config/webhook-run.json: the
# same workers plus the webhook worker, which tells the receiver of every
# paid or failed order. The receiver prints each delivery and whether its
# signature verified.
set -eu

bin=${1:-build/sluice}
receiver=${2:-}
config=config/sluice.json
rpid=
port=6379
started=""

if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    echo "run-local: using the redis-server already answering on 127.0.0.1:$port" >&2
else
    mkdir -p var
    redis-server --port "$port" --bind 127.0.0.1 --dir "$(pwd)/var" \
        --appendonly yes --appendfsync everysec --save "" \
        --daemonize yes --pidfile "$(pwd)/var/redis.pid" --logfile "$(pwd)/var/redis.log"
    i=0
    until redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; do
        i=$((i + 1))
        if [ "$i" -gt 100 ]; then
            echo "run-local: redis-server did not answer; see var/redis.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    started=$(cat var/redis.pid)
    echo "run-local: started redis-server (pid $started) on 127.0.0.1:$port, data in var/" >&2
fi

if [ -n "$receiver" ] && [ -x "$receiver" ]; then
    mkdir -p var
    if [ ! -s var/webhook-secret ]; then
        (umask 077 && printf 'whsec_%s\n' "$(head -c 24 /dev/urandom | base64)" > var/webhook-secret)
    fi
    SLUICE_WEBHOOK_SECRET_FILE="$(pwd)/var/webhook-secret"
    SLUICE_WEBHOOK_URL=http://127.0.0.1:8089/webhooks/orders
    export SLUICE_WEBHOOK_SECRET_FILE SLUICE_WEBHOOK_URL
    "$receiver" --port 8089 &
    rpid=$!
    config=config/webhook-run.json
    echo "run-local: webhook receiver (pid $rpid) on $SLUICE_WEBHOOK_URL, secret in var/webhook-secret" >&2
fi

# shellcheck disable=SC2317 # invoked by the EXIT trap
stop_redis() {
    if [ -n "$rpid" ]; then
        kill "$rpid" 2>/dev/null || true
    fi
    if [ -n "$started" ]; then
        kill "$started" 2>/dev/null || true
        echo "run-local: stopped redis-server (pid $started)" >&2
    fi
}
trap stop_redis EXIT
# Ctrl-C reaches the pool too, which stops gracefully; the shell only
# waits for it and then stops the Redis it started.
trap ':' INT TERM

# Not exec: the trap must run after the pool exits.
rc=0
"$bin" run -c "$config" --redis "redis://127.0.0.1:$port/0" || rc=$?
exit "$rc"
