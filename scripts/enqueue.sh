#!/bin/sh
# enqueue.sh -- add entries to a sluice stream with plain redis-cli, for
# hosts without the sluice binary (`sluice enqueue` checks the JSON fully;
# this script only checks that it looks like an object).
#
#   enqueue.sh [-u URL] STREAM TYPE JSON      one entry; prints its ID
#   enqueue.sh [-u URL] -f FILE STREAM        one entry per line of FILE
#                                             ("-" is standard input)
#
# A FILE line is `TYPE JSON`: the type, blanks, then the JSON object up to
# the end of the line. Empty lines and lines starting with # are skipped.
# Every line is checked before anything is sent, so a bad line adds
# nothing; then all entries go through one redis-cli and their IDs are
# printed, one per line, in order.
#
# The server is -u URL, else $SLUICE_REDIS_URL, else $REDIS_URL, else
# redis://127.0.0.1:6379 (redis://[:password@]host:port[/db]).
# $REDIS_CLI names the redis-cli to run. Exit status: 0 done, 1 Redis
# failed (unreachable, or an error reply), 2 usage or bad input.
set -eu

prog=enqueue.sh
cli=${REDIS_CLI:-redis-cli}
url=${SLUICE_REDIS_URL:-${REDIS_URL:-redis://127.0.0.1:6379}}
file=

usage() {
    echo "usage: $prog [-u URL] STREAM TYPE JSON" >&2
    echo "       $prog [-u URL] -f FILE STREAM" >&2
    exit 2
}

# Sets r to $1 without leading and trailing white space (no subshell:
# the bulk mode calls it for every line).
trim() {
    r=${1#"${1%%[![:space:]]*}"}
    r=${r%"${r##*[![:space:]]}"}
}

# Fails unless $1 looks like a JSON object: { ... }.
is_object() {
    trim "$1"
    case $r in
        "{"*"}") return 0 ;;
        *) return 1 ;;
    esac
}

# Fails unless $1 is a usable type: not empty, no white space.
is_type() {
    case $1 in
        "" | *[[:space:]]*) return 1 ;;
        *) return 0 ;;
    esac
}

# Escapes backslashes and double quotes of every line of standard input,
# for double-quoted arguments of redis-cli's own parser.
escape() {
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}

while getopts u:f:h opt; do
    case $opt in
        u) url=$OPTARG ;;
        f) file=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))

if ! command -v "$cli" >/dev/null 2>&1; then
    echo "$prog: $cli not found (Debian package redis-tools)" >&2
    exit 2
fi

if [ -z "$file" ]; then
    [ $# -eq 3 ] || usage
    stream=$1 type=$2 json=$3
    [ -n "$stream" ] || { echo "$prog: STREAM must not be empty" >&2; exit 2; }
    is_type "$type" || { echo "$prog: TYPE must be a non-empty word, got \"$type\"" >&2; exit 2; }
    is_object "$json" || { echo "$prog: JSON must be an object: {...}" >&2; exit 2; }
    id=$("$cli" --no-auth-warning -u "$url" XADD "$stream" '*' type "$type" data "$json") || {
        echo "$prog: redis-cli failed" >&2
        exit 1
    }
    case $id in
        [0-9]*-[0-9]*) printf '%s\n' "$id" ;;
        *) echo "$prog: redis: ${id:-no reply}" >&2; exit 1 ;;
    esac
    exit 0
fi

[ $# -eq 1 ] || usage
stream=$1
[ -n "$stream" ] || { echo "$prog: STREAM must not be empty" >&2; exit 2; }
if [ "$file" != - ] && [ ! -r "$file" ]; then
    echo "$prog: cannot read $file" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/enqueue.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# Pass 1: check every line; keep "TYPE<tab>JSON" lines.
n=0 lineno=0
tab=$(printf '\t')
if [ "$file" = - ]; then src=/dev/stdin; else src=$file; fi
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    trim "$line"
    case $r in
        "" | "#"*) continue ;;
    esac
    type=${r%%[[:space:]]*}
    trim "${r#"$type"}"
    json=$r
    if ! is_type "$type" || [ -z "$json" ]; then
        echo "$prog: $file:$lineno: expected TYPE JSON" >&2
        exit 2
    fi
    if ! is_object "$json"; then
        echo "$prog: $file:$lineno: JSON must be an object: {...}" >&2
        exit 2
    fi
    printf '%s\t%s\n' "$type" "$json" >>"$tmp/lines"
    n=$((n + 1))
done <"$src"

[ "$n" -gt 0 ] || exit 0

# Pass 2: quote, then one redis-cli for all; every reply must be an ID.
qstream=$(printf '%s\n' "$stream" | escape)
escape <"$tmp/lines" | while IFS="$tab" read -r type json; do
    printf 'XADD "%s" * type "%s" data "%s"\n' "$qstream" "$type" "$json"
done >"$tmp/cmds"
"$cli" --no-auth-warning -u "$url" <"$tmp/cmds" >"$tmp/out" || {
    echo "$prog: redis-cli failed" >&2
    exit 1
}
idre='^[0-9][0-9]*-[0-9][0-9]*$'
grep "$idre" "$tmp/out" || true
ok=$(grep -c "$idre" "$tmp/out" || true)
if [ "$ok" -ne "$n" ]; then
    bad=$(grep -v "$idre" "$tmp/out" | head -n 1)
    echo "$prog: redis: ${bad:-no reply}" >&2
    echo "$prog: $ok of $n entries added" >&2
    exit 1
fi
