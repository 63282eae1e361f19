// Custom roles (issue #20): an admin defines a role as a set of the
// permissions the route table declares and gives it to users and tokens;
// built-in roles cannot be changed; every change is an event. The walk is
// generated from the route table (`serverbox-core routes`): a role with only
// containers:read and logs:read can list containers and tail logs (against
// a real engine) and gets 403 on every route that needs anything else
// (authenticated and self:read, which every custom role holds, excepted).
// A token's permissions are its role's and its owner's, both; node label
// scope still holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createDatabase, login, runCore, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openSse } from './lib/sse.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
const IMPLICIT = ['authenticated', 'self:read'];
let dir, sock, db, core, routes;

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  const out = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' });
  sock = out.match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  db = createDatabase('roles');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock } });
  routes = JSON.parse(runCore(['routes']).stdout);
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name: 'talker', image: 'local/busybox:1', command: ['sh', '-c', 'i=0; while true; do echo said$i; i=$((i+1)); sleep 0.2; done'] },
  });
  assert.equal(c.status, 201, c.text);
});

after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    execFileSync(DOCKERD, ['stop', dir]);
  }
});

async function newUser(role, extra = {}) {
  const u = { username: `r${randomUUID().slice(0, 8)}`, password: `pw-${randomUUID()}`, role, ...extra };
  const r = await core.request('POST', '/api/v1/users', { json: u });
  assert.equal(r.status, 201, r.text);
  return { ...u, id: r.body.id, token: (await login(core, u)).token };
}

function eventsOfType(type) {
  const rows = db.sql(`SELECT body FROM events WHERE type = '${type}' ORDER BY seq`);
  return rows ? rows.split('\n').map((l) => JSON.parse(l)) : [];
}

test('define, read, change and delete a custom role; bad input changes nothing', async () => {
  const bad = [
    [{ name: 'admin', permissions: ['logs:read'] }, 'name'],
    [{ name: 'Bad Name', permissions: ['logs:read'] }, 'name'],
    [{ name: 'x'.repeat(33), permissions: [] }, 'name'],
    [{ name: 'nope', permissions: ['logs:write'] }, 'permissions'],
    [{ name: 'nope', permissions: ['public'] }, 'permissions'],
    [{ name: 'nope', permissions: 'logs:read' }, 'permissions'],
    [{ name: 'nope' }, 'permissions'],
    [{ name: 'nope', permissions: [], description: 'a\u0001b' }, 'description'],
    [{ name: 'nope', permissions: [], colour: 'red' }, 'colour'],
  ];
  const before = db.sql('SELECT max(seq) FROM events');
  for (const [json, field] of bad) {
    const r = await core.request('POST', '/api/v1/roles', { json });
    assert.equal(r.status, 422, `${JSON.stringify(json)}: ${r.text}`);
    assert.match(r.text, new RegExp(field), r.text);
  }
  assert.equal(db.sql("SELECT count(*) FROM roles"), '0');
  assert.equal(db.sql("SELECT count(*) FROM events WHERE type LIKE 'role.%'"), '0');
  void before;

  const r = await core.request('POST', '/api/v1/roles', {
    json: { name: 'deployer', description: 'ships stacks', permissions: ['stacks:write', 'stacks:read', 'stacks:read'] },
  });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.body.permissions, ['stacks:read', 'stacks:write']);
  assert.deepEqual(r.body.effective_permissions, ['authenticated', 'self:read', 'stacks:read', 'stacks:write']);
  assert.equal(r.body.builtin, false);
  assert.equal((await core.request('POST', '/api/v1/roles', { json: { name: 'deployer', permissions: [] } })).status, 409);

  const list = await core.request('GET', '/api/v1/roles');
  assert.equal(list.status, 200, list.text);
  assert.deepEqual(list.body.roles.map((x) => x.name), ['admin', 'operator', 'viewer', 'deployer']);
  assert.ok(list.body.roles.find((x) => x.name === 'viewer').permissions.includes('logs:read'));

  const cat = await core.request('GET', '/api/v1/permissions');
  assert.equal(cat.status, 200, cat.text);
  const logs = cat.body.permissions.find((p) => p.name === 'logs:read');
  assert.match(logs.description, /log/);
  assert.ok(logs.routes.includes('GET /api/v1/nodes/{id}/containers/{cid}/logs'), JSON.stringify(logs));
  assert.deepEqual(logs.builtin_roles, ['admin', 'operator', 'viewer']);
  assert.ok(!cat.body.permissions.some((p) => ['public', 'agent', ...IMPLICIT].includes(p.name)));
  // every permission the route table uses (but the implicit and pseudo ones) is offered, with a description
  for (const p of new Set(routes.map((x) => x.permission))) {
    if (['public', 'agent', ...IMPLICIT].includes(p)) continue;
    const row = cat.body.permissions.find((x) => x.name === p);
    assert.ok(row, `${p} is not in the catalog`);
    assert.ok(row.description.length > 0 || row.routes.length > 0, p);
  }

  // built-in roles stay as they are
  for (const name of ['admin', 'operator', 'viewer']) {
    assert.equal((await core.request('PATCH', `/api/v1/roles/${name}`, { json: { permissions: [] } })).status, 409);
    assert.equal((await core.request('DELETE', `/api/v1/roles/${name}`)).status, 409);
  }
  assert.equal((await core.request('PATCH', '/api/v1/roles/ghost', { json: { permissions: [] } })).status, 404);
  assert.equal((await core.request('PATCH', '/api/v1/roles/deployer', { json: { permissions: ['nope:x'] } })).status, 422);

  const p = await core.request('PATCH', '/api/v1/roles/deployer', { json: { description: 'ships', permissions: ['stacks:read'] } });
  assert.equal(p.status, 200, p.text);
  assert.deepEqual(p.body.permissions, ['stacks:read']);
  assert.equal(p.body.description, 'ships');

  // a user with an unknown role is refused; with the custom one, made
  const u = { username: `d${randomUUID().slice(0, 8)}`, password: `pw-${randomUUID()}` };
  const refused = await core.request('POST', '/api/v1/users', { json: { ...u, role: 'ghost' } });
  assert.equal(refused.status, 422, refused.text);
  assert.match(refused.text, /role/);
  const made = await core.request('POST', '/api/v1/users', { json: { ...u, role: 'deployer' } });
  assert.equal(made.status, 201, made.text);
  assert.equal(made.body.role, 'deployer');
  const held = await core.request('DELETE', '/api/v1/roles/deployer');
  assert.equal(held.status, 409, held.text);
  assert.match(held.body.error.message, /1 user/);
  assert.equal((await core.request('PATCH', `/api/v1/users/${made.body.id}`, { json: { role: 'viewer' } })).status, 200);
  assert.equal((await core.request('DELETE', '/api/v1/roles/deployer')).status, 204);
  assert.equal((await core.request('GET', '/api/v1/roles/deployer')).status, 404);

  // evented, by the admin
  const types = ['role.created', 'role.updated', 'role.deleted'];
  for (const t of types) {
    const evs = eventsOfType(t);
    assert.equal(evs.length, 1, t);
    assert.equal(evs[0].stream, 'role/deployer');
    assert.equal(evs[0].actor.name, core.admin.username);
  }
  assert.deepEqual(eventsOfType('role.created')[0].data.permissions, ['stacks:read', 'stacks:write']);
});

