// TOTP two-factor authentication (issue #20), through the API: enroll (the
// secret sealed at rest, an otpauth:// URI), confirm with a code computed
// here, ten single-use hashed recovery codes; the login asks for the code
// after the password (a short-lived challenge); exactly 6 digits; a code's
// time step is accepted once and never one at or before it (no replay);
// wrong codes are rate limited like passwords; an admin requires 2FA for a
// role and resets a user's 2FA, both audited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createDatabase, login, startCore, waitFor } from './lib/harness.mjs';
import { step, totp } from './lib/totp.mjs';

let db, core;
before(async () => {
  db = createDatabase('totp');
  core = await startCore({ db, admin: true, env: { SERVERBOX_LOGIN_USER_LIMIT: '12', SERVERBOX_LOGIN_IP_LIMIT: '1000' } });
});
after(async () => { await core?.stop(); });

async function newUser(role = 'operator') {
  const u = { username: `t${randomUUID().slice(0, 8)}`, password: `pw-${randomUUID()}`, role };
  const r = await core.request('POST', '/api/v1/users', { json: u });
  assert.equal(r.status, 201, r.text);
  return { ...u, id: r.body.id };
}

function pw(u) { return core.request('POST', '/api/v1/auth/login', { token: null, json: { username: u.username, password: u.password } }); }
function second(json) { return core.request('POST', '/api/v1/auth/login/totp', { token: null, json }); }

// Enrolls u: returns {secret, codes, used} (used: the time step confirmed).
async function enroll(u) {
  const s = (await login(core, u)).token;
  const b = await core.request('POST', '/api/v1/auth/totp', { token: s });
  assert.equal(b.status, 201, b.text);
  const used = step();
  const c = await core.request('POST', '/api/v1/auth/totp/confirm', { token: s, json: { code: totp(b.body.secret, used) } });
  assert.equal(c.status, 200, c.text);
  return { secret: b.body.secret, codes: c.body.recovery_codes, used, session: s, uri: b.body.otpauth_uri };
}

// A code of a time step after `last`, waiting for the clock if need be.
async function freshCode(secret, last) {
  let n;
  await waitFor(() => { n = Math.max(step(), last + 1); return n <= step() + 1; }, { timeout: 65000, what: 'a fresh time step' });
  return { code: totp(secret, n), n };
}

