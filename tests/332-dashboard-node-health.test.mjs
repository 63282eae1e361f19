// The dashboard shows a node's SSH, Docker and collector health apart
// (issue #17, items 3 and 5), in a real browser against the real core and
// real OpenSSH servers: a node online over SSH without a Docker socket is
// listed "online" with its Docker "unreachable" and the reason in words; the
// Overview does not say "all online" beside it; and the "Node added" panel
// of a generated key follows the check asked from it (its status never
// "offline" beside a green "online" check result).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, createUser, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';

let db, core, admin, br, s1, s2;
before(async () => {
  s1 = startSshd();
  s2 = startSshd();
  db = createDatabase('dashhealth');
  // No periodic checks: the statuses move only with the checks asked here.
  core = await startCore({ db, admin: true, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  admin = createUser(db, { role: 'admin' });
  br = await openBrowser();
});
after(async () => {
  try {
    await br?.close();
    await core?.stop();
  } finally {
    for (const s of [s1, s2]) s?.remove();
  }
});

const row = (page, name) => page.locator(`#node-rows tr[data-node="${name}"]`);

test('the Node added panel of a generated key follows the check asked from it', async () => {
  const { page } = br;
  await logIn(page, core, admin);
  await page.getByRole('navigation').getByRole('link', { name: 'Nodes' }).click();
  await page.waitForURL('**/nodes');
  await page.locator('#n-name').fill('beta');
  await page.locator('#n-host').fill('127.0.0.1');
  await page.locator('#n-port').fill(String(s2.port));
  await page.locator('#n-user').fill('root');
  await page.getByLabel('Generate a key on the core').check();
  await page.getByRole('button', { name: 'Add node' }).click();
  const pub = (await page.locator('#node-public-key').textContent()).trim();
  const status = page.locator('#node-added-status');
  await status.locator('.badge', { hasText: 'offline' }).waitFor();
  assert.equal(await status.getAttribute('data-status'), 'offline');
  appendFileSync(join(s2.dir, 'authorized_keys'), `${pub}\n`);
  await page.getByRole('button', { name: 'Check connection' }).click();
  await page.locator('#node-check-result .badge', { hasText: 'online' }).waitFor({ timeout: 20000 });
  await status.locator('.badge', { hasText: 'online' }).waitFor();
  assert.equal(await status.getAttribute('data-status'), 'online');
  assert.equal(await status.locator('.badge', { hasText: 'offline' }).count(), 0);
  // The list agrees (node.online reached it live).
  await row(page, 'beta').locator('.status-cell .badge', { hasText: 'online' }).waitFor({ timeout: 20000 });
  await screenshot(page, '332-node-added-checked');
  assert.deepEqual(br.problems, []);
});

test('SSH online, Docker unreachable with its reason: on the list, the node page and the overview', async () => {
  const { page } = br;
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name: 'alpha', host: '127.0.0.1', port: s1.port, ssh_user: 'root', private_key: s1.key },
  });
  assert.equal(r.status, 201, r.text);
  const id = r.body.id;
  const beta = (await core.request('GET', '/api/v1/nodes')).body.items.find((n) => n.name === 'beta');
  for (const n of [id, beta.id]) {
    const c = await core.request('POST', `/api/v1/nodes/${n}/check`);
    assert.equal(c.status, 200, c.text);
    assert.equal(c.body.status, 'online');
    assert.equal(c.body.docker?.status, 'unreachable', JSON.stringify(c.body));
  }
  const words = 'Docker socket /var/run/docker.sock not found on the node';
  // The list: SSH and Docker side by side, the reason in words.
  await page.getByRole('navigation').getByRole('link', { name: 'Nodes' }).click();
  const a = row(page, 'alpha');
  await a.locator('.docker-cell[data-docker="unreachable"]').waitFor({ timeout: 20000 });
  assert.match(await a.locator('.docker-cell').textContent(), new RegExp(words));
  assert.equal((await a.locator('.status-cell').textContent()).trim(), 'online');
  assert.doesNotMatch(await a.textContent(), /Failure when receiving/);
  await screenshot(page, '332-nodes-docker-unreachable');
  // The node's page says the same.
  await a.getByRole('link', { name: 'alpha' }).click();
  await page.locator('#node-docker[data-docker="unreachable"]').waitFor();
  assert.equal((await page.locator('#node-docker-reason').textContent()).trim(), words);
  // The overview: 2 / 2 online over SSH, and not "all online" beside Docker down.
  await page.getByRole('navigation').getByRole('link', { name: 'Overview' }).click();
  await page.locator('#stat-nodes', { hasText: '2 / 2' }).waitFor();
  await page.locator('#stat-nodes-sub', { hasText: 'Docker unreachable on 2' }).waitFor();
  assert.doesNotMatch(await page.locator('#stat-nodes-sub').textContent(), /all online/);
  await page.locator('#stat-containers-sub', { hasText: /^of / }).waitFor();
  const ctr = await page.locator('#stat-containers-sub').textContent();
  assert.doesNotMatch(ctr, /nodes? down/, 'the containers card uses the same words');
  await screenshot(page, '332-overview-docker-unreachable');
  assert.deepEqual(br.problems, []);
});
