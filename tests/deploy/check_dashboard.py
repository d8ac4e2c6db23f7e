#!/usr/bin/python3
"""check_dashboard.py -- checks deploy/grafana/sluice-dashboard.json
against what a real pool exports.

    tests/deploy/check_dashboard.py SLUICE_BIN [DASHBOARD]

1. The file is valid JSON with the shape Grafana needs (uid, title,
   panels with targets), and every panel has an id of its own.
2. A redis-server and `SLUICE_BIN run` with the default configuration
   (config/sluice.json) start on free loopback ports; two entries go in
   (one valid, one that is dead-lettered); /metrics is scraped once every
   worker has decided them.
3. Every metric name a query uses (panels and template variables) is one
   the scrape holds (or `up`, which Prometheus adds), and the dashboard
   shows each family the operator needs (throughput, lag, pending, dead
   letters, handler duration, reconnects, children up).
4. A Prometheus (Debian's `prometheus`, the package that ships promtool)
   scrapes the pool every second; every query, with the Grafana variables
   replaced, must parse and return at least one series, which also proves
   the label names the queries use exist.
Every process started here is stopped by its PID. Exit 0, or 1 with one
line per problem.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOW = float(os.environ.get("SLUICE_TEST_SLOW", "1") or "1")
DEADLINE_S = 30 * SLOW

# What an operator must see, by metric family.
REQUIRED = {
    "throughput": "sluice_processed_total",
    "lag": "sluice_lag",
    "pending": "sluice_pending",
    "dead letters": "sluice_dead_lettered_total",
    "handler duration": "sluice_handler_duration_seconds_bucket",
    "reconnects": "sluice_redis_reconnects_total",
    "children up": "sluice_children_up",
}

# Series Prometheus makes itself for every target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
                "and", "or", "unless", "bool", "offset", "inf", "nan"}

problems = []


def problem(msg):
    """Records one failed check; the script exits 1 at the end."""
    problems.append(msg)
    print("check_dashboard: FAIL: " + msg, file=sys.stderr)


def free_port():
    """Returns a loopback port that was free a moment ago (the caller
    retries when a server cannot bind it after all)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, deadline_s=DEADLINE_S):
    """Polls fn until it returns a true value, which is returned; raises
    after deadline_s (scaled by SLUICE_TEST_SLOW) naming what."""
    end = time.monotonic() + deadline_s
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.1)


def http_get(url):
    """Returns the body of a GET, or None when it fails."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode("utf-8")
    except (urllib.error.URLError, OSError):
        return None


# ------------------------------------------------------------------ #
# The dashboard                                                       #
# ------------------------------------------------------------------ #

def panels_of(d):
    """Yields every panel, rows' nested panels included."""
    for p in d.get("panels", []):
        yield p
        for q in p.get("panels", []):
            yield q


def queries_of(d):
    """Returns [(where, expr)] for every panel target and every query
    variable (label_values(EXPR, label) gives EXPR)."""
    out = []
    for p in panels_of(d):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append(("panel %r %s" % (p.get("title"), t.get("refId")), t["expr"],
                            t.get("legendFormat", "")))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q)
        if m:
            out.append(("variable %s" % v.get("name"), m.group(1), "{{%s}}" % m.group(2)))
        elif q:
            out.append(("variable %s" % v.get("name"), q, ""))
    return out


