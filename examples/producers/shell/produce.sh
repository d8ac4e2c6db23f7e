#!/bin/sh
# produce.sh -- a sluice producer with nothing but redis-cli.
#
#     sh examples/producers/shell/produce.sh [REDIS_URL]
#
# Adds a user.created and an order.created of the payment flow, then the
# two classic mistakes (a float amount, flat fields instead of `data`),
# and waits for the outcome of each: the effect in the business keys, or
# the dead letter in `<stream>:dead`. Exits 0 when every outcome is the
# expected one, 1 otherwise. See docs/producers.md.
#
# REDIS_URL defaults to $SLUICE_REDIS_URL, else redis://127.0.0.1:6379/0;
# a URL without a password uses $SLUICE_REDIS_PASSWORD. PRODUCER_TIMEOUT
# is the wait for the outcomes, in seconds (default 30).
set -eu

url=${1:-${SLUICE_REDIS_URL:-redis://127.0.0.1:6379/0}}
timeout=${PRODUCER_TIMEOUT:-30}
case $url in
redis://:*@*) ;;
*) if [ -n "${SLUICE_REDIS_PASSWORD:-}" ]; then
       REDISCLI_AUTH=$SLUICE_REDIS_PASSWORD
       export REDISCLI_AUTH
   fi ;;
esac

# redis-cli exits 0 even when Redis answers with an error, and prints the
# error where the reply would be: callers check the reply's form.
cli() {
    redis-cli -u "$url" --no-auth-warning --raw "$@"
}

# xadd STREAM FIELD VALUE...: adds one entry (never with MAXLEN: trimming
# is sluice's job) and prints its ID; fails on anything but an ID.
xadd() {
    stream=$1
    shift
    id=$(cli XADD "$stream" '*' "$@")
    case $id in
    [0-9]*-[0-9]*) echo "$id" ;;
    *) echo "produce.sh: XADD $stream: $id" >&2; exit 1 ;;
    esac
}

# dead_letter STREAM ID: prints the `error` of the dead letter of entry ID
# in STREAM:dead, or nothing. A dead letter is added after its entry, in
# another stream: its ID has the same or a later millisecond, but maybe a
# lower sequence number, so the scan starts at the entry's millisecond.
# The lookup runs in Redis (read only), since redis-cli's flat output
# cannot tell where one entry ends.
dead_letter() {
    cli EVAL "
        for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+')) do
            local f, err, src = e[2], nil, nil
            for i = 1, #f, 2 do
                if f[i] == 'error' then err = f[i + 1] end
                if f[i] == 'source_id' then src = f[i + 1] end
            end
            if src == ARGV[2] then return err end
        end
        return ''" 1 "$1:dead" "${2%-*}" "$2"
}

# wait_for COMMAND...: runs COMMAND every 0.1 s until it prints something,
# or the timeout passes; prints what it printed last.
end=$(($(date +%s) + timeout))
wait_for() {
    while :; do
        got=$("$@")
        if [ -n "$got" ] || [ "$(date +%s)" -ge "$end" ]; then
            echo "$got"
            return
        fi
        sleep 0.1
    done
}

# Outcome probes: print the outcome once there is one.
user_outcome() {
    err=$(dead_letter users "$uid")
    if [ -n "$err" ]; then
        echo "dead letter: $err"
    elif [ "$(cli EXISTS user:u-1)" = 1 ]; then
        echo created
    fi
}
order_outcome() {
    err=$(dead_letter orders "$oid")
    status=$(cli HGET order:o-1 status)
    if [ -n "$err" ]; then
        echo "dead letter: $err"
    elif [ "$status" = paid ] || [ "$status" = failed ]; then
        echo "$status"
    fi
}

# The payment flow: amounts are integers (cents); `data` is one JSON
# object, as one argument, in UTF-8.
uid=$(xadd users type user.created \
    data '{"user_id":"u-1","name":"Zoë","email":"zoe@example.com","balance_cents":5000}')
echo "user.created  u-1 -> users  $uid"
# Streams are independent: an order sent now could reach the payment
# worker before the user worker has created u-1, and be declined as
# unknown_user. So wait for the user first.
status=$(wait_for user_outcome)
echo "  user u-1: $status"
[ "$status" = created ] || exit 1

oid=$(xadd orders type order.created \
    data '{"order_id":"o-1","user_id":"u-1","amount_cents":1999,"currency":"USD"}')
echo "order.created o-1 -> orders $oid"

# Pitfall 1: a float amount. Valid JSON, so Redis takes it, but the order
# worker wants a JSON integer: dead letter wrong_type.
fid=$(xadd orders type order.created \
    data '{"order_id":"o-2","user_id":"u-1","amount_cents":19.99,"currency":"USD"}')
echo "pitfall, float amount_cents 19.99 -> orders $fid"

# Pitfall 2: the event's fields as stream fields, without `data`: dead
# letter missing_payload.
xid=$(xadd orders type order.created order_id o-3 user_id u-1 amount_cents 1999 currency USD)
echo "pitfall, flat fields without data -> orders $xid"

ok=1
echo "outcomes:"
status=$(wait_for order_outcome)
echo "  order o-1: $status; user u-1 balance_cents $(cli HGET user:u-1 balance_cents)"
[ "$status" = paid ] || ok=0

err=$(wait_for dead_letter orders "$fid")
echo "  float amount: dead letter in orders:dead: $err"
# Match on the code, the text before the first ':'.
[ "${err%%:*}" = wrong_type ] || ok=0

err=$(wait_for dead_letter orders "$xid")
echo "  flat fields: dead letter in orders:dead: $err"
[ "${err%%:*}" = missing_payload ] || ok=0

[ "$ok" = 1 ]
