#!/usr/bin/python3
"""bench_peers.py -- sluice against BullMQ, Sidekiq and a redis-py loop.

    bench_peers.py --sluice build/sluice --node-dir build/peers/node \
                   [--n N] [--lat-rate R] [--lat-secs S] [--ci]

Every row runs on a fresh redis-server that this script starts on a free
loopback port (--save "" --appendonly no) and stops by PID afterwards:

 1. fill: N no-op jobs of the row's system, with the system's own bulk
    API (pipelined XADD for streams, Queue.addBulk, push_bulk); not timed;
 2. start the consumer (`sluice run`, the redis-py loop, a BullMQ Worker,
    `sidekiq`) on the full queue;
 3. poll Redis every 2 ms: the clock starts at the first poll that shows
    a job done (so no consumer's start-up is timed) and stops at the first
    poll that shows the queue drained; msgs/s, Redis CPU (INFO cpu) and
    client CPU (/proc utime+stime of the consumer's process tree) are the
    deltas between those two polls, over the jobs done between them;
 4. peak RSS: the largest VmHWM among the consumer's processes;
 5. stop the consumer (SIGTERM) and check the count: every job processed,
    exactly N (a wrong count fails the run; speed never does).

Latency rows (sluice, redis-py, BullMQ) offer a fixed rate from an open-
loop paced producer and report enqueue-to-complete percentiles: due time
to the XACK as Redis executed it (MONITOR) for the streams, due time to
the BullMQ Worker's 'completed' event for BullMQ.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
POLL = 0.002


# ---------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------

def free_port():
    """A loopback port that was free a moment ago (bind to port 0)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A redis-server of our own in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-peers-")
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [os.environ.get("REDIS_SERVER", "redis-server"), "--port", str(self.port),
                 "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
                 "--appendonly", "no", "--daemonize", "no",
                 "--logfile", os.path.join(self.dir, "redis.log")],
                stdin=subprocess.DEVNULL)
            self.r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    self.r.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.02)
            self.stop()
        raise SystemExit("bench-peers: cannot start redis-server")

    def cpu_us(self):
        """used_cpu_sys + used_cpu_user of the server, microseconds."""
        info = self.r.info("cpu")
        return (info["used_cpu_sys"] + info["used_cpu_user"]) * 1e6

    def stop(self):
        """SIGTERM by PID, SIGKILL after 10 s; removes the dir."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def tree(pid):
    """pid and all its live descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d, encoding="ascii", errors="replace") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_cpu_us(pids):
    """utime+stime of the processes plus the cutime+cstime of reaped
    children, microseconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p, encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total * 1e6 / tick


def hwm_kib(pids):
    """The largest VmHWM among the processes, KiB."""
    best = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p, encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        best = max(best, int(line.split()[1]))
        except OSError:
            continue
    return best


def stop_proc(proc, timeout=30):
    """SIGTERM by PID; returns its stdout. SIGKILL after timeout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise SystemExit("bench-peers: pid %d ignored SIGTERM" % proc.pid)
    return out.decode(errors="replace") if out else ""


def last_json(text):
    """The last line of text that parses as a JSON object, or {}."""
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


# ---------------------------------------------------------------------
# The systems: fill, start, done-count, drained?, check
# ---------------------------------------------------------------------

class Ctx:
    """What every system needs: options, the server, a temp dir."""

    def __init__(self, opts, srv):
        self.o = opts
        self.srv = srv
        self.r = srv.r
        self.tmp = tempfile.mkdtemp(prefix="sluice-peers-run-")

    def py(self, *args, **kw):
        """Runs streams.py under Debian's python."""
        return subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "streams.py")] +
                                [str(a) for a in args], stdout=subprocess.PIPE, **kw)

    def node(self, *args):
        """Runs bullmq.js with the private node_modules."""
        env = dict(os.environ, NODE_PATH=os.path.join(self.o.node_dir, "node_modules"))
        return subprocess.Popen(["node", os.path.join(HERE, "bullmq.js")] +
                                [str(a) for a in args], stdout=subprocess.PIPE, env=env)

    def sluice(self, processes, batch, stream, group):
        """`sluice run` on a config in the temp dir, log in sluice.log."""
        cfg = os.path.join(self.tmp, "sluice.json")
        with open(cfg, "w", encoding="ascii") as f:
            json.dump({"redis": {"url": "redis://127.0.0.1:%d/0" % self.srv.port},
                       "defaults": {"batch": batch, "trim": "none"},
                       "workers": [{"handler": "noop", "stream": stream, "group": group,
                                    "processes": processes}],
                       "metrics": {"listen": None}}, f)
        log = open(os.path.join(self.tmp, "sluice.log"), "ab")  # pylint: disable=consider-using-with
        return subprocess.Popen([self.o.sluice, "run", "-c", cfg], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)


