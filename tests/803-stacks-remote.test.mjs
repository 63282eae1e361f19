// A stack on a node reached over SSH (a private dockerd behind a real sshd,
// no local engine): deploy, a start-first update and a rollback go through
// the SSH bridge, each checked with the docker CLI against that dockerd; a
// caller scoped to other node labels does not see the stack.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, startCore, createUser, login } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { startEngine, waitDeploy } from './lib/stacks.mjs';

let eng, db, core, sshd, node;

before(async () => {
  eng = startEngine();
  sshd = startSshd();
  db = createDatabase('stacksremote');
  core = await startCore({
    db, admin: true,
    env: {
      SERVERBOX_DOCKER_SOCKET: join(eng.dir, 'no-local-engine.sock'),
      SERVERBOX_NODE_DOCKER_SOCKET: eng.sock,
      SERVERBOX_NODE_CHECK_INTERVAL: '0',
    },
  });
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name: 'remote-1', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels: { env: 'prod' }, docker: 'ssh' },
  });
  assert.equal(r.status, 201, r.text);
  node = r.body;
});

after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    sshd?.remove();
    eng.stop();
  }
});

const compose = (v) => `services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "mkdir -p /w && echo r${v} > /w/index.html && exec httpd -f -p 8080 -h /w"]
    healthcheck: {test: ["CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"], interval: 500ms, retries: 3}
    volumes: ["data:/data"]
  worker:
    image: local/busybox:1
    command: ["sleep", "3600"]
    depends_on: {web: {condition: service_healthy}}
volumes: {data: {}}
`;

test('deploy, update start-first and roll back on a node over SSH', async () => {
  const c = await core.request('POST', '/api/v1/stacks', { json: { name: 'far', node_id: node.id, compose: compose(1) } });
  assert.equal(c.status, 201, c.text);
  const id = c.body.id;
  assert.equal((await core.request('POST', `/api/v1/stacks/${id}/deploy`, { json: {} })).status, 202);
  const r1 = await waitDeploy(core, id, 1);
  assert.equal(r1.deploy_status, 'deployed', JSON.stringify(r1));
  assert.deepEqual(eng.project('far').map((x) => x.Name).sort(), ['/far_web_1', '/far_worker_1']);
  assert.equal(eng.inspect('far_web_1').Config.Labels['com.docker.compose.project'], 'far');
  assert.equal(eng.docker('exec', 'far_worker_1', 'busybox', 'wget', '-q', '-O-', 'http://web:8080/'), 'r1');
  const ps = eng.compose('far', compose(1), 'ps');
  assert.match(ps, /far_web_1/);

  await core.request('PATCH', `/api/v1/stacks/${id}`, { json: { compose: compose(2) } });
  const plan = await core.request('POST', `/api/v1/stacks/${id}/plan`, { json: {} });
  assert.equal(plan.status, 200, plan.text);
  assert.equal(plan.body.plan.services.find((s) => s.service === 'web').strategy, 'start-first');
  assert.equal((await core.request('POST', `/api/v1/stacks/${id}/deploy`, { json: {} })).status, 202);
  assert.equal((await waitDeploy(core, id, 2)).deploy_status, 'deployed');
  assert.equal(eng.docker('exec', 'far_worker_1', 'busybox', 'wget', '-q', '-O-', 'http://web:8080/'), 'r2');

  const rb = await core.request('POST', `/api/v1/stacks/${id}/rollback`, { json: { revision: 1 } });
  assert.equal(rb.status, 202, rb.text);
  assert.equal((await waitDeploy(core, id, 3)).deploy_status, 'deployed');
  assert.equal(eng.docker('exec', 'far_worker_1', 'busybox', 'wget', '-q', '-O-', 'http://web:8080/'), 'r1');
  const g = await core.request('GET', `/api/v1/stacks/${id}`);
  assert.equal(g.body.health, 'healthy', g.text);
  assert.equal(g.body.node_id, node.id);

  // a caller scoped to env=staging does not see it
  const u = createUser(db, { role: 'operator' });
  const users = await core.request('GET', '/api/v1/users');
  const uid = users.body.users.find((x) => x.username === u.username).id;
  assert.equal((await core.request('PATCH', `/api/v1/users/${uid}`, { json: { node_labels: { env: 'staging' } } })).status, 200);
  const t = (await login(core, u)).token;
  assert.equal((await core.request('GET', `/api/v1/stacks/${id}`, { token: t })).status, 404);
  assert.equal((await core.request('GET', '/api/v1/stacks', { token: t })).body.stacks.length, 0);
  // and in scope it does
  assert.equal((await core.request('PATCH', `/api/v1/users/${uid}`, { json: { node_labels: { env: 'prod' } } })).status, 200);
  const t2 = (await login(core, u)).token;
  assert.equal((await core.request('GET', `/api/v1/stacks/${id}`, { token: t2 })).status, 200);

  assert.equal((await core.request('DELETE', `/api/v1/stacks/${id}`)).status, 204);
  assert.equal(eng.project('far').length, 0);
});
