// A stack's policy keys (privileged, host namespaces, devices, cap_add, bind
// mounts outside --stack-bind-base) and removing its volumes need the
// permission stacks:admin, not a role name: a custom role granted it may
// use them (and its deploy runs), a custom role whose name says "admin" but
// lacks it may not (403 naming the key, nothing stored, nothing on the
// node); a token limited below it loses it too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createDatabase, startCore, login } from './lib/harness.mjs';
import { startEngine, waitDeploy } from './lib/stacks.mjs';

let eng, db, core;

before(async () => {
  eng = startEngine();
  db = createDatabase('stacksperm');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: eng.sock } });
});

after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    eng.stop();
  }
});

// A user holding a new custom role; returns its session token.
async function userWith(role, permissions) {
  const r = await core.request('POST', '/api/v1/roles', { json: { name: role, permissions } });
  assert.equal(r.status, 201, r.text);
  const u = { username: `u${randomUUID().slice(0, 8)}`, password: `pw-${randomUUID()}` };
  const made = await core.request('POST', '/api/v1/users', { json: { ...u, role } });
  assert.equal(made.status, 201, made.text);
  return (await login(core, u)).token;
}

const plain = 'services:\n  web:\n    image: local/busybox:1\n    command: ["sleep", "600"]\n';
const capped = `${plain}    cap_add: [NET_ADMIN]\n`;

test('stacks:admin is offered to roles, held by the built-in admin only', async () => {
  const cat = await core.request('GET', '/api/v1/permissions');
  assert.equal(cat.status, 200, cat.text);
  const p = cat.body.permissions.find((x) => x.name === 'stacks:admin');
  assert.ok(p, JSON.stringify(cat.body.permissions.map((x) => x.name)));
  assert.deepEqual(p.builtin_roles, ['admin']);
  assert.match(p.description, /privileged/);
});

test('a custom role granted stacks:admin may use policy keys and remove volumes', async () => {
  const t = await userWith('stackops', ['stacks:read', 'stacks:write', 'stacks:admin']);
  const c = await core.request('POST', '/api/v1/stacks', { token: t, json: { name: 'capped', node_id: 'local', compose: capped } });
  assert.equal(c.status, 201, c.text);
  const d = await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { token: t, json: {} });
  assert.equal(d.status, 202, d.text);
  assert.equal((await waitDeploy(core, c.body.id, 1)).deploy_status, 'deployed');
  const web = eng.project('capped')[0];
  assert.deepEqual(web.HostConfig.CapAdd, ['NET_ADMIN']);
  const down = await core.request('POST', `/api/v1/stacks/${c.body.id}/down`, { token: t, json: { volumes: true } });
  assert.equal(down.status, 200, down.text);
  assert.equal(eng.project('capped').length, 0);
});

test('a custom role named like an admin but without stacks:admin may not', async () => {
  // "admin" itself is the built-in role's name: no custom role takes it
  const taken = await core.request('POST', '/api/v1/roles', { json: { name: 'admin', permissions: ['stacks:write'] } });
  assert.ok([409, 422].includes(taken.status), taken.text);
  const t = await userWith('stack-admin', ['stacks:read', 'stacks:write', 'stacks:delete']);
  for (const [compose, field] of [[capped, 'services.web.cap_add'], [`${plain}    privileged: true\n`, 'services.web.privileged'],
    [`${plain}    volumes: ["/etc:/x:ro"]\n`, 'services.web.volumes[0]']]) {
    const r = await core.request('POST', '/api/v1/stacks', { token: t, json: { name: 'nope', node_id: 'local', compose } });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error.field, field);
    assert.match(r.body.error.message, /stacks:admin/);
  }
  assert.equal(db.sql("SELECT count(*) FROM stacks WHERE name = 'nope'"), '0');
  // a plain stack is fine; its volumes are not the role's to remove, a
  // privileged revision is not its to deploy
  const c = await core.request('POST', '/api/v1/stacks', { token: t, json: { name: 'plain', node_id: 'local', compose: plain } });
  assert.equal(c.status, 201, c.text);
  const v = await core.request('POST', `/api/v1/stacks/${c.body.id}/down`, { token: t, json: { volumes: true } });
  assert.equal(v.status, 403, v.text);
  assert.equal(v.body.error.field, 'volumes');
  // nor through a delete: the same rule holds there, and the stack stays
  const del = await core.request('DELETE', `/api/v1/stacks/${c.body.id}?volumes=true`, { token: t });
  assert.equal(del.status, 403, del.text);
  assert.equal(del.body.error.field, 'volumes');
  assert.equal((await core.request('GET', `/api/v1/stacks/${c.body.id}`)).status, 200);
  const adminEdit = await core.request('PATCH', `/api/v1/stacks/${c.body.id}`, { json: { compose: capped } });
  assert.equal(adminEdit.status, 200, adminEdit.text);
  const d = await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { token: t, json: {} });
  assert.equal(d.status, 403, d.text);
  assert.equal(d.body.error.field, 'services.web.cap_add');
  assert.equal(eng.project('plain').length, 0);
});

test('an admin\'s token limited to the operator role loses stacks:admin', async () => {
  const tok = await core.request('POST', '/api/v1/tokens', { json: { name: 'op-limited', role: 'operator' } });
  assert.equal(tok.status, 201, tok.text);
  const r = await core.request('POST', '/api/v1/stacks', { token: tok.body.token, json: { name: 'nope2', node_id: 'local', compose: capped } });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.error.field, 'services.web.cap_add');
});
