// Stacks refuse bad input clearly and change nothing: broken YAML (line and
// column), unknown keys (their path), hostile names, oversized files, policy
// keys as an operator (403 naming the key), and at deploy time an image that
// does not exist or a host port already taken (the deploy fails with the
// reason; nothing of the stack is left on the node). Scoped callers and
// guests see only what they may.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createDatabase, startCore, createUser, login } from './lib/harness.mjs';
import { startEngine, waitDeploy } from './lib/stacks.mjs';

let eng, db, core, opToken;

before(async () => {
  eng = startEngine();
  db = createDatabase('stacksbad');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_STACK_BIND_BASE: '/srv/stacks' } });
  opToken = (await login(core, createUser(db, { role: 'operator' }))).token;
});

after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    eng.stop();
  }
});

const ok = 'services:\n  web:\n    image: local/busybox:1\n    command: ["sleep", "600"]\n';
const create = (json, token) => core.request('POST', '/api/v1/stacks', token ? { json, token } : { json });
const nothingOnNode = (project) => {
  assert.equal(eng.project(project).length, 0, `containers of ${project} left`);
  assert.equal(eng.docker('network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`), '');
  assert.equal(eng.docker('volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`), '');
};

test('broken YAML: 422 with line and column', async () => {
  const r = await create({ name: 'bad1', node_id: 'local', compose: 'services:\n  web:\n    image: [local/busybox:1\n' });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field, 'compose');
  assert.match(r.body.error.message, /^line \d+, column \d+: /);
  const tab = await create({ name: 'bad1', node_id: 'local', compose: 'services:\n\tweb: {}\n' });
  assert.equal(tab.status, 422, tab.text);
  assert.match(tab.body.error.message, /line 2, column 1/);
  const dup = await create({ name: 'bad1', node_id: 'local', compose: 'services:\n  web: {image: a}\n  web: {image: b}\n' });
  assert.equal(dup.status, 422);
  assert.match(dup.body.error.message, /line 3, column 3: duplicate key services\.web/);
  const bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' +
    Array.from({ length: 8 }, (_, i) => `b${i}: &b${i} [${Array(10).fill(i ? `*b${i - 1}` : '*a').join(',')}]`).join('\n') +
    '\nservices: {web: {image: x}}\n';
  const b = await create({ name: 'bad1', node_id: 'local', compose: bomb });
  assert.equal(b.status, 422, b.text);
  assert.match(b.body.error.message, /aliases are expanded/);
  const deep = await create({ name: 'bad1', node_id: 'local', compose: `services: ${'['.repeat(100000)}` });
  assert.equal(deep.status, 422);
  assert.match(deep.body.error.message, /nesting/);
  const big = await create({ name: 'bad1', node_id: 'local', compose: `# ${'x'.repeat(300 * 1024)}\n${ok}` });
  assert.equal(big.status, 413, big.text);
  assert.equal((await core.request('GET', '/api/v1/stacks')).body.stacks.length, 0);
});

test('unknown keys, YAML 1.1 booleans, unset variables: 422 naming the key path', async () => {
  const r = await create({ name: 'bad2', node_id: 'local', compose: `${ok}    sysctls:\n      net.core.somaxconn: 1024\n` });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field, 'services.web.sysctls');
  assert.match(r.body.error.message, /^services\.web\.sysctls: not supported \(line 5, column 5\)/);
  const b = await create({ name: 'bad2', node_id: 'local', compose: `${ok}    restart: no\n` });
  assert.equal(b.status, 422);
  assert.equal(b.body.error.field, 'services.web.restart');
  assert.match(b.body.error.message, /quote it/);
  const v = await create({ name: 'bad2', node_id: 'local', compose: 'services:\n  web:\n    image: local/busybox:${TAG}\n' });
  assert.equal(v.status, 422);
  assert.match(v.body.error.message, /variable TAG is not set/);
  const extra = await create({ name: 'bad2', node_id: 'local', compose: ok, colour: 'red' });
  assert.equal(extra.status, 422);
  const vars = await create({ name: 'bad2', node_id: 'local', compose: ok, variables: { 'A-B': 'x' } });
  assert.equal(vars.status, 422);
  assert.equal(vars.body.error.field, 'variables.A-B');
});

test('hostile names are refused', async () => {
  for (const name of ['../x', 'a;b', 'A', '', 'x'.repeat(64), 'a b', '$(id)']) {
    const r = await create({ name, node_id: 'local', compose: ok });
    assert.equal(r.status, 422, `${name}: ${r.text}`);
    assert.equal(r.body.error.field, 'name');
  }
  for (const svc of ['../x', 'a;b', 'a/b']) {
    const r = await create({ name: 'bad3', node_id: 'local', compose: `services:\n  "${svc}":\n    image: local/busybox:1\n` });
    assert.equal(r.status, 422, r.text);
    assert.match(r.body.error.message, /bad service name/);
  }
  const node = await create({ name: 'bad3', node_id: '../../etc', compose: ok });
  assert.equal(node.status, 422);
  assert.equal(node.body.error.field, 'node_id');
  nothingOnNode('bad3');
});

test('policy keys as an operator: 403 naming the key, nothing created; an admin may', async () => {
  const cases = [
    ['    privileged: true\n', 'services.web.privileged'],
    ['    network_mode: host\n', 'services.web.network_mode'],
    ['    pid: host\n', 'services.web.pid'],
    ['    cap_add: [NET_ADMIN]\n', 'services.web.cap_add'],
    ['    devices: ["/dev/null:/dev/x"]\n', 'services.web.devices'],
    ['    volumes: ["/etc:/host-etc:ro"]\n', 'services.web.volumes[0]'],
  ];
  for (const [extra, field] of cases) {
    const r = await create({ name: 'pol', node_id: 'local', compose: ok + extra }, opToken);
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error.field, field);
    assert.match(r.body.error.message, /needs an admin/);
  }
  // inside --stack-bind-base an operator may bind
  const inside = await create({ name: 'pol', node_id: 'local', compose: `${ok}    volumes: ["/srv/stacks/pol:/d"]\n` }, opToken);
  assert.equal(inside.status, 201, inside.text);
  // an operator cannot change it into a privileged one either
  const p = await core.request('PATCH', `/api/v1/stacks/${inside.body.id}`, { token: opToken, json: { compose: `${ok}    privileged: true\n` } });
  assert.equal(p.status, 403, p.text);
  assert.equal((await core.request('GET', `/api/v1/stacks/${inside.body.id}`)).body.revision, 1);
  // an admin may create a privileged stack; an operator may then not deploy it
  const adm = await create({ name: 'pol2', node_id: 'local', compose: `${ok}    privileged: true\n` });
  assert.equal(adm.status, 201, adm.text);
  const d = await core.request('POST', `/api/v1/stacks/${adm.body.id}/deploy`, { token: opToken, json: {} });
  assert.equal(d.status, 403, d.text);
  assert.equal(d.body.error.field, 'services.web.privileged');
  nothingOnNode('pol');
  nothingOnNode('pol2');
});

test('an image that does not exist: the deploy fails naming it, nothing on the node', async () => {
  const c = await create({ name: 'noimg', node_id: 'local', compose: 'services:\n  web:\n    image: local/nope:404\n  db:\n    image: local/busybox:1\n    command: ["sleep", "60"]\nvolumes: {v: {}}\n' });
  assert.equal(c.status, 201, c.text);
  const d = await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { json: {} });
  assert.equal(d.status, 202, d.text);
  const rev = await waitDeploy(core, c.body.id, 1);
  assert.equal(rev.deploy_status, 'failed');
  assert.match(rev.deploy_reason, /services\.web\.image: image local\/nope:404 cannot be pulled/);
  nothingOnNode('noimg');
  const plan = await core.request('POST', `/api/v1/stacks/${c.body.id}/plan`, { json: {} });
  assert.equal(plan.status, 200, plan.text);
  assert.deepEqual(plan.body.plan.images_to_pull, ['web']);
});

