#!/usr/bin/env node
// produce.js -- a sluice producer in Node.js, with ioredis (the exact
// version of package-lock.json: `npm ci` in this directory).
//
//     node examples/producers/node/produce.js [REDIS_URL]
//
// Adds a user.created and an order.created of the payment flow, then the
// two classic mistakes (a float amount, flat fields instead of `data`),
// and waits for the outcome of each: the effect in the business keys, or
// the dead letter in `<stream>:dead`. Exits 0 when every outcome is the
// expected one, 1 otherwise. See docs/producers.md.
//
// REDIS_URL defaults to $SLUICE_REDIS_URL, else redis://127.0.0.1:6379/0;
// a URL without a password uses $SLUICE_REDIS_PASSWORD. PRODUCER_TIMEOUT
// is the wait for the outcomes, in seconds (default 30).
'use strict';

const Redis = require('ioredis');

// Connects the way sluice does: the URL's password, else the
// environment's. Commands fail after one reconnect attempt instead of
// being queued for ever.
function connect(url) {
  const opts = { connectTimeout: 2000, commandTimeout: 5000, maxRetriesPerRequest: 1 };
  if (!new URL(url).password && process.env.SLUICE_REDIS_PASSWORD)
    opts.password = process.env.SLUICE_REDIS_PASSWORD;
  return new Redis(url, opts);
}

// Adds one event: `type` and `data` (a JSON object as text, which
// JSON.stringify writes compact and in UTF-8). No MAXLEN: trimming is
// sluice's job. Resolves to the entry ID.
function enqueue(r, stream, type, data) {
  return r.xadd(stream, '*', 'type', type, 'data', JSON.stringify(data));
}

// Resolves to the `error` of the dead letter of entryId, or null. A dead
// letter is added after its entry, in another stream: its ID has the same
// or a later millisecond, but maybe a lower sequence number, so the scan
// starts at the entry's millisecond.
async function deadLetter(r, stream, entryId) {
  const since = entryId.split('-')[0];
  for (const [, flat] of await r.xrange(stream + ':dead', since, '+', 'COUNT', 1000)) {
    const f = {};
    for (let i = 0; i + 1 < flat.length; i += 2)
      f[flat[i]] = flat[i + 1];
    if (f.source_id === entryId)
      return f.error;
  }
  return null;
}

// Calls probe() every 50 ms until it resolves to something other than
// null, or the deadline (Date.now() ms) passes; then resolves to null.
async function wait(deadline, probe) {
  for (;;) {
    const got = await probe();
    if (got !== null || Date.now() >= deadline)
      return got;
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function main() {
  const url = process.argv[2] || process.env.SLUICE_REDIS_URL || 'redis://127.0.0.1:6379/0';
  const deadline = Date.now() + 1000 * Number(process.env.PRODUCER_TIMEOUT || 30);
  const r = connect(url);
  let ok = true;

  try {
    // The payment flow: amounts are integers (cents), all the way through.
    const user = { user_id: 'u-1', name: 'Zoë', email: 'zoe@example.com', balance_cents: 5000 };
    const order = { order_id: 'o-1', user_id: 'u-1', amount_cents: 1999, currency: 'USD' };

    const uid = await enqueue(r, 'users', 'user.created', user);
    console.log(`user.created  u-1 -> users  ${uid}`);
    // Streams are independent: an order sent now could reach the payment
    // worker before the user worker has created u-1, and be declined as
    // unknown_user. So wait for the user first.
    let status = await wait(deadline, async () => {
      const err = await deadLetter(r, 'users', uid);
      if (err)
        return 'dead letter: ' + err;
      return (await r.exists('user:u-1')) ? 'created' : null;
    });
    console.log(`  user u-1: ${status}`);
    if (status !== 'created')
      return 1;

    const oid = await enqueue(r, 'orders', 'order.created', order);
    console.log(`order.created o-1 -> orders ${oid}`);

    // Pitfall 1: a float amount. Valid JSON, so Redis takes it, but the
    // order worker wants a JSON integer: dead letter wrong_type.
    const fid = await enqueue(r, 'orders', 'order.created',
                              { ...order, order_id: 'o-2', amount_cents: 19.99 });
    console.log(`pitfall, float amount_cents 19.99 -> orders ${fid}`);

    // Pitfall 2: the event's fields as stream fields, without `data`:
    // dead letter missing_payload.
    const xid = await r.xadd('orders', '*', 'type', 'order.created', 'order_id', 'o-3',
                             'user_id', 'u-1', 'amount_cents', '1999', 'currency', 'USD');
    console.log(`pitfall, flat fields without data -> orders ${xid}`);

    console.log('outcomes:');
    status = await wait(deadline, async () => {
      const err = await deadLetter(r, 'orders', oid);
      if (err)
        return 'dead letter: ' + err;
      const s = await r.hget('order:o-1', 'status');
      return s === 'paid' || s === 'failed' ? s : null;
    });
    const balance = await r.hget('user:u-1', 'balance_cents');
    console.log(`  order o-1: ${status}; user u-1 balance_cents ${balance}`);
    ok = ok && status === 'paid';

    for (const [name, id, want] of [['float amount', fid, 'wrong_type'],
                                    ['flat fields', xid, 'missing_payload']]) {
      const err = await wait(deadline, () => deadLetter(r, 'orders', id));
      console.log(`  ${name}: dead letter in orders:dead: ${err}`);
      // Match on the code, the text before the first ':'.
      ok = ok && err !== null && err.split(':')[0] === want;
    }
    return ok ? 0 : 1;
  } finally {
    r.disconnect();
  }
}

main().then((code) => { process.exitCode = code; },
            (e) => { console.error(`produce.js: ${e.message}`); process.exitCode = 1; });
