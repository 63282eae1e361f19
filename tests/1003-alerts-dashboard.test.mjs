// The alerts in a real browser (issue #18): on the Settings page an admin
// adds a webhook channel and sends a test (the receiver gets it, signed),
// adds a rule and a silence and ends it; a node whose sshd stops shows up
// under "Firing alerts" on the Overview, live, and is acknowledged there.
// A viewer sees the lists without the forms. The app runs without console
// errors or CSP violations.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';
import { startSshd } from './lib/sshd.mjs';
import { startHttpReceiver, signatureValid } from './lib/receivers.mjs';

const SECRET = 'dashboard-secret-0123456789';
let db, core, br, hook, sshd, admin;

before(async () => {
  hook = await startHttpReceiver();
  sshd = startSshd();
  db = createDatabase('alertsdash');
  core = await startCore({
    db, admin: true,
    env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_ALERTS_INTERVAL: '1',
      SERVERBOX_ALERTS_ALLOW_LOOPBACK: '1', SERVERBOX_NODE_CHECK_INTERVAL: '1' },
  });
  admin = createUser(db, { role: 'admin' });
  br = await openBrowser();
});

after(async () => {
  try {
    await br?.close();
    await core?.stop();
  } finally {
    sshd?.remove();
    await hook?.stop();
  }
});

test('settings: add a channel and send a test, add a rule, add and end a silence', async () => {
  const { page } = br;
  await logIn(page, core, admin);
  await page.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
  await page.waitForURL('**/settings');
  // The default rules are listed.
  await page.locator('#rule-rows tr[data-rule="Node offline"]').waitFor({ timeout: 30000 });

  // A hostile URL: the core's message is shown, nothing is added.
  await page.locator('#ch-name').fill('hook');
  await page.locator('#ch-url').fill('file:///etc/passwd');
  await page.locator('#ch-secret').fill(SECRET);
  await page.getByRole('button', { name: 'Add channel' }).click();
  await page.locator('#channels .alert-error', { hasText: 'url must be http(s)' }).waitFor();
  await page.locator('#ch-url').fill(hook.url('/hook'));
  await page.getByRole('button', { name: 'Add channel' }).click();
  const row = page.locator('#channel-rows tr[data-channel="hook"]');
  await row.waitFor();
  assert.match(await row.textContent(), /http:\/\/127\.0\.0\.1:\d+\/\*{8}/);
  await row.getByRole('button', { name: 'Send test' }).click();
  await page.locator('#channel-rows tr[data-channel="hook"][data-test="succeeded"]').waitFor({ timeout: 30000 });
  const t = hook.posts('/hook').find((p) => p.json?.notification === 'test');
  assert.ok(t && signatureValid(t, SECRET));

  // A rule: the email-only fields stay hidden for a webhook, metric fields for a metric rule.
  await page.locator('#rule-name').fill('cpu hot');
  await page.locator('#rule-kind').selectOption('metric');
  await page.locator('#rule-metric').selectOption('node.cpu');
  await page.locator('#rule-threshold').fill('95');
  await page.locator('#rule-for').fill('-5');
  await page.getByRole('button', { name: 'Add rule' }).click();
  await page.locator('#rules .alert-error', { hasText: 'for_s' }).waitFor();
  await page.locator('#rule-for').fill('120');
  await page.getByRole('button', { name: 'Add rule' }).click();
  await page.locator('#rule-rows tr[data-rule="cpu hot"]', { hasText: 'node.cpu > 95 % for 120 s' }).waitFor();
  await page.locator('#rule-rows tr[data-rule="cpu hot"]').getByRole('button', { name: 'Disable' }).click();
  await page.locator('#rule-rows tr[data-rule="cpu hot"][data-enabled="false"]').waitFor();

  // A silence, then ended.
  await page.locator('#sil-field').selectOption('node_name');
  await page.locator('#sil-value').fill('maint-*');
  await page.locator('#sil-comment').fill('maintenance');
  await page.getByRole('button', { name: 'Add silence' }).click();
  const sil = page.locator('#silence-rows tr', { hasText: 'node_name=maint-*' });
  await sil.waitFor();
  await screenshot(page, '1003-settings');
  await sil.getByRole('button', { name: 'End now' }).click();
  await page.locator('#silence-rows', { hasText: 'No active silences.' }).waitFor();
  assert.equal(db.sql("SELECT state FROM alert_silences WHERE comment = 'maintenance'"), 'deleted');

  // A recurring maintenance window: no day is a 422 naming the field, then one is made and deleted.
  await page.locator('#win-labels').fill('env=prod, role=db');
  await page.locator('#win-start').fill('23:30');
  await page.locator('#win-hours').fill('3');
  await page.locator('#win-comment').fill('patch night');
  await page.getByRole('button', { name: 'Add window' }).click();
  await page.locator('#windows .alert-error', { hasText: 'recurrence.days' }).waitFor();
  await page.locator('#win-day-sun').check();
  await page.locator('#win-day-wed').check();
  await page.getByRole('button', { name: 'Add window' }).click();
  const win = page.locator('#window-rows tr', { hasText: 'env=prod, role=db' });
  await win.waitFor();
  assert.match(await win.innerText(), /wed, sun\s+23:30 UTC\s+3 h\s+patch night/);
  assert.deepEqual(JSON.parse(db.sql("SELECT recurrence::text FROM alert_silences WHERE comment = 'patch night'")),
    { days: ['wed', 'sun'], start: '23:30', duration_s: 10800 });
  await page.locator('#silence-rows', { hasText: 'No active silences.' }).waitFor(); // a window is not listed as a silence
  await screenshot(page, '1003-settings-windows');
  await win.getByRole('button', { name: 'Delete' }).click();
  await page.locator('#window-rows', { hasText: 'No maintenance windows.' }).waitFor();
  assert.equal(db.sql("SELECT state FROM alert_silences WHERE comment = 'patch night'"), 'deleted');
  assert.deepEqual(br.problems, []);
});