def metric_names(expr):
    """Returns the metric names PromQL expression expr selects: strings,
    label matchers, durations and grouping clauses are removed first,
    then an identifier not followed by "(" and not a keyword is a name."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if e[:m.start()].endswith("$"):
            continue  # a Grafana variable
        names.add(word)
    return names


def check_shape(d):
    """Checks what Grafana needs to load the dashboard."""
    for k in ("uid", "title", "panels", "schemaVersion"):
        if k not in d:
            problem("dashboard has no %r" % k)
    ids = [p.get("id") for p in panels_of(d)]
    if len(ids) != len(set(ids)) or None in ids:
        problem("panel ids are missing or repeated: %r" % ids)
    for p in panels_of(d):
        if p.get("type") != "row" and not p.get("targets"):
            problem("panel %r has no query" % p.get("title"))
        if "gridPos" not in p:
            problem("panel %r has no gridPos" % p.get("title"))


# ------------------------------------------------------------------ #
# The pool                                                            #
# ------------------------------------------------------------------ #

def parse_exposition(text):
    """Parses Prometheus text format: returns {family: type} and the set
    of sample names, checking that each sample belongs to a declared
    family (histograms: _bucket, _sum, _count)."""
    types, samples = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind
        elif line.startswith("#") or not line.strip():
            continue
        else:
            m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)$", line)
            if not m:
                problem("unparsable /metrics line: %r" % line)
                continue
            float(m.group(3))
            samples.add(m.group(1))
    for s in samples:
        base = re.sub(r"_(bucket|sum|count)$", "", s)
        if s not in types and types.get(base) != "histogram":
            problem("sample %s has no TYPE line" % s)
    return types, samples


class Procs:
    """The processes this script started, each stopped by its PID."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, env=None):
        """Starts argv with stdout and stderr to file log."""
        f = open(log, "wb")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                             cwd=ROOT, stdin=subprocess.DEVNULL)
        f.close()
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM):
        """Signals p, waits for it (SIGKILL after the deadline) and
        returns its exit status."""
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    def stop_all(self):
        """Stops every process still running, newest first."""
        for p in reversed(list(self.procs)):
            self.stop(p)


def start_redis(procs, tmp):
    """Starts a redis-server on a free loopback port; returns (proc, port)."""
    for attempt in range(5):
        port = free_port()
        p = procs.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                         "--save", "", "--appendonly", "no", "--dir", tmp],
                        os.path.join(tmp, "redis-%d.log" % attempt))

        def ping():
            if p.poll() is not None:
                return "exited"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(64).startswith(b"+PONG") and "ok"
            except OSError:
                return None
        if wait_for("redis-server to answer", ping) == "ok":
            return p, port
        procs.stop(p)
    raise RuntimeError("redis-server did not start")


def redis_cmd(port, *args):
    """Sends one command (RESP) and returns the first reply line."""
    req = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        req += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        return s.recv(4096).split(b"\r\n")[0].decode()


