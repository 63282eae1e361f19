// `make soak` (scripts/soak.sh): SOAK_MINUTES (default 30) of mixed load on
// two daemons sharing one database and Redis, then the checks.
//
// Load: API readers and writers (annotations, each 201 an acknowledged event
// with its seq), SOAK_STREAMS event streams (default 1000, split over both
// daemons; streams of a killed daemon reconnect with Last-Event-ID), two
// collectors sending batches, container churn on a private dockerd (when
// dockerd is available) watched by daemon A.
// Faults, at fixed fractions of the run: PostgreSQL restarted (35%), Redis
// restarted (50%), daemon B killed with SIGKILL and started again (65%).
// Checks at the end:
//   1. every acknowledged annotation is in the log with its message, and
//      each witness stream on A (open the whole run) received every one;
//   2. `serverbox-core verify-audit` verifies the hash chain;
//   3. A's RSS at the end is at most its RSS after warm-up (25% of the run)
//      + max(16 MiB, 10%) — the stated bound; the release build is measured
//      (ASan's quarantine grows by design);
//   4. A's open file descriptors at the end are within 16 of warm-up (the
//      same streams are open then; the daemons run 8 + 4 workers so that
//      their per-thread Docker connections are all open after warm-up).
// Prints one JSON summary line; exits non-zero when a check fails.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, createUser, login, waitFor, runCore, env, ROOT } from '../lib/harness.mjs';
import { openSse } from '../lib/sse.mjs';
import { startSshd } from '../lib/sshd.mjs';
import { registerNode, collectorDir, runCollector, startCollector } from '../lib/collector.mjs';

const MINUTES = Number(process.env.SOAK_MINUTES || 30);
const STREAMS = Number(process.env.SOAK_STREAMS || 1000);
const DURATION = MINUTES * 60000;
const SERVICES = join(env('SBX_TEST_RUN_DIR'), 'services');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const at = (f) => t0 + f * DURATION;
const log = (msg) => console.error(`[soak +${((Date.now() - t0) / 1000).toFixed(0)}s] ${msg}`);

// What a daemon's descriptors are: unix sockets by peer path is not
// available, so by kind, and TCP sockets by remote port (ss).
function fdKinds(pid) {
  const kinds = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let t;
    try { t = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
    const k = t.replace(/\[\d+\]$/, '').replace(/^\/.*/, 'file');
    kinds[k] = (kinds[k] || 0) + 1;
  }
  try {
    const ss = execFileSync('ss', ['-Htanp'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`pid=${pid},`));
    for (const l of ss) {
      const f = l.trim().split(/\s+/);
      const key = `tcp ${f[0]} local:${f[3].split(':').pop() === String(a?.port) ? 'listen-port' : 'other'} peer:${f[4]}`;
      kinds[key.replace(/:\d+$/, ':*')] = (kinds[key.replace(/:\d+$/, ':*')] || 0) + 1;
    }
  } catch { /* no ss */ }
  return kinds;
}

function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssKb: Number(s.match(/VmRSS:\s+(\d+)/)[1]), fds: readdirSync(`/proc/${pid}/fd`).length };
}

const db = createDatabase('soak');
const redisUrl = env('SBX_TEST_REDIS_URL');
const sshd = startSshd();
let engine = null;
try {
  execFileSync('which', ['dockerd'], { stdio: 'ignore' });
  const { startEngine } = await import('../lib/stacks.mjs');
  engine = startEngine();
} catch (e) {
  log(`no private dockerd (${e.message.split('\n')[0]}): container churn skipped`);
}
// Few workers: each worker thread keeps its own connection to the Docker
// socket (docker/client.c), so descriptors grow with the number of workers
// that ever served a Docker request, up to --workers + --job-workers. With 8
// + 4 they are all open by the end of warm-up, and any growth after it is a
// leak.
const common = { SERVERBOX_WORKERS: '8', SERVERBOX_JOB_WORKERS: '4', SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_TOKEN_RATE_LIMIT: '0', SERVERBOX_ANON_IP_LIMIT: '0',
  SERVERBOX_EVENTS_HEARTBEAT_MS: '5000', SERVERBOX_PER_IP_CONNECTION_LIMIT: '0' };
const a = await startCore({ db, redisUrl, env: { ...common,
  ...(engine ? { SERVERBOX_DOCKER_SOCKET: engine.sock } : {}) } });
const keyFile = join(a.dataDir, 'master.key');
const startB = (dataDir) => startCore({ db, redisUrl, dataDir, env: { ...common, SERVERBOX_MASTER_KEY_FILE: keyFile,
  SERVERBOX_DOCKER_SOCKET: '/nonexistent/docker.sock' } });