def wait(proc, what):
    """Waits for a filler process; a failure stops the benchmark."""
    if proc.wait() != 0:
        raise SystemExit("bench-peers: %s failed (exit %d)" % (what, proc.returncode))


class Stream:
    """sluice or the redis-py loop on one stream and group."""
    kind = "stream"

    def __init__(self, ctx, label, start):
        self.ctx, self.label, self.start_fn = ctx, label, start
        self.stream, self.group = "bench:peers", "g"

    def fill(self, n):
        wait(self.ctx.py("fill", self.ctx.srv.port, self.stream, n), "stream fill")
        self.ctx.r.xgroup_create(self.stream, self.group, id="0")

    def start(self):
        return self.start_fn(self)

    def done(self, n):
        """Entries read and acked (entries-read minus pending)."""
        g = self.ctx.r.xinfo_groups(self.stream)[0]
        read = g.get("entries-read") or 0
        return read - g["pending"]

    def check(self, n, out):
        g = self.ctx.r.xinfo_groups(self.stream)[0]
        errs = []
        if g.get("entries-read") != n or g["pending"] != 0:
            errs.append("group read %s, pending %s" % (g.get("entries-read"), g["pending"]))
        rep = last_json(out)
        if "acked" in rep and (rep["acked"] != n or rep["distinct"] != n):
            errs.append("consumer acked %s, distinct %s" % (rep["acked"], rep["distinct"]))
        return errs


class Bull:
    """A BullMQ Worker."""
    kind = "bullmq"

    def __init__(self, ctx, label, concurrency, remove):
        self.ctx, self.label = ctx, label
        self.concurrency, self.remove = concurrency, remove
        self.q = "peers"

    def fill(self, n):
        wait(self.ctx.node("fill", self.ctx.srv.port, self.q, n), "BullMQ addBulk")

    def start(self):
        return self.ctx.node("work", self.ctx.srv.port, self.q, self.concurrency,
                             "1" if self.remove else "0")

    def done(self, n):
        p = self.ctx.r.pipeline(transaction=False)
        p.llen("bull:%s:wait" % self.q)
        p.llen("bull:%s:active" % self.q)
        p.zcard("bull:%s:prioritized" % self.q)
        return n - sum(p.execute())

    def check(self, n, out):
        errs = []
        rep = last_json(out)
        if rep.get("processed") != n or rep.get("distinct") != n:
            errs.append("worker processed %s, distinct %s" %
                        (rep.get("processed"), rep.get("distinct")))
        failed = self.ctx.r.zcard("bull:%s:failed" % self.q)
        if failed:
            errs.append("%d failed jobs" % failed)
        if not self.remove and self.ctx.r.zcard("bull:%s:completed" % self.q) != n:
            errs.append("completed set holds %d" % self.ctx.r.zcard("bull:%s:completed" % self.q))
        return errs


