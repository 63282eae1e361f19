// Routes of stack services through a real Caddy (a private one, admin API
// on loopback): a routed web service answers through Caddy by host name; a
// start-first update polled throughout through Caddy with a real HTTP client
// has zero failed requests and switches the route to the new container; an
// update that never becomes healthy leaves the route on the old container; a
// changed host re-routes without recreating; a host another stack routes
// fails that deploy; bad host names are 422 with nothing stored; down and
// delete remove the stack's routes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { writeFileSync } from 'node:fs';
import { createDatabase, startCore } from './lib/harness.mjs';
import { startEngine, waitDeploy, eventsOf } from './lib/stacks.mjs';
import { startCaddy, freePort } from './lib/apps.mjs';
import { awaitJob } from './lib/jobs.mjs';

let eng, db, core, caddy, httpPort;

before(async () => {
  eng = startEngine();
  db = createDatabase('stackroutes');
  caddy = await startCaddy();
  httpPort = await freePort();
  // Caddy's HTTP port is the one the shared server listens on: plain HTTP
  // there, no automatic HTTPS (what ":80" is in production).
  const r = await fetch(`${caddy.admin}/config/apps`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ http: { http_port: httpPort, servers: {} } }),
  });
  assert.ok(r.ok, await r.text());
  core = await startCore({
    db, admin: true,
    env: {
      SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_STACK_HEALTH_TIMEOUT: '20',
      SERVERBOX_APP_CADDY_ADMIN: caddy.admin, SERVERBOX_APP_DOMAIN_LISTEN: `127.0.0.1:${httpPort}`,
    },
  });
});

after(async () => {
  try {
    if (process.env.SBX_STACKS_LOG) writeFileSync(process.env.SBX_STACKS_LOG, core.log());
    if (core) await core.stop();
    await caddy?.stop();
  } finally {
    eng.stop();
  }
});

// One GET through Caddy with a Host header: {status, body}.
function viaCaddy(host, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: httpPort, path: '/', headers: { host }, agent: false, timeout }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: body.trim() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// Polls a host through Caddy until stopped: every answer must be 200 v<N>.
function poll(host) {
  const seen = { ok: 0, failed: 0, bodies: new Set(), errors: [] };
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const r = await viaCaddy(host);
        if (r.status === 200 && /^v\d+$/.test(r.body)) { seen.ok++; seen.bodies.add(r.body); } else { seen.failed++; seen.errors.push(`${r.status} ${r.body.slice(0, 60)}`); }
      } catch (e) { seen.failed++; seen.errors.push(String(e.code || e.message)); }
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  return async () => { running = false; await loop; return seen; };
}

const compose = (version, { host = 'web.shop.test', healthy = true, timeout = '20s' } = {}) => `services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "mkdir -p /w && echo v${version} > /w/index.html && exec httpd -f -p 8080 -h /w"]
    healthcheck:
      test: ${healthy ? '["CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]' : '["CMD", "false"]'}
      interval: 500ms
      timeout: 2s
      retries: 2
    x-serverbox:
      health_timeout: ${timeout}
      route: {host: ${host}, port: 8080}
  worker:
    image: local/busybox:1
    command: ["sleep", "3600"]
`;

const routeOf = async (id) => {
  const routes = (await caddy.config())?.apps?.http?.servers?.serverbox?.routes || [];
  return routes.find((r) => r['@id'] === id);
};
const webIp = () => {
  const c = eng.project('shop').filter((x) => x.Config.Labels['com.docker.compose.service'] === 'web');
  assert.equal(c.length, 1, `web containers: ${c.map((x) => x.Name)}`);
  return c[0].NetworkSettings.Networks.shop_default.IPAddress;
};

let stackId, rid;

