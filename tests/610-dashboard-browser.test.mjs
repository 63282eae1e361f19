// The dashboard in a real browser (Chromium) against the real core: log in,
// the overview, users and tokens, the audit log with a verified chain, guest
// links opened in a fresh browser (scoped pages only, read-only, an expiry
// countdown, the expired and revoked screens). Screenshots go to
// tests/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot } from './lib/browser.mjs';

let db, core, admin, br;
before(async () => {
  db = createDatabase('dashbrowser');
  core = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
  admin = createUser(db, { role: 'admin' });
  br = await openBrowser();
});
after(async () => {
  await br?.close();
  await core?.stop();
});

async function adminApiToken() {
  return (await login(core, admin)).token;
}

test('log in with the keyboard; a wrong password shows the core\'s message', async () => {
  const { page } = br;
  await page.goto(`${core.base}/`);
  await page.waitForURL('**/login');
  await page.locator('#username').fill(admin.username);
  await page.keyboard.press('Tab');
  await page.keyboard.type('wrong-password-123');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'invalid username or password' }).waitFor();
  await screenshot(page, '610-login-error');
  await page.locator('#password').fill(admin.password);
  await page.keyboard.press('Enter');
  await page.waitForURL('**/overview');
  await page.locator('#stat-health', { hasText: 'Ready' }).waitFor();
  await page.locator('#stat-db', { hasText: 'Up' }).waitFor();
  // The login just made is among the recent events.
  await page.locator('#recent-events tr', { hasText: 'auth.login' }).first().waitFor();
  const live = page.locator('#live-indicator');
  assert.ok(['live', 'polling', 'connecting', 'reconnecting'].includes(await live.getAttribute('data-state')));
  assert.ok((await live.textContent()).length > 0);
  for (const label of ['Overview', 'Audit', 'Users', 'API tokens', 'Guest links'])
    await page.getByRole('navigation').getByRole('link', { name: label }).waitFor();
  await screenshot(page, '610-overview');
  // No layout shift when live data arrives: an event made elsewhere shows up
  // and nothing on the page moves or resizes.
  const boxes = () => page.evaluate(() => [...document.querySelectorAll('.stat, #main section')]
    .map((el) => { const r = el.getBoundingClientRect(); return [r.x, r.y, r.width, r.height].map(Math.round).join(','); }));
  const before = await boxes();
  const token = await adminApiToken();
  const a = await core.request('POST', '/api/v1/annotations', { token, json: { message: 'deploy started' } });
  assert.equal(a.status, 201, a.text);
  await page.locator('#recent-events tr', { hasText: 'annotation' }).first().waitFor({ timeout: 20000 });
  assert.deepEqual(await boxes(), before);
  assert.deepEqual(br.problems, []);
});

test('users and tokens are managed through the API; errors are shown', async () => {
  const { page } = br;
  await page.getByRole('link', { name: 'Users' }).click();
  await page.waitForURL('**/users');
  await page.locator('#u-name').fill('auditor-ann');
  await page.locator('#u-pass').fill('a-long-password-42');
  await page.locator('#u-role').selectOption('viewer');
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.locator('tr[data-user="auditor-ann"]').waitFor();
  // The same name again: the core refuses and the page says why.
  await page.locator('#u-name').fill('auditor-ann');
  await page.locator('#u-pass').fill('a-long-password-42');
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.getByRole('alert').first().waitFor();
  assert.ok((await page.getByRole('alert').first().textContent()).length > 5);
  await screenshot(page, '610-users');

  await page.getByRole('link', { name: 'API tokens' }).click();
  await page.locator('#t-name').fill('ci-deploy');
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = await page.locator('#token-secret code').textContent();
  assert.match(secret, /^sbx_/);
  // The token shown works against the API.
  const me = await core.request('GET', '/api/v1/me', { token: secret });
  assert.equal(me.status, 200);
  assert.equal(me.body.kind, 'token');
  await page.locator('tr[data-token="ci-deploy"]').waitFor();
  assert.deepEqual(br.problems, []);
});

