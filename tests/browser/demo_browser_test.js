// The browser demo end to end, in headless Chromium: `cancelctl demo --port P`
// serves the page; we press Start, wait until both servers have stored a few
// chunks, press Cancel, and read from the page (which shows the servers'
// figures) that the shimmed server stopped at once and the plain one worked on
// to the end. Then Ctrl-C must end cancelctl and every server it started.
//
// Run by meson (suite 'browser') with CS_CANCELCTL and CS_BUILD_ROOT set.
// Exit 77 (meson's "skipped") only if Chromium is not installed. The
// screenshot goes to $CS_SCREENSHOT, else to the build tree
// (tests/browser/demo.png); `meson compile -C BUILD demo-screenshot` writes
// docs/demo.png.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const SKIP = 77;
const CHROMIUM = process.env.CS_CHROMIUM || '/usr/bin/chromium';
// Chunks of 200 ms: the page tells each server the moment of Cancel before it
// aborts (see demo_page.html), and headless Chromium on a busy machine takes
// tens of milliseconds, now and then over 100, between the two. A chunk may
// complete in that gap; with 200 ms chunks, at most one.
const CHUNKS = 16;
const CHUNK_MS = 200;
const MIN_CHUNKS_BEFORE_CANCEL = 2;
const SHIM_STOP_BOUND_MS = 1000;	// ECANCELED is immediate; the rest is the browser
const DEADLINE_MS = 45000;	// the whole test; about 10 s on an idle machine

// Without the background-networking flags Chromium keeps trying to reach
// Google's services, which floods a machine without internet access.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function log(...args) {
  console.log('[%s]', (process.uptime()).toFixed(2), ...args);
}

function fail(message) {
  throw new Error(message);
}

function check(cond, message) {
  if (!cond) fail(message);
}

// ---- ports and processes ----

function portFree(port) {
  return new Promise(resolve => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

// P..P+3 all free: the page, the storage, the plain and the shimmed server.
async function freePorts() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    let ok = true;
    for (let p = base; p < base + 4 && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  fail('found no 4 consecutive free ports');
}

function refused(port) {
  return new Promise(resolve => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => { sock.destroy(); resolve(false); });
    sock.once('error', e => resolve(e.code === 'ECONNREFUSED'));
  });
}

// What must not outlive us, even if we are killed (meson's timeout sends
// SIGTERM) or give up: cancelctl's servers die with it (PR_SET_PDEATHSIG).
const running = new Set();
function killRunning() {
  for (const child of running) child.kill('SIGKILL');
}
process.on('exit', killRunning);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    console.error(`FAIL: ${sig}`);
    process.exit(1);
  });
}

// cancelctl demo, with its output collected and waitable.
function startDemo(cancelctl, port) {
  const child = spawn(cancelctl, ['demo', '--port', String(port), '--chunks', String(CHUNKS),
    '--ms', String(CHUNK_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.on('exit', () => running.delete(child));
  const demo = { child, output: '', exit: null, listeners: [] };
  const fed = chunk => {
    demo.output += chunk;
    demo.listeners.forEach(f => f());
  };
  child.stdout.setEncoding('utf8').on('data', fed);
  child.stderr.setEncoding('utf8').on('data', fed);
  demo.exited = new Promise(resolve => child.on('exit', (code, signal) => {
    demo.exit = { code, signal };
    demo.listeners.forEach(f => f());
    resolve(demo.exit);
  }));
  return demo;
}

function waitOutput(demo, needle, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(
      `no '${needle}' from cancelctl demo within ${timeoutMs} ms; it said:\n${demo.output}`)),
    timeoutMs);
    const look = () => {
      if (demo.output.includes(needle)) {
        clearTimeout(timer);
        resolve();
      } else if (demo.exit) {
        clearTimeout(timer);
        reject(new Error(`cancelctl demo exited (${JSON.stringify(demo.exit)}):\n${demo.output}`));
      }
    };
    demo.listeners.push(look);
    look();
  });
}

