// dashboard.mjs -- the dashboard in a real browser: Debian's chromium,
// headless, driven by puppeteer-core (docs/dashboard.md).
//
//   node tests/browser/dashboard.mjs SLUICE_BIN OUT_DIR
//
// Starts its own redis-server on a free loopback port, seeds it (a
// stream, dead letters, rate samples as a pool keeps them), runs a pool of
// the test binary (the echo handler, with metrics.dashboard on) and
// `sluice web --allow-writes`, then checks in the browser that:
//   - the overview shows the seeded numbers (length, dead letters by code,
//     λ and μ from the samples), in light and dark mode, at 1280 px and
//     on a phone-sized screen without the page scrolling sideways;
//   - a dead letter whose data is <img src=x onerror=alert(1)> shows as
//     that text, adds no element and runs nothing (no dialog opens);
//   - Replay, and Replay with corrected data, move dead letters back and
//     the running pool processes them (the echo handler logs their IDs);
//   - the workers and group pages list the pool's workers; a probe worker
//     sleeping in its handler shows busy, with the entry in hand and for
//     how long; the pool's own listener serves the overview read-only;
//   - no Content-Security-Policy violation or script error happens.
// Screenshots go to OUT_DIR. Exits 0 when every check passed, else 1.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const [, , sluiceBin, outDir] = process.argv;
if (!sluiceBin || !outDir) {
  console.error('usage: node dashboard.mjs SLUICE_BIN OUT_DIR');
  process.exit(2);
}
const slow = Math.max(1, Number(process.env.SLUICE_TEST_SLOW || 1));
const XSS = '<img src=x onerror=alert(1)>';
const procs = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-'));
fs.mkdirSync(outDir, { recursive: true });
let failures = 0;

