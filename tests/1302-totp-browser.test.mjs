// 2FA and roles in the browser (issue #20): enroll TOTP in Settings ›
// Security (the QR code is drawn; the code is computed here from the secret
// the page shows), keep the recovery codes, log out, log in with password +
// code; a wrong code and a replayed one are refused with the core's
// message; a recovery code works once. Then the roles editor: the
// permissions with their descriptions, a custom role made and given.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot } from './lib/browser.mjs';
import { step, totp } from './lib/totp.mjs';

let db, core, admin, br;
before(async () => {
  db = createDatabase('totpbrowser');
  core = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
  admin = createUser(db, { role: 'admin' });
  br = await openBrowser();
});
after(async () => {
  await br?.close();
  await core?.stop();
});

async function passwordStep(page, user) {
  await page.goto(`${core.base}/login`);
  await page.locator('#username').fill(user.username);
  await page.locator('#password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#totp-login').waitFor();
}

// A code for a time step after `last` (the step it used), waiting if need be.
async function codeAfter(secret, last) {
  let n;
  await waitFor(() => { n = Math.max(step(), last + 1); return n <= step() + 1; }, { timeout: 65000, what: 'a fresh time step' });
  return { code: totp(secret, n), n };
}

test('enroll 2FA in Settings, log out, log in with password and code; wrong and replayed codes refused; a recovery code works once', async () => {
  const { page, problems } = br;
  await page.goto(`${core.base}/login`);
  await page.locator('#username').fill(admin.username);
  await page.locator('#password').fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/overview');

  await page.getByRole('link', { name: 'Security' }).click();
  await page.waitForURL('**/settings/security');
  await page.locator('#totp-start').click();
  const qr = page.locator('svg.qr');
  await qr.waitFor();
  assert.ok(await qr.locator('path').getAttribute('d').then((d) => d.length > 100), 'a QR code is drawn');
  const secret = (await page.locator('#totp-secret').textContent()).trim();
  assert.match(secret, /^[A-Z2-7]{32}$/);
  assert.match(await page.locator('#totp-uri').getAttribute('href'), new RegExp(`^otpauth://totp/Serverbox%3A${admin.username}\\?secret=${secret}&`));
  await screenshot(page, '1302-totp-enroll');
  // a wrong code first: the core's message, nothing changes
  await page.locator('#totp-code').fill(String((Number(totp(secret)) + 7) % 1000000).padStart(6, '0'));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong code' }).waitFor();
  const enrolledAt = step();
  await page.locator('#totp-code').fill(totp(secret, enrolledAt));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.locator('#totp-on').waitFor();
  const codes = (await page.locator('#totp-recovery-codes').textContent()).trim().split('\n');
  assert.equal(codes.length, 10);
  assert.equal(await page.locator('#totp-codes-left').textContent(), '10');
  await screenshot(page, '1302-totp-recovery-codes');

  await page.locator('#logout').click();
  await page.waitForURL('**/login');

  // password, then a wrong code
  await passwordStep(page, admin);
  await page.locator('#totp-login-code').fill('000000' === totp(secret) ? '111111' : '000000');
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong or already used code' }).waitFor();
  // the code used to enroll is a replay
  await page.locator('#totp-login-code').fill(totp(secret, enrolledAt));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong or already used code' }).waitFor();
  await screenshot(page, '1302-totp-login-refused');
  // a fresh one logs in
  const fresh = await codeAfter(secret, enrolledAt);
  await page.locator('#totp-login-code').fill(fresh.code);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL('**/overview');
  await page.locator('#logout').click();
  await page.waitForURL('**/login');

  // the same code again, with a new challenge: refused
  await passwordStep(page, admin);
  await page.locator('#totp-login-code').fill(fresh.code);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong or already used code' }).waitFor();
  // a recovery code instead
  await page.locator('#totp-use-recovery').click();
  await page.locator('#totp-login-code').fill(codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL('**/overview');
  await page.getByRole('link', { name: 'Security' }).click();
  await page.locator('#totp-on').waitFor();
  assert.equal(await page.locator('#totp-codes-left').textContent(), '9');
  await page.locator('#logout').click();
  await page.waitForURL('**/login');

  // that recovery code is spent
  await passwordStep(page, admin);
  await page.locator('#totp-use-recovery').click();
  await page.locator('#totp-login-code').fill(codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong or already used recovery code' }).waitFor();
  await page.locator('#totp-login-code').fill(codes[1]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL('**/overview');
  assert.deepEqual(problems, []);
});

test('roles editor: permissions with descriptions; a custom role made, given to a user, who sees only its pages', async () => {
  const { page, problems } = br; // logged in as the admin (previous test)
  await page.goto(`${core.base}/roles`);
  await page.locator('#role-list tr[data-role="viewer"]').waitFor();
  assert.match(await page.locator('#role-list tr[data-role="viewer"]').textContent(), /built-in/);
  await page.locator('#role-new').click();
  const row = page.locator('.perm-row[data-perm="logs:read"]');
  await row.waitFor();
  assert.match(await row.textContent(), /read and tail container logs/);
  await page.locator('#role-name').fill('logwatch');
  await page.locator('#role-description').fill('reads logs');
  await page.locator('.perm-row[data-perm="containers:read"] input').check();
  await row.locator('input').check();
  await screenshot(page, '1302-roles-editor');
  await page.getByRole('button', { name: 'Create role' }).click();
  await page.locator('#role-list tr[data-role="logwatch"]').waitFor();
  assert.match(await page.locator('#role-list tr[data-role="logwatch"]').textContent(), /containers:read, logs:read/);
  const r = await core.request('GET', '/api/v1/roles/logwatch', { token: (await login(core, createUser(db, { role: 'admin' }))).token });
  assert.deepEqual(r.body.permissions, ['containers:read', 'logs:read']);

  // a user with it sees Containers, not Nodes or Users
  const token = (await login(core, createUser(db, { role: 'admin' }))).token;
  const u = { username: `lw${Date.now() % 100000}`, password: 'pw-logwatch-secret-1', role: 'logwatch' };
  assert.equal((await core.request('POST', '/api/v1/users', { token, json: u })).status, 201);
  const other = await openBrowser();
  try {
    await other.page.goto(`${core.base}/login`);
    await other.page.locator('#username').fill(u.username);
    await other.page.locator('#password').fill(u.password);
    await other.page.getByRole('button', { name: 'Log in' }).click();
    await other.page.waitForURL('**/overview');
    const nav = await other.page.locator('nav.nav').textContent();
    assert.match(nav, /Containers/);
    assert.doesNotMatch(nav, /Nodes|Users|Roles|Audit/);
    assert.deepEqual(other.problems, []);
  } finally { await other.close(); }

  // 2FA required for the role: its user can only set it up
  await page.locator('#role-list tr[data-role="logwatch"] .role-2fa').check();
  await waitFor(async () => (await core.request('GET', '/api/v1/roles/logwatch', { token })).body.require_totp === true, { what: 'the policy' });
  const third = await openBrowser();
  try {
    await third.page.goto(`${core.base}/login`);
    await third.page.locator('#username').fill(u.username);
    await third.page.locator('#password').fill(u.password);
    await third.page.getByRole('button', { name: 'Log in' }).click();
    await third.page.waitForURL('**/settings/security');
    await third.page.locator('#totp-required').waitFor();
    assert.doesNotMatch(await third.page.locator('nav.nav').textContent(), /Containers/);
    await third.page.locator('#totp-start').click();
    const secret = (await third.page.locator('#totp-secret').textContent()).trim();
    await third.page.locator('#totp-code').fill(totp(secret));
    await third.page.getByRole('button', { name: 'Confirm' }).click();
    await third.page.locator('#totp-on').waitFor();
    await third.page.getByRole('link', { name: 'Containers' }).waitFor();
    assert.deepEqual(third.problems, []);
  } finally { await third.close(); }
  assert.deepEqual(problems, []);
});
