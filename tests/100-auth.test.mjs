// Identity and access: users, sessions (bearer and cookie + CSRF), API
// tokens, the audit API and signed checkpoints, and the rule that passwords
// and tokens never show up in logs, events or error bodies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { apiToken, createDatabase, createUser, login, runCore, startCore } from './lib/harness.mjs';

let db, core, admin, adminSession;
const secrets = []; // every password and token this file sees; none may leak

before(async () => {
  db = createDatabase('auth');
  // With the run's Redis, so the shared credential cache is exercised too.
  core = await startCore({ db, redisUrl: process.env.SBX_TEST_REDIS_URL, env: { SERVERBOX_TRUSTED_PROXY: 'loopback' } });
  admin = createUser(db, { username: 'root-admin', role: 'admin' });
  secrets.push(admin.password);
  adminSession = await login(core, admin);
  secrets.push(adminSession.token, adminSession.csrf_token);
});
after(async () => { await core?.stop(); });

const asAdmin = (method, path, opts = {}) => core.request(method, path, { token: adminSession.token, ...opts });

test('login gives a session token, a CSRF token and an HttpOnly SameSite=Strict cookie', async () => {
  const r = await core.request('POST', '/api/v1/auth/login', { json: { username: admin.username, password: admin.password } });
  assert.equal(r.status, 200, r.text);
  assert.match(r.body.token, /^sbs_[A-Za-z0-9_-]{43}$/);
  assert.match(r.body.csrf_token, /^[0-9a-f]{64}$/);
  assert.deepEqual(Object.keys(r.body.user).sort(), ['id', 'role', 'username']);
  assert.equal(r.body.user.role, 'admin');
  const cookie = r.headers.get('set-cookie');
  assert.match(cookie, /^sbx_session=sbs_/);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.doesNotMatch(cookie, /Secure/);
  secrets.push(r.body.token, r.body.csrf_token);
  // Behind a trusted proxy that terminated TLS, the cookie is Secure.
  const tls = await core.request('POST', '/api/v1/auth/login', { json: { username: admin.username, password: admin.password },
    headers: { 'X-Forwarded-Proto': 'https' } });
  assert.match(tls.headers.get('set-cookie'), /; Secure/);
  secrets.push(tls.body.token);
  // The token's hash is stored, never the token.
  assert.equal(db.sql(`SELECT count(*) FROM sessions WHERE token_sha256 = sha256('${r.body.token}'::bytea)`), '1');
});

test('a wrong username and a wrong password get the same answer', async () => {
  const a = await core.request('POST', '/api/v1/auth/login', { json: { username: admin.username, password: 'wrong-password-123' } });
  const b = await core.request('POST', '/api/v1/auth/login', { json: { username: 'nobody-here', password: 'wrong-password-123' } });
  assert.equal(a.status, 401);
  assert.equal(b.status, 401);
  assert.deepEqual(a.body, b.body);
  const ev = JSON.parse(db.sql("SELECT json_agg(data ORDER BY seq) FROM events WHERE type = 'auth.login' AND outcome = 'failure'"));
  assert.ok(ev.length >= 2);
});

test('/me says who the caller is; the cookie works for reads and needs X-CSRF-Token for changes', async () => {
  const me = await asAdmin('GET', '/api/v1/me');
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.kind, 'user');
  assert.equal(me.body.name, admin.username);
  assert.ok(me.body.permissions.includes('users:admin'));
  const s = await login(core, admin);
  secrets.push(s.token, s.csrf_token);
  const cookie = `sbx_session=${s.token}`;
  assert.equal((await core.request('GET', '/api/v1/me', { headers: { Cookie: cookie } })).status, 200);
  const noCsrf = await core.request('POST', '/api/v1/annotations', { headers: { Cookie: cookie }, json: { message: 'x' } });
  assert.equal(noCsrf.status, 403, noCsrf.text);
  assert.equal(noCsrf.body.error.code, 'csrf_failed');
  const badCsrf = await core.request('POST', '/api/v1/annotations', { headers: { Cookie: cookie, 'X-CSRF-Token': 'f'.repeat(64) }, json: { message: 'x' } });
  assert.equal(badCsrf.status, 403);
  const ok = await core.request('POST', '/api/v1/annotations', { headers: { Cookie: cookie, 'X-CSRF-Token': s.csrf_token }, json: { message: 'with csrf' } });
  assert.equal(ok.status, 201, ok.text);
  // Logout ends the session at once.
  const out = await core.request('POST', '/api/v1/auth/logout', { token: s.token });
  assert.equal(out.status, 204);
  assert.equal((await core.request('GET', '/api/v1/me', { token: s.token })).status, 401);
  assert.equal((await core.request('GET', '/api/v1/me', { headers: { Cookie: cookie } })).status, 401);
});

