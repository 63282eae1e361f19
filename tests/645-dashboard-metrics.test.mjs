// Per-container charts and the fleet-wide Metrics page (issue #17). Two
// nodes behind real sshds; node A's Docker engine is a real private engine
// (scripts/dockerd.sh, docker "local") running a real container. Their
// collectors are played by signed batches (tests/lib/collector.mjs) with
// known figures, so the page must show exactly those: each node's CPU,
// memory and disk side by side, the containers ordered by CPU, and a
// container's CPU and memory series — then new samples arriving live.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';
import { startSshd } from './lib/sshd.mjs';
import { makeAgentKey, signedBatch, sample } from './lib/collector.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
let dir, sock, db, core, token, br, s1, s2, nodeA, nodeB, keyA, keyB, ctrId;
const seq = { a: 0, b: 0 };

function docker(...args) {
  return execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

async function enroll(node) {
  const key = makeAgentKey();
  const t = await core.request('POST', `/api/v1/nodes/${node}/enroll-token`, { token, json: {} });
  assert.equal(t.status, 201, t.text);
  const r = await core.request('POST', '/api/v1/agent/enroll', { json: { token: t.body.token, public_key: key.hex } });
  assert.equal(r.status, 201, r.text);
  return key;
}

// One batch of one sample for node A or B, `ago` ms in the past.
async function send(which, { cpu, memUsed, diskUsed, containers = [], ago = 0 }) {
  const node = which === 'a' ? nodeA : nodeB;
  const key = which === 'a' ? keyA : keyB;
  seq[which] += 1;
  const s = sample(Date.now() - ago, { cpu: { total: cpu, cores: [cpu] }, mem: { total: 8e9, used: memUsed, available: 8e9 - memUsed },
    disk_total: { total: 100e9, used: diskUsed }, containers });
  const b = signedBatch(key, { v: 1, node_id: node, seq: seq[which], sent_at: Date.now(), interval_ms: 5000, samples: [s] });
  const r = await core.request('POST', '/api/v1/agent/metrics', { body: b.body, headers: b.headers });
  assert.ok(r.status === 200 || r.status === 202, `${r.status} ${r.text}`);
}

const busy = (cpu, mem = 300e6) => ({ id: ctrId, name: 'busy', cpu, mem, mem_limit: 1e9, net_rx_bps: 0, net_tx_bps: 0, blk_read_bps: 0, blk_write_bps: 0 });
const web = (cpu) => ({ id: 'b'.repeat(64), name: 'web', cpu, mem: 50e6, mem_limit: 0, net_rx_bps: 0, net_tx_bps: 0, blk_read_bps: 0, blk_write_bps: 0 });

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  sock = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' }).match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  ctrId = docker('run', '-d', '--name', 'busy', 'local/busybox:1', 'sh', '-c', 'while true; do sleep 1; done');
  s1 = startSshd();
  s2 = startSshd();
  db = createDatabase('dashmetrics');
  core = await startCore({ db, env: { SERVERBOX_DOCKER_SOCKET: sock, SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  const admin = createUser(db, { role: 'admin' });
  token = (await login(core, admin)).token;
  const add = async (name, s, extra = {}) => {
    const r = await core.request('POST', '/api/v1/nodes', { token, json: { name, host: '127.0.0.1', port: s.port, ssh_user: 'root', private_key: s.key, ...extra } });
    assert.equal(r.status, 201, r.text);
    return r.body.id;
  };
  nodeA = await add('alpha', s1, { docker: 'local' });
  nodeB = await add('beta', s2);
  keyA = await enroll(nodeA);
  keyB = await enroll(nodeB);
  // A few minutes of history, then the latest figures.
  for (const ago of [180000, 120000, 60000]) {
    await send('a', { cpu: 30, memUsed: 2e9, diskUsed: 40e9, containers: [busy(70)], ago });
    await send('b', { cpu: 10, memUsed: 1e9, diskUsed: 20e9, containers: [web(5)], ago });
  }
  await send('a', { cpu: 42.5, memUsed: 4e9, diskUsed: 50e9, containers: [busy(91.5)] });
  await send('b', { cpu: 12.5, memUsed: 2e9, diskUsed: 25e9, containers: [web(20)] });
  br = await openBrowser({ viewport: { width: 1440, height: 900 } });
  await logIn(br.page, core, admin);
});

after(async () => {
  try {
    await br?.close();
    await core?.stop();
  } finally {
    for (const s of [s1, s2]) s?.remove();
    if (dir) execFileSync(DOCKERD, ['stop', dir]);
  }
});

test('the Metrics page: every node side by side, the last hour charted, the busiest containers first, live', async () => {
  const { page } = br;
  await page.getByRole('navigation').getByRole('link', { name: 'Metrics', exact: true }).click();
  await page.waitForURL('**/fleet');
  const gaugeOf = (kind, node) => page.locator(`#fleet-${kind}-${node}`);
  await page.waitForFunction((id) => document.querySelector(`#fleet-cpu-${id}`)?.dataset.value === '42.50', nodeA);
  assert.equal(await gaugeOf('cpu', nodeB).getAttribute('data-value'), '12.50');
  assert.equal(await gaugeOf('mem', nodeA).getAttribute('data-value'), '50.00');
  assert.equal(await gaugeOf('disk', nodeB).getAttribute('data-value'), '25.00');
  assert.match(await gaugeOf('mem', nodeA).textContent(), /50\.0% · 3\.7 GiB of 7\.5 GiB/);
  // The charts hold the stored points of both nodes.
  await page.waitForFunction(() => Number(document.querySelector('#fleet-chart-cpu')?.dataset.points) >= 4);
  assert.ok(await page.locator('#fleet-chart-cpu canvas').count() >= 1);
  // Containers by CPU, with their node.
  const top = await page.locator('#top-containers tr').evaluateAll((rows) => rows.map((r) => [...r.cells].slice(0, 3).map((c) => c.textContent)));
  assert.deepEqual(top, [['busy', 'alpha', '91.5%'], ['web', 'beta', '20.0%']]);
  await screenshot(page, '645-metrics');
  // Live: a new sample moves the figures without a reload.
  await send('b', { cpu: 77, memUsed: 2e9, diskUsed: 25e9, containers: [web(95)] });
  await page.waitForFunction((id) => document.querySelector(`#fleet-cpu-${id}`)?.dataset.value === '77.00', nodeB, { timeout: 60000 });
  await page.locator('#top-containers tr').first().filter({ hasText: 'web' }).waitFor({ timeout: 60000 });
  assert.deepEqual(br.problems, []);
});

test('a container\'s CPU and memory: from the Containers page and the Metrics page, the series then live points', async () => {
  const { page } = br;
  await page.goto(`${core.base}/containers`);
  const row = page.locator('#container-rows tr[data-name="busy"]');
  await row.waitFor();
  assert.match(await row.textContent(), /alpha/);
  await row.getByRole('button', { name: 'Charts' }).click();
  const panel = page.locator(`#container-charts[data-container="${ctrId}"]`);
  await panel.waitFor();
  const cpu = page.locator('#cchart-cpu');
  await page.waitForFunction(() => Number(document.querySelector('#cchart-cpu')?.dataset.points) >= 4);
  assert.equal(await page.locator('#cchart-cpu-now').textContent(), '91.5%');
  assert.match(await page.locator('#cchart-mem-now').textContent(), /^286 MiB of 954 MiB$/);
  await page.locator('#cchart-cpu canvas').waitFor();
  const before = Number(await cpu.getAttribute('data-last-t'));
  await send('a', { cpu: 50, memUsed: 4e9, diskUsed: 50e9, containers: [busy(33.3, 400e6)] });
  await page.locator('#cchart-cpu-now', { hasText: '33.3%' }).waitFor({ timeout: 60000 });
  assert.ok(Number(await cpu.getAttribute('data-last-t')) > before);
  await screenshot(page, '645-container-charts');
  await panel.getByRole('button', { name: 'Close' }).click();
  await panel.waitFor({ state: 'detached' });

  // The same panel from the Metrics page's top containers.
  await page.goto(`${core.base}/fleet`);
  const busyRow = page.locator('#top-containers tr[data-container="busy"]');
  await busyRow.waitFor();
  await busyRow.getByRole('button', { name: 'Charts' }).click();
  // Drawn from the series API (10 s buckets: the last two samples may share
  // one, averaged by the core): the panel shows the API's last point.
  const r = await core.request('GET', `/api/v1/nodes/${nodeA}/containers/${ctrId}/metrics?from=${Date.now() - 3600000}&step=10`, { token });
  assert.equal(r.status, 200, r.text);
  const cpus = r.body.points.map((p) => Number(p.cpu_pct));
  assert.deepEqual(cpus.slice(0, 3), [70, 70, 70]);
  assert.ok([33.3, 62.4].includes(cpus.at(-1)), JSON.stringify(cpus));
  await page.locator(`#container-charts[data-container="${ctrId}"] #cchart-cpu-now`, { hasText: `${cpus.at(-1).toFixed(1)}%` }).waitFor();
  await waitFor(async () => Number(await page.locator('#cchart-cpu').getAttribute('data-points')) >= r.body.points.length, { what: 'all stored points drawn' });
  assert.deepEqual(br.problems, []);
});
