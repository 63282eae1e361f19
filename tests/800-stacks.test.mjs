// Compose stacks on the local engine (a private dockerd): a two-service
// stack deployed through the API and checked with the docker CLI and
// Debian's docker-compose; a start-first update polled from inside the
// project network with zero failed requests; an update that never becomes
// healthy (old container keeps serving, rolled_back: true); a rollback to
// revision 1 with its exact config and image; scale; a stop-first service
// with a published port, as its plan said; secrets masked and never in
// events; down keeps volumes; delete.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { createDatabase, startCore, createUser, login, waitFor } from './lib/harness.mjs';
import { startEngine, waitDeploy, eventsOf } from './lib/stacks.mjs';

let eng, db, core;

before(async () => {
  eng = startEngine();
  db = createDatabase('stacks');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_STACK_HEALTH_TIMEOUT: '20' } });
});

after(async () => {
  try {
    if (process.env.SBX_STACKS_LOG) writeFileSync(process.env.SBX_STACKS_LOG, core.log());
    if (core) await core.stop();
  } finally {
    eng.stop();
  }
});

const compose = (version, { healthy = true, timeout = '20s' } = {}) => `version: "3.8"
services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "mkdir -p /w && echo v$$VERSION > /w/index.html && exec httpd -f -p 8080 -h /w"]
    environment:
      VERSION: "${version}"
      PASSWORD: \${PASSWORD}
    volumes:
      - data:/data
    mem_limit: 64m
    cpus: 0.5
    labels:
      tier: front
    healthcheck:
      test: ${healthy ? '["CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]' : '["CMD", "false"]'}
      interval: 500ms
      timeout: 2s
      retries: 2
    x-serverbox:
      health_timeout: ${timeout}
  worker:
    image: local/busybox:1
    command: ["sleep", "3600"]
    depends_on:
      web:
        condition: service_healthy
    deploy:
      resources:
        limits: {memory: 32M}
volumes:
  data: {}
`;

let stackId;

