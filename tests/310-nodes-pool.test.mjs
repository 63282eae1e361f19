// The SSH pool against a real OpenSSH server: 100 concurrent execs share 3
// sessions (counted on the server side with ss), sshd killed and restarted
// under a warm pool, a busy node answering 503 after the wait, idle
// sessions closed after the TTL, and the periodic health check recording
// node.offline / node.online only on change.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd, establishedTo, authHeaders } from './lib/sshd.mjs';

let db, core, s1, id;

before(async () => {
  s1 = startSshd();
  db = createDatabase('pool');
  core = await startCore({
    db,
    admin: true,
    env: {
      SERVERBOX_SSH_POOL_SIZE: '3',
      SERVERBOX_SSH_ACQUIRE_TIMEOUT: '2',
      SERVERBOX_SSH_IDLE_TTL: '4',
      SERVERBOX_SSH_KEEPALIVE: '1',
      SERVERBOX_NODE_CHECK_INTERVAL: '0',
      SERVERBOX_WORKERS: '24',
    },
  });
  const r = await req('POST', '/api/v1/nodes', { name: 'pooled', host: '127.0.0.1', port: s1.port, ssh_user: 'root', private_key: s1.key });
  assert.equal(r.status, 201, r.text);
  id = r.body.id;
});
after(async () => {
  try {
    await core?.stop();
  } finally {
    s1?.remove();
  }
});

const req = (method, path, json) => core.request(method, path, { json, headers: authHeaders() });
const events = (type) => JSON.parse(db.sql(`SELECT coalesce(json_agg(body::json ORDER BY seq), '[]') FROM events WHERE type = '${type}' AND stream = 'node/${id}'`));

test('100 concurrent execs through 3 pooled sessions: all succeed, at most 3 connections', async () => {
  let maxConns = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxConns = Math.max(maxConns, establishedTo(s1.port));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    req('POST', `/api/v1/nodes/${id}/exec`, { command: `echo ${i}` })));
  sampling = false;
  await sampler;
  for (const [i, r] of results.entries()) {
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.stdout, `${i}\n`);
    assert.equal(r.body.exit_code, 0);
  }
  assert.ok(maxConns >= 1 && maxConns <= 3, `server saw ${maxConns} connections`);
  const g = await req('GET', `/api/v1/nodes/${id}`);
  assert.ok(g.body.pool.open <= 3, JSON.stringify(g.body.pool));
  assert.ok(g.body.pool.hits >= 90, JSON.stringify(g.body.pool));
  assert.equal(g.body.pool.failures, 0);
});

test('sshd killed and restarted under a warm pool: the next exec succeeds', async () => {
  assert.equal((await req('POST', `/api/v1/nodes/${id}/exec`, { command: 'true' })).status, 200);
  assert.ok((await req('GET', `/api/v1/nodes/${id}`)).body.pool.open >= 1);
  s1.stop();
  s1.start();
  const r = await req('POST', `/api/v1/nodes/${id}/exec`, { command: 'echo back' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.stdout, 'back\n');
  assert.ok(core.alive());
});

test('all sessions busy past the wait: 503 with Retry-After, then the pool recovers', async () => {
  const slow = Array.from({ length: 3 }, () => req('POST', `/api/v1/nodes/${id}/exec`, { command: 'sleep 4', timeout_seconds: 10 }));
  await new Promise((r) => setTimeout(r, 500));
  const busy = await req('POST', `/api/v1/nodes/${id}/exec`, { command: 'true' });
  assert.equal(busy.status, 503, busy.text);
  assert.equal(busy.body.error.code, 'ssh_pool_busy');
  assert.equal(busy.headers.get('retry-after'), '1');
  for (const r of await Promise.all(slow)) assert.equal(r.status, 200, r.text);
  assert.equal((await req('POST', `/api/v1/nodes/${id}/exec`, { command: 'true' })).status, 200);
  const g = await req('GET', `/api/v1/nodes/${id}`);
  assert.ok(g.body.pool.timeouts >= 1, JSON.stringify(g.body.pool));
});

test('idle sessions close after the TTL (keepalives keep them healthy meanwhile)', async () => {
  assert.equal((await req('POST', `/api/v1/nodes/${id}/exec`, { command: 'true' })).status, 200);
  await waitFor(async () => (await req('GET', `/api/v1/nodes/${id}`)).body.pool.open === 0 && establishedTo(s1.port) === 0,
    { timeout: 15000, what: 'idle sessions closed' });
});

test('periodic health check: node.offline then node.online, each once, with the reason', async (t) => {
  // A second daemon on the same database runs the checker every second.
  const checker = await startCore({ db, admin: true, dataDir: core.dataDir, env: { SERVERBOX_NODE_CHECK_INTERVAL: '1' } });
  t.after(() => checker.stop());
  const get = async () => (await checker.request('GET', `/api/v1/nodes/${id}`, { headers: authHeaders() })).body;
  await waitFor(async () => (await get()).last_check, { what: 'first check' });
  s1.stop();
  await waitFor(() => events('node.offline').length === 1, { timeout: 15000, what: 'node.offline' });
  const off = events('node.offline')[0];
  assert.match(off.data.reason, /connect/);
  assert.equal(off.actor.kind, 'system');
  assert.equal((await get()).status, 'offline');
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(events('node.offline').length, 1, 'recorded only on change');
  s1.start();
  await waitFor(() => events('node.online').length === 1, { timeout: 15000, what: 'node.online' });
  const c = await req('POST', `/api/v1/nodes/${id}/check`);
  assert.equal(c.body.status, 'online');
  assert.match(c.body.uname, /Linux/);
});