test('a routed service answers through Caddy by its host name', async () => {
  const c = await core.request('POST', '/api/v1/stacks', { json: { name: 'shop', node_id: 'local', compose: compose(1) } });
  assert.equal(c.status, 201, c.text);
  stackId = c.body.id;
  rid = `sbx-stack-${stackId}-web`;
  assert.deepEqual(c.body.services.web['x-serverbox'].route, { host: 'web.shop.test', port: 8080 });
  assert.equal((await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} })).status, 202);
  const rev = await waitDeploy(core, stackId, 1);
  assert.equal(rev.deploy_status, 'deployed', JSON.stringify(rev));
  const route = await routeOf(rid);
  assert.ok(route, JSON.stringify(await caddy.config()));
  assert.deepEqual(route.match, [{ host: ['web.shop.test'] }]);
  assert.deepEqual(route.handle[0].upstreams, [{ dial: `${webIp()}:8080` }]);
  assert.deepEqual(await viaCaddy('web.shop.test'), { status: 200, body: 'v1' });
  const g = await core.request('GET', `/api/v1/stacks/${stackId}`);
  assert.deepEqual(g.body.services.web.route, { host: 'web.shop.test', port: 8080 });
  assert.equal(g.body.services.worker.route, undefined);
  // the worker has no route
  assert.equal(await routeOf(`sbx-stack-${stackId}-worker`), undefined);
});

test('a start-first update polled through Caddy: zero failed requests, the route on the new container', async () => {
  const oldIp = webIp();
  assert.equal((await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: compose(2) } })).status, 200);
  const plan = await core.request('POST', `/api/v1/stacks/${stackId}/plan`, { json: {} });
  const web = plan.body.plan.services.find((s) => s.service === 'web');
  assert.equal(web.action, 'recreate');
  assert.equal(web.strategy, 'start-first');
  const stop = poll('web.shop.test');
  await new Promise((r) => setTimeout(r, 800));
  assert.equal((await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} })).status, 202);
  const rev = await waitDeploy(core, stackId, 2);
  await new Promise((r) => setTimeout(r, 800));
  const seen = await stop();
  assert.equal(rev.deploy_status, 'deployed', JSON.stringify(rev));
  assert.ok(seen.ok > 20, `only ${seen.ok} requests answered (${seen.failed} failed)`);
  assert.equal(seen.failed, 0, `${seen.failed} failed of ${seen.ok + seen.failed}: ${seen.errors.slice(0, 5)}`);
  assert.deepEqual([...seen.bodies].sort(), ['v1', 'v2']);
  const newIp = webIp();
  assert.notEqual(newIp, oldIp);
  assert.deepEqual((await routeOf(rid)).handle[0].upstreams, [{ dial: `${newIp}:8080` }]);
  assert.deepEqual(await viaCaddy('web.shop.test'), { status: 200, body: 'v2' });
});

test('an update that never becomes healthy keeps the route on the old container', async () => {
  const ip = webIp();
  const p = await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: compose(3, { healthy: false, timeout: '4s' }) } });
  assert.equal(p.status, 200, p.text);
  const stop = poll('web.shop.test');
  assert.equal((await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} })).status, 202);
  const rev = await waitDeploy(core, stackId, 3);
  const seen = await stop();
  assert.equal(rev.deploy_status, 'rolled_back', JSON.stringify(rev));
  assert.equal(seen.failed, 0, String(seen.errors.slice(0, 5)));
  assert.deepEqual([...seen.bodies], ['v2']);
  assert.equal(webIp(), ip);
  assert.deepEqual((await routeOf(rid)).handle[0].upstreams, [{ dial: `${ip}:8080` }]);
  assert.equal(eventsOf(db, 'stack.deploy_failed').at(-1).data.rolled_back, true);
});

test('a new host name re-routes without recreating the container', async () => {
  const ip = webIp();
  assert.equal((await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: compose(2, { host: 'www.shop.test' }) } })).status, 200);
  const plan = await core.request('POST', `/api/v1/stacks/${stackId}/plan`, { json: {} });
  assert.equal(plan.body.plan.services.find((s) => s.service === 'web').action, 'unchanged');
  await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} });
  assert.equal((await waitDeploy(core, stackId, 4)).deploy_status, 'deployed');
  assert.equal(webIp(), ip);
  assert.deepEqual(await viaCaddy('www.shop.test'), { status: 200, body: 'v2' });
  assert.notEqual((await viaCaddy('web.shop.test')).body, 'v2'); // the old host is no longer routed
  assert.deepEqual((await routeOf(rid)).match, [{ host: ['www.shop.test'] }]);
});