test('create and deploy a two-service stack: containers, labels, network, volume, limits, docker-compose ps', async () => {
  const c = await core.request('POST', '/api/v1/stacks', {
    json: { name: 'shop', node_id: 'local', compose: compose(1), variables: { PASSWORD: { value: 's3cret-pw', secret: true } } },
  });
  assert.equal(c.status, 201, c.text);
  stackId = c.body.id;
  assert.equal(c.body.revision, 1);
  assert.equal(c.body.status, 'created');
  assert.equal(c.body.variables.PASSWORD, '********');

  const plan = await core.request('POST', `/api/v1/stacks/${stackId}/plan`, { json: {} });
  assert.equal(plan.status, 200, plan.text);
  assert.deepEqual(plan.body.plan.services.map((s) => [s.service, s.action]), [['web', 'create'], ['worker', 'create']]);

  const d = await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} });
  assert.equal(d.status, 202, d.text);
  assert.match(d.body.job.id, /^[0-9a-f-]{36}$/);
  assert.equal(d.body.job.kind, 'stack.deploy');
  const rev = await waitDeploy(core, stackId, 1);
  assert.equal(rev.deploy_status, 'deployed', JSON.stringify(rev));
  assert.match(rev.digests.web, /^sha256:/);

  const cs = eng.project('shop');
  assert.deepEqual(cs.map((x) => x.Name).sort(), ['/shop_web_1', '/shop_worker_1']);
  const web = eng.inspect('shop_web_1');
  const worker = eng.inspect('shop_worker_1');
  const L = web.Config.Labels;
  assert.equal(L['com.docker.compose.project'], 'shop');
  assert.equal(L['com.docker.compose.service'], 'web');
  assert.equal(L['com.docker.compose.container-number'], '1');
  assert.equal(L['com.docker.compose.oneoff'], 'False');
  assert.match(L['com.docker.compose.config-hash'], /^[0-9a-f]{64}$/);
  assert.ok(L['com.docker.compose.version']);
  assert.ok(L['com.docker.compose.project.working_dir']);
  assert.ok(L['com.docker.compose.project.config_files']);
  assert.equal(L.tier, 'front');
  assert.equal(web.HostConfig.Memory, 64 * 1024 * 1024);
  assert.equal(web.HostConfig.NanoCpus, 500000000);
  assert.equal(worker.HostConfig.Memory, 32 * 1024 * 1024);
  assert.equal(web.State.Health.Status, 'healthy');
  assert.ok(web.Config.Env.includes('PASSWORD=s3cret-pw'));
  assert.equal(web.Image, rev.digests.web);
  // network and volume, with their labels
  const net = JSON.parse(eng.docker('network', 'inspect', 'shop_default'))[0];
  assert.equal(net.Labels['com.docker.compose.project'], 'shop');
  assert.equal(net.Labels['com.docker.compose.network'], 'default');
  assert.ok(Object.keys(web.NetworkSettings.Networks).includes('shop_default'));
  const vol = JSON.parse(eng.docker('volume', 'inspect', 'shop_data'))[0];
  assert.equal(vol.Labels['com.docker.compose.project'], 'shop');
  assert.equal(vol.Labels['com.docker.compose.volume'], 'data');
  assert.equal(web.Mounts.find((m) => m.Destination === '/data').Name, 'shop_data');
  // worker started only once web was healthy (service_healthy)
  const healthyAt = Date.parse(web.State.Health.Log.find((l) => l.ExitCode === 0).End);
  assert.ok(Date.parse(worker.State.StartedAt) >= healthyAt - 50, `worker ${worker.State.StartedAt} before web healthy`);
  // the worker reaches web by its service name on the project network
  assert.equal(eng.docker('exec', 'shop_worker_1', 'busybox', 'wget', '-q', '-O-', 'http://web:8080/'), 'v1');
  // Debian's docker-compose sees the stack
  const ps = eng.compose('shop', compose(1), 'ps');
  assert.match(ps, /shop_web_1/);
  assert.match(ps, /shop_worker_1/);
  // status per service
  const g = await core.request('GET', `/api/v1/stacks/${stackId}`);
  assert.equal(g.status, 200, g.text);
  assert.equal(g.body.status, 'deployed');
  assert.equal(g.body.deployed_revision, 1);
  assert.equal(g.body.health, 'healthy');
  assert.deepEqual([g.body.services.web.desired, g.body.services.web.running, g.body.services.web.healthy], [1, 1, 1]);
  assert.equal(g.body.variables.PASSWORD, '********');
  // the secret is in no event and no answer
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE body LIKE '%s3cret-pw%'`), '0');
  assert.ok(!g.text.includes('s3cret-pw'));
  const deployed = eventsOf(db, 'stack.deployed');
  assert.equal(deployed.length, 1);
  assert.equal(deployed[0].data.revision, 1);
  assert.equal(deployed[0].data.digests.web, rev.digests.web);
  assert.equal(deployed[0].data.requested_by.kind, 'user');
});

// Polls web from inside the worker container, as a health-aware router
// would: each request goes to the IP (on the project network) of the newest
// running container of the service that the engine reports healthy. Zero
// failures means a healthy container served at every moment of the update:
// the new one was healthy before the old one left. Returns a stop function
// giving {ok, fail, out}.
function pollWeb() {
  let stopped = false, ok = 0, fail = 0;
  const log = [];
  const target = () => {
    const ids = eng.docker('ps', '-q', '--filter', 'label=com.docker.compose.project=shop',
      '--filter', 'label=com.docker.compose.service=web', '--filter', 'health=healthy');
    if (!ids) return null;
    // A container listed by ps may be gone by the time it is inspected (the
    // old one, removed after the new one turned healthy): it is no target.
    const cs = ids.split('\n').map((id) => { try { return eng.inspect(id); } catch { return null; } })
      .filter((c) => c && c.NetworkSettings.Networks.shop_default);
    cs.sort((a, b) => Number(b.Config.Labels['com.docker.compose.container-number']) - Number(a.Config.Labels['com.docker.compose.container-number']));
    return cs[0] ? cs[0].NetworkSettings.Networks.shop_default.IPAddress : null;
  };
  const loop = (async () => {
    while (!stopped) {
      let good = false, ip = null;
      // One immediate second try: the target picked may leave the network
      // between the pick and the request (the drain). A gap in serving
      // fails both tries; a stale pick only the first.
      for (let attempt = 0; attempt < 2 && !good; attempt++) {
        try {
          ip = target();
          good = !!ip && /^v\d+$/.test(eng.docker('exec', 'shop_worker_1', 'busybox', 'wget', '-q', '-O-', `http://${ip}:8080/`));
        } catch (e) { log.push(String(e.message).slice(0, 120)); }
      }
      if (good) ok++; else { fail++; log.push(`fail ${ip}`); }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return { ok, fail, out: log.join('; ').slice(0, 600) };
  };
}

