// Issue #12 item 5: a token, a guest link, a node's new key, a user's
// password and a login's session commit with their event in one transaction. Each is tested by injecting a failure on
// either side with a PostgreSQL trigger: on the row (then no event may
// exist) and on the event (then no row may exist, and nothing changed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, login, startCore } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';

let db, core, sshd;
before(async () => {
  sshd = startSshd();
  db = createDatabase('atomic');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
});
after(async () => {
  try {
    await core?.stop();
  } finally {
    sshd?.remove();
  }
});

// A trigger that raises on `table` (INSERT or UPDATE) while the block runs;
// `when` is a condition on NEW.
async function failing(table, op, when, fn) {
  db.sql(`CREATE OR REPLACE FUNCTION sbx_inject() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF ${when} THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER sbx_inject BEFORE ${op} ON ${table} FOR EACH ROW EXECUTE FUNCTION sbx_inject();`);
  try {
    return await fn();
  } finally {
    db.sql(`DROP TRIGGER sbx_inject ON ${table}; DROP FUNCTION sbx_inject();`);
  }
}
const count = (sql) => Number(db.sql(sql));
const events = (type, cond = 'true') => count(`SELECT count(*) FROM events WHERE type = '${type}' AND ${cond}`);

test('token creation: the row and token.created commit together', async () => {
  let r = await failing('api_tokens', 'INSERT', 'true', () => core.request('POST', '/api/v1/tokens', { json: { name: 'row-fails' } }));
  assert.ok(r.status >= 500, r.text);
  assert.ok(!r.text.includes('sbx_'), 'no token handed out');
  assert.equal(count("SELECT count(*) FROM api_tokens WHERE name = 'row-fails'"), 0);
  assert.equal(events('token.created', "data->>'name' = 'row-fails'"), 0, 'no event without its row');

  r = await failing('events', 'INSERT', "NEW.type = 'token.created'", () => core.request('POST', '/api/v1/tokens', { json: { name: 'event-fails' } }));
  assert.ok(r.status >= 500, r.text);
  assert.equal(count("SELECT count(*) FROM api_tokens WHERE name = 'event-fails'"), 0, 'no row without its event');

  r = await core.request('POST', '/api/v1/tokens', { json: { name: 'fine' } });
  assert.equal(r.status, 201, r.text);
  assert.equal(count("SELECT count(*) FROM api_tokens WHERE name = 'fine'"), 1);
  assert.equal(events('token.created', "data->>'name' = 'fine'"), 1);
  assert.ok(!db.sql("SELECT body FROM events WHERE type = 'token.created'").includes(db.sql("SELECT encode(token_sha256, 'hex') FROM api_tokens WHERE name = 'fine'")), 'the hash never enters the log');
});

test('token revocation: the revocation and token.revoked commit together', async () => {
  const t = (await core.request('POST', '/api/v1/tokens', { json: { name: 'to-revoke' } })).body;
  const child = (await core.request('POST', '/api/v1/tokens', { token: t.token, json: { name: 'child' } })).body;
  let r = await failing('api_tokens', 'UPDATE', 'NEW.revoked_at IS NOT NULL', () => core.request('DELETE', `/api/v1/tokens/${t.id}`));
  assert.ok(r.status >= 500, r.text);
  assert.equal(events('token.revoked', `stream = 'token/${t.id}'`), 0);
  r = await failing('events', 'INSERT', "NEW.type = 'token.revoked'", () => core.request('DELETE', `/api/v1/tokens/${t.id}`));
  assert.ok(r.status >= 500, r.text);
  assert.equal(db.sql(`SELECT count(*) FROM api_tokens WHERE id IN ('${t.id}', '${child.id}') AND revoked_at IS NOT NULL`), '0', 'nothing revoked without its event');
  for (const x of [t, child]) assert.equal((await core.request('GET', '/api/v1/me', { token: x.token })).status, 200, 'still works');
  r = await core.request('DELETE', `/api/v1/tokens/${t.id}`);
  assert.equal(r.status, 204, r.text);
  assert.equal(events('token.revoked', `stream = 'token/${t.id}'`), 1);
  for (const x of [t, child]) assert.equal((await core.request('GET', '/api/v1/me', { token: x.token })).status, 401);
});

test('guest links: creation and revocation commit with their events', async () => {
  const body = { scopes: ['view:metrics'], ttl_seconds: 600, note: 'row-fails' };
  let r = await failing('guest_links', 'INSERT', 'true', () => core.request('POST', '/api/v1/guest-links', { json: body }));
  assert.ok(r.status >= 500, r.text);
  assert.ok(!r.text.includes('sbg_'));
  assert.equal(events('guest_link.created', "data->>'note' = 'row-fails'"), 0);
  r = await failing('events', 'INSERT', "NEW.type = 'guest_link.created'", () => core.request('POST', '/api/v1/guest-links', { json: { ...body, note: 'event-fails' } }));
  assert.ok(r.status >= 500, r.text);
  assert.equal(count("SELECT count(*) FROM guest_links WHERE note = 'event-fails'"), 0);

  const g = (await core.request('POST', '/api/v1/guest-links', { json: { ...body, note: 'fine' } })).body;
  r = await failing('guest_links', 'UPDATE', 'NEW.revoked_at IS NOT NULL', () => core.request('DELETE', `/api/v1/guest-links/${g.id}`));
  assert.ok(r.status >= 500, r.text);
  assert.equal(events('guest_link.revoked', `stream = 'guest_link/${g.id}'`), 0);
  r = await failing('events', 'INSERT', "NEW.type = 'guest_link.revoked'", () => core.request('DELETE', `/api/v1/guest-links/${g.id}`));
  assert.ok(r.status >= 500, r.text);
  assert.equal(db.sql(`SELECT revoked_at IS NULL FROM guest_links WHERE id = '${g.id}'`), 't');
  assert.equal((await core.request('GET', `/g/${g.token}`, { token: null })).status, 200, 'the link still works');
  r = await core.request('DELETE', `/api/v1/guest-links/${g.id}`);
  assert.equal(r.status, 204, r.text);
  assert.equal(events('guest_link.revoked', `stream = 'guest_link/${g.id}'`), 1);
});

