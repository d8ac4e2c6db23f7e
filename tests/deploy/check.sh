#!/bin/bash
# check.sh -- checks every file of deploy/ with its own tool, then proves
# that each check can fail by running it on broken copies.
#
#   tests/deploy/check.sh [SLUICE_BIN]      (default: build/sluice)
#
#   - deploy/sluice.service: `systemd-analyze verify` (on a copy whose
#     ExecStart is SLUICE_BIN, since verify needs the binary to exist),
#     with any warning counted as a failure; the stop timeout longer than
#     the pool's shutdown_timeout_ms of config/sluice.json;
#   - deploy/prometheus/: `promtool check rules`, `promtool test rules`,
#     every alert firing in one case and quiet in another, `promtool
#     check config` of prometheus.yml;
#   - deploy/grafana/sluice-dashboard.json: tests/deploy/check_dashboard.py
#     (valid JSON; every metric its queries use is in a real scrape of a
#     pool; every query answers in a real Prometheus);
#   - deploy/docker-compose.monitoring.yml: `docker-compose config` with
#     docker-compose.yml, and every file it mounts exists.
# Tools: systemd-analyze (Debian package systemd), promtool and prometheus
# (prometheus), docker-compose, python3 with yaml (python3-yaml). A
# missing tool fails the run, naming its package: a check that cannot run
# has not passed. Exit 0 when every check passes and every broken copy
# fails, else 1.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
bin=${1:-${SLUICE_BIN:-build/sluice}}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# say MESSAGE...: one line of the report.
say() { printf 'deploy-check: %s\n' "$*"; }

# fail MESSAGE...: records a failed check.
fail() {
    printf 'deploy-check: FAIL: %s\n' "$(printf '%s' "$*" | tr '\n' ' ')" >&2
    failed=1
}

# need TOOL PACKAGE: fails the run when TOOL is missing.
need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        fail "$1 is not installed (Debian package $2)"
        return 1
    fi
}

# to_ms VALUE: a systemd time span (20, 20s, 1min, 1min 30s, 500ms) in ms.
to_ms() {
    "$py" - "$1" <<'EOF'
import re, sys
units = {"": 1000, "s": 1000, "sec": 1000, "ms": 1, "msec": 1, "m": 60000, "min": 60000}
total = 0
for n, u in re.findall(r"(\d+)\s*([a-z]*)", sys.argv[1]):
    if u not in units:
        sys.exit("unknown unit " + u)
    total += int(n) * units[u]
print(total)
EOF
}

# check_unit UNIT: systemd-analyze verify, silent, and the stop timeout.
check_unit() {
    local unit=$1 dir out stop_ms shut_ms
    need systemd-analyze systemd || return 1
    if ! grep -qx 'ExecStart=/usr/local/bin/sluice run' "$unit"; then
        fail "$unit: ExecStart is not /usr/local/bin/sluice run"
        return 1
    fi
    dir=$(mktemp -d "$tmp/unit.XXXXXX")
    sed "s|^ExecStart=/usr/local/bin/sluice |ExecStart=$bin |" "$unit" >"$dir/sluice.service"
    # verify exits 0 on unknown keys and bad values (it only warns), so
    # any output is a failure too.
    if ! out=$(systemd-analyze verify "$dir/sluice.service" 2>&1) || [ -n "$out" ]; then
        fail "systemd-analyze verify $unit: $out"
        return 1
    fi
    stop_ms=$(to_ms "$(sed -n 's/^TimeoutStopSec=//p' "$unit")") || {
        fail "$unit: TimeoutStopSec unreadable"
        return 1
    }
    shut_ms=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("defaults", {}).get("shutdown_timeout_ms", 10000))' config/sluice.json)
    if [ "$stop_ms" -le "$shut_ms" ]; then
        fail "$unit: TimeoutStopSec ${stop_ms} ms is not longer than shutdown_timeout_ms ${shut_ms} ms"
        return 1
    fi
    # shellcheck disable=SC2016 # $MAINPID is systemd's, not ours
    for line in 'ExecReload=/bin/kill -HUP $MAINPID' 'KillMode=mixed' 'KillSignal=SIGTERM' 'Restart=on-failure'; do
        if ! grep -qxF "$line" "$unit"; then
            fail "$unit: no line $line"
            return 1
        fi
    done
    say "systemd-analyze verify $unit: ok (TimeoutStopSec ${stop_ms} ms > shutdown_timeout_ms ${shut_ms} ms)"
}