class Kiq:
    """sidekiq -r sidekiq_job.rb."""
    kind = "sidekiq"

    def __init__(self, ctx, label, concurrency):
        self.ctx, self.label, self.concurrency = ctx, label, concurrency
        self.env = dict(os.environ, REDIS_URL="redis://127.0.0.1:%d/0" % ctx.srv.port)

    def fill(self, n):
        wait(subprocess.Popen(["ruby", os.path.join(HERE, "sidekiq_fill.rb"), str(n)],
                              env=self.env), "Sidekiq push_bulk")

    def start(self):
        log = open(os.path.join(self.ctx.tmp, "sidekiq.log"), "ab")  # pylint: disable=consider-using-with
        return subprocess.Popen(["sidekiq", "-r", os.path.join(HERE, "sidekiq_job.rb"),
                                 "-c", str(self.concurrency), "-t", "5"],
                                env=self.env, cwd=self.ctx.tmp, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)

    def done(self, n):
        """Jobs no longer in the queue (Sidekiq flushes its processed
        counter only every few seconds, so it cannot time the drain; the
        last jobs leave the queue microseconds before they finish)."""
        return n - self.ctx.r.llen("queue:default")

    def settle(self, n):
        """Waits (untimed) until the processed counter reaches n."""
        deadline = time.time() + 60
        while time.time() < deadline:
            if int(self.ctx.r.get("stat:processed") or 0) >= n:
                return
            time.sleep(0.1)

    def check(self, n, _out):
        processed = int(self.ctx.r.get("stat:processed") or 0)
        failed = int(self.ctx.r.get("stat:failed") or 0)
        errs = []
        if processed != n or failed != 0:
            errs.append("stat:processed %d, stat:failed %d" % (processed, failed))
        return errs


def sluice_start(processes, batch):
    """A start function for Stream that runs `sluice run`."""
    return lambda s: s.ctx.sluice(processes, batch, s.stream, s.group)


def redispy_start(count, pipelined):
    """A start function for Stream that runs the redis-py loop."""
    return lambda s: s.ctx.py("consume", s.ctx.srv.port, s.stream, s.group, count,
                              "1" if pipelined else "0")


# ---------------------------------------------------------------------
# One throughput row
# ---------------------------------------------------------------------

def throughput_row(opts, system_name, config, make):
    """Fresh server, fill, drain, measure, check. Returns the row."""
    n = opts.n
    srv = Server()
    ctx = Ctx(opts, srv)
    row = {"system": system_name, "config": config, "n": n, "ok": False}
    proc = None
    try:
        sysm = make(ctx)
        sysm.fill(n)
        proc = sysm.start()
        deadline = time.time() + max(120, n / 500)
        d0 = 0
        while time.time() < deadline:
            if proc.poll() is not None:
                raise SystemExit("bench-peers: %s %s exited early" % (system_name, config))
            d0 = sysm.done(n)
            if d0 > 0:
                break
            time.sleep(POLL)
        t0 = time.monotonic()
        pids = tree(proc.pid)
        c0, r0 = proc_cpu_us(pids), srv.cpu_us()
        while time.time() < deadline:
            if sysm.done(n) >= n:
                break
            time.sleep(POLL)
        t1 = time.monotonic()
        pids = tree(proc.pid)
        c1, r1 = proc_cpu_us(pids), srv.cpu_us()
        row["rss_mib"] = hwm_kib(pids) / 1024.0
        row["procs"] = len(pids)
        m = max(1, n - d0)
        # A drain shorter than a few polls (a tiny CI-size N) has no rate
        # worth printing; its count is still checked.
        row["timed"] = m >= n / 2 and t1 - t0 >= 10 * POLL
        row["rate"] = m / (t1 - t0) if t1 > t0 else 0
        row["redis_us"] = (r1 - r0) / m
        row["client_us"] = (c1 - c0) / m
        if hasattr(sysm, "settle"):
            sysm.settle(n)
        out = stop_proc(proc)
        proc = None
        errs = sysm.check(n, out)
        if errs:
            sys.stderr.write("bench-peers: %s %s: WRONG COUNT: %s (logs in %s)\n" %
                             (system_name, config, "; ".join(errs), ctx.tmp))
        else:
            row["ok"] = True
    finally:
        if proc is not None:
            stop_proc(proc)
        srv.stop()
        if row["ok"]:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
    sys.stderr.write("bench-peers: %-8s %-40s %9.0f msgs/s%s\n" %
                     (system_name, config, row.get("rate", 0), "" if row["ok"] else " FAILED"))
    return row


# ---------------------------------------------------------------------
# Latency rows
# ---------------------------------------------------------------------

def pct(v, q):
    """The q-quantile of sorted v (nearest rank)."""
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(q * len(v)))]


