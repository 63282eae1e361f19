// Measurements for bench/docker.bench.sh (see there). Not a *.bench.mjs:
// it needs the services that script starts.
import { execFileSync } from 'node:child_process';
import { createDatabase, startCore } from '../../tests/lib/harness.mjs';

const sock = process.env.SBX_DOCKER_SOCKET;
const STOPS = Number(process.env.DOCKER_BENCH_STOPS || 50);
const docker = (...a) => execFileSync('docker', ['-H', `unix://${sock}`, ...a], { encoding: 'utf8' }).trim();
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };
const row = (what, v, unit, target) => console.log(`| ${what} | ${v.toFixed(2)} ${unit} | ≤ ${target} ${unit} | ${(v / target).toFixed(2)} |`);

const db = createDatabase('dbench');
const core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock } });
try {
  for (let i = 0; i < 20; i++) docker('run', '-d', '--name', `b${i}`, 'local/busybox:1', 'sleep', '100000');
  for (let i = 0; i < 20; i++) await core.request('GET', '/api/v1/containers');
  const lat = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    const r = await core.request('GET', '/api/v1/containers');
    lat.push(performance.now() - t);
    if (r.body.containers.length !== 20) throw new Error(`expected 20 containers, got ${r.body.containers.length}`);
  }
  console.log('| what | figure | target | ratio |');
  console.log('| --- | --- | --- | --- |');
  row('GET /api/v1/containers, 20 containers, p50 (300 requests)', pct(lat, 50), 'ms', 50);
  row('GET /api/v1/containers, 20 containers, p99', pct(lat, 99), 'ms', 200);

  for (let i = 20; i < STOPS; i++) docker('run', '-d', '--name', `b${i}`, 'local/busybox:1', 'sleep', '100000');
  for (let i = 0; i < STOPS; i++) docker('stop', '-t', '0', `b${i}`);
  const deadline = Date.now() + 30000;
  let rows = [];
  while (Date.now() < deadline) {
    const out = db.sql("SELECT extract(epoch FROM occurred_at) * 1000 - (data->>'engine_time_ns')::numeric / 1e6 FROM events WHERE type = 'container.died'");
    rows = out ? out.split('\n').map(Number) : [];
    if (rows.length >= STOPS) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (rows.length < STOPS) throw new Error(`only ${rows.length} of ${STOPS} container.died events arrived`);
  row(`engine die (docker stop) → container.died stamped in the log, p50 (${STOPS} stops)`, pct(rows, 50), 'ms', 1000);
  row(`engine die (docker stop) → container.died stamped in the log, p99 (${STOPS} stops)`, pct(rows, 99), 'ms', 2000);
} finally {
  await core.stop({ expectClean: false });
}
