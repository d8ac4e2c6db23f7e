#!/usr/bin/python3
"""produce.py -- a sluice producer in Python, with Debian's python3-redis.

    /usr/bin/python3 examples/producers/python/produce.py [REDIS_URL]

Adds a user.created and an order.created of the payment flow, then the two
classic mistakes (a float amount, flat fields instead of `data`), and waits
for the outcome of each: the effect in the business keys, or the dead
letter in `<stream>:dead`. Exits 0 when every outcome is the expected one,
1 otherwise. See docs/producers.md.

REDIS_URL defaults to $SLUICE_REDIS_URL, else redis://127.0.0.1:6379/0; a
URL without a password uses $SLUICE_REDIS_PASSWORD. PRODUCER_TIMEOUT is the
wait for the outcomes, in seconds (default 30).
"""
import json
import os
import sys
import time

import redis


def connect(url):
    """Connects the way sluice does: the URL's password, else the
    environment's."""
    password = os.environ.get("SLUICE_REDIS_PASSWORD") or None
    return redis.Redis.from_url(url, password=password, decode_responses=True,
                                socket_connect_timeout=2, socket_timeout=5)


def enqueue(r, stream, type_, data):
    """Adds one event: `type` and `data` (a JSON object as text). Compact
    JSON, UTF-8 text left as it is, no NaN or Infinity (not JSON), and no
    MAXLEN: trimming is sluice's job. Returns the entry ID."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                         allow_nan=False)
    return r.xadd(stream, {"type": type_, "data": payload})


def dead_letter(r, stream, entry_id):
    """Returns the `error` of the dead letter of entry_id, or None. A dead
    letter is added after its entry, in another stream: its ID has the
    same or a later millisecond, but maybe a lower sequence number, so the
    scan starts at the entry's millisecond."""
    since = entry_id.split("-")[0]
    for _, fields in r.xrange(stream + ":dead", min=since, max="+", count=1000):
        if fields.get("source_id") == entry_id:
            return fields.get("error")
    return None


def wait(deadline, probe):
    """Calls probe() every 50 ms until it returns something other than
    None, or the deadline passes (then returns None)."""
    while True:
        got = probe()
        if got is not None or time.monotonic() >= deadline:
            return got
        time.sleep(0.05)


def main():
    url = (sys.argv[1] if len(sys.argv) > 1 else
           os.environ.get("SLUICE_REDIS_URL") or "redis://127.0.0.1:6379/0")
    deadline = time.monotonic() + float(os.environ.get("PRODUCER_TIMEOUT", "30"))
    r = connect(url)

    # The payment flow: amounts are integers (cents), all the way through.
    user = {"user_id": "u-1", "name": "Zoë", "email": "zoe@example.com",
            "balance_cents": 5000}
    order = {"order_id": "o-1", "user_id": "u-1", "amount_cents": 1999,
             "currency": "USD"}
    uid = enqueue(r, "users", "user.created", user)
    print(f"user.created  u-1 -> users  {uid}")

    # Streams are independent: an order sent now could reach the payment
    # worker before the user worker has created u-1, and be declined as
    # unknown_user. So wait for the user first.
    def user_created():
        err = dead_letter(r, "users", uid)
        if err:
            return "dead letter: " + err
        return "created" if r.exists("user:u-1") else None
    status = wait(deadline, user_created)
    print(f"  user u-1: {status}")
    if status != "created":
        return 1

    oid = enqueue(r, "orders", "order.created", order)
    print(f"order.created o-1 -> orders {oid}")

    # Pitfall 1: a float amount. Valid JSON, so Redis takes it, but the
    # order worker wants a JSON integer: dead letter wrong_type.
    bad = dict(order, order_id="o-2", amount_cents=19.99)
    fid = enqueue(r, "orders", "order.created", bad)
    print(f"pitfall, float amount_cents 19.99 -> orders {fid}")

    # Pitfall 2: the event's fields as stream fields, without `data`:
    # dead letter missing_payload.
    flat = {"type": "order.created", "order_id": "o-3", "user_id": "u-1",
            "amount_cents": "1999", "currency": "USD"}
    xid = r.xadd("orders", flat)
    print(f"pitfall, flat fields without data -> orders {xid}")

    ok = True
    print("outcomes:")

    def order_final():
        err = dead_letter(r, "orders", oid)
        if err:
            return "dead letter: " + err
        s = r.hget("order:o-1", "status")
        return s if s in ("paid", "failed") else None
    status = wait(deadline, order_final)
    balance = r.hget("user:u-1", "balance_cents")
    print(f"  order o-1: {status}; user u-1 balance_cents {balance}")
    ok &= status == "paid"

    for name, entry_id, want in (("float amount", fid, "wrong_type"),
                                 ("flat fields", xid, "missing_payload")):
        err = wait(deadline, lambda e=entry_id: dead_letter(r, "orders", e))
        print(f"  {name}: dead letter in orders:dead: {err}")
        # Match on the code, the text before the first ':'.
        ok &= err is not None and err.split(":")[0] == want

    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
