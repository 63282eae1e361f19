// The node page's tools (issue #17) against a real sshd and the real
// collector: run a command (its output and exit code; it really ran: the
// file it touched exists), edit the node's labels (the core's copy
// changes; a bad label is named and nothing changes), and enroll a
// collector with the exact command the page shows (run as shown, it
// enrolls; the one-time token then fails). A viewer sees none of them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createDatabase, createUser, login, startCore, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';
import { startSshd } from './lib/sshd.mjs';
import { collectorDir, runCollector } from './lib/collector.mjs';

let db, core, admin, token, br, sshd, nodeId;
before(async () => {
  sshd = startSshd();
  db = createDatabase('dashtools');
  core = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  admin = createUser(db, { role: 'admin' });
  token = (await login(core, admin)).token;
  const r = await core.request('POST', '/api/v1/nodes', { token, json: {
    name: 'tools', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels: { env: 'staging' } } });
  assert.equal(r.status, 201, r.text);
  nodeId = r.body.id;
  br = await openBrowser();
  await logIn(br.page, core, admin);
});
after(async () => {
  try {
    await br?.close();
    await core?.stop();
  } finally {
    sshd?.remove();
  }
});

test('run a command on the node: its output, errors and exit code', async () => {
  const { page } = br;
  await page.goto(`${core.base}/nodes/${nodeId}`);
  await page.locator('#node-title', { hasText: 'tools' }).waitFor();
  const mark = join(sshd.dir, `ran-${randomUUID()}`);
  await page.locator('#exec-command').fill(`echo hello-from-node; echo oops >&2; touch '${mark}'; exit 3`);
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  const status = page.locator('#exec-status');
  await status.waitFor({ timeout: 60000 });
  assert.match(await status.textContent(), /exit code 3/);
  assert.equal(await status.getAttribute('data-exit-code'), '3');
  assert.equal((await page.locator('#exec-stdout').textContent()).trim(), 'hello-from-node');
  assert.equal((await page.locator('#exec-stderr').textContent()).trim(), 'oops');
  assert.ok(existsSync(mark), 'the command ran on the node');
  await screenshot(page, '644-node-exec');
  // Exit 0 is shown as such, without an errors block.
  await page.locator('#exec-command').fill('true');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.locator('#exec-status[data-exit-code="0"]', { hasText: 'exit code 0' }).waitFor();
  assert.equal(await page.locator('#exec-stderr').count(), 0);
  const ev = await core.request('GET', '/api/v1/audit?type=node.exec', { token });
  assert.ok(ev.body.events.some((e) => e.data.exit_code === 3 && e.data.command.includes('hello-from-node')), ev.text);
  assert.deepEqual(br.problems, []);
});

test('edit the node\'s labels: saved by the core; a bad one is named and nothing changes', async () => {
  const { page } = br;
  await page.goto(`${core.base}/nodes/${nodeId}`);
  const rows = page.locator('#labels-rows .label-row');
  await page.waitForFunction(() => document.querySelectorAll('#labels-rows .label-row').length === 1);
  assert.equal(await rows.first().locator('.label-key').inputValue(), 'env');
  await rows.first().locator('.label-value').fill('production');
  await page.locator('#labels-add').click();
  await rows.nth(1).locator('.label-key').fill('tier');
  await rows.nth(1).locator('.label-value').fill('web');
  await page.getByRole('button', { name: 'Save labels' }).click();
  await page.locator('#node-info', { hasText: 'tier=web' }).waitFor();
  const n = await core.request('GET', `/api/v1/nodes/${nodeId}`, { token });
  assert.deepEqual(n.body.labels, { env: 'production', tier: 'web' });
  // A label the core refuses: its message, and the stored labels stay.
  await page.locator('#labels-add').click();
  await rows.nth(2).locator('.label-key').fill('bad key!');
  await rows.nth(2).locator('.label-value').fill('x');
  await page.getByRole('button', { name: 'Save labels' }).click();
  await page.locator('#node-labels .alert-error', { hasText: /label/i }).waitFor();
  assert.deepEqual((await core.request('GET', `/api/v1/nodes/${nodeId}`, { token })).body.labels, { env: 'production', tier: 'web' });
  // Removing one.
  await rows.nth(2).getByRole('button').click();
  await rows.nth(1).getByRole('button').click();
  await page.getByRole('button', { name: 'Save labels' }).click();
  await page.waitForFunction(() => !document.querySelector('#node-info').textContent.includes('tier=web'));
  assert.deepEqual((await core.request('GET', `/api/v1/nodes/${nodeId}`, { token })).body.labels, { env: 'production' });
  assert.deepEqual(br.problems, []);
});

test('enroll a collector: the exact command shown, run as shown, enrolls it once', async () => {
  const { page } = br;
  await page.goto(`${core.base}/nodes/${nodeId}`);
  await page.locator('#enroll-collector').click();
  const cmd = (await page.locator('#enroll-command').textContent()).trim();
  const tok = (await page.locator('#enroll-token').textContent()).trim();
  assert.match(tok, /^sbe_[0-9a-f]{64}$/);
  assert.equal(cmd, `serverbox-collector enroll --core '${core.base}' --token ${tok}`);
  await screenshot(page, '644-node-enroll');
  // Copy puts the command on the clipboard (or, without one, offers it to copy).
  await br.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: core.base });
  await page.locator('#enroll-copy-command').click();
  await page.locator('#enroll-copy-command', { hasText: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), cmd);
  // Run exactly that (the binary from the build, a state dir of the test's).
  const args = cmd.replace(/^serverbox-collector /, '').match(/'[^']*'|\S+/g).map((a) => a.replace(/^'(.*)'$/, '$1'));
  const dir = collectorDir();
  const e = runCollector([...args, '--state-dir', dir]);
  assert.equal(e.code, 0, e.stderr + e.stdout);
  const key = readFileSync(join(dir, 'key'), 'utf8');
  assert.ok(key.length > 0);
  const ev = await core.request('GET', '/api/v1/audit?type=agent.enrolled', { token });
  assert.ok(ev.body.events.some((x) => x.data.node_id === nodeId), ev.text);
  // The token worked once.
  const again = runCollector([...args, '--state-dir', collectorDir()]);
  assert.notEqual(again.code, 0);
  assert.deepEqual(br.problems, []);
});

test('a viewer sees the node without its tools', async () => {
  const viewer = createUser(db, { role: 'viewer' });
  const b = await openBrowser();
  try {
    await logIn(b.page, core, viewer);
    await b.page.goto(`${core.base}/nodes/${nodeId}`);
    await b.page.locator('#node-title', { hasText: 'tools' }).waitFor();
    for (const id of ['#node-exec', '#node-labels', '#node-enroll']) assert.equal(await b.page.locator(id).count(), 0, id);
    assert.deepEqual(b.problems, []);
  } finally {
    await b.close();
  }
});