test('a role with containers:read and logs:read: containers and logs, 403 everywhere else (from the route table)', async () => {
  const r = await core.request('POST', '/api/v1/roles', { json: { name: 'logreader', permissions: ['containers:read', 'logs:read'] } });
  assert.equal(r.status, 201, r.text);
  const user = await newUser('logreader');
  const me = await core.request('GET', '/api/v1/me', { token: user.token });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.role, 'logreader');
  assert.deepEqual(me.body.permissions, ['authenticated', 'self:read', 'containers:read', 'logs:read']);

  // It lists containers and tails logs (JSON lines and the follow stream).
  const list = await core.request('GET', '/api/v1/containers', { token: user.token });
  assert.equal(list.status, 200, list.text);
  assert.ok(list.body.containers.some((c) => c.name === 'talker'), list.text);
  await waitFor(async () => {
    const l = await core.request('GET', '/api/v1/nodes/local/containers/talker/logs?tail=5', { token: user.token });
    return l.status === 200 && /said\d+/.test(l.text);
  }, { what: 'log lines as the custom role', timeout: 30000 });
  const s = openSse(core.base, '/api/v1/nodes/local/containers/talker/logs?follow=1&tail=0', { token: user.token });
  await s.ready;
  assert.equal(s.status, 200, s.errorBody);
  await waitFor(() => s.events.some((e) => /said\d+/.test(e.data || '')), { what: 'a followed log line', timeout: 30000 });
  s.close();

  // Its own token (the role by default) holds the same.
  const t = await core.request('POST', '/api/v1/tokens', { token: user.token, json: { name: 'ci' } });
  assert.equal(t.status, 403, t.text); // tokens:manage is not in the role
  const tok = await core.request('POST', '/api/v1/tokens', { json: { name: 'lr', role: 'logreader' } });
  assert.equal(tok.status, 201, tok.text);

  const held = new Set(['containers:read', 'logs:read', ...IMPLICIT]);
  const failures = [];
  const ordered = [...routes].sort((a, b) => (a.path.endsWith('/logout') ? 1 : 0) - (b.path.endsWith('/logout') ? 1 : 0));
  for (const cred of [tok.body.token, user.token]) {
    for (const rt of ordered) {
      if (rt.permission === 'public' || rt.permission === 'agent') continue;
      const path = rt.path.replace(/\{\*?([a-z_]+)\}/g, (_, n) => (n === 'id' ? 'local' : n === 'cid' ? 'talker' : randomUUID()));
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 15000);
      let status;
      try {
        const headers = { Authorization: `Bearer ${cred}` };
        let body;
        if (rt.takes_body) { headers['Content-Type'] = 'application/json'; body = '{}'; }
        const res = await fetch(core.base + path, { method: rt.method, headers, body, signal: ac.signal });
        status = res.status;
        await res.body?.cancel();
      } finally { clearTimeout(timer); }
      const ok = held.has(rt.permission) ? status !== 401 && status !== 403 && status < 500 : status === 403;
      if (!ok) failures.push(`${rt.method} ${rt.path} [${rt.permission}]: ${status}`);
    }
  }
  assert.deepEqual(failures, []);
  // the container is still there: nothing the role was refused happened
  const after = await core.request('GET', '/api/v1/nodes/local/containers/talker');
  assert.equal(after.body.State.Running, true);
});