# check_rules RULES TESTS: promtool check and test, and a case each way.
check_rules() {
    local rules=$1 tests=$2 out
    need promtool prometheus || return 1
    if ! out=$(promtool check rules "$rules" 2>&1); then
        fail "promtool check rules $rules: $out"
        return 1
    fi
    say "$(printf '%s' "$out" | tr '\n' ' ')"
    if ! out=$(promtool test rules "$tests" 2>&1); then
        fail "promtool test rules $tests: $out"
        return 1
    fi
    say "$(printf '%s' "$out" | tr '\n' ' ')"
    if ! "$py" tests/deploy/check_alert_tests.py "$rules" "$tests"; then
        fail "$tests: an alert lacks a firing or a quiet case"
        return 1
    fi
}

# check_prom_config CONFIG: promtool check config (loads its rule files).
check_prom_config() {
    local out
    need promtool prometheus || return 1
    if ! out=$(promtool check config "$1" 2>&1); then
        fail "promtool check config $1: $out"
        return 1
    fi
    say "promtool check config $1: ok"
}

# check_dashboard JSON: see tests/deploy/check_dashboard.py.
check_dashboard() {
    need prometheus prometheus || return 1
    need redis-server redis-server || return 1
    if ! TMPDIR=$tmp "$py" tests/deploy/check_dashboard.py "$bin" "$1"; then
        fail "dashboard $1"
        return 1
    fi
}

# check_compose FILE: docker-compose config with docker-compose.yml, the
# services there, and every bind-mounted file present.
check_compose() {
    local out
    need docker-compose docker-compose || return 1
    if ! out=$(docker-compose -f docker-compose.yml -f "$1" config 2>&1); then
        fail "docker-compose -f docker-compose.yml -f $1 config: $out"
        return 1
    fi
    if ! printf '%s\n' "$out" | "$py" -c '
import os, sys, yaml
c = yaml.safe_load(sys.stdin)
bad = 0
for want in ("redis", "sluice", "prometheus", "grafana"):
    if want not in c.get("services", {}):
        print("no service " + want); bad = 1
for name, svc in c.get("services", {}).items():
    for v in svc.get("volumes", []):
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith("/") and not os.path.exists(src):
            print("%s mounts %s, which does not exist" % (name, src)); bad = 1
sys.exit(bad)
'; then
        fail "$1: services or mounted files missing"
        return 1
    fi
    say "docker-compose -f docker-compose.yml -f $1 config: ok, every mounted file exists"
}

# run_all: the checks on the real files.
run_all() {
    check_unit deploy/sluice.service
    check_rules deploy/prometheus/sluice-rules.yml deploy/prometheus/sluice-rules.test.yml
    check_prom_config deploy/prometheus/prometheus.yml
    check_dashboard deploy/grafana/sluice-dashboard.json
    check_compose deploy/docker-compose.monitoring.yml
}

# must_fail WHAT COMMAND...: a check on a broken copy must fail; its
# failure is not the run's.
must_fail() {
    local what=$1 saved=$failed
    shift
    failed=0
    "$@" >"$tmp/must_fail.log" 2>&1
    if [ "$failed" -eq 0 ]; then
        failed=$saved
        fail "the check passed a broken copy: $what"
        return
    fi
    failed=$saved
    say "broken copy refused: $what ($(grep -m1 'FAIL: ' "$tmp/must_fail.log" | sed 's/^[a-z_-]*: FAIL: //' | cut -c1-220))"
}

# broken_rules DIR: a copy of the rules and their tests in DIR.
broken_rules() {
    mkdir -p "$1"
    cp deploy/prometheus/sluice-rules.yml deploy/prometheus/sluice-rules.test.yml "$1/"
}

