// Figures for the collector (RSS, CPU beside prometheus-node-exporter scraped
// at the same interval) and for ingest (simulated agents sending signed
// batches at a fixed rate: core CPU, p99 latency, rows stored vs sent).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import { createDatabase, startCore } from '../../tests/lib/harness.mjs';
import { startSshd } from '../../tests/lib/sshd.mjs';
import { registerNode, collectorDir, runCollector, startCollector, makeAgentKey, signedBatch, sample } from '../../tests/lib/collector.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS || 60);
const RATE = Number(process.env.BENCH_RATE || 1000);
const TICK = Number(process.env.SC_CLK_TCK || 100);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}
function rssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : 0;
}
function pssKiB(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+)/m);
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}
// CPU % of one core and peak RSS of pid over `seconds`, calling tick() each interval.
async function watch(pid, seconds, intervalMs, tick = async () => {}) {
  const c0 = cpuTicks(pid);
  let peak = 0, pss = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    await tick();
    peak = Math.max(peak, rssKiB(pid));
    pss = Math.max(pss, pssKiB(pid));
    await sleep(intervalMs);
  }
  return { cpuPct: ((cpuTicks(pid) - c0) / TICK) / seconds * 100, rssKiB: peak, pssKiB: pss };
}
// CPU ticks of the run's PostgreSQL: the postmaster and its children.
function pgTicks() {
  try {
    const pm = Number(readFileSync(join(process.env.SBX_PG_DIR, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const kids = execFileSync('pgrep', ['-P', String(pm)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
    return [pm, ...kids].reduce((t, p) => { try { return t + cpuTicks(p); } catch { return t; } }, 0);
  } catch { return NaN; }
}
const row = (what, figure, target, ratio = '') => console.log(`| ${what} | ${figure} | ${target} | ${ratio} |`);
const freePort = () => Number(execFileSync('scripts/services.sh', ['free-port'], { encoding: 'utf8' }).trim());

// The floor of any dynamically linked process here: glibc's shared pages.
const floor = spawn('sleep', ['3'], { stdio: 'ignore' });
await sleep(500);
const floorRss = rssKiB(floor.pid);
floor.kill();

const db = createDatabase('bench');
const sshd = startSshd();
const core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', ...(process.env.BENCH_WORKERS ? { SERVERBOX_WORKERS: process.env.BENCH_WORKERS } : {}) } });
try {
  // ---- the agent beside node_exporter -------------------------------------
  for (const interval of process.env.BENCH_SKIP_AGENT ? [] : [1, 5]) {
    const node = await registerNode(core, sshd);
    const tok = await core.request('POST', `/api/v1/nodes/${node}/enroll-token`, { json: {} });
    const dir = collectorDir();
    runCollector(['enroll', '--core', core.base, '--token', tok.body.token, '--state-dir', dir]);
    const c = startCollector(['--core', core.base, '--state-dir', dir, '--interval', String(interval), '--log-level', 'warn']);
    await sleep(1500);
    const mine = await watch(c.proc.pid, SECONDS, 250);
    await c.stop();
    const port = freePort();
    const ne = spawn('prometheus-node-exporter', [`--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    await sleep(1500);
    let next = 0;
    const theirs = await watch(ne.pid, SECONDS, 250, async () => {
      if (Date.now() < next) return;
      next = Date.now() + interval * 1000;
      await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => {});
    });
    ne.kill('SIGTERM');
    row(`collector RSS, ${interval} s interval (peak)`, `${(mine.rssKiB / 1024).toFixed(2)} MiB`, '≤ 2 MiB',
      `${(mine.rssKiB / theirs.rssKiB).toFixed(2)} of node_exporter (${(theirs.rssKiB / 1024).toFixed(1)} MiB)`);
    row(`collector PSS, ${interval} s interval (peak; RSS of \`sleep\` here: ${(floorRss / 1024).toFixed(2)} MiB)`, `${(mine.pssKiB / 1024).toFixed(2)} MiB`, '',
      `${(mine.pssKiB / Math.max(theirs.pssKiB, 1)).toFixed(2)} of node_exporter (${(theirs.pssKiB / 1024).toFixed(1)} MiB)`);
    row(`collector CPU, ${interval} s interval`, `${mine.cpuPct.toFixed(3)} % of a core`, interval === 5 ? '≤ 0.05 %' : '',
      `${(mine.cpuPct / Math.max(theirs.cpuPct, 1e-6)).toFixed(2)} of node_exporter scraped each ${interval} s (${theirs.cpuPct.toFixed(3)} %)`);
  }

  // ---- ingest ---------------------------------------------------------------
  const AGENTS = Number(process.env.BENCH_AGENTS || 200);
  const agents = [];
  for (let i = 0; i < AGENTS; i++) {
    const node = await registerNode(core, sshd);
    const key = makeAgentKey();
    const tok = await core.request('POST', `/api/v1/nodes/${node}/enroll-token`, { json: {} });
    const r = await core.request('POST', '/api/v1/agent/enroll', { json: { token: tok.body.token, public_key: key.hex } });
    if (r.status !== 201) throw new Error(r.text);
    agents.push({ node, key, seq: 0, busy: false });
  }
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const url = new URL(core.base);
  function send(a) {
    a.seq += 1;
    const ts = Date.now();
    const b = signedBatch(a.key, { v: 1, node_id: a.node, seq: a.seq, sent_at: ts, interval_ms: 5000, samples: [sample(ts - (ts % 1000) + (a.seq % 1000))] });
    const t0 = process.hrtime.bigint();
    return new Promise((resolve) => {
      const req = http.request({ host: url.hostname, port: url.port, path: '/api/v1/agent/metrics', method: 'POST', agent: keepAlive,
        headers: { ...b.headers, 'Content-Length': Buffer.byteLength(b.body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ ok: res.statusCode === 200, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
      });
      req.on('error', () => resolve({ ok: false, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
      req.end(b.body);
    });
  }
  async function phase(rate, seconds) {
    const lat = [];
    let sent = 0, ok = 0, k = 0;
    const pending = new Set();
    const c0 = cpuTicks(core.proc.pid), pg0 = pgTicks(), me0 = process.cpuUsage();
    const start = Date.now();
    const end = start + seconds * 1000;
    while (Date.now() < end) {
      const due = rate ? Math.floor(((Date.now() - start) / 1000) * rate) : sent + 64 - pending.size;
      // Like real collectors, an agent sends its next batch only after the last one was answered.
      for (let tries = 0; sent < due && pending.size < 512 && tries < AGENTS; tries++) {
        const a = agents[k++ % AGENTS];
        if (a.busy) continue;
        a.busy = true;
        const p = send(a).then((r) => { a.busy = false; lat.push(r.ms); if (r.ok) ok++; pending.delete(p); });
        pending.add(p);
        sent++;
      }
      await sleep(rate ? 5 : 1);
    }
    await Promise.all(pending);
    const secs = (Date.now() - start) / 1000;
    lat.sort((x, y) => x - y);
    const me = process.cpuUsage(me0);
    return { sent, ok, perSec: ok / secs, p99: lat[Math.floor(lat.length * 0.99)] || 0, cpuPct: ((cpuTicks(core.proc.pid) - c0) / TICK) / secs * 100,
      pgPct: ((pgTicks() - pg0) / TICK) / secs * 100, clientPct: (me.user + me.system) / 1e4 / secs };
  }
  const before = Number(db.sql('SELECT count(*) FROM metrics_raw'));
  const fixed = await phase(RATE, SECONDS);
  const stored = Number(db.sql('SELECT count(*) FROM metrics_raw')) - before;
  row(`ingest at ${RATE} batches/s for ${SECONDS} s: rows stored / sent`, `${stored} / ${fixed.sent}`, 'equal', (stored / fixed.sent).toFixed(4));
  row(`ingest at ${RATE} batches/s: p99 latency`, `${fixed.p99.toFixed(1)} ms`, '', '');
  row(`ingest at ${RATE} batches/s: CPU of core / PostgreSQL / load client`, `${fixed.cpuPct.toFixed(0)} % / ${fixed.pgPct.toFixed(0)} % / ${fixed.clientPct.toFixed(0)} % of a core`, '', '');
  const flat = await phase(0, Math.min(SECONDS, 20));
  row('ingest, unthrottled (client on the same 2 cores)', `${flat.perSec.toFixed(0)} batches/s`, '≥ 2000', (flat.perSec / 2000).toFixed(2));
  row('ingest, unthrottled: p99 latency', `${flat.p99.toFixed(1)} ms`, '', '');
  row('ingest, unthrottled: CPU of core / PostgreSQL / load client', `${flat.cpuPct.toFixed(0)} % / ${flat.pgPct.toFixed(0)} % / ${flat.clientPct.toFixed(0)} % of a core`, '', '');
  // What two cores would carry with the load client elsewhere: server-side CPU per batch.
  const perBatch = (flat.cpuPct + flat.pgPct) / 100 / flat.perSec;
  row('ingest capacity of 2 cores, server side only (core + PostgreSQL CPU per batch)', `${(2 / perBatch).toFixed(0)} batches/s`, '≥ 2000', (2 / perBatch / 2000).toFixed(2));
  keepAlive.destroy();
} finally {
  await core.stop({ expectClean: false });
  sshd.remove();
}