test('a token holds its role and its owner\'s, both; changes take effect at once; node scope holds', async () => {
  await core.request('POST', '/api/v1/roles', { json: { name: 'support', permissions: ['containers:read', 'logs:read', 'tokens:manage', 'images:read'] } });
  const op = await newUser('operator');
  // an operator's viewer token, then the operator becomes 'support'
  const vt = await core.request('POST', '/api/v1/tokens', { token: op.token, json: { name: 'v', role: 'viewer' } });
  assert.equal(vt.status, 201, vt.text);
  assert.equal((await core.request('GET', '/api/v1/nodes/local/volumes', { token: vt.body.token })).status, 200);
  assert.equal((await core.request('PATCH', `/api/v1/users/${op.id}`, { json: { role: 'support' } })).status, 200);
  // viewer ∩ support: volumes:read is gone, images:read stays
  assert.equal((await core.request('GET', '/api/v1/nodes/local/volumes', { token: vt.body.token })).status, 403);
  assert.equal((await core.request('GET', '/api/v1/nodes/local/images', { token: vt.body.token })).status, 200);
  const me = await core.request('GET', '/api/v1/me', { token: vt.body.token });
  assert.deepEqual(me.body.permissions.sort(), ['authenticated', 'containers:read', 'images:read', 'logs:read', 'self:read']);

  // a support user cannot make a token that holds more than support
  const sup = await newUser('support');
  for (const role of ['viewer', 'operator', 'admin']) {
    const r = await core.request('POST', '/api/v1/tokens', { token: sup.token, json: { name: 'x', role } });
    assert.equal(r.status, 422, `${role}: ${r.text}`);
    assert.match(r.text, /role/);
  }
  const st = await core.request('POST', '/api/v1/tokens', { token: sup.token, json: { name: 'ok' } });
  assert.equal(st.status, 201, st.text);
  assert.equal(st.body.role, 'support');

  // editing the role reaches its holders at once (sessions and tokens)
  assert.equal((await core.request('GET', '/api/v1/nodes/local/images', { token: st.body.token })).status, 200);
  const p = await core.request('PATCH', '/api/v1/roles/support', { json: { permissions: ['containers:read', 'logs:read', 'tokens:manage'] } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.users, 2);
  assert.equal((await core.request('GET', '/api/v1/nodes/local/images', { token: st.body.token })).status, 403);
  assert.equal((await core.request('GET', '/api/v1/nodes/local/images', { token: sup.token })).status, 403);
  assert.equal((await core.request('GET', '/api/v1/nodes/local/containers', { token: sup.token })).status, 200);

  // node labels still scope a custom role: the local engine has no labels
  const scoped = await newUser('logreader', { node_labels: { env: 'lab' } });
  const l = await core.request('GET', '/api/v1/containers', { token: scoped.token });
  assert.equal(l.status, 200, l.text);
  assert.ok(!l.body.containers.some((c) => c.name === 'talker'), l.text);
  assert.equal((await core.request('GET', '/api/v1/nodes/local/containers/talker/logs', { token: scoped.token })).status, 404);

  // a non-admin cannot define roles
  assert.equal((await core.request('POST', '/api/v1/roles', { token: sup.token, json: { name: 'mine', permissions: [] } })).status, 403);
});

test('rebuild-projections reproduces the roles table', async () => {
  const q = 'SELECT name, description, permissions, created_at, updated_at FROM roles ORDER BY name';
  const before = db.sql(q);
  assert.ok(before.includes('logreader'));
  await core.stop();
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(db.sql(q), before);
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock } });
});