test('a start-first update of web: polled throughout from the project network, zero failed requests', async () => {
  const p = await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: compose(2) } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.revision, 2);
  assert.equal(p.body.variables.PASSWORD, '********'); // kept from revision 1
  const plan = await core.request('POST', `/api/v1/stacks/${stackId}/plan`, { json: {} });
  const web = plan.body.plan.services.find((s) => s.service === 'web');
  assert.equal(web.action, 'recreate');
  assert.equal(web.strategy, 'start-first');
  assert.equal(plan.body.plan.services.find((s) => s.service === 'worker').action, 'unchanged');

  const stop = pollWeb();
  await new Promise((r) => setTimeout(r, 1000));
  const d = await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} });
  assert.equal(d.status, 202, d.text);
  const rev = await waitDeploy(core, stackId, 2);
  await new Promise((r) => setTimeout(r, 1000));
  const { ok, fail, out } = await stop();
  assert.equal(rev.deploy_status, 'deployed', JSON.stringify(rev));
  assert.ok(ok > 10, `only ${ok} requests made (${fail} failed): ${out}`);
  assert.equal(fail, 0, `${fail} failed requests of ${ok + fail}: ${out}`);
  const webs = eng.project('shop').filter((c) => c.Config.Labels['com.docker.compose.service'] === 'web');
  assert.deepEqual(webs.map((c) => c.Name), ['/shop_web_2']);
  assert.equal(eng.docker('exec', 'shop_worker_1', 'busybox', 'wget', '-q', '-O-', 'http://web:8080/'), 'v2');
  assert.equal(eng.inspect('shop_worker_1').State.Running, true); // untouched
  // the diff between the two revisions
  const diff = await core.request('GET', `/api/v1/stacks/${stackId}/diff?from=1&to=2`);
  assert.equal(diff.status, 200, diff.text);
  assert.ok(diff.body.compose.includes('-      VERSION: "1"'), diff.text);
  assert.ok(diff.body.compose.includes('+      VERSION: "2"'), diff.text);
});

test('an update that never becomes healthy: the old container keeps serving, rolled_back: true', async () => {
  const p = await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: compose(3, { healthy: false, timeout: '4s' }) } });
  assert.equal(p.status, 200, p.text);
  const stop = pollWeb();
  const d = await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} });
  assert.equal(d.status, 202, d.text);
  const rev = await waitDeploy(core, stackId, 3);
  const { fail, out } = await stop();
  assert.equal(rev.deploy_status, 'rolled_back', JSON.stringify(rev));
  assert.match(rev.deploy_reason, /not healthy within 4 s/);
  assert.equal(fail, 0, out);
  const webs = eng.project('shop').filter((c) => c.Config.Labels['com.docker.compose.service'] === 'web');
  assert.deepEqual(webs.map((c) => c.Name), ['/shop_web_2']);
  assert.equal(eng.docker('exec', 'shop_worker_1', 'busybox', 'wget', '-q', '-O-', 'http://web:8080/'), 'v2');
  const failed = eventsOf(db, 'stack.deploy_failed').at(-1);
  assert.equal(failed.outcome, 'failure');
  assert.equal(failed.data.rolled_back, true);
  assert.equal(failed.data.revision, 3);
  assert.equal(failed.data.service, 'web');
  const g = await core.request('GET', `/api/v1/stacks/${stackId}`);
  assert.equal(g.body.status, 'failed');
  assert.equal(g.body.deployed_revision, 2);
});