test('scaling a routed service: the route sends to every replica, polled without a failure', async () => {
  const stop = poll('www.shop.test');
  const scale = async (n) => {
    const r = await core.request('POST', `/api/v1/stacks/${stackId}/services/web/scale`, { json: { replicas: n } });
    assert.equal(r.status, 202, r.text);
    assert.equal((await awaitJob(core, r.body.job, { timeout: 60000 })).state, 'succeeded');
  };
  await scale(2);
  const ips = eng.project('shop').filter((x) => x.Config.Labels['com.docker.compose.service'] === 'web')
    .map((c) => `${c.NetworkSettings.Networks.shop_default.IPAddress}:8080`).sort();
  assert.equal(ips.length, 2);
  assert.deepEqual((await routeOf(rid)).handle[0].upstreams.map((u) => u.dial).sort(), ips);
  await scale(1);
  const seen = await stop();
  assert.deepEqual((await routeOf(rid)).handle[0].upstreams, [{ dial: `${webIp()}:8080` }]);
  assert.equal(seen.failed, 0, String(seen.errors.slice(0, 5)));
  assert.ok(seen.ok > 10);
});

test('bad host names are 422 naming the field, nothing stored; a host routed elsewhere fails the deploy', async () => {
  const before = (await core.request('GET', `/api/v1/stacks/${stackId}`)).body.revision;
  for (const host of ['Bad_Host.test', '"a;b.test"', '../x', 'x', '"-a.test"', '10.1.2.3']) {
    const r = await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: compose(2, { host }) } });
    assert.equal(r.status, 422, `${host}: ${r.text}`);
    assert.equal(r.body.error.field, 'services.web.x-serverbox.route.host', r.text);
  }
  const noPort = compose(2).replace('port: 8080}', '}');
  const r = await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: noPort } });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field, 'services.web.x-serverbox.route.port');
  assert.equal((await core.request('GET', `/api/v1/stacks/${stackId}`)).body.revision, before);
  // another stack wanting www.shop.test: its deploy fails, nothing of it is left
  const o = await core.request('POST', '/api/v1/stacks', {
    json: { name: 'other', node_id: 'local', compose: compose(9, { host: 'www.shop.test' }).replace(/worker:[\s\S]*$/, '') },
  });
  assert.equal(o.status, 201, o.text);
  await core.request('POST', `/api/v1/stacks/${o.body.id}/deploy`, { json: {} });
  const orev = await waitDeploy(core, o.body.id, 1);
  assert.equal(orev.deploy_status, 'failed', JSON.stringify(orev));
  assert.match(orev.deploy_reason, /www\.shop\.test is already routed by sbx-stack-/);
  assert.equal(eng.project('other').length, 0);
  assert.deepEqual(await viaCaddy('www.shop.test'), { status: 200, body: 'v2' });
  assert.equal((await core.request('DELETE', `/api/v1/stacks/${o.body.id}`)).status, 204);
  assert.deepEqual(await viaCaddy('www.shop.test'), { status: 200, body: 'v2' }); // not the other's to remove
});

test('down removes the stack\'s routes; so does delete', async () => {
  const down = await core.request('POST', `/api/v1/stacks/${stackId}/down`, { json: {} });
  assert.equal(down.status, 200, down.text);
  assert.equal(await routeOf(rid), undefined);
  assert.notEqual((await viaCaddy('www.shop.test')).body, 'v2');
  // deployed again, then deleted
  const d = await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} });
  assert.equal(d.status, 202, d.text);
  assert.equal((await awaitJob(core, d.body.job)).state, 'succeeded');
  assert.ok(await routeOf(rid));
  assert.deepEqual(await viaCaddy('www.shop.test'), { status: 200, body: 'v2' });
  assert.equal((await core.request('DELETE', `/api/v1/stacks/${stackId}`)).status, 204);
  assert.equal(await routeOf(rid), undefined);
  assert.equal(eng.project('shop').length, 0);
});