async function stopDemo(demo, timeoutMs) {
  if (demo.exit) return demo.exit;
  demo.child.kill('SIGINT');	// Ctrl-C
  const timer = new Promise(resolve => setTimeout(resolve, timeoutMs, null));
  const exit = await Promise.race([demo.exited, timer]);
  if (!exit) {
    demo.child.kill('SIGKILL');
    await demo.exited;
  }
  return exit;
}

// ---- the servers' own figures, for a cross-check ----

// node:http rather than fetch(): Debian's node 18 takes fetch from a separate
// package (node-undici).
function stats(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/stats', timeout: 5000 }, res => {
      let body = '';
      res.setEncoding('utf8').on('data', d => { body += d; }).on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`/stats of port ${port}: ${e.message}: ${body}`));
        }
      });
    }).on('error', reject).on('timeout', function () { this.destroy(new Error('timeout')); });
  });
}

// "12.3 ms" or "3.52 s" as the page writes them, in ms.
function parseDuration(text) {
  const m = /^([\d.]+) (ms|s)$/.exec(text.trim());
  check(m, `not a duration: '${text}'`);
  return parseFloat(m[1]) * (m[2] === 's' ? 1000 : 1);
}

// ---- the test ----

async function test(chromium, cancelctl, screenshot) {
  const port = await freePorts();
  const url = `http://127.0.0.1:${port}/`;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cancelshim-chromium-'));
  const demo = startDemo(cancelctl, port);
  let context = null;

  try {
    await waitOutput(demo, `Open ${url}`, 10000);
    log('cancelctl demo is serving', url);
    check(demo.output.includes('the shim says: active: mode '),
      `cancelctl did not report the shim's mode:\n${demo.output}`);

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 800 },
      timeout: 15000,
    });
    log('Chromium started');
    const page = context.pages()[0] || await context.newPage();
    const problems = [];
    page.on('pageerror', e => problems.push(`page error: ${e.message}`));
    page.on('console', m => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });

    await page.goto(url);
    await page.waitForSelector('body[data-phase="idle"]', { timeout: 5000 });
    const mode = await page.textContent('#mode');
    check(/the shim says: active: mode \w+/.test(mode), `the page shows no shim mode: '${mode}'`);
    log('page ready;', mode.trim());

    await page.click('#start');
    await page.waitForFunction(min => ['plain', 'shimmed'].every(name =>
      parseInt(document.querySelector(`#${name} .count`).textContent, 10) >= min),
    MIN_CHUNKS_BEFORE_CANCEL, { timeout: 10000, polling: 50 });
    log('both servers have stored chunks; pressing Cancel');
    await page.click('#cancel');

    // The plain job runs to the end: at most CHUNKS * CHUNK_MS from now.
    await page.waitForSelector('body[data-phase="done"]', { timeout: CHUNKS * CHUNK_MS + 5000 });
    const rows = await page.$$eval('#results tbody tr', trs => Object.fromEntries(trs.map(tr => [
      tr.id.replace('row-', ''),
      Object.fromEntries(['before', 'after', 'stop', 'end'].map(c =>
        [c, tr.querySelector('.' + c).textContent.trim()])),
    ])));
    const summary = await page.textContent('#summary');
    const shimStatus = await page.textContent('#shimmed .status');
    log('the page says:', JSON.stringify(rows), '\n ', summary);

    await page.screenshot({ path: screenshot, fullPage: true });
    log('screenshot:', screenshot);

    // The shimmed server stopped within the chunk it was in, with ECANCELED.
    const s = rows.shimmed, p = rows.plain;
    check(parseInt(s.before, 10) >= MIN_CHUNKS_BEFORE_CANCEL, `shimmed before: ${s.before}`);
    check(parseInt(s.after, 10) <= 1, `the shimmed server went on storing: ${s.after} chunks`);
    check(parseDuration(s.stop) <= SHIM_STOP_BOUND_MS, `the shimmed server took ${s.stop} to stop`);
    check(/^stopped: ECANCELED in (recv|send)\(\)$/.test(s.end), `shimmed ended: '${s.end}'`);
    check(/^stopped: ECANCELED/.test(shimStatus), `shimmed panel: '${shimStatus}'`);

    // The plain server never noticed: it stored every chunk, for nobody.
    const before = parseInt(p.before, 10), after = parseInt(p.after, 10);
    check(before >= MIN_CHUNKS_BEFORE_CANCEL && before + after === CHUNKS,
      `plain before ${p.before}, after ${p.after}`);
    check(after >= 4, `the plain server did only ${after} chunks after Cancel`);
    check(p.end === `ran to the end (${CHUNKS}/${CHUNKS})`, `plain ended: '${p.end}'`);
    check(parseDuration(p.stop) >= (after - 1) * CHUNK_MS,
      `plain: ${after} chunks after Cancel in only ${p.stop}`);
    check(summary.startsWith('Under the shim the job stopped'), `summary: '${summary}'`);

    // What the page shows is what the servers recorded.
    const jobs = {};
    for (const [name, offset] of [['plain', 2], ['shimmed', 3]]) {
      const all = (await stats(port + offset)).jobs;
      const ids = Object.keys(all);
      check(ids.length === 1, `${name}: expected one job, /stats has ${ids.join(', ')}`);
      jobs[name] = all[ids[0]];
      log(`${name} server's /stats:`, JSON.stringify(jobs[name]));
    }
    check(jobs.shimmed.state === 'stopped' && jobs.shimmed.error === 'ECANCELED',
      `shimmed /stats: ${JSON.stringify(jobs.shimmed)}`);
    check(jobs.plain.state === 'finished', `plain /stats: ${JSON.stringify(jobs.plain)}`);
    for (const name of ['plain', 'shimmed']) {
      const j = jobs[name];
      check(String(j.chunks_at_cancel) === rows[name].before &&
        String(j.chunks_done - j.chunks_at_cancel) === rows[name].after,
      `${name}: the page shows ${JSON.stringify(rows[name])}, /stats says ${JSON.stringify(j)}`);
    }
    check(problems.length === 0, `the page reported problems:\n${problems.join('\n')}`);

    await context.close();
    context = null;

    // Ctrl-C ends the demo and every server it started.
    const exit = await stopDemo(demo, 10000);
    check(exit && exit.code === 0, `cancelctl demo after Ctrl-C: ${JSON.stringify(exit)}\n${demo.output}`);
    for (let p = port; p < port + 4; p++)
      check(await refused(p), `port ${p} still accepts after cancelctl demo ended`);
    log('Ctrl-C ended cancelctl demo and its servers');
  } catch (e) {
    e.message += `\n--- cancelctl demo said ---\n${demo.output}`;
    throw e;
  } finally {
    if (context) await context.close().catch(() => {});
    await stopDemo(demo, 5000);
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

async function main() {
  if (!fs.existsSync(CHROMIUM)) {
    console.log(`SKIP: ${CHROMIUM} is not installed (apt-get install chromium)`);
    return SKIP;
  }
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    console.error('playwright-core is not installed: run `npm ci --prefix tests/browser` ' +
      `(scripts/install-deps does)\n${e.message}`);
    return 1;
  }
  const cancelctl = process.env.CS_CANCELCTL;
  const buildRoot = process.env.CS_BUILD_ROOT;
  if (!cancelctl || !buildRoot) {
    console.error('CS_CANCELCTL and CS_BUILD_ROOT must be set (run through meson test)');
    return 1;
  }
  const screenshot = process.env.CS_SCREENSHOT ||
    path.join(buildRoot, 'tests', 'browser', 'demo.png');
  fs.mkdirSync(path.dirname(screenshot), { recursive: true });

  const deadline = setTimeout(() => {
    console.error(`FAIL: the test did not end within ${DEADLINE_MS} ms`);
    process.exit(1);
  }, DEADLINE_MS);
  try {
    await test(chromium, cancelctl, screenshot);
    console.log('PASS: the shimmed server stopped at Cancel, the plain one ran to the end');
    return 0;
  } catch (e) {
    console.error(`FAIL: ${e.stack || e}`);
    return 1;
  } finally {
    clearTimeout(deadline);
  }
}

main().then(code => process.exit(code));