test('roll back to revision 1: its exact config and image, without pulling', async () => {
  const r1 = (await core.request('GET', `/api/v1/stacks/${stackId}/revisions/1`)).body;
  const rb = await core.request('POST', `/api/v1/stacks/${stackId}/rollback`, { json: { revision: 1 } });
  assert.equal(rb.status, 202, rb.text);
  assert.equal(rb.body.revision, 4);
  assert.equal(rb.body.rollback_of, 1);
  const rev = await waitDeploy(core, stackId, 4);
  assert.equal(rev.deploy_status, 'deployed', JSON.stringify(rev));
  assert.equal(rev.rollback_of, 1);
  const r4 = (await core.request('GET', `/api/v1/stacks/${stackId}/revisions/4`)).body;
  assert.equal(r4.compose, r1.compose);
  assert.deepEqual(r4.pinned_digests, r1.digests);
  const web = eng.project('shop').find((c) => c.Config.Labels['com.docker.compose.service'] === 'web');
  assert.equal(web.Image, r1.digests.web);
  assert.ok(web.Config.Env.includes('VERSION=1'));
  assert.ok(web.Config.Env.includes('PASSWORD=s3cret-pw'));
  const hash1 = r1.plan.services.find((s) => s.service === 'web').config_hash;
  assert.equal(web.Config.Labels['com.docker.compose.config-hash'], hash1);
  assert.equal(eng.docker('exec', 'shop_worker_1', 'busybox', 'wget', '-q', '-O-', 'http://web:8080/'), 'v1');
  const list = await core.request('GET', `/api/v1/stacks/${stackId}/revisions`);
  assert.deepEqual(list.body.revisions.map((r) => [r.revision, r.deploy_status]),
    [[4, 'deployed'], [3, 'rolled_back'], [2, 'deployed'], [1, 'deployed']]);
});

test('scale the worker to 2 and back to 1', async () => {
  const s = await core.request('POST', `/api/v1/stacks/${stackId}/services/worker/scale`, { json: { replicas: 2 } });
  assert.equal(s.status, 202, s.text);
  const workers = () => eng.project('shop').filter((c) => c.Config.Labels['com.docker.compose.service'] === 'worker');
  const scaled = async (n) => waitFor(async () => {
    const g = await core.request('GET', `/api/v1/stacks/${stackId}`);
    return g.body.scale.worker === n ? g : null;
  }, { timeout: 30000, what: `scale ${n}` });
  const g = await scaled(2);
  assert.equal(workers().filter((c) => c.State.Running).length, 2);
  assert.equal(g.body.services.worker.desired, 2);
  assert.equal(g.body.services.worker.running, 2);
  const s1 = await core.request('POST', `/api/v1/stacks/${stackId}/services/worker/scale`, { json: { replicas: 1 } });
  assert.equal(s1.status, 202, s1.text);
  await scaled(1);
  assert.equal(workers().length, 1);
  assert.equal(eventsOf(db, 'stack.scaled').length, 2);
  const bad = await core.request('POST', `/api/v1/stacks/${stackId}/services/worker/scale`, { json: { replicas: 99 } });
  assert.equal(bad.status, 422);
  const none = await core.request('POST', `/api/v1/stacks/${stackId}/services/nope/scale`, { json: { replicas: 1 } });
  assert.equal(none.status, 404);
});

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