let b = await startB();
const bDir = b.dataDir;
const admin = createUser(db, { role: 'admin' });
const token = (await login(a, admin)).token;

const acked = new Map(); // seq -> message
const stats = { writes: 0, write_fail: 0, reads: 0, read_fail: 0, churn: 0, churn_fail: 0, reconnects: 0 };
let stop = false;

// ---- streams ----------------------------------------------------------------
const witnesses = [];
const streams = [];
function openOn(core, lastId) {
  const s = openSse(core.base, '/api/v1/events', { token, headers: lastId ? { 'Last-Event-ID': String(lastId) } : {} });
  s.core = core;
  s.ready.catch(() => { s.ended = true; }); // refused (daemon down): the keeper retries
  return s;
}
for (let i = 0; i < 5; i++) witnesses.push(openOn(a));
for (let i = 0; i < STREAMS; i++) {
  streams.push(openOn(i % 2 ? b : a));
  if (i % 50 === 49) await sleep(100);
}
await Promise.all([...witnesses, ...streams].map((s) => s.ready.catch(() => {})));
log(`streams open: ${streams.filter((s) => s.status === 200).length + witnesses.filter((s) => s.status === 200).length}`);

// ---- collectors ----------------------------------------------------------------
const collectors = [];
for (let i = 0; i < 2; i++) {
  const node = await registerNode({ request: (m, p, o) => a.request(m, p, { ...o, token }) }, sshd);
  const t = await a.request('POST', `/api/v1/nodes/${node}/enroll-token`, { token, json: {} });
  const dir = collectorDir();
  const e = runCollector(['enroll', '--core', `${a.base},${b.base}`, '--token', t.body.token, '--state-dir', dir]);
  assert.equal(e.code, 0, e.stderr);
  collectors.push(startCollector(['run', '--state-dir', dir, '--interval', '2', '--docker-socket', '', '--backoff-max', '5']));
}

// ---- load loops -------------------------------------------------------------------
async function writer(id) {
  for (let n = 0; !stop; n++) {
    const core = n % 2 ? b : a;
    const message = `soak ${id} ${n}`;
    try {
      const r = await core.request('POST', '/api/v1/annotations', { token, json: { message, labels: { soak: String(id) } } });
      if (r.status === 201) { acked.set(r.body.seq, message); stats.writes++; } else stats.write_fail++;
    } catch { stats.write_fail++; }
    await sleep(50);
  }
}
async function reader() {
  const paths = ['/api/v1/nodes', '/api/v1/events/history?limit=50', '/health/ready', '/metrics', '/api/v1/me'];
  for (let n = 0; !stop; n++) {
    const core = n % 3 ? a : b;
    try {
      const r = await core.request('GET', paths[n % paths.length], { token });
      if (r.status < 500) stats.reads++; else stats.read_fail++;
    } catch { stats.read_fail++; }
    await sleep(20);
  }
}
async function churn() {
  if (!engine) return;
  for (let n = 0; !stop; n++) {
    try {
      const name = `soak-${n}`;
      engine.docker('run', '-d', '--name', name, 'local/busybox:1', 'sleep', '600');
      await a.request('GET', '/api/v1/nodes/local/containers', { token });
      engine.docker('rm', '-f', name);
      stats.churn++;
    } catch { stats.churn_fail++; }
    await sleep(1000);
  }
}
async function streamKeeper() {
  while (!stop) {
    for (let i = 0; i < streams.length; i++) {
      const s = streams[i];
      if (!s.ended || stop) continue;
      const core = s.core === a ? a : b;
      if (!core.alive()) continue;
      const last = s.events.filter((e) => e.id).map((e) => Number(e.id)).pop();
      streams[i] = openOn(core, last);
      stats.reconnects++;
    }
    await sleep(2000);
  }
}
const loops = [writer(1), writer(2), reader(), reader(), churn(), streamKeeper()];

