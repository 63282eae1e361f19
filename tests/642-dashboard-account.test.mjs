// The Account page (issue #17): a user sees their own sessions (browser,
// address, created, last used, this one marked) and ends one or all the
// others; the ended browser's next request is refused and it lands on the
// login page. The core lists and ends only the caller's own sessions, one
// auth.session_ended event each. The password is changed there too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, login, apiToken, startCore, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';

let db, core, user;
before(async () => {
  db = createDatabase('dashaccount');
  core = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
  user = createUser(db, { role: 'operator' });
});
after(async () => { await core?.stop(); });

const sessionsOf = async (token) => core.request('GET', '/api/v1/auth/sessions', { token });

test('two browsers as one user: the first ends the second, which is refused and lands on the login page', async () => {
  const first = await openBrowser();
  const second = await openBrowser({ viewport: { width: 390, height: 844 } });
  try {
    await logIn(first.page, core, user);
    await logIn(second.page, core, user);
    const p1 = first.page;
    await p1.getByRole('navigation').getByRole('link', { name: 'Account', exact: true }).click();
    await p1.waitForURL('**/account');
    const rows = p1.locator('#session-rows tr');
    await p1.waitForFunction(() => document.querySelectorAll('#session-rows tr').length === 2);
    // This browser's row is marked and has no End button; the other has one.
    const mine = p1.locator('#session-rows tr[data-current="1"]');
    assert.equal(await mine.count(), 1);
    assert.match(await mine.textContent(), /this browser/);
    assert.equal(await mine.getByRole('button', { name: 'End' }).count(), 0);
    const other = p1.locator('#session-rows tr[data-current="0"]');
    const otherText = await other.textContent();
    assert.match(otherText, /Chrom(e|ium) \d+ on Linux/, otherText);
    assert.match(otherText, /127\.0\.0\.1/);
    assert.equal(await rows.count(), 2);
    const otherId = await other.getAttribute('data-session');
    await screenshot(p1, '642-account');

    // The second browser works until then.
    const before = await second.page.evaluate(async () => (await fetch('/api/v1/me')).status);
    assert.equal(before, 200);

    await other.getByRole('button', { name: 'End' }).click();
    const dlg = p1.locator('dialog');
    assert.match(await dlg.textContent(), /logged out at once/);
    await dlg.getByRole('button', { name: 'End session' }).click();
    await p1.waitForFunction(() => document.querySelectorAll('#session-rows tr').length === 1);

    // The second browser's next request is refused, and it is on the login page.
    const after = await second.page.evaluate(async () => (await fetch('/api/v1/me')).status);
    assert.equal(after, 401);
    await second.page.waitForURL('**/login', { timeout: 60000 });
    await second.page.locator('#username').waitFor();
    // The first is still logged in.
    assert.equal(await p1.evaluate(async () => (await fetch('/api/v1/me')).status), 200);

    // One event, by the user, naming the session.
    const admin = (await login(core, createUser(db, { role: 'admin' }))).token;
    const ev = await core.request('GET', '/api/v1/audit?type=auth.session_ended', { token: admin });
    assert.equal(ev.status, 200, ev.text);
    const e = ev.body.events.find((x) => x.data.session_id === otherId);
    assert.ok(e, JSON.stringify(ev.body.events));
    assert.equal(e.outcome, 'success');
    assert.equal(e.actor.name, user.username);
    assert.deepEqual(first.problems, []);
    assert.deepEqual(second.problems.filter((p) => !/401/.test(p)), []);
  } finally {
    await first.close();
    await second.close();
  }
});