def latency_stream(opts, system_name, config, start):
    """Paced XADDs to a group the consumer is blocked on; MONITOR times
    the XACKs."""
    srv = Server()
    ctx = Ctx(opts, srv)
    row = {"system": system_name, "config": config, "latency": True, "ok": False}
    s = Stream(ctx, config, start)
    try:
        srv.r.xgroup_create(s.stream, s.group, id="$", mkstream=True)
        proc = s.start()
        deadline = time.time() + 30
        while time.time() < deadline and not any(
                c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "")
                for c in srv.r.client_list()):
            time.sleep(0.01)
        mon_out = os.path.join(ctx.tmp, "acks")
        prod_out = os.path.join(ctx.tmp, "sent")
        mon = ctx.py("monitor", srv.port, mon_out)
        time.sleep(0.3)
        wait(ctx.py("produce", srv.port, s.stream, opts.lat_rate, opts.lat_secs, prod_out),
             "latency producer")
        wait_until(lambda: s.done(0) >= count_lines(prod_out))
        stop_proc(mon)
        stop_proc(proc)
        acks = {}
        with open(mon_out, encoding="ascii") as f:
            for line in f:
                k, v = line.split()
                acks[k] = int(v)
        lat, sent, rate = [], 0, 0.0
        with open(prod_out, encoding="ascii") as f:
            for line in f:
                if line.startswith("# rate"):
                    rate = float(line.split()[2])
                    continue
                k, due = line.split()
                sent += 1
                if k in acks:
                    lat.append(acks[k] - int(due))
        row.update(finish_latency(lat, sent, rate))
    finally:
        srv.stop()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    return row


def latency_bull(opts, config, concurrency, remove):
    """Paced Queue.add against a running Worker; the Worker times each
    job's 'completed' event."""
    srv = Server()
    ctx = Ctx(opts, srv)
    row = {"system": "BullMQ", "config": config, "latency": True, "ok": False}
    try:
        lat_out = os.path.join(ctx.tmp, "lat")
        proc = ctx.node("work", srv.port, "lat", concurrency, "1" if remove else "0", lat_out)
        deadline = time.time() + 30
        while time.time() < deadline and sum(
                1 for c in srv.r.client_list() if "bzpopmin" in c.get("cmd", "") or
                "blmove" in c.get("cmd", "") or "brpoplpush" in c.get("cmd", "")) == 0:
            time.sleep(0.01)
        prod = ctx.node("produce", srv.port, "lat", opts.lat_rate, opts.lat_secs)
        rep = last_json(prod.communicate()[0].decode())
        if prod.returncode != 0:
            raise SystemExit("bench-peers: BullMQ producer failed")
        b = Bull(ctx, "", concurrency, remove)
        b.q = "lat"
        wait_until(lambda: b.done(0) >= 0)
        stop_proc(proc)
        with open(lat_out, encoding="ascii") as f:
            lat = [int(x) for x in f.read().split()]
        row.update(finish_latency(lat, rep.get("sent", 0), rep.get("rate", 0.0)))
    finally:
        srv.stop()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    return row


def count_lines(path):
    """Entries a producer wrote to its file (its "# rate" line aside)."""
    with open(path, encoding="ascii") as f:
        return sum(1 for line in f if not line.startswith("#"))


def wait_until(pred, timeout=60):
    """Polls pred every 10 ms until true or timeout (then the count check
    reports what was missing). Then 100 ms more, so that the last
    completion reaches the client that times it."""
    deadline = time.time() + timeout
    while time.time() < deadline and not pred():
        time.sleep(0.01)
    time.sleep(0.1)


def finish_latency(lat, sent, rate):
    """Percentiles; a row is ok when every job sent was seen complete."""
    lat.sort()
    res = {"n": sent, "rate": rate, "seen": len(lat), "ok": len(lat) == sent and sent > 0,
           "p50": pct(lat, 0.50), "p99": pct(lat, 0.99), "p999": pct(lat, 0.999)}
    sys.stderr.write("bench-peers: latency %d of %d seen, p50 %.0f us, p99 %.0f us\n" %
                     (len(lat), sent, res["p50"], res["p99"]))
    return res


# ---------------------------------------------------------------------
# main
# ---------------------------------------------------------------------

