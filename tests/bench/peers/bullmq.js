// bullmq.js -- the BullMQ side of `make bench-peers`.
//
//   node bullmq.js fill    PORT QUEUE N
//       Queue.addBulk in chunks of 1,000 jobs named "noop" whose data is
//       the same ~150-byte object the other systems carry. No job options:
//       BullMQ's defaults (completed jobs are kept).
//   node bullmq.js work    PORT QUEUE CONCURRENCY REMOVE [LATOUT]
//       A Worker with an async no-op processor. REMOVE=1 adds the
//       production advice of BullMQ's docs: removeOnComplete/removeOnFail
//       with a bounded count, so finished jobs do not pile up in Redis.
//       With LATOUT, each completed job's latency (the 'completed' event's
//       wall clock minus the due time in its data) is written there on
//       SIGTERM. On SIGTERM it closes the worker and prints
//       {"processed": n, "distinct": d}.
//   node bullmq.js produce PORT QUEUE RATE SECS
//       Open-loop paced producer (Queue.add per job, due time in the data):
//       job i is due at t0 + i/RATE and is sent when due. Prints
//       {"sent": n, "rate": r}.
//
// Run with NODE_PATH pointing at the private node_modules that
// `npm ci` installed from package-lock.json.
'use strict';

const fs = require('fs');
const { Queue, Worker } = require('bullmq');

const PAD = 'x'.repeat(96);

/* The data of job i: the same members as the stream entries carry. */
function payload(i) {
  return {
    order_id: 'o-' + String(i).padStart(7, '0'),
    user_id: 'u-' + String(i % 10000).padStart(5, '0'),
    amount_cents: 100 + (i % 9900),
    pad: PAD,
  };
}

/* Wall clock in microseconds (CLOCK_REALTIME, as Redis and python use). */
function wallUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/* ioredis options for the loopback server; a Worker needs
 * maxRetriesPerRequest: null (BullMQ's docs). */
function connection(port) {
  return { host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: null };
}

/* Fills the queue with addBulk in chunks. */
async function fill(port, name, n) {
  const q = new Queue(name, { connection: connection(port) });
  const total = Number(n);
  for (let i = 0; i < total; i += 1000) {
    const jobs = [];
    for (let j = i; j < Math.min(total, i + 1000); j++)
      jobs.push({ name: 'noop', data: payload(j) });
    await q.addBulk(jobs);
  }
  await q.close();
}

/* Runs a Worker until SIGTERM. */
async function work(port, name, concurrency, remove, latOut) {
  const opts = { connection: connection(port), concurrency: Number(concurrency) };
  if (remove === '1') {
    opts.removeOnComplete = { count: 1000 };
    opts.removeOnFail = { count: 5000 };
  }
  let processed = 0;
  const seen = new Set();
  const lat = [];
  const w = new Worker(name, async (job) => {
    processed++;
    seen.add(job.id);
  }, opts);
  if (latOut)
    w.on('completed', (job) => { lat.push(wallUs() - job.data.due_us); });
  w.on('error', (err) => { console.error('bullmq worker error:', err.message); });
  process.on('SIGTERM', async () => {
    await w.close();
    if (latOut)
      fs.writeFileSync(latOut, lat.join('\n') + '\n');
    console.log(JSON.stringify({ processed, distinct: seen.size }));
    process.exit(0);
  });
}

/* Paced producer with Queue.add. */
async function produce(port, name, rate, secs) {
  const q = new Queue(name, { connection: connection(port) });
  const total = Math.floor(Number(rate) * Number(secs));
  const t0 = wallUs() + 20000;
  const gap = 1e6 / Number(rate);
  let i = 0;
  while (i < total) {
    const now = wallUs();
    const due = t0 + Math.round(i * gap);
    if (due > now) {
      await new Promise((res) => setTimeout(res, Math.min(1, (due - now) / 1000)));
      continue;
    }
    const batch = [];
    while (i < total && t0 + Math.round(i * gap) <= now) {
      const d = payload(i);
      d.due_us = t0 + Math.round(i * gap);
      batch.push(q.add('noop', d));
      i++;
    }
    await Promise.all(batch);
  }
  const elapsed = (wallUs() - t0) / 1e6;
  await q.close();
  console.log(JSON.stringify({ sent: total, rate: elapsed > 0 ? total / elapsed : 0 }));
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'fill') await fill(...args);
  else if (cmd === 'work') await work(...args);
  else if (cmd === 'produce') await produce(...args);
  else {
    console.error('usage: bullmq.js fill|work|produce ...');
    process.exit(2);
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
