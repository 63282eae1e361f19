// SSH benchmark (run by bench/ssh.bench.sh): prints `| what | figure | target | ratio |` rows.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, createDatabase, startCore } from '../tests/lib/harness.mjs';
import { startSshd } from '../tests/lib/sshd.mjs';

const runDir = mkdtempSync(join(tmpdir(), 'sbx-bench-ssh-'));
chmodSync(runDir, 0o755); // PostgreSQL runs as its own user
const services = join(ROOT, 'scripts', 'services.sh');
let sshd, core;
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };
const row = (what, figure, target, ratio = '') => console.log(`| ${what} | ${figure} | ${target} | ${ratio} |`);

try {
  const pg = execFileSync(services, ['start-pg', join(runDir, 'services')], { encoding: 'utf8' });
  for (const line of pg.trim().split('\n')) {
    const m = line.match(/^(?:export )?(SERVERBOX_PG_\w+)=['"]?([^'"]*)['"]?$/);
    if (m) process.env[m[1].replace('SERVERBOX_', 'SBX_TEST_')] = m[2];
  }
  sshd = startSshd();
  const db = createDatabase('bench');
  // The bench's own (release) daemon: no periodic checks, quiet logs.
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_WORKERS: '16' } });

  const tool = join(ROOT, 'build', 'tools', 'ssh-bench');
  const n = 300;
  const res = {};
  for (const mode of ['pool', 'fresh']) {
    const out = spawnSync(tool, ['127.0.0.1', String(sshd.port), 'root', sshd.keyPath, sshd.fingerprint, String(mode === 'pool' ? n : 100), mode], { encoding: 'utf8' });
    res[mode] = JSON.parse(out.stdout);
  }
  console.log('| what | figure | target | ratio |');
  console.log('| --- | --- | --- | --- |');
  row('ssh exec `true`, warm pool (ssh module), p50 / p99', `${res.pool.p50_ms.toFixed(2)} / ${res.pool.p99_ms.toFixed(2)} ms`, 'p50 ≤ 5 ms', (5 / res.pool.p50_ms).toFixed(2));
  row('ssh exec `true`, fresh connection each, p50 / p99', `${res.fresh.p50_ms.toFixed(2)} / ${res.fresh.p99_ms.toFixed(2)} ms`, '');
  row('fresh p50 / pooled p50', `${(res.fresh.p50_ms / res.pool.p50_ms).toFixed(1)}×`, '≥ 10×', (res.fresh.p50_ms / res.pool.p50_ms / 10).toFixed(2));

  const reg = await core.request('POST', '/api/v1/nodes', { json: { name: 'bench-0', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key } });
  if (reg.status !== 201) throw new Error(reg.text);
  const id = reg.body.id;
  const lat = [];
  await core.request('POST', `/api/v1/nodes/${id}/exec`, { json: { command: 'true' } });
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    const r = await core.request('POST', `/api/v1/nodes/${id}/exec`, { json: { command: 'true' } });
    if (r.status !== 200) throw new Error(r.text);
    lat.push(performance.now() - t0);
  }
  row('POST /nodes/{id}/exec `true` over HTTP, warm pool, p50 / p99', `${pct(lat, 0.5).toFixed(2)} / ${pct(lat, 0.99).toFixed(2)} ms`, '');

  for (let round = 0; round < 2; round++) {
    const t0 = performance.now();
    const rs = await Promise.all(Array.from({ length: 100 }, () => core.request('POST', `/api/v1/nodes/${id}/exec`, { json: { command: 'true' } })));
    const dt = performance.now() - t0;
    const ok = rs.filter((r) => r.status === 200).length;
    if (round === 1) row('100 concurrent execs, one node, 3 sessions', `${(100 / (dt / 1000)).toFixed(0)} execs/s (${ok}/100 ok, ${dt.toFixed(0)} ms)`, 'all succeed');
  }

  for (let i = 1; i < 50; i++) {
    const r = await core.request('POST', '/api/v1/nodes', { json: { name: `bench-${i}`, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, host_key_fingerprint: sshd.fingerprint, labels: { env: i % 2 ? 'prod' : 'staging', idx: String(i) } } });
    if (r.status !== 201) throw new Error(r.text);
  }
  // Asynchronously: the daemon's log pipe must keep draining meanwhile.
  const wrk = await promisify(execFile)('wrk', ['-t2', '-c64', '-d5s', '--latency', '-H', `Authorization: Bearer ${core.token}`, `${core.base}/api/v1/nodes`], { encoding: 'utf8' });
  const rps = wrk.stdout.match(/Requests\/sec:\s+([\d.]+)/)?.[1];
  const p99 = wrk.stdout.match(/99%\s+([\d.]+\w+)/)?.[1];
  const non2xx = wrk.stdout.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] || '0';
  row('GET /api/v1/nodes (50 nodes), wrk 64 connections', `${Number(rps).toFixed(0)} req/s, p99 ${p99}, non-2xx ${non2xx}`, '');
} finally {
  await core?.stop({ expectClean: false });
  sshd?.remove();
  try { execFileSync(services, ['stop-pg', join(runDir, 'services')]); } catch { /* already gone */ }
  rmSync(runDir, { recursive: true, force: true });
}