test('a service with a published host port is recreated stop-first, as its plan said', async () => {
  const port = await freePort();
  const text = (v) => `services:
  site:
    image: local/busybox:1
    command: ["sh", "-c", "mkdir -p /w && echo s${v} > /w/index.html && exec httpd -f -p 80 -h /w"]
    ports: ["127.0.0.1:${port}:80"]
    healthcheck: {test: ["CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:80/"], interval: 500ms, retries: 3}
`;
  const c = await core.request('POST', '/api/v1/stacks', { json: { name: 'pub', node_id: 'local', compose: text(1) } });
  assert.equal(c.status, 201, c.text);
  await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { json: {} });
  assert.equal((await waitDeploy(core, c.body.id, 1)).deploy_status, 'deployed');
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 's1\n');
  await core.request('PATCH', `/api/v1/stacks/${c.body.id}`, { json: { compose: text(2) } });
  const plan = await core.request('POST', `/api/v1/stacks/${c.body.id}/plan`, { json: {} });
  const site = plan.body.plan.services[0];
  assert.equal(site.action, 'recreate');
  assert.equal(site.strategy, 'stop-first');
  assert.ok(site.expected_gap_s > 0);
  assert.match(site.note, /host port/);
  await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { json: {} });
  const rev = await waitDeploy(core, c.body.id, 2);
  assert.equal(rev.deploy_status, 'deployed', JSON.stringify(rev));
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 's2\n');
  const del = await core.request('DELETE', `/api/v1/stacks/${c.body.id}`);
  assert.equal(del.status, 204, del.text);
  assert.equal(eng.project('pub').length, 0);
});

test('stop, start, restart; down keeps volumes, removing them is admin only; delete', async () => {
  assert.equal((await core.request('POST', `/api/v1/stacks/${stackId}/stop`)).status, 200);
  assert.ok(eng.project('shop').every((c) => !c.State.Running));
  assert.equal((await core.request('GET', `/api/v1/stacks/${stackId}`)).body.status, 'stopped');
  assert.equal((await core.request('POST', `/api/v1/stacks/${stackId}/start`)).status, 200);
  assert.ok(eng.project('shop').every((c) => c.State.Running));
  const before = eng.inspect('shop_worker_1').State.StartedAt;
  assert.equal((await core.request('POST', `/api/v1/stacks/${stackId}/services/worker/restart`)).status, 200);
  assert.notEqual(eng.inspect('shop_worker_1').State.StartedAt, before);

  const operator = createUser(db, { role: 'operator' });
  const opToken = (await login(core, operator)).token;
  const deny = await core.request('POST', `/api/v1/stacks/${stackId}/down`, { token: opToken, json: { volumes: true } });
  assert.equal(deny.status, 403, deny.text);
  assert.equal(deny.body.error.field, 'volumes');
  assert.equal(eng.project('shop').length, 2); // nothing changed
  const viewer = createUser(db, { role: 'viewer' });
  const vToken = (await login(core, viewer)).token;
  assert.equal((await core.request('GET', `/api/v1/stacks/${stackId}`, { token: vToken })).status, 200);
  assert.equal((await core.request('POST', `/api/v1/stacks/${stackId}/stop`, { token: vToken })).status, 403);

  const down = await core.request('POST', `/api/v1/stacks/${stackId}/down`, { token: opToken, json: {} });
  assert.equal(down.status, 200, down.text);
  assert.equal(eng.project('shop').length, 0);
  assert.equal(JSON.parse(eng.docker('volume', 'inspect', 'shop_data'))[0].Name, 'shop_data'); // kept
  assert.throws(() => eng.docker('network', 'inspect', 'shop_default'));
  assert.equal((await core.request('GET', `/api/v1/stacks/${stackId}`)).body.status, 'down');
  // operators cannot delete; admins can
  assert.equal((await core.request('DELETE', `/api/v1/stacks/${stackId}`, { token: opToken })).status, 403);
  const del = await core.request('DELETE', `/api/v1/stacks/${stackId}?volumes=1`);
  assert.equal(del.status, 204, del.text);
  assert.throws(() => eng.docker('volume', 'inspect', 'shop_data'));
  assert.equal((await core.request('GET', `/api/v1/stacks/${stackId}`)).status, 404);
  assert.equal(db.sql(`SELECT count(*) FROM stack_secrets WHERE stack_id = '${stackId}'`), '0');
  assert.equal(eventsOf(db, 'stack.deleted').length, 2);
});
