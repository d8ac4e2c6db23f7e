#!/usr/bin/python3
"""streams.py -- the Redis-stream side of `make bench-peers`.

Subcommands (all talk to 127.0.0.1:<port> only):

  fill PORT STREAM N        pipelined XADDs of N no-op entries (type, data),
                            1,000 per round trip: a stream's bulk enqueue.
  consume PORT STREAM GROUP COUNT PIPELINED
                            a hand-written redis-py consumer-group loop:
                            XREADGROUP COUNT n BLOCK 1000, then XACK. With
                            PIPELINED=0 it acks each entry with its own XACK
                            (the loop most tutorials show); with 1 it acks
                            the whole batch in one XACK, sent in the same
                            round trip as the next XREADGROUP. On SIGTERM it
                            prints {"acked": n, "distinct": d} and exits.
  produce PORT STREAM RATE SECS OUT
                            an open-loop paced producer: entry i is due at
                            t0 + i/RATE (wall clock), sent when due (late
                            entries go out together, so a slow consumer
                            makes a queue rather than slowing the producer),
                            and its ID and due time are written to OUT.
  monitor PORT OUT          MONITOR: records, for every ID an XACK names
                            (also XACKs inside Lua scripts), the Redis
                            timestamp of the first such XACK; writes them to
                            OUT on SIGTERM.

It runs under Debian's /usr/bin/python3 (python3-redis with hiredis).
"""
import json
import signal
import socket
import sys
import time

import redis

PAD = "x" * 96


def payload(i):
    """The ~150-byte JSON body every system's no-op job carries."""
    return json.dumps({"order_id": "o-%07d" % i, "user_id": "u-%05d" % (i % 10000),
                       "amount_cents": 100 + i % 9900, "pad": PAD})


def connect(port):
    """A redis-py client on the loopback port."""
    return redis.Redis(host="127.0.0.1", port=int(port), socket_timeout=30)


def fill(port, stream, n):
    """Appends n entries with pipelined XADDs."""
    r = connect(port)
    n = int(n)
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {"type": "bench.noop", "data": payload(i)})
        if (i + 1) % 1000 == 0:
            pipe.execute()
    pipe.execute()


STOP = False


def on_term(_sig, _frame):
    """SIGTERM ends the loops after the current round trip."""
    global STOP  # pylint: disable=global-statement
    STOP = True


def consume(port, stream, group, count, pipelined):
    """The consumer-group loop; prints what it acked when stopped."""
    signal.signal(signal.SIGTERM, on_term)
    r = connect(port)
    count = int(count)
    pipelined = pipelined == "1"
    name = "c-%d" % int(time.time() * 1000)
    acked = 0
    seen = set()
    pending_ack = []
    while not STOP:
        if pipelined and pending_ack:
            pipe = r.pipeline(transaction=False)
            pipe.xack(stream, group, *pending_ack)
            pipe.xreadgroup(group, name, {stream: ">"}, count=count, block=1000)
            n_acked, reply = pipe.execute()
            acked += n_acked
            pending_ack = []
        else:
            reply = r.xreadgroup(group, name, {stream: ">"}, count=count, block=1000)
        for _stream, entries in reply or []:
            for entry_id, _fields in entries:
                seen.add(entry_id)
                if pipelined:
                    pending_ack.append(entry_id)
                else:
                    acked += r.xack(stream, group, entry_id)
    if pending_ack:
        acked += r.xack(stream, group, *pending_ack)
    print(json.dumps({"acked": acked, "distinct": len(seen)}), flush=True)


def produce(port, stream, rate, secs, out):
    """Paced open-loop producer; writes "id due_us" lines to out."""
    r = connect(port)
    rate = float(rate)
    total = int(rate * float(secs))
    t0 = time.time_ns() // 1000 + 20000
    due = [t0 + int(i * 1e6 / rate) for i in range(total)]
    ids = []
    i = 0
    while i < total:
        now = time.time_ns() // 1000
        if due[i] > now:
            time.sleep(min((due[i] - now) / 1e6, 0.001))
            continue
        pipe = r.pipeline(transaction=False)
        first = i
        while i < total and due[i] <= now:
            pipe.xadd(stream, {"type": "bench.noop", "data": payload(i)})
            i += 1
        ids.extend(zip(pipe.execute(), due[first:i]))
    elapsed = (time.time_ns() // 1000 - t0) / 1e6
    with open(out, "w", encoding="ascii") as f:
        f.write("# rate %.1f\n" % (total / elapsed if elapsed > 0 else 0))
        for entry_id, d in ids:
            f.write("%s %d\n" % (entry_id.decode(), d))


def monitor(port, out):
    """MONITOR loop; records the first XACK time of every ID."""
    signal.signal(signal.SIGTERM, on_term)
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.sendall(b"MONITOR\r\n")
    s.settimeout(0.2)
    acks = {}
    buf = b""
    while not STOP:
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
        lines = buf.split(b"\r\n")
        buf = lines.pop()
        for line in lines:
            if b'"XACK"' not in line and b'"xack"' not in line:
                continue
            stamp = int(float(line[1:line.index(b" ")].decode()) * 1e6)
            args = line.split(b'" "')
            # "XACK" "stream" "group" "id" ...: the IDs from the 4th on.
            for a in args[3:]:
                key = a.strip(b'"').decode()
                acks.setdefault(key, stamp)
    with open(out, "w", encoding="ascii") as f:
        for key, stamp in acks.items():
            f.write("%s %d\n" % (key, stamp))


def main(argv):
    """Dispatches the subcommand."""
    cmds = {"fill": fill, "consume": consume, "produce": produce, "monitor": monitor}
    if len(argv) < 2 or argv[1] not in cmds:
        sys.stderr.write(__doc__)
        return 2
    cmds[argv[1]](*argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
