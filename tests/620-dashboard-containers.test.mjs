// The Containers page against a real Docker engine (scripts/dockerd.sh, the
// offline busybox image): the list with its state, the live log tail over
// SSE, stop / start / restart with a confirmation (stop and restart are
// jobs: "stopping…" while they run), each outcome checked
// with the Docker CLI against the engine itself; a guest with
// view:containers sees the list without any control.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot } from './lib/browser.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
let dir, sock, db, core, admin, token, br;

function docker(...args) {
  return execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}
const state = (name) => JSON.parse(docker('inspect', name))[0].State;

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  sock = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' }).match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  db = createDatabase('dashctr');
  core = await startCore({ db, env: { SERVERBOX_DOCKER_SOCKET: sock, SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
  admin = createUser(db, { role: 'admin' });
  token = (await login(core, admin)).token;
  const c = await core.request('POST', '/api/v1/nodes/local/containers', { token, json: {
    name: 'ticker', image: 'local/busybox:1',
    command: ['sh', '-c', 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.3; done'], labels: { app: 'demo' } } });
  assert.equal(c.status, 201, c.text);
  br = await openBrowser();
});

after(async () => {
  try {
    await br?.close();
    if (core) await core.stop();
  } finally {
    if (dir) execFileSync(DOCKERD, ['stop', dir]);
  }
});

test('containers listed, logs tail live, stop/start/restart confirmed and done by the engine', async () => {
  const { page } = br;
  await page.goto(`${core.base}/login`);
  await page.locator('#username').fill(admin.username);
  await page.locator('#password').fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/overview');
  await page.locator('#stat-containers', { hasText: '1' }).waitFor();
  await page.getByRole('navigation').getByRole('link', { name: 'Containers' }).click();
  await page.waitForURL('**/containers');
  const row = page.locator('#container-rows tr[data-name="ticker"]');
  await row.locator('.badge', { hasText: 'running' }).waitFor();

  // Logs: the tail, then new lines while we watch.
  await row.getByRole('button', { name: 'Logs' }).click();
  await page.locator('#log-lines', { hasText: /tick\d+/ }).waitFor();
  const count = async () => (await page.locator('#log-lines').textContent()).split('\n').filter(Boolean).length;
  const first = await count();
  await waitFor(async () => (await count()) > first + 2, { what: 'new log lines streaming in' });
  await page.locator('#log-state', { hasText: 'live' }).waitFor();
  await screenshot(page, '620-containers-logs');

  // Stop: cancelled first (nothing happens), then confirmed.
  await row.getByRole('button', { name: 'Stop' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal(state('ticker').Running, true);
  await row.getByRole('button', { name: 'Stop' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Stop' }).click();
  // The stop is a job: the row says "stopping…" with its button disabled
  // while the engine waits out the grace period (sh as PID 1 ignores TERM).
  const busyButton = row.getByRole('button', { name: /stopping/ });
  await busyButton.waitFor({ timeout: 5000 });
  assert.equal(await busyButton.isDisabled(), true);
  await row.locator('.badge', { hasText: 'exited' }).waitFor({ timeout: 30000 });
  assert.equal(state('ticker').Running, false);
  await page.locator('#log-state', { hasText: 'stream ended' }).waitFor({ timeout: 20000 });

  // Filters: exited shows it, running does not.
  await page.locator('#c-state').selectOption('running');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('#container-count', { hasText: '0 containers' }).waitFor();
  await page.locator('#c-state').selectOption('exited');
  await page.getByRole('button', { name: 'Apply' }).click();
  await row.waitFor();

  await page.getByRole('button', { name: 'Clear' }).click();
  await row.getByRole('button', { name: 'Start' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Start' }).click();
  await row.locator('.badge', { hasText: 'running' }).waitFor({ timeout: 20000 });
  assert.equal(state('ticker').Running, true);
  const startedAt = state('ticker').StartedAt;
  await row.getByRole('button', { name: 'Restart' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Restart' }).click();
  await waitFor(() => state('ticker').StartedAt !== startedAt && state('ticker').Running, { timeout: 20000, what: 'a restart' });
  await screenshot(page, '620-containers');

  // The requests are audit events with the user as actor.
  const a = await core.request('GET', '/api/v1/audit?type=container.&limit=1000', { token });
  const types = a.body.events.filter((e) => e.actor.kind === 'user').map((e) => e.type);
  for (const t of ['container.stop_requested', 'container.start_requested', 'container.restart_requested'])
    assert.ok(types.includes(t), `${t} in ${types}`);
  assert.deepEqual(br.problems, []);
});

test('a guest with view:containers sees containers and logs, but no control', async () => {
  const g = await core.request('POST', '/api/v1/guest-links', { token, json: { scopes: ['view:containers', 'view:logs'], ttl_seconds: 600, note: 'ops review' } });
  assert.equal(g.status, 201, g.text);
  const guest = await openBrowser();
  try {
    const p = guest.page;
    await p.goto(`${core.base}${g.body.url}/containers`);
    const row = p.locator('#container-rows tr[data-name="ticker"]');
    await row.locator('.badge', { hasText: 'running' }).waitFor();
    assert.deepEqual(await p.getByRole('navigation').getByRole('link').allTextContents(), ['Overview', 'Containers']);
    assert.deepEqual(await row.getByRole('button').allTextContents(), ['Logs']);
    await row.getByRole('button', { name: 'Logs' }).click();
    await p.locator('#log-lines', { hasText: /tick\d+/ }).waitFor();
    await screenshot(p, '620-guest-containers');
    assert.deepEqual(guest.problems, []);
  } finally {
    await guest.close();
  }
});
