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

async function guestLink(scopes, node_labels) {
  const r = await core.request('POST', '/api/v1/guest-links', { json: { scopes, ttl_seconds: 600, node_labels } });
  assert.equal(r.status, 201, r.text);
  return r.body.token;
}

test('finding 2: the audit log, verify and checkpoint honour node scope', async () => {
  // Something of each node in the log besides its registration.
  for (const n of [lab, prod]) {
    const r = await core.request('POST', `/api/v1/nodes/${n.id}/exec`, { json: { command: 'true' } });
    assert.equal(r.status, 200, r.text);
  }
  const viewer = await scopedUser('viewer', { env: 'lab' });
  const guest = await guestLink(['view:audit'], { env: 'lab' });
  // The viewer's denied request about prod is in the log (access.denied with
  // prod's path): it must not show prod's id to the scoped readers either.
  let r = await core.request('POST', `/api/v1/nodes/${prod.id}/exec`, { token: viewer.token, json: { command: 'true' } });
  assert.equal(r.status, 403, r.text);
  // The admin sees prod's entries.
  r = await core.request('GET', `/api/v1/audit?stream=node/${prod.id}`);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.body.events.some((e) => e.type === 'node.registered'), 'the admin reads prod');
  for (const [who, token] of [['viewer', viewer.token], ['guest', guest]]) {
    r = await core.request('GET', `/api/v1/audit?stream=node/${prod.id}`, { token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.events, [], `${who}: nothing of prod`);
    r = await core.request('GET', `/api/v1/audit?stream=node/${lab.id}`, { token });
    assert.ok(r.body.events.some((e) => e.type === 'node.registered'), `${who} reads lab's registration`);
    // Every page of the whole log: lab appears, prod never does.
    let after = 0, text = '', pages = 0;
    for (;;) {
      r = await core.request('GET', `/api/v1/audit?limit=5&after=${after}`, { token });
      assert.equal(r.status, 200, r.text);
      text += r.text;
      pages++;
      if (r.body.next_after === null) break;
      assert.ok(r.body.next_after > after);
      after = r.body.next_after;
    }
    assert.ok(pages > 1, 'paged');
    assert.ok(text.includes(lab.id), `${who} sees lab`);
    assert.ok(!text.includes(prod.id), `${who} never sees prod's id`);
    // verify: the whole chain's validity and head; checkpoint: the signed head.
    r = await core.request('GET', '/api/v1/audit/verify', { token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.ok, true);
    assert.ok(!r.text.includes(prod.id));
    r = await core.request('GET', '/api/v1/audit/checkpoint', { token });
    assert.equal(r.status, 200, r.text);
    assert.ok(!r.text.includes(prod.id));
  }
});

test('finding 3: a token\'s scope is its own and its owner\'s current scope, at use', async () => {
  const secProd = await register('sec-prod', { team: 'sec', env: 'prod' });
  const op = await scopedUser('operator', { team: 'sec' });
  let r = await core.request('POST', '/api/v1/tokens', { token: op.token, json: { name: 'inherits' } });
  assert.equal(r.status, 201, r.text);
  const tok = r.body.token;
  const sees = async (token) => {
    const l = await core.request('GET', '/api/v1/nodes', { token });
    assert.equal(l.status, 200, l.text);
    return l.body.items.map((n) => n.name).sort();
  };
  assert.deepEqual(await sees(tok), ['lab-1', 'sec-prod']);
  // Warm every cache, and hold a stream open under the old scope.
  for (let i = 0; i < 3; i++) await sees(tok);
  const { openSse } = await import('./lib/sse.mjs');
  const s = openSse(core.base, '/api/v1/events?topics=nodes', { token: tok });
  await s.ready;
  assert.equal(s.status, 200);

  // Narrow the owner: the token follows at once (no wait for a cache).
  r = await core.request('PATCH', `/api/v1/users/${op.id}`, { json: { node_labels: { team: 'sec', env: 'lab' } } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await sees(tok), ['lab-1']);
  r = await core.request('GET', `/api/v1/nodes/${secProd.id}`, { token: tok });
  assert.equal(r.status, 404, r.text);
  await s.waitFor((x) => x.ended, { what: 'the stream opened under the old scope ends' });

  // Move the owner to another scope: only what both allow.
  r = await core.request('PATCH', `/api/v1/users/${op.id}`, { json: { node_labels: { env: 'prod' } } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await sees(tok), ['sec-prod']);
  assert.deepEqual(await sees(op.token), ['prod-1', 'sec-prod'], 'the user sees their new scope');
  // A token with its own label that contradicts the owner's sees nothing.
  r = await core.request('POST', '/api/v1/tokens', { token: op.token, json: { name: 'prod-only', node_labels: { env: 'prod' } } });
  assert.equal(r.status, 201, r.text);
  const tok2 = r.body.token;
  r = await core.request('PATCH', `/api/v1/users/${op.id}`, { json: { node_labels: { env: 'lab' } } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await sees(tok2), []);
  r = await core.request('GET', `/api/v1/nodes/${lab.id}`, { token: tok2 });
  assert.equal(r.status, 404, r.text);
  r = await core.request('DELETE', `/api/v1/nodes/${secProd.id}`);
  assert.equal(r.status, 204, r.text);
});

test('finding 5: a token made by a token expires no later than its parent and is revoked with it', async () => {
  const op = await scopedUser('operator', undefined);
  const mk = async (token, json) => {
    const r = await core.request('POST', '/api/v1/tokens', { token, json: { name: 'child', ...json } });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  const a = await mk(op.token, { expires_in: 3600 });
  assert.equal(a.parent_id, null, 'made with a session: no parent');
  const b = await mk(a.token, { expires_in: null });
  assert.equal(b.parent_id, a.id);
  assert.equal(b.expires_at, a.expires_at, 'never is cut to the parent\'s expiry');
  const c = await mk(b.token, { expires_in: 366 * 86400 });
  assert.equal(c.parent_id, b.id);
  assert.equal(c.expires_at, a.expires_at, 'a longer expiry is cut too');
  const shorter = await mk(b.token, { expires_in: 60 });
  assert.ok(Date.parse(shorter.expires_at) < Date.parse(a.expires_at), 'a shorter one is kept');
  assert.equal(db.sql(`SELECT parent_id FROM api_tokens WHERE id = '${c.id}'`), b.id, 'lineage recorded');

  const { openSse } = await import('./lib/sse.mjs');
  const s = openSse(core.base, '/api/v1/events', { token: c.token });
  await s.ready;
  assert.equal(s.status, 200, s.errorBody);
  for (const t of [a, b, c]) assert.equal((await core.request('GET', '/api/v1/me', { token: t.token })).status, 200);
  // Revoking the root revokes every descendant at once and ends their streams.
  const r = await core.request('DELETE', `/api/v1/tokens/${a.id}`, { token: op.token });
  assert.equal(r.status, 204, r.text);
  for (const t of [a, b, c, shorter]) assert.equal((await core.request('GET', '/api/v1/me', { token: t.token })).status, 401, `${t.id} revoked`);
  await s.waitFor((x) => x.ended, { what: 'the grandchild\'s stream ends' });
  assert.equal(s.events.at(-1)?.event, 'closed', JSON.stringify(s.events.slice(-2)));
  const ev = JSON.parse(db.sql(`SELECT body FROM events WHERE type = 'token.revoked' AND stream = 'token/${a.id}'`));
  assert.deepEqual(ev.data.descendants.sort(), [b.id, c.id, shorter.id].sort());

  // A parent revoked where this daemon did not revoke it (another daemon,
  // straight in the database): the child is refused once its cache lapses.
  const p = await mk(op.token, {});
  const ch = await mk(p.token, {});
  assert.equal((await core.request('GET', '/api/v1/me', { token: ch.token })).status, 200);
  db.sql(`UPDATE api_tokens SET revoked_at = now() WHERE id = '${p.id}'`);
  await new Promise((res) => setTimeout(res, 3200));
  assert.equal((await core.request('GET', '/api/v1/me', { token: ch.token })).status, 401);
});

test('finding 6: read-only callers never cause a write or an outbound connection', async () => {
  const viewer = await scopedUser('viewer', undefined);
  const metricsGuest = await guestLink(['view:metrics'], undefined);
  const containersGuest = await guestLink(['view:containers', 'view:audit'], undefined);
  const before = db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${lab.id}'`);
  for (const token of [viewer.token, metricsGuest, containersGuest]) {
    const r = await core.request('POST', `/api/v1/nodes/${lab.id}/check`, { token });
    assert.equal(r.status, 403, r.text);
  }
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${lab.id}'`), before, 'no node event');
  const op = await scopedUser('operator', undefined);
  let r = await core.request('POST', `/api/v1/nodes/${lab.id}/check`, { token: op.token });
  assert.equal(r.status, 200, r.text);
  // A checkpoint asked for by a reader is signed for it, never stored.
  await core.request('POST', '/api/v1/annotations', { json: { message: 'move the head' } });
  const stored = db.sql('SELECT count(*) FROM checkpoints');
  for (const token of [viewer.token, containersGuest]) {
    r = await core.request('GET', '/api/v1/audit/checkpoint', { token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.algorithm, 'ed25519');
  }
  assert.equal(db.sql('SELECT count(*) FROM checkpoints'), stored, 'readers stored no checkpoint');
  r = await core.request('GET', '/api/v1/audit/checkpoint', { token: op.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(Number(db.sql('SELECT count(*) FROM checkpoints')), Number(stored) + 1, 'an operator\'s is stored');
  // Every mutating route of the table: a viewer holds none but its own
  // credential's (logout, password), a guest none at all.
  const { runCore } = await import('./lib/harness.mjs');
  const routes = JSON.parse(runCore(['routes']).stdout);
  const me = await core.request('GET', '/api/v1/me', { token: viewer.token });
  assert.equal(me.status, 200, me.text);
  for (const rt of routes.filter((x) => x.method !== 'GET' && !['public', 'agent'].includes(x.permission))) {
    if (rt.permission !== 'authenticated') assert.ok(!me.body.permissions.includes(rt.permission), `viewer holds ${rt.permission} for ${rt.method} ${rt.path}`);
    const path = rt.path.replace(/\{\*?([a-z_]+)\}/g, (_, n) => (n === 'id' ? lab.id : 'x'));
    for (const g of [metricsGuest, containersGuest]) {
      const r2 = await core.request(rt.method, path, { token: g, json: {} });
      assert.equal(r2.status, 403, `guest ${rt.method} ${path}: ${r2.status} ${r2.text}`);
    }
  }
});

test('finding 7: node hosts must resolve into --node-allowed-networks; the default refuses loopback and metadata', async () => {
  const { createServer } = await import('node:net');
  // A second daemon with the default (no flag): the harness's 127.0.0.0/8 removed.
  const d2 = await startCore({ db, admin: true, dataDir: core.dataDir, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_NODE_ALLOWED_NETWORKS: '' } });
  // Connections reaching the sshd's port, counted by a relay-free check:
  // nothing may connect, so count accepts on a listening decoy instead.
  let accepted = 0;
  const decoy = createServer((c) => { accepted++; c.destroy(); });
  await new Promise((r) => decoy.listen(0, '127.0.0.1', r));
  const decoyPort = decoy.address().port;
  try {
    for (const host of ['127.0.0.1', 'localhost', '127.1.2.3', '169.254.169.254', '::1', '::ffff:127.0.0.1', '0.0.0.0']) {
      const r = await d2.request('POST', '/api/v1/nodes', {
        json: { name: `n-${accepted}-${Math.random().toString(16).slice(2, 8)}`, host, port: decoyPort, ssh_user: 'root', private_key: sshd.key },
      });
      assert.equal(r.status, 422, `${host}: ${r.text}`);
      assert.equal(r.body.error.field ?? 'host', 'host');
      assert.match(r.body.error.message, /node-allowed-networks/, r.text);
      assert.ok(!r.text.includes('PRIVATE KEY'));
    }
    assert.equal(accepted, 0, 'no connection was made to a refused address');
    // An update that moves an allowed node onto a refused address is refused too.
    const r = await d2.request('PATCH', `/api/v1/nodes/${lab.id}`, { json: { host: '169.254.169.254' } });
    assert.equal(r.status, 422, r.text);
    assert.equal(db.sql(`SELECT host FROM nodes WHERE id = '${lab.id}'`), '127.0.0.1');
    // And the checks and commands of an existing loopback node are refused by this daemon.
    const e = await d2.request('POST', `/api/v1/nodes/${lab.id}/exec`, { json: { command: 'true' } });
    assert.equal(e.status, 422, e.text);
  } finally {
    decoy.close();
    await d2.stop();
  }
  // A flag that names other networks refuses loopback as well; "any" allows it.
  const d3 = await startCore({ db, admin: true, dataDir: core.dataDir, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_NODE_ALLOWED_NETWORKS: '10.0.0.0/8,any' } });
  try {
    const r = await d3.request('POST', `/api/v1/nodes/${lab.id}/exec`, { json: { command: 'true' } });
    assert.equal(r.status, 200, r.text);
  } finally {
    await d3.stop();
  }
  const d4 = await startCore({ db, admin: true, dataDir: core.dataDir, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_NODE_ALLOWED_NETWORKS: '10.0.0.0/8' } });
  try {
    const r = await d4.request('POST', `/api/v1/nodes/${lab.id}/exec`, { json: { command: 'true' } });
    assert.equal(r.status, 422, r.text);
  } finally {
    await d4.stop();
  }
  // A bad flag stops the daemon at start with a message that names it.
  await assert.rejects(startCore({ db, env: { SERVERBOX_NODE_ALLOWED_NETWORKS: 'not-a-net' } }), /node-allowed-networks/);
});

test('finding 7: a silent port fails the registration with a clear error, the probe is short', async () => {
  const { createServer } = await import('node:net');
  const held = [];
  const silent = createServer((c) => { held.push(c); }); // accepts, never speaks
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const t0 = Date.now();
    const r = await core.request('POST', '/api/v1/nodes', {
      json: { name: 'silent', host: '127.0.0.1', port: silent.address().port, ssh_user: 'root', private_key: sshd.key },
    });
    const took = Date.now() - t0;
    assert.equal(r.status, 502, r.text);
    assert.equal(r.body.error.code, 'ssh_unreachable');
    // Not a timing target: the old probe waited 10 s; this one gives up well before.
    assert.ok(took < 9000, `the probe held the worker ${took} ms`);
  } finally {
    for (const c of held) c.destroy();
    silent.close();
  }
});

test('finding 8: guests see what a node is and how it is doing, never how to reach it', async () => {
  const chk = await core.request('POST', `/api/v1/nodes/${lab.id}/check`);
  assert.equal(chk.status, 200, chk.text);
  const hidden = ['host', 'port', 'ssh_user', 'host_key_fingerprint', 'public_key', 'key_type', 'status_reason', 'pool'];
  for (const scopes of [['view:metrics'], ['view:containers']]) {
    const g = await guestLink(scopes, undefined);
    const one = await core.request('GET', `/api/v1/nodes/${lab.id}`, { token: g });
    assert.equal(one.status, 200, one.text);
    assert.equal(one.body.name, 'lab-1');
    assert.deepEqual(one.body.labels, { env: 'lab', team: 'sec' });
    assert.ok(one.body.status);
    for (const k of hidden) assert.ok(!(k in one.body), `${scopes}: ${k} hidden`);
    assert.ok(!('reason' in (one.body.last_check || {})) && !('uname' in (one.body.last_check || {})));
    assert.ok(!one.text.includes(sshd.fingerprint) && !one.text.includes(String(sshd.port)), one.text);
    const list = await core.request('GET', '/api/v1/nodes', { token: g });
    assert.equal(list.status, 200, list.text);
    assert.ok(list.body.items.length >= 2);
    assert.ok(!list.text.includes(sshd.fingerprint) && !list.text.includes('127.0.0.1') && !list.text.includes('"ssh_user"'), list.text);
    // The event history: status changes yes, registration records (host, key) no.
    const h = await core.request('GET', '/api/v1/events/history?topics=nodes&limit=1000', { token: g });
    assert.equal(h.status, 200, h.text);
    assert.ok(!h.body.events.some((e) => ['node.registered', 'node.updated', 'node.exec'].includes(e.type)), h.text.slice(0, 500));
    assert.ok(!h.text.includes(sshd.fingerprint));
  }
  // Viewers still see the connection settings, and an auditor (view:audit) reads the records as they are.
  const viewer = await scopedUser('viewer', undefined);
  const v = await core.request('GET', `/api/v1/nodes/${lab.id}`, { token: viewer.token });
  assert.equal(v.body.host, '127.0.0.1');
  const auditor = await guestLink(['view:audit'], undefined);
  const a = await core.request('GET', `/api/v1/audit?type=node.registered&stream=node/${lab.id}`, { token: auditor });
  assert.equal(a.body.events[0].data.host, '127.0.0.1');
});

test('a scoped admin\'s guest link sees no more than the admin', async () => {
  const admin = await scopedUser('admin', { env: 'lab' });
  let r = await core.request('POST', '/api/v1/guest-links', { token: admin.token, json: { scopes: ['view:metrics'], ttl_seconds: 600, node_labels: { env: 'prod' } } });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field ?? 'node_labels', 'node_labels');
  r = await core.request('POST', '/api/v1/guest-links', { token: admin.token, json: { scopes: ['view:metrics'], ttl_seconds: 600 } });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.body.node_labels, { env: 'lab' }, 'the creator\'s scope is taken');
  const l = await core.request('GET', '/api/v1/nodes', { token: r.body.token });
  assert.deepEqual(l.body.items.map((n) => n.name), ['lab-1']);
});
