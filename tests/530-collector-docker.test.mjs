// Per-container figures: the real collector reads a private dockerd's socket
// (Engine API over the unix socket) and the core serves the container series.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, symlinkSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { registerNode, collectorDir, runCollector, startCollector } from './lib/collector.mjs';

const D = mkdtempSync('/tmp/sbx-dk-');
const SOCK = join(D, 'docker.sock');
let dockerd, core, collector, sshd;
const docker = (...args) => execFileSync('docker', ['-H', `unix://${SOCK}`, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();

after(async () => {
  await collector?.stop();
  await core?.stop();
  if (dockerd) {
    try { docker('rm', '-f', 'busy'); } catch { /* gone */ }
    dockerd.kill('SIGTERM');
    await new Promise((r) => { dockerd.on('exit', r); setTimeout(r, 15000); });
  }
  sshd?.remove();
  rmSync(D, { recursive: true, force: true });
});

test('container CPU, memory and I/O reach the container series and /metrics', async () => {
  dockerd = spawn('dockerd', ['--data-root', join(D, 'data'), '--exec-root', join(D, 'exec'), '-H', `unix://${SOCK}`,
    '--pidfile', join(D, 'docker.pid'), '--storage-driver', 'vfs', '--iptables=false', '--bridge=none'], { stdio: 'ignore' });
  await waitFor(() => { if (!existsSync(SOCK)) return false; docker('info'); return true; }, { timeout: 30000, what: 'dockerd' });
  const img = join(D, 'img');
  mkdirSync(join(img, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(img, 'bin', 'busybox'));
  for (const l of ['sh', 'sleep']) symlinkSync('busybox', join(img, 'bin', l));
  execFileSync('sh', ['-c', `tar -C ${img} -c . | docker -H unix://${SOCK} import - local/busybox:1`], { stdio: 'pipe' });
  const id = docker('run', '-d', '--name', 'busy', 'local/busybox:1', 'sh', '-c', 'while :; do :; done');

  const db = createDatabase('dock');
  sshd = startSshd();
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  const node = await registerNode(core, sshd);
  const tok = await core.request('POST', `/api/v1/nodes/${node}/enroll-token`, { json: {} });
  const dir = collectorDir();
  assert.equal(runCollector(['enroll', '--core', core.base, '--token', tok.body.token, '--state-dir', dir]).code, 0);
  collector = startCollector(['--core', core.base, '--state-dir', dir, '--interval', '1', '--docker-socket', SOCK]);
  const rows = () => Number(db.sql(`SELECT count(*) FROM metrics_container_raw WHERE node_id = '${node}' AND container_id = '${id}' AND cpu_pct > 1`));
  await waitFor(() => rows() >= 2, { timeout: 30000, what: 'busy container samples' });
  const r = await core.request('GET', `/api/v1/nodes/${node}/containers/${id}/metrics?from=${Date.now() - 120000}&step=1`);
  assert.equal(r.status, 200, r.text);
  const p = r.body.points.find((x) => x.cpu_pct > 1);
  assert.ok(p, JSON.stringify(r.body.points));
  assert.equal(p.name, 'busy');
  assert.ok(p.mem_used > 0 && p.mem_limit > 0);
  const m = await core.request('GET', '/metrics');
  assert.match(m.text, new RegExp(`serverbox_container_cpu_percent\\{node="${node}",container="${id}",name="busy"\\} [0-9.e+]+`));
  await collector.stop();
  assert.doesNotMatch(collector.log(), /AddressSanitizer|runtime error/);
  collector = null;
});