// ---- schedule: warm-up, faults ------------------------------------------------------
const samples = [];
let warm = null;
const faults = [
  { f: 0.35, name: 'postgres restart', run: async () => {
    execFileSync(join(ROOT, 'scripts', 'services.sh'), ['stop-pg', SERVICES]);
    await sleep(5000);
    execFileSync(join(ROOT, 'scripts', 'services.sh'), ['start-pg', SERVICES], { stdio: ['ignore', 'ignore', 'inherit'] });
  } },
  { f: 0.5, name: 'redis restart', run: async () => {
    execFileSync(join(ROOT, 'scripts', 'services.sh'), ['stop-redis', SERVICES]);
    await sleep(3000);
    execFileSync(join(ROOT, 'scripts', 'services.sh'), ['start-redis', SERVICES], { stdio: ['ignore', 'ignore', 'inherit'] });
  } },
  { f: 0.65, name: 'kill -9 of daemon B', run: async () => {
    b.proc.kill('SIGKILL');
    await b.exited;
    await sleep(3000);
    const old = b;
    b = await startB(bDir);
    // Streams on the dead daemon reconnect to the new one.
    for (const s of streams) if (s.core === old) s.core = b;
  } },
];
while (Date.now() < t0 + DURATION) {
  const now = Date.now();
  const st = procStatus(a.proc.pid);
  samples.push({ t: Math.round((now - t0) / 1000), ...st });
  if (!warm && now >= at(0.25)) {
    warm = st;
    warm.kinds = fdKinds(a.proc.pid);
    log(`warm-up: rss ${st.rssKb} kB, fds ${st.fds} ${JSON.stringify(warm.kinds)}`);
  }
  const due = faults.find((x) => !x.done && now >= at(x.f));
  if (due) {
    due.done = true;
    log(`fault: ${due.name}`);
    await due.run();
    log(`fault done: ${due.name}`);
  }
  await sleep(Math.min(10000, DURATION / 40));
}
for (const x of faults) if (!x.done) { log(`fault (late): ${x.name}`); await x.run(); }
if (!warm) warm = samples[Math.floor(samples.length / 4)];
const end = procStatus(a.proc.pid);
end.kinds = fdKinds(a.proc.pid);
log(`end: rss ${end.rssKb} kB, fds ${end.fds} ${JSON.stringify(end.kinds)}`);
stop = true;
await Promise.all(loops);

// ---- checks ----------------------------------------------------------------------------
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
// 1. acknowledged events
const rows = db.sql("SELECT seq || ' ' || (data->>'message') FROM events WHERE type = 'annotation.created'");
const inLog = new Map(rows.split('\n').filter(Boolean).map((l) => { const i = l.indexOf(' '); return [Number(l.slice(0, i)), l.slice(i + 1)]; }));
let lost = 0;
for (const [seq, msg] of acked) if (inLog.get(seq) !== msg) lost++;
check(lost === 0, `${lost} acknowledged events missing from the log`);
const maxAcked = Math.max(...acked.keys());
await waitFor(() => witnesses.every((w) => w.events.some((e) => Number(e.id) >= maxAcked)), { timeout: 60000, what: 'witnesses caught up' })
  .catch(() => {});
let missedByWitness = 0;
for (const w of witnesses) {
  const got = new Set(w.events.map((e) => Number(e.id)));
  for (const seq of acked.keys()) if (!got.has(seq)) missedByWitness++;
}
check(missedByWitness === 0, `witness streams missed ${missedByWitness} acknowledged events`);
// 2. the chain
const verify = runCore(['verify-audit'], { SERVERBOX_DATABASE_URL: db.url }, { check: false });
check(verify.code === 0, `verify-audit exited ${verify.code}: ${verify.stderr}${verify.stdout}`);
// 3, 4. resources (the streams are still open, as at warm-up)
const rssBound = warm.rssKb + Math.max(16384, Math.round(warm.rssKb * 0.1));
check(end.rssKb <= rssBound, `RSS grew from ${warm.rssKb} kB after warm-up to ${end.rssKb} kB (bound ${rssBound} kB)`);
check(end.fds <= warm.fds + 16, `fds grew from ${warm.fds} to ${end.fds}`);

for (const s of [...streams, ...witnesses]) s.close();
for (const c of collectors) await c.stop();
const batches = Number(db.sql('SELECT count(*) FROM metrics_raw'));
check(batches > 0, 'no collector batch was stored');
await b.stop({ expectClean: false });
await a.stop({ expectClean: false });
if (engine) engine.stop();
sshd.remove();
const summary = { minutes: MINUTES, streams: STREAMS, acked: acked.size, ...stats, collector_samples: batches,
  rss_warm_kb: warm.rssKb, rss_end_kb: end.rssKb, rss_bound_kb: rssBound, fds_warm: warm.fds, fds_end: end.fds,
  rss_min_kb: Math.min(...samples.map((s) => s.rssKb)), rss_max_kb: Math.max(...samples.map((s) => s.rssKb)),
  lost, missed_by_witness: missedByWitness, chain: verify.code === 0 ? 'verified' : 'FAILED', failures };
console.log(JSON.stringify(summary));
process.exit(failures.length ? 1 : 0);