function check(cond, what) {
  if (cond) {
    console.log('ok   ' + what);
  } else {
    console.log('FAIL ' + what);
    failures++;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn until it returns a truthy value or ms (scaled) pass.
async function waitFor(fn, ms, what) {
  const end = Date.now() + ms * slow;
  for (;;) {
    let v;
    try { v = await fn(); } catch (e) { v = undefined; }
    if (v) return v;
    if (Date.now() > end) throw new Error('not within ' + ms * slow + ' ms: ' + what);
    await sleep(100);
  }
}

function start(cmd, args, log) {
  const fd = fs.openSync(log, 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  procs.push(p);
  return p;
}

let redisPort;
function redis(...args) {
  return execFileSync('redis-cli', ['-p', String(redisPort), ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function logPort(log, event) {
  const m = fs.existsSync(log) && fs.readFileSync(log, 'utf8').match(new RegExp('event=' + event + ' addr=127\\.0\\.0\\.1:(\\d+)'));
  return m ? Number(m[1]) : 0;
}

async function main() {
  // Redis.
  redisPort = await freePort();
  start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', tmp], path.join(tmp, 'redis.log'));
  await waitFor(() => redis('PING') === 'PONG', 10000, 'redis answers');

  // Seed: a stream with a group, dead letters of two codes, rate samples.
  redis('XGROUP', 'CREATE', 'orders', 'g1', '$', 'MKSTREAM');
  redis('XGROUP', 'CREATE', 'load', 'lg', '$', 'MKSTREAM');
  const now = Date.now();
  for (let k = 10; k >= 0; k--)
    redis('XADD', 'sluice:rate:orders:g1', (now + 60000 - k * 60000) + '-0', 'added', String(1000 - k * 60),
      'read', String(900 - k * 50), 'pending', '5', 'lag', '10');
  const dead = (data, error) => redis('XADD', 'orders:dead', '*', 'type', 'order.created', 'data', data,
    'error', error, 'source_id', '1-1', 'deliveries', '5', 'consumer', 'h-echo-0', 'failed_at', String(now));
  const xssId = dead(XSS, 'invalid_json: \'[\' or \'{\' expected near \'<\' at line 1 column 1');
  const plainId = dead('{"n":1}', 'unknown_type: order.created');
  dead('{"n":2}', 'unknown_type: order.created');

  // The pool (echo on orders and load; the dashboard on its listener).
  const cfg = path.join(tmp, 'sluice.json');
  fs.writeFileSync(cfg, JSON.stringify({
    redis: { url: 'redis://127.0.0.1:' + redisPort },
    // orders is not trimmed: its three entries, read and acked at once,
    // would otherwise be gone at the pool's next housekeeping (every 5 s),
    // before a slow browser's first look at the overview's length.
    workers: [{ handler: 'echo', stream: 'orders', group: 'g1', trim: 'none' },
      { handler: 'echo', stream: 'load', group: 'lg' },
      { handler: 'probe', stream: 'slow', group: 'sg' }],
    metrics: { listen: '127.0.0.1:0', dashboard: true },
  }));
  const poolLog = path.join(tmp, 'pool.log');
  start(sluiceBin, ['run', '-c', cfg], poolLog);
  const poolPort = await waitFor(() => logPort(poolLog, 'metrics_listening'), 20000, 'pool listens');
  await waitFor(() => (fs.readFileSync(poolLog, 'utf8').match(/ event=running /g) || []).length >= 3,
    20000, 'pool workers run');
  const webLog = path.join(tmp, 'web.log');
  start(sluiceBin, ['web', '-c', cfg, '--listen', '127.0.0.1:0', '--allow-writes'], webLog);
  const webPort = await waitFor(() => logPort(webLog, 'web_listening'), 20000, 'sluice web listens');
  const base = 'http://127.0.0.1:' + webPort + '/';
  // Three entries, read by the pool: the overview's length.
  for (let i = 0; i < 3; i++) redis('XADD', 'orders', '*', 'type', 'order.created', 'data', '{"i":' + i + '}');

  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    let dialogs = 0;
    const errors = [];
    page.on('dialog', async (d) => { dialogs++; await d.dismiss(); });
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
    page.setDefaultTimeout(30000 * slow);
    await page.setViewport({ width: 1280, height: 800 });

    // Overview.
    await page.goto(base + '#/');
    const rowOf = async (stream, group) => page.$$eval('#overview tbody tr', (rows, s, g) => {
      for (const r of rows) {
        const c = [...r.cells].map((x) => x.textContent);
        if (c[0] === s && c[1] === g) return c;
      }
      return null;
    }, stream, group);
    const row = await waitFor(async () => {
      const c = await rowOf('orders', 'g1');
      return c && c[2] === '3' ? c : null;
    }, 30000, 'the overview shows orders/g1 with 3 entries');
    check(row[7] === '3', 'overview: 3 dead letters (' + row[7] + ')');
    check(row[8].includes('invalid_json 1') && row[8].includes('unknown_type 2'), 'overview: dead letters by code (' + row[8] + ')');
    check(row[9] === '1.00', 'overview: λ 1.00/s from the samples (' + row[9] + ')');
    check(row[10] === '0.83', 'overview: μ 0.83/s from the samples (' + row[10] + ')');
    check(row[11] === '1.20', 'overview: ρ 1.20 (' + row[11] + ')');
    check(row[15].includes('rho > 1'), 'overview: the row asks for attention (' + row[15] + ')');
    check(await page.$eval('#overview tbody tr svg.chart polyline', () => true).catch(() => false),
      'overview: the chart of λ and μ is drawn');
    await page.screenshot({ path: path.join(outDir, 'overview.png'), fullPage: true });
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    check(bg === 'rgb(13, 17, 23)', 'dark mode follows the system setting (' + bg + ')');
    await page.screenshot({ path: path.join(outDir, 'overview-dark.png'), fullPage: true });
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);
    await page.setViewport({ width: 390, height: 844, isMobile: true, deviceScaleFactor: 2 });
    await sleep(300);
    const sw = await page.evaluate(() => document.documentElement.scrollWidth);
    check(sw <= 390, 'phone: the page does not scroll sideways (' + sw + ' px)');
    await page.screenshot({ path: path.join(outDir, 'overview-phone.png'), fullPage: true });
    await page.setViewport({ width: 1280, height: 800 });

    // Dead letters: the list, then the XSS one as text.
    await page.goto(base + '#/dead?stream=orders');
    await page.waitForSelector('#dead tbody tr');
    const previews = await page.$$eval('#dead tbody tr', (rows) => rows.map((r) => r.cells[6].textContent));
    check(previews.some((p) => p.startsWith(XSS)), 'dead letters: the data shows as text');
    check(await page.$$eval('main img', (x) => x.length) === 0, 'dead letters: no element made from data');
    await page.screenshot({ path: path.join(outDir, 'dead-letters.png'), fullPage: true });
    await page.goto(base + '#/entry?stream=orders&id=' + xssId);
    await page.waitForSelector('#entry');
    const dataText = await page.$$eval('#entry dt', (dts) => {
      for (const dt of dts) if (dt.textContent === 'data') return dt.nextElementSibling.textContent;
      return null;
    });
    check(dataText === XSS, 'one dead letter: data shown as text (' + dataText + ')');
    await sleep(1000);
    check(await page.$$eval('main img', (x) => x.length) === 0 && dialogs === 0, 'one dead letter: nothing ran');
    await page.screenshot({ path: path.join(outDir, 'dead-letter.png'), fullPage: true });

    // Replay with corrected data (the XSS one is not JSON: fixed here).
    await page.$eval('#data', (t) => { t.value = '{"fixed":true}'; });
    await page.click('#replay-data');
    const fixed = await page.waitForFunction(() => {
      const t = document.getElementById('result').textContent;
      return t.startsWith('replayed as ') ? t.slice(12) : null;
    });
    const fixedId = await fixed.jsonValue();
    await page.screenshot({ path: path.join(outDir, 'dead-letter-replayed.png'), fullPage: true });
    // Plain replay of another.
    await page.goto(base + '#/entry?stream=orders&id=' + plainId);
    await page.waitForSelector('#replay');
    await page.click('#replay');
    const plain = await (await page.waitForFunction(() => {
      const t = document.getElementById('result').textContent;
      return t.startsWith('replayed as ') ? t.slice(12) : null;
    })).jsonValue();
    check(redis('XLEN', 'orders:dead') === '1', 'replay: two dead letters moved back');
    await waitFor(() => {
      const log = fs.readFileSync(poolLog, 'utf8');
      return log.includes('id=' + fixedId) && log.includes('id=' + plain);
    }, 30000, 'the pool processes the replayed entries').then(
      () => check(true, 'replay: the running pool processed ' + fixedId + ' and ' + plain),
      (e) => check(false, e.message));
    check(fs.readFileSync(poolLog, 'utf8').includes('id=' + fixedId + ' type=order.created deliveries=1 data={"fixed":true}'),
      'replay with corrected data: the pool saw the corrected data');

    // Workers and group.
    // A probe handler that sleeps 20 s on one entry: busy, with it in hand.
    const slowId = redis('XADD', 'slow', '*', 'type', 't', 'data', '{"sleep_ms":' + 20000 * slow + '}');
    await page.goto(base + '#/workers');
    await page.select('#interval', '2000');
    await page.waitForSelector('#workers tbody tr');
    const handlers = await page.$$eval('#workers tbody tr', (rows) => rows.map((r) => r.cells[3].textContent).sort());
    check(handlers.join() === 'echo,echo,probe', 'workers: the pool\'s three workers (' + handlers + ')');
    const busy = await waitFor(async () => {
      const c = await page.$$eval('#workers tbody tr', (rows) => rows.map((r) => [...r.cells].map((x) => x.textContent)));
      const b = c.find((r) => r[3] === 'probe' && r[7] === 'busy' && r[8] === slowId && /s$/.test(r[9]) && r[9] !== '0 ms');
      return b && c.filter((r) => r[3] === 'echo').every((r) => r[7] === 'idle') ? b : null;
    }, 15000 * slow, 'the workers page shows the probe worker busy with ' + slowId).catch((e) => check(false, e.message));
    if (busy)
      check(true, 'workers: ' + busy[0] + ' busy with ' + busy[8] + ' for ' + busy[9] + '; the echo workers idle');
    await page.screenshot({ path: path.join(outDir, 'workers.png'), fullPage: true });
    await page.goto(base + '#/group?stream=orders&group=g1');
    await page.waitForSelector('#consumers tbody tr');
    await page.screenshot({ path: path.join(outDir, 'group.png'), fullPage: true });

    // Under load: entries arrive on `load` while the page refreshes every 2 s.
    await page.goto(base + '#/');
    await page.select('#interval', '2000');
    const until = Date.now() + 9000 * slow;
    let n = 0;
    while (Date.now() < until) {
      for (let i = 0; i < 20; i++, n++) redis('XADD', 'load', '*', 'type', 't', 'data', '{"n":' + n + '}');
      await sleep(200);
    }
    const loadRow = await waitFor(async () => {
      const c = await rowOf('load', 'lg');
      return c && c[9] !== '-' && Number(c[9]) > 0 ? c : null;
    }, 20000, 'the overview shows a live arrival rate on load/lg');
    await waitFor(async () => {
      const c = await rowOf('load', 'lg');
      return c && c[10] !== '-';
    }, 20000, 'the overview shows a live ack rate on load/lg').catch((e) => check(false, e.message));
    check(Number(loadRow[2]) > 0, 'under load: length ' + loadRow[2] + ', λ ' + loadRow[9] + '/s, μ ' + loadRow[10] + '/s');
    await page.screenshot({ path: path.join(outDir, 'overview-load.png'), fullPage: true });

    // The pool's own listener: the same overview, read-only.
    await page.goto('http://127.0.0.1:' + poolPort + '/#/');
    await page.waitForSelector('#overview tbody tr');
    const footer = await waitFor(async () => {
      const t = await page.$eval('#footer', (f) => f.textContent);
      return t.includes('pool listener, read-only') ? t : null;
    }, 10000, 'the pool page says read-only');
    check(!!footer, 'pool listener: ' + footer);
    await page.screenshot({ path: path.join(outDir, 'pool-overview.png'), fullPage: true });

    check(dialogs === 0, 'no dialog opened anywhere');
    check(errors.length === 0, 'no script error or CSP violation' + (errors.length ? ': ' + errors.join(' | ') : ''));
  } finally {
    await browser.close();
  }
}

let code = 0;
try {
  await main();
} catch (e) {
  console.log('FAIL ' + e.message);
  failures++;
} finally {
  for (const p of procs.reverse()) {
    if (p.exitCode === null) p.kill('SIGTERM');
  }
  await sleep(500);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  if (failures > 0) {
    for (const f of ['pool.log', 'web.log'])
      if (fs.existsSync(path.join(tmp, f))) console.log('---- ' + f + '\n' + fs.readFileSync(path.join(tmp, f), 'utf8').split('\n').slice(-30).join('\n'));
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  code = failures > 0 ? 1 : 0;
  console.log(failures > 0 ? failures + ' check(s) failed' : 'browser: every check passed; screenshots in ' + outDir);
}
process.exit(code);