test('nodes: a new key is stored with its node.registered / node.updated event, or not at all', async () => {
  const node = (name, extra = {}) => ({ name, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, ...extra });
  let r = await failing('node_credentials', 'INSERT', 'true', () => core.request('POST', '/api/v1/nodes', { json: node('row-fails') }));
  assert.ok(r.status >= 500, r.text);
  assert.equal(events('node.registered', "data->>'name' = 'row-fails' AND outcome = 'success'"), 0);
  assert.equal(count("SELECT count(*) FROM nodes WHERE name = 'row-fails'"), 0);
  r = await failing('events', 'INSERT', "NEW.type = 'node.registered'", () => core.request('POST', '/api/v1/nodes', { json: node('event-fails') }));
  assert.ok(r.status >= 500, r.text);
  assert.equal(count('SELECT count(*) FROM node_credentials'), 0, 'no key without its node');

  r = await core.request('POST', '/api/v1/nodes', { json: node('n1') });
  assert.equal(r.status, 201, r.text);
  const id = r.body.id;
  // A second key for the same sshd user: install it, then change the node to it.
  const dir = mkdtempSync(join(tmpdir(), 'sbx-k-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
  execFileSync('sh', ['-c', `cat ${join(dir, 'k.pub')} >> ${join(sshd.dir, 'authorized_keys')}`]);
  const key2 = readFileSync(join(dir, 'k'), 'utf8');
  const sealed = () => db.sql(`SELECT private_key FROM node_credentials WHERE node_id = '${id}'`);
  const before = sealed();
  r = await failing('events', 'INSERT', "NEW.type = 'node.updated'", () => core.request('PATCH', `/api/v1/nodes/${id}`, { json: { private_key: key2, labels: { k: '2' } } }));
  assert.ok(r.status >= 500, r.text);
  assert.equal(sealed(), before, 'the key is unchanged when its event fails');
  r = await failing('node_credentials', 'UPDATE', 'true', () => core.request('PATCH', `/api/v1/nodes/${id}`, { json: { private_key: key2, labels: { k: '3' } } }));
  assert.ok(r.status >= 500, r.text);
  assert.equal(db.sql(`SELECT labels::text FROM nodes WHERE id = '${id}'`), '{}', 'no change recorded without its key');
  r = await core.request('PATCH', `/api/v1/nodes/${id}`, { json: { private_key: key2 } });
  assert.equal(r.status, 200, r.text);
  assert.notEqual(sealed(), before);
  r = await core.request('POST', `/api/v1/nodes/${id}/exec`, { json: { command: 'true' } });
  assert.equal(r.status, 200, r.text);
});

test('users, passwords and logins: the credential row and its event commit together', async () => {
  const mk = (username) => ({ username, password: `pw-${Math.random().toString(16).slice(2)}-long`, role: 'viewer' });
  let u = mk('rowfails');
  let r = await failing('user_credentials', 'INSERT', 'true', () => core.request('POST', '/api/v1/users', { json: u }));
  assert.ok(r.status >= 500, r.text);
  assert.equal(count("SELECT count(*) FROM users WHERE username = 'rowfails'"), 0, 'no user without a password');
  assert.equal(events('user.created', "data->>'username' = 'rowfails'"), 0);
  u = mk('eventfails');
  r = await failing('events', 'INSERT', "NEW.type = 'user.created'", () => core.request('POST', '/api/v1/users', { json: u }));
  assert.ok(r.status >= 500, r.text);
  assert.equal(count('SELECT count(*) FROM user_credentials c LEFT JOIN users u ON u.id = c.user_id WHERE u.id IS NULL'), 0, 'no orphan password');

  u = mk('fine');
  r = await core.request('POST', '/api/v1/users', { json: u });
  assert.equal(r.status, 201, r.text);
  const id = r.body.id;
  // A password reset whose event fails (and whose row fails) changes nothing.
  for (const [table, op, when] of [['events', 'INSERT', "NEW.type = 'user.password_changed'"], ['user_credentials', 'UPDATE', 'true']]) {
    r = await failing(table, op, when, () => core.request('PATCH', `/api/v1/users/${id}`, { json: { password: 'another-password-123' } }));
    assert.ok(r.status >= 500, r.text);
    await login(core, u); // the old password still works
  }
  assert.equal(events('user.password_changed', `stream = 'user/${id}' AND outcome = 'success'`), 0);

  // A login: the session and auth.login together.
  const sessions = () => count(`SELECT count(*) FROM sessions WHERE user_id = '${id}'`);
  const logins = () => events('auth.login', `stream = 'user/${id}' AND outcome = 'success'`);
  const s0 = sessions(), l0 = logins();
  for (const [table, when] of [['sessions', 'true'], ['events', "NEW.type = 'auth.login'"]]) {
    r = await failing(table, 'INSERT', when, () => core.request('POST', '/api/v1/auth/login', { token: null, json: { username: u.username, password: u.password } }));
    assert.ok(r.status >= 500, r.text);
    assert.ok(!r.text.includes('sbs_'), 'no session handed out');
    assert.equal(sessions(), s0);
    assert.equal(logins(), l0);
  }
  await login(core, u);
  assert.equal(sessions(), s0 + 1);
  assert.equal(logins(), l0 + 1);
});
