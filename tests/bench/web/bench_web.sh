#!/usr/bin/env bash
# bench_web.sh -- the dashboard at scale (make bench-web): 1,000 streams,
# each with a group and an hour of rate samples, and one 1,000,000-entry
# dead-letter stream. Prints how long `sluice web` takes to answer the
# overview (cold, then read again after its 1 s cache expired) and dead
# letter pages, and its resident memory before and after. Reports only:
# it asserts no timing (the goal for the overview is under 200 ms).
#
#   bash tests/bench/web/bench_web.sh SLUICE_BIN [STREAMS] [DEAD]
set -euo pipefail

bin=$1 nstreams=${2:-1000} ndead=${3:-1000000}
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
R() { redis-cli -p "$port" "$@"; }
for _ in $(seq 100); do [ "$(R PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done

echo "bench-web: seeding $nstreams streams (10 entries, a group, 60 rate samples each) and $ndead dead letters"
now=$(date +%s%3N)
R EVAL "
for s = 0, tonumber(ARGV[1]) - 1 do
  local k = 's' .. s
  redis.call('XGROUP', 'CREATE', k, 'g', '\$', 'MKSTREAM')
  for i = 1, 10 do redis.call('XADD', k, '*', 'type', 't', 'data', '{}') end
  for m = 59, 0, -1 do
    redis.call('XADD', 'sluice:rate:' .. k .. ':g', (tonumber(ARGV[2]) - m * 60000) .. '-0',
               'added', 1000 - m * 10, 'read', 900 - m * 9, 'pending', 3, 'lag', 10)
  end
end" 0 "$nstreams" "$now" >/dev/null
left=$ndead
while [ "$left" -gt 0 ]; do
    n=$(( left > 100000 ? 100000 : left ))
    R EVAL "
for i = 1, tonumber(ARGV[1]) do
  redis.call('XADD', KEYS[1], '*', 'type', 'order.created', 'data', '{\"n\":1}',
             'error', (i % 3 == 0) and 'unknown_type: x' or 'invalid_json: y',
             'source_id', '1-1', 'deliveries', '5', 'consumer', 'c', 'failed_at', '1')
end" 1 s0:dead "$n" >/dev/null
    left=$((left - n))
done

{
    printf '{"redis": {"url": "redis://127.0.0.1:%s"}, "workers": [' "$port"
    for ((s = 0; s < nstreams; s++)); do
        printf '%s{"handler": "noop", "stream": "s%d", "group": "g"}' "$([ $s -gt 0 ] && echo ,)" "$s"
    done
    printf '], "metrics": {"listen": null}}\n'
} >"$tmp/sluice.json"

"$bin" web -c "$tmp/sluice.json" --listen 127.0.0.1:0 >"$tmp/web.log" 2>&1 &
wpid=$!
pids+=("$wpid")
wport=""
for _ in $(seq 100); do
    wport=$(sed -n 's/.*event=web_listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/web.log")
    [ -n "$wport" ] && break
    sleep 0.1
done
[ -n "$wport" ] || { cat "$tmp/web.log"; exit 1; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$wpid/status"; }
t() { curl -s -o "$tmp/out" -w '%{time_total}' "http://127.0.0.1:$wport$1"; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }

rss0=$(rss)
cold=$(t /api/overview)
rows=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rows"]))' "$tmp/out")
times=()
for _ in $(seq 20); do
    sleep 1.1                      # past the 1 s cache: a fresh read each time
    times+=("$(t /api/overview)")
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
med=$(echo "$sorted" | sed -n 10p)
max=$(echo "$sorted" | tail -1)
rss1=$(rss)
d1=$(t '/api/dead?stream=s0&count=50')
mid=$(R XRANGE s0:dead - + COUNT 500000 | awk 'NR % 15 == 1 { id = $0 } END { print id }')
d2=$(t "/api/dead?stream=s0&count=50&cursor=$mid")
d3=$(t '/api/dead?stream=s0&count=50&code=unknown_type')
last=$(R XREVRANGE s0:dead + - COUNT 1 | head -1)
d4=$(t "/api/dead/entry?stream=s0&id=$last")
for _ in $(seq 10); do t /api/overview >/dev/null; sleep 1.1; done
rss2=$(rss)

printf '\n%-52s %12s\n' "dashboard ($nstreams streams, $ndead dead letters)" "result"
printf '%-52s %12s\n' "overview rows" "$rows"
printf '%-52s %9s ms\n' "overview, first read (a whole hour of samples)" "$(ms "$cold")"
printf '%-52s %9s ms\n' "overview, fresh read, median of 20" "$(ms "$med")"
printf '%-52s %9s ms\n' "overview, fresh read, worst of 20" "$(ms "$max")"
printf '%-52s %9s ms\n' "dead letters, first page of 50" "$(ms "$d1")"
printf '%-52s %9s ms\n' "dead letters, page of 50 after a cursor deep inside" "$(ms "$d2")"
printf '%-52s %9s ms\n' "dead letters, 50 of one code" "$(ms "$d3")"
printf '%-52s %9s ms\n' "one dead letter by exact ID" "$(ms "$d4")"
printf '%-52s %9s kB\n' "resident memory: started" "$rss0"
printf '%-52s %9s kB\n' "resident memory: after 21 overviews" "$rss1"
printf '%-52s %9s kB\n' "resident memory: after 31 overviews and 4 pages" "$rss2"