test('a host port already taken: the deploy fails with the reason, nothing of the stack is left', async () => {
  const srv = createServer(() => {});
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  try {
    const c = await create({ name: 'taken', node_id: 'local', compose: `services:\n  web:\n    image: local/busybox:1\n    command: ["sleep", "600"]\n    ports: ["127.0.0.1:${port}:80"]\n` });
    assert.equal(c.status, 201, c.text);
    await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { json: {} });
    const rev = await waitDeploy(core, c.body.id, 1);
    assert.equal(rev.deploy_status, 'failed');
    assert.match(rev.deploy_reason, new RegExp(`^web: a published host port is already in use on the node \\(127\\.0\\.0\\.1:${port}\\)`));
    nothingOnNode('taken');
    const g = await core.request('GET', `/api/v1/stacks/${c.body.id}`);
    assert.equal(g.body.status, 'failed');
    assert.match(g.body.status_reason, /already/);
  } finally {
    srv.close();
  }
});

test('a caller scoped to other nodes does not see the stack; guests need view:stacks', async () => {
  const c = await create({ name: 'scoped', node_id: 'local', compose: ok });
  assert.equal(c.status, 201, c.text);
  const u = createUser(db, { role: 'operator' });
  const users = await core.request('GET', '/api/v1/users');
  const id = users.body.users.find((x) => x.username === u.username).id;
  const p = await core.request('PATCH', `/api/v1/users/${id}`, { json: { node_labels: { env: 'prod' } } });
  assert.equal(p.status, 200, p.text);
  const t = (await login(core, u)).token;
  const list = await core.request('GET', '/api/v1/stacks', { token: t });
  assert.equal(list.status, 200);
  assert.equal(list.body.stacks.length, 0);
  assert.equal((await core.request('GET', `/api/v1/stacks/${c.body.id}`, { token: t })).status, 404);
  assert.equal((await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { token: t, json: {} })).status, 404);
  assert.equal((await create({ name: 'scoped2', node_id: 'local', compose: ok }, t)).status, 422);

  const g1 = await core.request('POST', '/api/v1/guest-links', { json: { scopes: ['view:stacks'], ttl_seconds: 600 } });
  assert.equal(g1.status, 201, g1.text);
  const g2 = await core.request('POST', '/api/v1/guest-links', { json: { scopes: ['view:metrics'], ttl_seconds: 600 } });
  const seen = await core.request('GET', '/api/v1/stacks', { token: g1.body.token });
  assert.equal(seen.status, 200, seen.text);
  assert.ok(seen.body.stacks.some((s) => s.id === c.body.id));
  assert.equal((await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { token: g1.body.token, json: {} })).status, 403);
  assert.equal((await core.request('GET', '/api/v1/stacks', { token: g2.body.token })).status, 403);
});

test('a route on a daemon without Caddy (--app-caddy-admin empty): 422 naming the route, nothing stored', async () => {
  const r = await create({ name: 'routed', node_id: 'local', compose: `${ok}    x-serverbox: {route: {host: web.example.com, port: 80}}\n` });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field, 'services.web.x-serverbox.route');
  assert.match(r.body.error.message, /routing is off/);
  assert.equal(db.sql("SELECT count(*) FROM stacks WHERE name = 'routed'"), '0');
});
