#!/bin/sh
# pending.sh -- what `sluice pending` shows, through redis-cli only (XINFO
# and XPENDING), for hosts without the sluice binary.
#
#   pending.sh [-u URL] [-n COUNT] STREAM [GROUP]
#
# For the stream: its length, entries added and groups. For each group
# (or GROUP only): the XPENDING summary (count, lowest and highest ID),
# lag, consumers with their pending count and idle time, and the COUNT
# (default 10) oldest pending entries with idle time and delivery count:
#
#   stream jobs: length 5, entries-added 5, groups 1, last-generated-id 1-5
#   group g: 5 pending (1-1 .. 1-5), lag 0, consumers 2, last-delivered-id 1-5
#     CONSUMER                                 PENDING    IDLE_MS
#     worker-a                                       3       1200
#     ID                       CONSUMER                    IDLE_MS DELIVERIES
#     1-1                      worker-a                       1200          1
#
# The server is -u URL, else $SLUICE_REDIS_URL, else $REDIS_URL, else
# redis://127.0.0.1:6379. $REDIS_CLI names the redis-cli to run. Exit
# status: 0 done, 1 Redis failed or no such stream/group, 2 usage.
set -eu

prog=pending.sh
cli=${REDIS_CLI:-redis-cli}
url=${SLUICE_REDIS_URL:-${REDIS_URL:-redis://127.0.0.1:6379}}
count=10

usage() {
    echo "usage: $prog [-u URL] [-n COUNT] STREAM [GROUP]" >&2
    exit 2
}

# Runs one redis-cli command; its reply goes to standard output, one
# value per line (redis-cli prints raw values when its output is not a
# terminal). Fails with the error when Redis is unreachable or replies
# with an error.
rcli() {
    out=$("$cli" --no-auth-warning -u "$url" "$@" 2>&1) || {
        echo "$prog: $out" >&2
        return 1
    }
    case $out in
        "ERR no such key"*)
            echo "$prog: no stream $stream" >&2
            return 1 ;;
        ERR* | WRONGTYPE* | NOGROUP* | NOAUTH* | WRONGPASS* | LOADING* | "Could not connect"*)
            echo "$prog: redis: $out" >&2
            return 1 ;;
    esac
    printf '%s\n' "$out"
}

# Prints the value that follows the line "$1" in a name/value listing on
# standard input, stopping at the line "$2" (where nested values begin).
field() {
    awk -v k="$1" -v stop="${2:-}" '
        NR % 2 == 1 && $0 == stop && stop != "" { exit }
        NR % 2 == 1 && $0 == k { want = 1; next }
        want { print; exit }'
}

while getopts u:n:h opt; do
    case $opt in
        u) url=$OPTARG ;;
        n) count=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    usage
fi
case $count in
    "" | *[!0-9]* | 0) echo "$prog: -n: expected a positive integer" >&2; exit 2 ;;
esac
if ! command -v "$cli" >/dev/null 2>&1; then
    echo "$prog: $cli not found (Debian package redis-tools)" >&2
    exit 2
fi
stream=$1
only=${2:-}

if ! info=$(rcli XINFO STREAM "$stream"); then
    exit 1
fi
printf 'stream %s: length %s, entries-added %s, groups %s, last-generated-id %s\n' "$stream" \
    "$(printf '%s\n' "$info" | field length first-entry)" \
    "$(printf '%s\n' "$info" | field entries-added first-entry)" \
    "$(printf '%s\n' "$info" | field groups first-entry)" \
    "$(printf '%s\n' "$info" | field last-generated-id first-entry)"

groups=$(rcli XINFO GROUPS "$stream") || exit 1
# One line per group: name, consumers, pending, last-delivered-id, lag
# ("-" when Redis cannot tell).
table=$(printf '%s\n' "$groups" | awk '
    function flush() {
        if ("name" in v)
            print v["name"] "\t" v["consumers"] "\t" v["pending"] "\t" \
                  v["last-delivered-id"] "\t" (v["lag"] == "" ? "-" : v["lag"])
        split("", v)
    }
    NR % 2 == 1 { k = $0; if (k == "name") flush(); next }
    { v[k] = $0 }
    END { flush() }')
if [ -z "$table" ]; then
    echo "stream $stream has no consumer groups"
    [ -z "$only" ] || { echo "$prog: no group $only on $stream" >&2; exit 1; }
    exit 0
fi

found=0
tab=$(printf '\t')
while IFS="$tab" read -r name consumers pending last lag; do
    [ -z "$only" ] || [ "$name" = "$only" ] || continue
    found=1
    summary=$(rcli XPENDING "$stream" "$name") || exit 1
    range=$(printf '%s\n' "$summary" | awk 'NR == 2 { lo = $0 } NR == 3 { hi = $0 }
        END { if (lo != "") print " (" lo " .. " hi ")" }')
    printf 'group %s: %s pending%s, lag %s, consumers %s, last-delivered-id %s\n' \
        "$name" "$pending" "$range" "$lag" "$consumers" "$last"
    if [ "$consumers" -gt 0 ]; then
        list=$(rcli XINFO CONSUMERS "$stream" "$name") || exit 1
        printf '%s\n' "$list" | awk '
            function flush() {
                if ("name" in v)
                    printf "  %-40s %8s %10s\n", v["name"], v["pending"], v["idle"]
                split("", v)
            }
            BEGIN { printf "  %-40s %8s %10s\n", "CONSUMER", "PENDING", "IDLE_MS" }
            NR % 2 == 1 { k = $0; if (k == "name") flush(); next }
            { v[k] = $0 }
            END { flush() }'
    fi
    if [ "$pending" -gt 0 ]; then
        list=$(rcli XPENDING "$stream" "$name" - + "$count") || exit 1
        printf '%s\n' "$list" | awk '
            BEGIN { printf "  %-24s %-30s %10s %10s\n", "ID", "CONSUMER", "IDLE_MS", "DELIVERIES" }
            { f[NR % 4] = $0 }
            NR % 4 == 0 { printf "  %-24s %-30s %10s %10s\n", f[1], f[2], f[3], f[0] }'
    fi
done <<EOF
$table
EOF
if [ "$found" -eq 0 ]; then
    echo "$prog: no group $only on $stream" >&2
    exit 1
fi