# self_test: each check, on a copy broken the way it must catch.
self_test() {
    local d=$tmp/broken
    mkdir -p "$d"
    sed 's/^TimeoutStopSec=.*/TimeoutStopSec=twenty/' deploy/sluice.service >"$d/bad-value.service"
    must_fail "unit with an unparsable TimeoutStopSec" check_unit "$d/bad-value.service"
    sed 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' deploy/sluice.service >"$d/bad-key.service"
    must_fail "unit with a misspelt key" check_unit "$d/bad-key.service"
    sed 's/^TimeoutStopSec=.*/TimeoutStopSec=5s/' deploy/sluice.service >"$d/short-stop.service"
    must_fail "unit stopping before shutdown_timeout_ms" check_unit "$d/short-stop.service"

    broken_rules "$d/r1"
    sed -i 's/increase(sluice_dead_lettered_total/increas(sluice_dead_lettered_total/' "$d/r1/sluice-rules.yml"
    must_fail "rules with an unknown function" check_rules "$d/r1/sluice-rules.yml" "$d/r1/sluice-rules.test.yml"
    broken_rules "$d/r2"
    sed -i 's/increase(sluice_dead_lettered_total\[15m\]) > 0/increase(sluice_dead_lettered_total[15m]) > 5/' "$d/r2/sluice-rules.yml"
    must_fail "a dead-letter alert that no longer fires" check_rules "$d/r2/sluice-rules.yml" "$d/r2/sluice-rules.test.yml"
    broken_rules "$d/r3"
    sed -i 's/sluice_children_up == 0/sluice_children_up <= 1/' "$d/r3/sluice-rules.yml"
    must_fail "a worker-down alert that fires too often" check_rules "$d/r3/sluice-rules.yml" "$d/r3/sluice-rules.test.yml"
    broken_rules "$d/r4"
    cat >>"$d/r4/sluice-rules.yml" <<'EOF'
      - alert: SluiceUntested
        expr: sluice_pending > 1000000
EOF
    must_fail "an alert without test cases" check_rules "$d/r4/sluice-rules.yml" "$d/r4/sluice-rules.test.yml"

    mkdir -p "$d/p"
    sed 's/sluice-rules.yml/no-such-rules.yml/' deploy/prometheus/prometheus.yml >"$d/p/prometheus.yml"
    must_fail "prometheus.yml loading a missing rules file" check_prom_config "$d/p/prometheus.yml"

    head -c 2000 deploy/grafana/sluice-dashboard.json >"$d/truncated.json"
    must_fail "a dashboard that is not JSON" check_dashboard "$d/truncated.json"
    sed 's/sluice_pending{/sluice_pending_entries{/' deploy/grafana/sluice-dashboard.json >"$d/bad-metric.json"
    must_fail "a dashboard querying a metric sluice does not export" check_dashboard "$d/bad-metric.json"
    sed 's/sum by (worker) (sluice_children_up{/sum by (handler) (sluice_children_up{/' \
        deploy/grafana/sluice-dashboard.json >"$d/bad-label.json"
    must_fail "a dashboard grouping by a label sluice does not set" check_dashboard "$d/bad-label.json"
    sed 's/up{job=\\"sluice\\"/up{job=\\"sluice-pool\\"/' \
        deploy/grafana/sluice-dashboard.json >"$d/bad-job.json"
    must_fail "a dashboard selecting a job no scrape has" check_dashboard "$d/bad-job.json"

    sed 's|./deploy/prometheus/sluice-rules.yml|./prometheus/sluice-rules.yml|' \
        deploy/docker-compose.monitoring.yml >"$d/compose-path.yml"
    must_fail "a compose file mounting a path relative to deploy/" check_compose "$d/compose-path.yml"
    sed 's/^  grafana:/  grafana/' deploy/docker-compose.monitoring.yml >"$d/compose-yaml.yml"
    must_fail "a compose file that is not valid" check_compose "$d/compose-yaml.yml"
}

if need "$py" python3 && ! "$py" -c 'import yaml' 2>/dev/null; then
    fail "python3 cannot import yaml (Debian package python3-yaml)"
fi
if [ ! -x "$bin" ]; then
    fail "no sluice binary at $bin (make all)"
    exit 1
fi
run_all
self_test
if [ "$failed" -ne 0 ]; then
    say "FAILED"
    exit 1
fi
say "all deploy checks passed, and each refused its broken copies"