def table(rows, opts):
    """Prints the Markdown table."""
    base = next((r for r in rows if r["system"] == "sluice" and r["config"].startswith(
        "batch 64, 1 process") and r.get("timed")), None)
    print("\nbench-peers: N=%d no-op jobs per row, one fresh redis-server per row; "
          "latency at %g msgs/s offered for %g s\n" % (opts.n, opts.lat_rate, opts.lat_secs))
    print("| system | config | msgs/s | vs sluice | Redis CPU µs/msg | client CPU µs/msg "
          "| peak RSS MiB/process |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if r.get("latency"):
            continue
        ratio = "%.2f×" % (r["rate"] / base["rate"]) if base and r.get("rate") else ""
        if not r.get("timed"):
            print("| %s | %s%s | (too short to time) | | | | %.1f |" % (
                r["system"], r["config"], "" if r["ok"] else " (FAILED)",
                r.get("rss_mib", 0)))
            continue
        print("| %s | %s%s | %.0f | %s | %.2f | %.2f | %.1f |" % (
            r["system"], r["config"], "" if r["ok"] else " (FAILED)", r.get("rate", 0),
            ratio, r.get("redis_us", 0), r.get("client_us", 0), r.get("rss_mib", 0)))
    lat = [r for r in rows if r.get("latency")]
    if lat:
        print("\n| system | config | offered msgs/s | jobs | p50 ms | p99 ms | p99.9 ms |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for r in lat:
            print("| %s | %s%s | %.0f | %d | %.3f | %.3f | %.3f |" % (
                r["system"], r["config"], "" if r["ok"] else " (FAILED)", r.get("rate", 0),
                r.get("n", 0), r.get("p50", 0) / 1000, r.get("p99", 0) / 1000,
                r.get("p999", 0) / 1000))
    print("\nvs sluice: msgs/s of the row / msgs/s of the sluice batch 64, 1 process row. "
          "Client CPU: the consumer's whole process tree; peak RSS: the largest VmHWM "
          "among its processes.")
    sys.stdout.flush()


def main():
    """Runs every row, prints the table; exit 1 when any count was wrong."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--node-dir", required=True)
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--lat-rate", type=float, default=2000)
    ap.add_argument("--lat-secs", type=float, default=5)
    ap.add_argument("--only", default="", help="comma list: sluice,redis-py,bullmq,sidekiq,latency")
    opts = ap.parse_args()
    opts.sluice = os.path.abspath(opts.sluice)
    only = set(filter(None, opts.only.split(",")))

    def want(x):
        return not only or x in only

    rows = []
    if want("sluice"):
        for procs in (1, 2):
            for batch in (64, 500):
                rows.append(throughput_row(
                    opts, "sluice", "batch %d, %d process%s" % (batch, procs, "es" if procs > 1
                                                                  else ""),
                    lambda c, p=procs, b=batch: Stream(c, "", sluice_start(p, b))))
    if want("redis-py"):
        rows.append(throughput_row(opts, "redis-py", "COUNT 1, XACK per entry (default loop)",
                                   lambda c: Stream(c, "", redispy_start(1, False))))
        rows.append(throughput_row(opts, "redis-py",
                                   "COUNT 500, one XACK per batch, pipelined (tuned)",
                                   lambda c: Stream(c, "", redispy_start(500, True))))
    if want("bullmq"):
        rows.append(throughput_row(opts, "BullMQ", "concurrency 1 (defaults)",
                                   lambda c: Bull(c, "", 1, False)))
        rows.append(throughput_row(opts, "BullMQ", "concurrency 50, removeOnComplete (tuned)",
                                   lambda c: Bull(c, "", 50, True)))
    if want("sidekiq"):
        rows.append(throughput_row(opts, "Sidekiq", "concurrency 10 (defaults)",
                                   lambda c: Kiq(c, "", 10)))
    if want("latency"):
        rows.append(latency_stream(opts, "sluice", "batch 64, 1 process",
                                   sluice_start(1, 64)))
        rows.append(latency_stream(opts, "redis-py", "COUNT 1, XACK per entry",
                                   redispy_start(1, False)))
        rows.append(latency_stream(opts, "redis-py", "COUNT 500, pipelined ack",
                                   redispy_start(500, True)))
        rows.append(latency_bull(opts, "concurrency 1", 1, False))
        rows.append(latency_bull(opts, "concurrency 50, removeOnComplete", 50, True))
    table(rows, opts)
    bad = [r for r in rows if not r["ok"]]
    for r in bad:
        sys.stderr.write("bench-peers: FAILED: %s %s\n" % (r["system"], r["config"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