test('the audit log shows what was just done, filters, and a verified chain', async () => {
  const { page } = br;
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.waitForURL('**/audit');
  for (const type of ['auth.login', 'user.created', 'token.created'])
    await page.locator(`#audit-rows tr[data-type="${type}"]`).first().waitFor();
  const token = await adminApiToken();
  const v = await core.request('GET', '/api/v1/audit/verify', { token });
  await page.locator('#chain-badge[data-ok="true"]').waitFor();
  const head = Number(await page.locator('#chain-badge').getAttribute('data-head'));
  assert.ok(head > 0 && head <= v.body.head_seq, `${head} vs ${v.body.head_seq}`);
  assert.match(await page.locator('#chain-badge').textContent(), new RegExp(`chain verified to #${head}`));
  // Filter by type: only those rows remain.
  await page.locator('#f-type').fill('user.created');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('#audit-rows tr')].every((tr) => tr.dataset.type === 'user.created'));
  assert.ok(await page.locator('#audit-rows tr').count() >= 2); // the admin and auditor-ann
  // A filter the core refuses: its 400 message is shown.
  await page.locator('#f-type').fill('x'.repeat(201));
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByRole('alert').filter({ hasText: "query parameter 'type' must be 1 to 200 printable characters" }).waitFor();
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.locator('#audit-rows tr[data-type="auth.login"]').first().waitFor();
  // The signed checkpoint downloads as JSON.
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#checkpoint').click()]);
  const path = await download.path();
  const { readFileSync } = await import('node:fs');
  const cp = JSON.parse(readFileSync(path, 'utf8'));
  assert.equal(cp.algorithm, 'ed25519');
  assert.ok(cp.seq > 0);
  await screenshot(page, '610-audit');
  assert.deepEqual(br.problems.filter((p) => !/400/.test(p)), []);
});

test('a guest link: scoped pages only, read-only, counting down, then the expired screen', async () => {
  const { page } = br;
  await page.getByRole('link', { name: 'Guest links' }).click();
  await page.waitForURL('**/guest-links');
  await page.locator('#g-ttl-custom').fill('20');
  await page.locator('#g-note').fill('external auditor');
  await page.getByRole('button', { name: 'Create link' }).click();
  const url = await page.locator('#guest-link-url').textContent();
  assert.match(url, /\/g\/sbg_/);
  await page.locator('#guest-link-rows tr', { hasText: 'external auditor' }).waitFor();

  const guest = await openBrowser();
  try {
    const g = guest.page;
    await g.goto(url);
    await g.locator('#guest-countdown', { hasText: /Expires in (\d+m )?\d+s/ }).waitFor();
    const nav = await g.getByRole('navigation').getByRole('link').allTextContents();
    assert.deepEqual(nav, ['Overview', 'Audit']);
    await g.locator('#guest-scopes', { hasText: 'Audit log' }).waitFor();
    await g.getByRole('navigation').getByRole('link', { name: 'Audit' }).click();
    await g.locator('#audit-rows tr').first().waitFor();
    await g.locator('#chain-badge[data-ok="true"]').waitFor();
    // Read-only: no control that changes anything, no logout, no admin pages.
    const buttons = await g.getByRole('button').allTextContents();
    for (const b of buttons) assert.ok(!/create|delete|revoke|disable|log out/i.test(b), `guest sees a mutation button: ${b}`);
    await screenshot(g, '610-guest-audit');
    // The guest's requests are audited as guest requests.
    const token = await adminApiToken();
    const a = await core.request('GET', '/api/v1/audit?type=guest.request&limit=1000', { token });
    assert.ok(a.body.events.length > 0);
    await g.locator('#guest-expired', { hasText: 'This link has expired' }).waitFor({ timeout: 30000 });
    await screenshot(g, '610-guest-expired');
    // A reload after expiry gets the same clear screen from the core's 401.
    await g.reload();
    await g.locator('#guest-expired').waitFor();
    assert.deepEqual(guest.problems, []);
  } finally {
    await guest.close();
  }
});

test('a revoked guest link shows the revoked screen', async () => {
  const { page } = br;
  await page.locator('#g-note').fill('to be revoked');
  await page.getByRole('button', { name: 'Create link' }).click();
  const url = await page.locator('#guest-link-url').textContent();
  const guest = await openBrowser();
  try {
    await guest.page.goto(url);
    await guest.page.locator('#guest-countdown', { hasText: /Expires in/ }).waitFor();
    const row = page.locator('#guest-link-rows tr', { hasText: 'to be revoked' });
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await row.locator('.badge', { hasText: 'revoked' }).waitFor();
    // The open page notices by itself (it checks every 10 s)…
    await guest.page.locator('#guest-expired', { hasText: 'no longer valid' }).waitFor({ timeout: 20000 });
    await screenshot(guest.page, '610-guest-revoked');
    // …and a reload gets the same screen from the core's 401.
    await guest.page.reload();
    await guest.page.locator('#guest-expired', { hasText: 'no longer valid' }).waitFor();
  } finally {
    await guest.close();
  }
});

test('readable on a phone: no horizontal overflow on the overview', async () => {
  const phone = await openBrowser({ viewport: { width: 390, height: 844 } });
  try {
    const p = phone.page;
    await p.goto(`${core.base}/login`);
    await p.locator('#username').fill(admin.username);
    await p.locator('#password').fill(admin.password);
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.locator('#stat-health', { hasText: 'Ready' }).waitFor();
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the phone`);
    await screenshot(p, '610-overview-phone');
  } finally {
    await phone.close();
  }
});