def sample_value(text, name, labels):
    """Returns the value of sample name{...labels...} in text, or None."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all('%s="%s"' % kv in line for kv in labels.items()):
            return float(line.rsplit(None, 1)[1])
    return None


def start_prometheus(procs, tmp, target):
    """Starts Prometheus scraping target every second; returns its URL."""
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: sluice\n    static_configs:\n"
                "      - targets: ['%s']\n" % target)
    for attempt in range(5):
        port = free_port()
        p = procs.start(["prometheus", "--config.file=" + cfg,
                         "--storage.tsdb.path=" + os.path.join(tmp, "tsdb-%d" % attempt),
                         "--web.listen-address=127.0.0.1:%d" % port],
                        os.path.join(tmp, "prometheus-%d.log" % attempt))
        url = "http://127.0.0.1:%d" % port

        def ready():
            if p.poll() is not None:
                return "exited"
            return http_get(url + "/-/ready") is not None and "ok"
        if wait_for("prometheus to be ready", ready) == "ok":
            return url
        procs.stop(p)
    raise RuntimeError("prometheus did not start")


def prom_query(url, expr):
    """Evaluates expr now; returns (result list, None) or (None, error)."""
    q = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url + "/api/v1/query?" + q, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return None, json.load(e).get("error")
        except ValueError:
            return None, str(e)
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)
    if body.get("status") != "success":
        return None, body.get("error")
    return body["data"]["result"], None


def grafana_vars(expr):
    """Replaces the Grafana variables the dashboard uses by values
    Prometheus accepts: every pool and worker, a one-minute window."""
    return (expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
            .replace("$__interval", "15s").replace("$instance", ".*").replace("$worker", ".*"))


def main():
    """Runs every check; returns the exit status."""
    if len(sys.argv) < 2:
        print("usage: check_dashboard.py SLUICE_BIN [DASHBOARD]", file=sys.stderr)
        return 2
    sluice = os.path.abspath(sys.argv[1])
    path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "deploy/grafana/sluice-dashboard.json")
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        problem("%s: not valid JSON: %s" % (path, e))
        return 1
    check_shape(dash)
    queries = queries_of(dash)
    if not queries:
        problem("no query in the dashboard")

    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="sluice-deploy-")
    try:
        _, rport = start_redis(procs, tmp)
        env = dict(os.environ)
        env.pop("SLUICE_CONFIG", None)
        env.pop("SLUICE_REDIS_URL", None)
        pool_log = os.path.join(tmp, "pool.log")
        pool = procs.start([sluice, "run", "-c", os.path.join(ROOT, "config/sluice.json"),
                            "--redis", "redis://127.0.0.1:%d/0" % rport,
                            "--metrics", "127.0.0.1:0"], pool_log, env)

        def listening():
            if pool.poll() is not None:
                raise RuntimeError("the pool exited: %s" % open(pool_log).read()[-2000:])
            m = re.search(r"event=metrics_listening addr=(\S+)", open(pool_log).read())
            return m and m.group(1)
        maddr = wait_for("the pool's metrics listener", listening)
        murl = "http://%s/metrics" % maddr
        wait_for("every child up",
                 lambda: (http_get("http://%s/healthz" % maddr) or "").startswith("ok"))
        redis_cmd(rport, "XADD", "users", "*", "type", "user.created", "data",
                  '{"user_id":"u-1","name":"Ada","email":"ada@example.com","balance_cents":5000}')
        redis_cmd(rport, "XADD", "users", "*", "type", "user.created", "data", "not json")

        def decided():
            t = http_get(murl)
            lab = {"worker": "user"}
            return (t and (sample_value(t, "sluice_processed_total", lab) or 0) >= 2
                    and (sample_value(t, "sluice_dead_lettered_total", lab) or 0) >= 1 and t)
        text = wait_for("both entries decided", decided)
        _, exported = parse_exposition(text)
        print("check_dashboard: the pool exports %d sample names: %s"
              % (len(exported), " ".join(sorted(exported))))

        used = set()
        for where, expr, _ in queries:
            names = metric_names(expr)
            if not names:
                problem("%s selects no metric: %s" % (where, expr))
            for n in sorted(names):
                used.add(n)
                if n not in exported and n not in SYNTHETIC:
                    problem("%s uses %s, which sluice does not export" % (where, n))
        for what, name in REQUIRED.items():
            if name not in used:
                problem("no panel shows %s (%s)" % (what, name))

        purl = start_prometheus(procs, tmp, maddr)

        def scraped():
            r, _ = prom_query(purl, 'count_over_time(up{job="sluice"}[1m]) >= 3 and up{job="sluice"} == 1')
            return bool(r)
        wait_for("three good scrapes", scraped)
        for where, expr, legend in queries:
            r, err = prom_query(purl, grafana_vars(expr))
            if err is not None:
                problem("%s: Prometheus refuses %s: %s" % (where, expr, err))
            elif not r:
                problem("%s returns no series: %s" % (where, expr))
            else:
                # A legend (or a variable) naming a label the series lack
                # shows blanks: the query groups or selects the wrong one.
                for label in re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend):
                    if not all(label in s["metric"] for s in r):
                        problem("%s shows label %s, which its series lack: %s"
                                % (where, label, expr))
        print("check_dashboard: %d queries evaluated against a real scrape" % len(queries))

        code = procs.stop(pool)
        if code != 0:
            problem("the pool exited %s on SIGTERM" % code)
    except RuntimeError as e:
        problem(str(e))
    finally:
        procs.stop_all()
    if problems:
        for log in sorted(os.listdir(tmp)):
            if log.endswith(".log"):
                with open(os.path.join(tmp, log), errors="replace") as f:
                    tail = f.readlines()[-15:]
                print("--- last lines of %s\n%s" % (log, "".join(tail)), file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print("check_dashboard: FAILED (%d problems)" % len(problems), file=sys.stderr)
        return 1
    print("check_dashboard: ok: %s" % os.path.relpath(path, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