test('overview: a node whose sshd stops shows up firing, live, and is acknowledged there', async () => {
  const { page } = br;
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name: 'dash-node', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key },
  });
  assert.equal(r.status, 201, r.text);
  await page.getByRole('navigation').getByRole('link', { name: 'Overview' }).click();
  await page.waitForURL('**/overview');
  await page.locator('#no-alerts').waitFor();
  sshd.stop();
  const row = page.locator('#firing-alerts tr[data-rule="Node offline"][data-state="firing"]', { hasText: 'dash-node' });
  await row.waitFor({ timeout: 60000 });
  await screenshot(page, '1003-overview-firing');
  await row.getByRole('button', { name: 'Acknowledge' }).click();
  await page.locator('#firing-alerts tr[data-rule="Node offline"][data-state="acknowledged"]').waitFor({ timeout: 20000 });
  await waitFor(() => hook.posts('/hook').some((p) => p.json?.notification === 'firing' && p.json.alert.node_name === 'dash-node'),
    { timeout: 30000, what: 'the webhook' });
  sshd.start();
  await page.locator('#no-alerts').waitFor({ timeout: 60000 });
  assert.deepEqual(br.problems, []);
});

test('a viewer sees the alerts and the settings lists, without forms or buttons that change them', async () => {
  const viewer = createUser(db, { role: 'viewer' });
  const b2 = await openBrowser();
  try {
    const { page } = b2;
    await logIn(page, core, viewer);
    await page.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
    await page.locator('#channel-rows tr[data-channel="hook"]').waitFor();
    assert.equal(await page.locator('#channel-form').count(), 0);
    assert.equal(await page.locator('#rule-form').count(), 0);
    assert.equal(await page.locator('#rule-rows button').count(), 0);
    await page.locator('#window-rows').waitFor();
    assert.equal(await page.locator('#window-form').count(), 0);
    await page.locator('#account-link').waitFor();
    assert.deepEqual(b2.problems, []);
  } finally {
    await b2.close();
  }
});
