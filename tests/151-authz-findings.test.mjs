// Regression tests for the authorization findings of issue #13, one test per
// finding: a label-scoped operator pointing a node at the core's own Docker
// engine, the audit log read out of scope, tokens keeping an old scope,
// environment values shown to readers, tokens outliving their parent,
// read-only callers causing checks, node registration as a port scanner,
// and what guests see of a node's SSH settings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, login } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';

let db, core, sshd, lab, prod;

before(async () => {
  sshd = startSshd();
  db = createDatabase('authz');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  lab = await register('lab-1', { env: 'lab', team: 'sec' });
  prod = await register('prod-1', { env: 'prod' });
});
after(async () => {
  try {
    await core?.stop();
  } finally {
    sshd?.remove();
  }
});

async function register(name, labels, extra = {}, token = core.token) {
  const r = await core.request('POST', '/api/v1/nodes', {
    token, json: { name, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels, ...extra },
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

let userSeq = 0;
// A user made by the admin through the API, logged in: {id, token, user}.
export async function scopedUser(role, node_labels) {
  const u = { username: `u${++userSeq}-${Math.random().toString(16).slice(2, 8)}`, password: `pw-${Math.random().toString(16).slice(2)}-long`, role };
  const r = await core.request('POST', '/api/v1/users', { json: { ...u, node_labels } });
  assert.equal(r.status, 201, r.text);
  const s = await login(core, u);
  return { id: r.body.id, token: s.token, user: u };
}

test('finding 1: only an admin points a node at the core\'s local engine, on create and on update', async () => {
  const op = await scopedUser('operator', { team: 'sec' });
  // Create with docker: local is refused, and nothing is registered.
  let r = await core.request('POST', '/api/v1/nodes', {
    token: op.token,
    json: { name: 'sneaky', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels: { team: 'sec' }, docker: 'local' },
  });
  assert.equal(r.status, 403, r.text);
  assert.match(r.body.error.message, /admin/);
  assert.equal(db.sql("SELECT count(*) FROM nodes WHERE name = 'sneaky'"), '0');

  // Register over ssh (allowed), then try to switch it to the local engine.
  const mine = await register('sec-1', { team: 'sec' }, {}, op.token);
  assert.equal(mine.docker, 'ssh');
  r = await core.request('PATCH', `/api/v1/nodes/${mine.id}`, { token: op.token, json: { docker: 'local' } });
  assert.equal(r.status, 403, r.text);
  r = await core.request('PATCH', `/api/v1/nodes/${mine.id}`, { token: op.token, json: { docker: 'local', labels: { team: 'sec', x: 'y' } } });
  assert.equal(r.status, 403, r.text);
  r = await core.request('GET', `/api/v1/nodes/${mine.id}`, { token: op.token });
  assert.equal(r.body.docker, 'ssh');
  assert.deepEqual(r.body.labels, { team: 'sec' }, 'a refused change changes nothing');
  // A token of the operator is refused the same way.
  const t = await core.request('POST', '/api/v1/tokens', { token: op.token, json: { name: 'ci' } });
  assert.equal(t.status, 201, t.text);
  r = await core.request('PATCH', `/api/v1/nodes/${mine.id}`, { token: t.body.token, json: { docker: 'local' } });
  assert.equal(r.status, 403, r.text);
  // The operator may still change other things, and set docker: ssh.
  r = await core.request('PATCH', `/api/v1/nodes/${mine.id}`, { token: op.token, json: { docker: 'ssh', labels: { team: 'sec', tier: 'web' } } });
  assert.equal(r.status, 200, r.text);
  // An admin may.
  r = await core.request('PATCH', `/api/v1/nodes/${mine.id}`, { json: { docker: 'local' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.docker, 'local');
  r = await core.request('DELETE', `/api/v1/nodes/${mine.id}`);
  assert.equal(r.status, 204, r.text);
});