test('"end all other sessions" ends every other one and keeps this one', async () => {
  const b = await openBrowser();
  try {
    const others = [await login(core, user), await login(core, user)];
    await logIn(b.page, core, user);
    const p = b.page;
    await p.goto(`${core.base}/account`);
    await p.waitForFunction(() => document.querySelectorAll('#session-rows tr').length >= 3);
    await p.locator('#end-other-sessions').click();
    const dlg = p.locator('dialog');
    assert.match(await dlg.textContent(), /other sessions? of yours/);
    await dlg.getByRole('button', { name: 'End them' }).click();
    await p.waitForFunction(() => document.querySelectorAll('#session-rows tr').length === 1);
    assert.equal(await p.locator('#session-rows tr[data-current="1"]').count(), 1);
    assert.ok(await p.locator('#end-other-sessions').isDisabled());
    for (const o of others) assert.equal((await core.request('GET', '/api/v1/me', { token: o.token })).status, 401);
    assert.equal(await p.evaluate(async () => (await fetch('/api/v1/me')).status), 200);
    assert.deepEqual(b.problems, []);
  } finally {
    await b.close();
  }
});

test('a user lists and ends only their own sessions; a token has none to manage', async () => {
  const alice = createUser(db, { role: 'viewer' });
  const bob = createUser(db, { role: 'admin' });
  const a = await login(core, alice);
  const bo = await login(core, bob);
  const la = await sessionsOf(a.token);
  assert.equal(la.status, 200, la.text);
  assert.equal(la.body.sessions.length, 1);
  const aliceSession = la.body.sessions[0];
  assert.equal(aliceSession.current, true);
  for (const k of ['id', 'client_ip', 'created_at', 'last_seen_at', 'expires_at', 'user_agent']) assert.ok(k in aliceSession, k);
  assert.ok(!('token_sha256' in aliceSession) && !('csrf_sha256' in aliceSession));
  const lb = await sessionsOf(bo.token);
  assert.ok(!lb.body.sessions.some((s) => s.id === aliceSession.id), 'bob sees alice\'s session');
  // Even an admin cannot end someone else's session here: 404, nothing changed.
  const d = await core.request('DELETE', `/api/v1/auth/sessions/${aliceSession.id}`, { token: bo.token });
  assert.equal(d.status, 404, d.text);
  assert.equal((await core.request('GET', '/api/v1/me', { token: a.token })).status, 200);
  const bad = await core.request('DELETE', '/api/v1/auth/sessions/not-a-uuid', { token: a.token });
  assert.equal(bad.status, 404);
  // An API token is not a session.
  const t = await apiToken(core, bo.token, { name: 'ci' });
  const lt = await sessionsOf(t.token);
  assert.equal(lt.status, 400);
  assert.equal(lt.body.error.code, 'session_required');
  // Ending one's own current session through the API logs it out.
  const self = await core.request('DELETE', `/api/v1/auth/sessions/${aliceSession.id}`, { token: a.token });
  assert.equal(self.status, 204, self.text);
  assert.equal((await core.request('GET', '/api/v1/me', { token: a.token })).status, 401);
  const again = await core.request('DELETE', `/api/v1/auth/sessions/${aliceSession.id}`, { token: bo.token });
  assert.equal(again.status, 404);
});

test('the password is changed on the Account page; a wrong current one is named', async () => {
  const u = createUser(db, { role: 'viewer' });
  const other = await login(core, u);
  const b = await openBrowser();
  try {
    const p = b.page;
    await logIn(p, core, u);
    await p.goto(`${core.base}/account`);
    await p.locator('#pw-current').fill('not-the-password');
    await p.locator('#pw-new').fill('a-brand-new-password-42');
    await p.getByRole('button', { name: 'Change password' }).click();
    await p.locator('#password .alert-error', { hasText: /current password is wrong/ }).waitFor();
    await p.locator('#pw-current').fill(u.password);
    await p.getByRole('button', { name: 'Change password' }).click();
    await p.locator('#password-changed').waitFor();
    // The other session ended (the list shows only this one) and the new password works.
    await p.waitForFunction(() => document.querySelectorAll('#session-rows tr').length === 1);
    assert.equal((await core.request('GET', '/api/v1/me', { token: other.token })).status, 401);
    await login(core, { username: u.username, password: 'a-brand-new-password-42' });
    assert.deepEqual(b.problems, []);
  } finally {
    await b.close();
  }
});