test('enroll: a sealed secret, an otpauth URI, a code to confirm, ten hashed single-use recovery codes', async () => {
  const u = await newUser();
  const s = (await login(core, u)).token;
  assert.deepEqual((await core.request('GET', '/api/v1/auth/totp', { token: s })).body, { enabled: false, pending: false, required: false });
  const b = await core.request('POST', '/api/v1/auth/totp', { token: s });
  assert.equal(b.status, 201, b.text);
  assert.match(b.body.secret, /^[A-Z2-7]{32}$/);
  assert.equal(b.body.otpauth_uri, `otpauth://totp/Serverbox%3A${u.username}?secret=${b.body.secret}&issuer=Serverbox&algorithm=SHA1&digits=6&period=30`);
  // sealed at rest, never in the log
  const row = db.sql(`SELECT sealed_secret FROM user_totp WHERE user_id = '${u.id}'`);
  assert.ok(row && !row.includes(b.body.secret), row);
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE body LIKE '%${b.body.secret}%'`), '0');
  assert.ok(!core.log().includes(b.body.secret));

  // bad codes change nothing
  for (const code of ['12345', '1234567', '12345678', 'abcdef', 123456]) {
    const r = await core.request('POST', '/api/v1/auth/totp/confirm', { token: s, json: { code } });
    assert.equal(r.status, 422, `${code}: ${r.text}`);
  }
  const wrong = String((Number(totp(b.body.secret)) + 1) % 1000000).padStart(6, '0');
  assert.equal((await core.request('POST', '/api/v1/auth/totp/confirm', { token: s, json: { code: wrong } })).status, 422);
  assert.equal((await core.request('GET', '/api/v1/auth/totp', { token: s })).body.pending, true);

  const c = await core.request('POST', '/api/v1/auth/totp/confirm', { token: s, json: { code: totp(b.body.secret) } });
  assert.equal(c.status, 200, c.text);
  assert.equal(c.body.enabled, true);
  assert.equal(c.body.recovery_codes.length, 10);
  assert.equal(new Set(c.body.recovery_codes).size, 10);
  for (const code of c.body.recovery_codes) {
    assert.match(code, /^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/);
    assert.equal(db.sql(`SELECT count(*) FROM events WHERE body LIKE '%${code}%'`), '0');
  }
  assert.equal(db.sql(`SELECT count(*) FROM user_recovery_codes WHERE user_id = '${u.id}' AND used_at IS NULL`), '10');
  assert.equal((await core.request('POST', '/api/v1/auth/totp', { token: s })).status, 409);
  // only sessions manage 2FA
  const t = await core.request('POST', '/api/v1/tokens', { token: s, json: { name: 'ci' } });
  assert.equal((await core.request('POST', '/api/v1/auth/totp', { token: t.body.token })).status, 400);
  const types = db.sql(`SELECT type FROM events WHERE stream = 'user/${u.id}' ORDER BY seq`).split('\n');
  assert.ok(types.includes('user.totp_enrollment_started') && types.includes('user.totp_enabled'), types.join());
});

test('login: password, then a 6-digit code once; replays, older steps, bad formats and used challenges refused', async () => {
  const u = await newUser();
  const e = await enroll(u);
  const p = await pw(u);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.second_factor, 'totp');
  assert.match(p.body.challenge, /^sbc_/);
  assert.equal(p.body.token, undefined);
  assert.equal(p.headers.get('set-cookie'), null);
  // a challenge is no credential
  assert.equal((await core.request('GET', '/api/v1/me', { token: p.body.challenge })).status, 401);
  // the code used to confirm is not accepted again, nor are 8 digits of it
  const again = await second({ challenge: p.body.challenge, code: totp(e.secret, e.used) });
  assert.equal(again.status, 401, again.text);
  assert.equal(again.body.error.code, 'invalid_second_factor');
  for (const code of ['12345', '1234567', `${totp(e.secret, e.used + 1)}00`]) {
    assert.equal((await second({ challenge: p.body.challenge, code })).status, 422, code);
  }
  assert.equal((await second({ challenge: p.body.challenge })).status, 422);
  assert.equal((await second({ challenge: p.body.challenge, code: '000000', recovery_code: 'x' })).status, 422);
  const { code, n } = await freshCode(e.secret, e.used);
  const ok = await second({ challenge: p.body.challenge, code });
  assert.equal(ok.status, 200, ok.text);
  assert.match(ok.body.token, /^sbs_/);
  assert.match(ok.headers.get('set-cookie'), /sbx_session=sbs_/);
  assert.equal((await core.request('GET', '/api/v1/me', { token: ok.body.token })).body.name, u.username);
  // the challenge is spent
  assert.equal((await second({ challenge: p.body.challenge, code })).status, 401);
  // the same code with a new challenge: replay
  const p2 = await pw(u);
  const replay = await second({ challenge: p2.body.challenge, code });
  assert.equal(replay.status, 401, replay.text);
  assert.equal((await second({ challenge: p2.body.challenge, code: totp(e.secret, n - 1) })).status, 401);
  const ev = JSON.parse(db.sql(`SELECT body FROM events WHERE type = 'auth.login' AND stream = 'user/${u.id}' AND outcome = 'failure' ORDER BY seq DESC LIMIT 1`));
  assert.equal(ev.data.reason, 'code already used');
  const good = JSON.parse(db.sql(`SELECT body FROM events WHERE type = 'auth.login' AND stream = 'user/${u.id}' AND outcome = 'success' ORDER BY seq DESC LIMIT 1`));
  assert.equal(good.data.second_factor, 'totp');
});

test('a recovery code works once; five wrong codes end a challenge; wrong codes count like wrong passwords', async () => {
  const u = await newUser();
  const e = await enroll(u);
  const p = await pw(u);
  const r = await second({ challenge: p.body.challenge, recovery_code: e.codes[3].toUpperCase() });
  assert.equal(r.status, 200, r.text);
  assert.match(r.body.token, /^sbs_/);
  const p2 = await pw(u);
  assert.equal((await second({ challenge: p2.body.challenge, recovery_code: e.codes[3] })).status, 401);
  assert.equal(db.sql(`SELECT count(*) FROM user_recovery_codes WHERE user_id = '${u.id}' AND used_at IS NULL`), '9');
  assert.equal((await core.request('GET', '/api/v1/auth/totp', { token: r.body.token })).body.recovery_codes_left, 9);

  // five wrong codes: the challenge is dead even for the right one
  const p3 = await pw(u);
  for (let i = 0; i < 5; i++) assert.equal((await second({ challenge: p3.body.challenge, code: '000000' })).status, 401);
  const { code } = await freshCode(e.secret, e.used);
  assert.equal((await second({ challenge: p3.body.challenge, code })).status, 401);
  // the username's failure budget (12 here) runs out: 429 with Retry-After, even with the right code
  let limited;
  for (let i = 0; i < 12 && !limited; i++) {
    const c = await pw(u);
    if (c.status === 429) { limited = c; break; }
    const w = await second({ challenge: c.body.challenge, code: '000000' });
    if (w.status === 429) limited = w;
  }
  assert.ok(limited, 'no 429');
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
});

test('an admin requires 2FA for a role (sessions without it may only enroll) and resets a user\'s 2FA', async () => {
  await core.request('POST', '/api/v1/roles', { json: { name: 'auditor', permissions: ['audit:read', 'nodes:read'] } });
  const u = await newUser('auditor');
  const before = await login(core, u);
  assert.equal((await core.request('GET', '/api/v1/audit', { token: before.token })).status, 200);
  assert.equal((await core.request('PUT', '/api/v1/roles/ghost/policy', { json: { require_totp: true } })).status, 404);
  assert.equal((await core.request('PUT', '/api/v1/roles/auditor/policy', { json: { require_totp: 'yes' } })).status, 422);
  const pol = await core.request('PUT', '/api/v1/roles/auditor/policy', { json: { require_totp: true } });
  assert.equal(pol.status, 200, pol.text);
  assert.equal((await core.request('GET', '/api/v1/roles/auditor')).body.require_totp, true);
  // at once, for the session already open, and for a new one
  assert.equal((await core.request('GET', '/api/v1/audit', { token: before.token })).status, 403);
  const s = await login(core, u);
  assert.equal(s.totp_setup_required, true);
  const me = await core.request('GET', '/api/v1/me', { token: s.token });
  assert.equal(me.body.totp_setup_required, true);
  assert.deepEqual(me.body.permissions, ['authenticated', 'self:read']);
  assert.equal((await core.request('GET', '/api/v1/audit', { token: s.token })).status, 403);
  assert.equal((await core.request('GET', '/api/v1/auth/totp', { token: s.token })).body.required, true);
  // enrolling lifts it
  const b = await core.request('POST', '/api/v1/auth/totp', { token: s.token });
  assert.equal(b.status, 201, b.text);
  const used = step();
  assert.equal((await core.request('POST', '/api/v1/auth/totp/confirm', { token: s.token, json: { code: totp(b.body.secret, used) } })).status, 200);
  assert.equal((await core.request('GET', '/api/v1/audit', { token: s.token })).status, 200);
  // required: the user cannot turn it off
  const { code } = await freshCode(b.body.secret, used);
  assert.equal((await core.request('POST', '/api/v1/auth/totp/disable', { token: s.token, json: { code } })).status, 409);

  // an admin resets it: the password alone logs in again (and must enroll again)
  const users = await core.request('GET', '/api/v1/users');
  assert.equal(users.body.users.find((x) => x.id === u.id).totp_enabled, true);
  assert.equal((await core.request('DELETE', `/api/v1/users/${u.id}/totp`, { token: s.token })).status, 403);
  const reset = await core.request('DELETE', `/api/v1/users/${u.id}/totp`);
  assert.equal(reset.status, 204, reset.text);
  assert.equal((await core.request('DELETE', `/api/v1/users/${u.id}/totp`)).status, 409);
  const ev = JSON.parse(db.sql(`SELECT body FROM events WHERE type = 'user.totp_reset' ORDER BY seq DESC LIMIT 1`));
  assert.equal(ev.data.id, u.id);
  assert.equal(ev.actor.name, core.admin.username);
  const again = await pw(u);
  assert.match(again.body.token, /^sbs_/);
  assert.equal(again.body.totp_setup_required, true);
  assert.equal(db.sql(`SELECT count(*) FROM user_recovery_codes WHERE user_id = '${u.id}'`), '0');

  // without the requirement, a user turns 2FA off with a code
  const v = await newUser('viewer');
  const ve = await enroll(v);
  const off = await freshCode(ve.secret, ve.used);
  assert.equal((await core.request('POST', '/api/v1/auth/totp/disable', { token: ve.session, json: { code: '000000' } })).status, 422);
  assert.equal((await core.request('POST', '/api/v1/auth/totp/disable', { token: ve.session, json: { code: off.code } })).status, 204);
  assert.match((await pw(v)).body.token, /^sbs_/);
});