test('users: create, validate, change role, reset password, disable, delete', async () => {
  let r = await asAdmin('POST', '/api/v1/users', { json: { username: 'ops1', password: 'short', role: 'operator' } });
  assert.equal(r.status, 422);
  assert.equal(r.body.error.field, 'password');
  for (const username of ['../etc', 'a b', 'x;rm', 'UPPER', '', 'a'.repeat(65), 'new\nline']) {
    r = await asAdmin('POST', '/api/v1/users', { json: { username, password: 'long-enough-password', role: 'viewer' } });
    assert.equal(r.status, 422, `${username}: ${r.text}`);
    assert.equal(r.body.error.field, 'username');
  }
  r = await asAdmin('POST', '/api/v1/users', { json: { username: 'ops1', password: 'long-enough-password', role: 'root' } });
  assert.equal(r.body.error.field, 'role');
  const pw = 'ops1-password-long';
  secrets.push(pw);
  r = await asAdmin('POST', '/api/v1/users', { json: { username: 'ops1', password: pw, role: 'operator' } });
  assert.equal(r.status, 201, r.text);
  const id = r.body.id;
  assert.equal((await asAdmin('POST', '/api/v1/users', { json: { username: 'ops1', password: pw, role: 'viewer' } })).status, 409);
  const list = await asAdmin('GET', '/api/v1/users');
  assert.ok(list.body.users.some((u) => u.username === 'ops1' && u.role === 'operator'));
  assert.ok(!list.text.includes('argon2'));

  const s = await login(core, { username: 'ops1', password: pw });
  secrets.push(s.token);
  assert.equal((await core.request('GET', '/api/v1/users', { token: s.token })).status, 403);
  // Demoted to viewer: the same session loses annotations:create at once.
  r = await asAdmin('PATCH', `/api/v1/users/${id}`, { json: { role: 'viewer' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.role, 'viewer');
  assert.equal((await core.request('POST', '/api/v1/annotations', { token: s.token, json: { message: 'x' } })).status, 403);
  // Password reset ends the user's sessions; the new password works.
  const pw2 = 'ops1-new-password-long';
  secrets.push(pw2);
  r = await asAdmin('PATCH', `/api/v1/users/${id}`, { json: { password: pw2 } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await core.request('GET', '/api/v1/me', { token: s.token })).status, 401);
  const s2 = await login(core, { username: 'ops1', password: pw2 });
  // Disabled: sessions end and login fails.
  r = await asAdmin('PATCH', `/api/v1/users/${id}`, { json: { disabled: true } });
  assert.equal(r.body.disabled, true);
  assert.equal((await core.request('GET', '/api/v1/me', { token: s2.token })).status, 401);
  assert.equal((await core.request('POST', '/api/v1/auth/login', { json: { username: 'ops1', password: pw2 } })).status, 401);
  // You cannot lock yourself out.
  r = await asAdmin('PATCH', `/api/v1/users/${adminSession.user.id}`, { json: { disabled: true } });
  assert.equal(r.status, 422);
  r = await asAdmin('DELETE', `/api/v1/users/${id}`);
  assert.equal(r.status, 204);
  assert.equal((await asAdmin('DELETE', `/api/v1/users/${id}`)).status, 404);
  assert.equal((await asAdmin('PATCH', '/api/v1/users/not-a-uuid', { json: { role: 'viewer' } })).status, 404);
});

test('API tokens: shown once, listed without the secret, never above the creator, revocable, last use recorded', async () => {
  const op = createUser(db, { role: 'operator' });
  secrets.push(op.password);
  const s = await login(core, op);
  secrets.push(s.token);
  let r = await core.request('POST', '/api/v1/tokens', { token: s.token, json: { name: 'ci', role: 'admin' } });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field, 'role');
  const t = await apiToken(core, s.token, { name: 'ci deploy', role: 'viewer', expires_in: 3600 });
  secrets.push(t.token);
  assert.match(t.token, /^sbx_[A-Za-z0-9_-]{43}$/);
  assert.equal(t.role, 'viewer');
  const me = await core.request('GET', '/api/v1/me', { token: t.token });
  assert.equal(me.body.kind, 'token');
  assert.equal(me.body.role, 'viewer');
  assert.equal((await core.request('POST', '/api/v1/annotations', { token: t.token, json: { message: 'x' } })).status, 403);
  const list = await core.request('GET', '/api/v1/tokens', { token: s.token });
  const row = list.body.tokens.find((x) => x.id === t.id);
  assert.ok(row);
  assert.ok(row.last_used_at, 'last use recorded');
  assert.ok(!list.text.includes(t.token));
  assert.equal(row.token, undefined);
  // Operators see their own tokens only; admins see all.
  assert.ok((await asAdmin('GET', '/api/v1/tokens')).body.tokens.some((x) => x.id === t.id));
  r = await core.request('DELETE', `/api/v1/tokens/${t.id}`, { token: s.token });
  assert.equal(r.status, 204);
  assert.equal((await core.request('GET', '/api/v1/me', { token: t.token })).status, 401);
  assert.equal((await core.request('DELETE', `/api/v1/tokens/${t.id}`, { token: s.token })).status, 404);
  r = await core.request('POST', '/api/v1/tokens', { token: s.token, json: { name: 'x', expires_in: 0 } });
  assert.equal(r.body.error.field, 'expires_in');
  assert.equal(db.sql(`SELECT count(*) FROM api_tokens WHERE token_sha256 = sha256('${t.token}'::bytea)`), '1');
});

test('create-user refuses bad input and --if-no-users does nothing once users exist', () => {
  const env = { SERVERBOX_DATABASE_URL: db.url };
  let r = runCore(['create-user', '--username', 'x', '--role', 'admin', '--password-stdin'], env, { check: false, input: 'short\n' });
  assert.equal(r.code, 2);
  r = runCore(['create-user', '--username', '../x', '--role', 'admin', '--password-stdin'], env, { check: false, input: 'long-enough-password\n' });
  assert.equal(r.code, 2);
  r = runCore(['create-user', '--username', 'again', '--role', 'admin', '--password-stdin', '--if-no-users'], env, { check: false, input: 'long-enough-password\n' });
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.equal(db.sql("SELECT count(*) FROM users WHERE username = 'again'"), '0');
});

test('audit API: filters and cursor paging', async () => {
  for (let i = 0; i < 5; i++) await asAdmin('POST', '/api/v1/annotations', { json: { message: `page ${i}` } });
  const all = await asAdmin('GET', '/api/v1/audit?type=annotation.created&limit=1000');
  assert.equal(all.status, 200, all.text);
  assert.ok(all.body.events.length >= 5);
  for (const e of all.body.events) assert.equal(e.type, 'annotation.created');
  const p1 = await asAdmin('GET', '/api/v1/audit?type=annotation.created&limit=2');
  assert.equal(p1.body.events.length, 2);
  const p2 = await asAdmin('GET', `/api/v1/audit?type=annotation.created&limit=2&after=${p1.body.next_after}`);
  assert.ok(p2.body.events[0].seq > p1.body.events[1].seq);
  const fails = await asAdmin('GET', '/api/v1/audit?type=auth.&outcome=failure');
  assert.ok(fails.body.events.length >= 1);
  for (const e of fails.body.events) { assert.equal(e.outcome, 'failure'); assert.ok(e.type.startsWith('auth.')); }
  const mine = await asAdmin('GET', `/api/v1/audit?actor=${admin.username}&type=annotation.created`);
  assert.ok(mine.body.events.length >= 5);
  for (const e of mine.body.events) assert.equal(e.actor.name, admin.username);
  const future = await asAdmin('GET', '/api/v1/audit?from=2999-01-01T00:00:00Z');
  assert.deepEqual(future.body.events, []);
  assert.equal((await asAdmin('GET', '/api/v1/audit?from=yesterday')).status, 400);
  assert.equal((await asAdmin('GET', '/api/v1/audit?limit=0')).status, 400);
});

test('audit chain verifies; the checkpoint signature verifies offline with Ed25519', async () => {
  const v = await asAdmin('GET', '/api/v1/audit/verify');
  assert.equal(v.status, 200, v.text);
  assert.equal(v.body.ok, true);
  assert.equal(v.body.first_bad_seq, null);
  assert.ok(v.body.checked >= 10);
  const c = await asAdmin('GET', '/api/v1/audit/checkpoint');
  assert.equal(c.status, 200, c.text);
  assert.ok(c.body.seq >= v.body.head_seq);
  assert.equal(c.body.hash, db.sql(`SELECT encode(hash, 'hex') FROM events WHERE seq = ${Number(c.body.seq)}`));
  // The signed message, rebuilt from docs/events.md.
  const message = `serverbox-checkpoint-v1\n${c.body.seq}\n${c.body.hash}\n${c.body.signed_at}\n`;
  const raw = Buffer.from(c.body.public_key, 'base64');
  assert.equal(raw.length, 32);
  const key = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
  assert.ok(verify(null, Buffer.from(message), key, Buffer.from(c.body.signature, 'base64')));
  assert.ok(!verify(null, Buffer.from(message.replace(/\n\d+\n/, '\n1\n')), key, Buffer.from(c.body.signature, 'base64')));
  assert.equal(db.sql(`SELECT count(*) FROM checkpoints WHERE seq = ${Number(c.body.seq)}`), '1');
  // The key lives in the data directory, private.
  assert.equal(statSync(join(core.dataDir, 'audit-signing.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(core.dataDir, 'master.key')).mode & 0o777, 0o600);
  // Same head, same checkpoint; a new event, a new one.
  const again = await asAdmin('GET', '/api/v1/audit/checkpoint');
  assert.equal(again.body.seq >= c.body.seq, true);
});

test('passwords and tokens never appear in logs, events or error bodies', async () => {
  // Bad credentials echo nothing back.
  const r = await core.request('GET', '/api/v1/me', { token: `${adminSession.token}x` });
  assert.equal(r.status, 401);
  assert.ok(!r.text.includes(adminSession.token));
  await new Promise((res) => setTimeout(res, 100));
  const log = core.log();
  const events = db.sql('SELECT string_agg(body, E\'\\n\' ORDER BY seq) FROM events');
  for (const s of secrets) {
    assert.ok(!log.includes(s), `a secret is in the daemon log`);
    assert.ok(!events.includes(s), `a secret is in the event log`);
  }
  assert.ok(!events.includes('argon2'));
  const v = await asAdmin('GET', '/api/v1/audit/verify');
  assert.equal(v.body.ok, true);
});

test('first-admin.sh creates an admin once, prints the credentials, and then stays quiet', async () => {
  const { execFileSync } = await import('node:child_process');
  const { ROOT, CORE_BIN } = await import('./lib/harness.mjs');
  const fresh = createDatabase('first');
  const env = { ...process.env, SERVERBOX_DATABASE_URL: fresh.url, SERVERBOX_LISTEN: '127.0.0.1:8080', SERVERBOX_CORE_BIN: CORE_BIN };
  const out = execFileSync(join(ROOT, 'scripts', 'first-admin.sh'), { env, encoding: 'utf8' });
  assert.match(out, /URL\s+http:\/\/127\.0\.0\.1:8080\//);
  assert.match(out, /username\s+admin/);
  const password = out.match(/password\s+(\S+)/)[1];
  assert.ok(password.length >= 24);
  assert.equal(fresh.sql("SELECT role FROM users WHERE username = 'admin'"), 'admin');
  const again = execFileSync(join(ROOT, 'scripts', 'first-admin.sh'), { env, encoding: 'utf8' });
  assert.equal(again.trim(), '');
  const c2 = await startCore({ db: fresh });
  try {
    const r = await c2.request('POST', '/api/v1/auth/login', { json: { username: 'admin', password } });
    assert.equal(r.status, 200, r.text);
  } finally { await c2.stop(); }
});

test('sessions end after the idle timeout and at their absolute lifetime', async () => {
  const d = createDatabase('idle');
  const u = createUser(d, { role: 'viewer' });
  const idle = await startCore({ db: d, redisUrl: process.env.SBX_TEST_REDIS_URL, env: { SERVERBOX_SESSION_IDLE_TIMEOUT: '2', SERVERBOX_SESSION_MAX_AGE: '6' } });
  try {
    // Used every 0.5 s, a session outlives the idle timeout...
    const busy = await login(idle, u);
    for (let i = 0; i < 8; i++) {
      assert.equal((await idle.request('GET', '/api/v1/me', { token: busy.token })).status, 200, `use ${i}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // ...an unused one does not.
    const lazy = await login(idle, u);
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal((await idle.request('GET', '/api/v1/me', { token: lazy.token })).status, 401);
    // And nothing outlives the absolute lifetime.
    for (let i = 0; i < 6; i++) {
      await idle.request('GET', '/api/v1/me', { token: busy.token });
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal((await idle.request('GET', '/api/v1/me', { token: busy.token })).status, 401);
  } finally { await idle.stop(); }
});

test('rebuild-projections reproduces the users table', () => {
  const dump = () => db.sql("SELECT json_agg(u ORDER BY id)::text FROM (SELECT id, username, role, disabled, node_labels, created_at, updated_at FROM users) u");
  const before = dump();
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(dump(), before);
  // Credentials are not projections: still there, logins still work.
  assert.ok(Number(db.sql('SELECT count(*) FROM user_credentials')) >= 2);
});

test('a user changes their own password; their other sessions end, this one stays', async () => {
  const u = createUser(db, { role: 'viewer' });
  secrets.push(u.password);
  const a = await login(core, u);
  const b = await login(core, u);
  secrets.push(a.token, b.token);
  let r = await core.request('POST', '/api/v1/auth/password', { token: a.token, json: { current_password: 'not-the-password', new_password: 'brand-new-password-1' } });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field, 'current_password');
  r = await core.request('POST', '/api/v1/auth/password', { token: a.token, json: { current_password: u.password, new_password: 'short' } });
  assert.equal(r.body.error.field, 'new_password');
  const fresh = 'brand-new-password-1';
  secrets.push(fresh);
  r = await core.request('POST', '/api/v1/auth/password', { token: a.token, json: { current_password: u.password, new_password: fresh } });
  assert.equal(r.status, 204, r.text);
  assert.equal((await core.request('GET', '/api/v1/me', { token: a.token })).status, 200);
  assert.equal((await core.request('GET', '/api/v1/me', { token: b.token })).status, 401);
  assert.equal((await core.request('POST', '/api/v1/auth/login', { json: { username: u.username, password: u.password } })).status, 401);
  await login(core, { username: u.username, password: fresh });
  // An API token cannot change its owner's password.
  const t = await apiToken(core, adminSession.token, { name: 'pw' });
  secrets.push(t.token);
  r = await core.request('POST', '/api/v1/auth/password', { token: t.token, json: { current_password: admin.password, new_password: 'whatever-long-pass' } });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, 'session_required');
});

test('node label scope: a user limited by labels passes it to /me and to the tokens they make', async () => {
  const pw = 'scoped-user-password';
  secrets.push(pw);
  let r = await asAdmin('POST', '/api/v1/users', { json: { username: 'scoped', password: pw, role: 'operator', node_labels: { env: 'staging' } } });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.body.node_labels, { env: 'staging' });
  const s = await login(core, { username: 'scoped', password: pw });
  secrets.push(s.token);
  const me = await core.request('GET', '/api/v1/me', { token: s.token });
  assert.deepEqual(me.body.node_labels, { env: 'staging' });
  const t = await apiToken(core, s.token, { name: 'scoped-ci' });
  secrets.push(t.token);
  assert.deepEqual((await core.request('GET', '/api/v1/me', { token: t.token })).body.node_labels, { env: 'staging' });
  r = await core.request('POST', '/api/v1/tokens', { token: s.token, json: { name: 'wider', node_labels: { env: 'production' } } });
  assert.equal(r.status, 422);
  assert.equal(r.body.error.field, 'node_labels');
  r = await asAdmin('POST', '/api/v1/users', { json: { username: 'badlabels', password: pw, role: 'viewer', node_labels: { env: 5 } } });
  assert.equal(r.body.error.field, 'node_labels');
});
