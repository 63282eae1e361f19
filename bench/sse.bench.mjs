// SSE fan-out: N streams (1,000, 5,000, 10,000; SSE_BENCH_STREAMS="1000 5000"
// overrides), 100 events published at 100/s through POST /api/v1/annotations,
// delivery latency from sending the POST to reading the event on every
// stream, delivered/expected, and the daemon's RSS idle and with N streams.
// Runs the optimised build against a private PostgreSQL and Redis. The load
// tool reads until every stream has every event, or none got one for 10 s;
// SSE_LOAD_DEBUG=1 prints which streams missed which events.
// SBX_TOKEN, when set, is passed to the load tool as a bearer token.
import { execFileSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const LOAD = join(ROOT, 'build', 'tools', 'sse-load');
const SERVICES = join(ROOT, 'scripts', 'services.sh');
const run = mkdtempSync(join(tmpdir(), 'sbx-bench-sse-'));
chmodSync(run, 0o755);

function services(cmd) {
  const out = execFileSync(SERVICES, [cmd, join(run, 'services')], { encoding: 'utf8' });
  const vars = {};
  for (const line of out.split('\n')) {
    const m = line.match(/^(\w+)='(.*)'$/);
    if (m) vars[m[1]] = m[2];
  }
  return vars;
}

const rows = [];
const row = (what, figure, target, ratio) => rows.push(`| ${what} | ${figure} | ${target} | ${ratio} |`);
let core;
try {
  const pg = services('start-pg');
  const redis = services('start-redis');
  process.env.SBX_TEST_PG_SOCKET = pg.SERVERBOX_PG_SOCKET;
  process.env.SBX_TEST_PG_PORT = pg.SERVERBOX_PG_PORT;
  process.env.SBX_CORE_BIN = join(ROOT, 'build', 'serverbox-core');
  const h = await import('../tests/lib/harness.mjs');
  const db = h.createDatabase('bench_sse');
  const sizes = (process.env.SSE_BENCH_STREAMS || '1000 5000 10000').split(/\s+/).filter(Boolean).map(Number);
  for (const n of sizes) {
    // One credential opens every stream: its request rate limit would refuse most.
    // Every stream comes from 127.0.0.1: no per-address connection limit here.
    core = await h.startCore({ db, admin: true, redisUrl: redis.SERVERBOX_REDIS_URL, env: { SERVERBOX_TOKEN_RATE_LIMIT: '0', SERVERBOX_PER_IP_CONNECTION_LIMIT: '0' } });
    await new Promise((r) => setTimeout(r, 500));
    // Asynchronously: the daemon's log pipe must keep draining meanwhile.
    const { stdout: out, stderr } = await promisify(execFile)(LOAD,
      ['bench', String(core.port), String(n), '100', '100', String(core.proc.pid)],
      { encoding: 'utf8', env: { ...process.env, SBX_TOKEN: core.token }, timeout: 300000 });
    if (process.env.SSE_LOAD_DEBUG && stderr) process.stderr.write(stderr);
    const r = JSON.parse(out);
    const pct = r.expected ? (100 * r.delivered) / r.expected : 0;
    const perSub = (r.rss_streams_kb - r.rss_idle_kb) / Math.max(1, r.connected);
    row(`sse ${n} streams: connected`, `${r.connected}`, `${n}`, (r.connected / n).toFixed(2));
    row(`sse ${n} streams: delivered/expected`, `${r.delivered}/${r.expected} (${pct.toFixed(2)}%)`, '100%', (pct / 100).toFixed(3));
    row(`sse ${n} streams: latency p50`, `${r.p50_ms} ms`, '-', '-');
    row(`sse ${n} streams: latency p99`, `${r.p99_ms} ms`, '< 100 ms', (100 / Math.max(r.p99_ms, 0.1)).toFixed(2));
    row(`sse ${n} streams: latency max`, `${r.max_ms} ms`, '-', '-');
    row(`sse ${n} streams: resyncs`, `${r.resyncs}`, '0', r.resyncs === 0 ? '1.00' : '0');
    row(`sse ${n} streams: streams short of events when reading stopped`, `${r.stalled}`, '0', r.stalled === 0 ? '1.00' : '0');
    row(`sse ${n} streams: annotation POSTs not accepted`, `${r.posts_failed}`, '0', r.posts_failed === 0 ? '1.00' : '0');
    row(`sse ${n} streams: daemon RSS idle / with streams`, `${r.rss_idle_kb} KiB / ${r.rss_streams_kb} KiB`, '-', '-');
    row(`sse ${n} streams: RSS per subscriber`, `${perSub.toFixed(1)} KiB`, '<= 16 KiB', (16 / perSub).toFixed(2));
    await core.stop({ expectClean: false });
    core = null;
  }
} finally {
  if (core) await core.stop({ expectClean: false });
  try { services('stop-redis'); } catch { /* already gone */ }
  try { services('stop-pg'); } catch { /* already gone */ }
  rmSync(run, { recursive: true, force: true });
}
console.log('| what | figure | target | ratio |');
console.log('| --- | --- | --- | --- |');
for (const r of rows) console.log(r);
