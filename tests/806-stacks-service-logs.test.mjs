// The logs of a stack's service: the last lines of all its containers
// merged by time, each naming its container, bounded by tail (max 5000);
// follow=1 streams one container's lines as Server-Sent Events; a caller
// scoped to other nodes gets 404, a caller without stacks:read or
// logs:read 403.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, createUser, login, waitFor } from './lib/harness.mjs';
import { startEngine, waitDeploy } from './lib/stacks.mjs';
import { openSse } from './lib/sse.mjs';

let eng, db, core, stackId;

before(async () => {
  eng = startEngine();
  db = createDatabase('stacklogs');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: eng.sock } });
  const compose = `services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "i=0; while true; do echo \\"tick $$i $$HOSTNAME\\"; echo \\"warn $$i\\" >&2; i=$$((i+1)); sleep 0.2; done"]
    deploy: {replicas: 2}
  quiet:
    image: local/busybox:1
    command: ["sleep", "600"]
`;
  const c = await core.request('POST', '/api/v1/stacks', { json: { name: 'logs', node_id: 'local', compose } });
  assert.equal(c.status, 201, c.text);
  stackId = c.body.id;
  await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} });
  assert.equal((await waitDeploy(core, stackId, 1)).deploy_status, 'deployed');
});

after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    eng.stop();
  }
});

const lines = (text) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
const path = (q = '', svc = 'web') => `/api/v1/stacks/${stackId}/services/${svc}/logs${q}`;

test('the last lines of every container of the service, merged by time, each naming its container', async () => {
  // both replicas have written a few lines
  await waitFor(async () => {
    const r = await core.request('GET', path('?tail=50'));
    return new Set(lines(r.text).map((l) => l.container)).size === 2;
  }, { timeout: 20000, what: 'lines of both replicas' });
  const r = await core.request('GET', path('?tail=40&timestamps=1'));
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /ndjson/);
  assert.equal(r.headers.get('x-containers'), 'logs_web_1,logs_web_2');
  const got = lines(r.text);
  assert.equal(got.length, 40);
  assert.deepEqual(new Set(got.map((l) => l.container)), new Set(['logs_web_1', 'logs_web_2']));
  assert.deepEqual(new Set(got.map((l) => l.stream)), new Set(['stdout', 'stderr']));
  for (const l of got) assert.match(l.line, /^(tick|warn) \d+/);
  const ts = got.map((l) => Date.parse(l.ts));
  assert.ok(ts.every((t, i) => i === 0 || t >= ts[i - 1]), 'merged by time');
  // a line names the container it came from
  const id1 = eng.inspect('logs_web_1').Config.Hostname;
  assert.ok(got.filter((l) => l.container === 'logs_web_1' && l.stream === 'stdout').every((l) => l.line.endsWith(id1)));
  // without timestamps there is no ts; tail bounds it; the quiet service has none
  const plain = lines((await core.request('GET', path('?tail=3'))).text);
  assert.equal(plain.length, 3);
  assert.ok(plain.every((l) => l.ts === undefined && l.container));
  const quiet = await core.request('GET', path('', 'quiet'));
  assert.equal(quiet.status, 200, quiet.text);
  assert.equal(quiet.text, '');
  assert.equal(quiet.headers.get('x-containers'), 'logs_quiet_1');
  // bounds and unknowns
  assert.equal((await core.request('GET', path('?tail=5001'))).status, 400);
  assert.equal((await core.request('GET', path('?tail=x'))).status, 400);
  assert.equal((await core.request('GET', path('', 'nope'))).status, 404);
  assert.equal((await core.request('GET', `/api/v1/stacks/00000000-0000-4000-8000-000000000000/services/web/logs`)).status, 404);
});

test('follow=1 streams one container: named, or the only one', async () => {
  const many = await core.request('GET', path('?follow=1'));
  assert.equal(many.status, 422, many.text);
  assert.equal(many.body.error.field, 'container');
  assert.match(many.body.error.message, /logs_web_1, logs_web_2/);
  const s = openSse(core.base, path('?follow=1&container=logs_web_2'), { token: core.token });
  await s.ready;
  assert.equal(s.status, 200, s.errorBody);
  assert.equal(s.headers.get('x-containers'), 'logs_web_2');
  await s.waitFor((x) => x.events.filter((e) => e.event === 'log').length >= 3, { timeout: 15000, what: '3 log lines' });
  s.close();
  const id2 = eng.inspect('logs_web_2').Config.Hostname;
  const ticks = s.events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data)).filter((d) => d.stream === 'stdout');
  assert.ok(ticks.length >= 1 && ticks.every((d) => d.line.endsWith(id2)), JSON.stringify(ticks));
  const bad = await core.request('GET', path('?follow=1&container=logs_quiet_1'));
  assert.equal(bad.status, 422, bad.text);
});

test('scope and permissions: other nodes 404; stacks:read and logs:read both needed', async () => {
  const viewer = (await login(core, createUser(db, { role: 'viewer' }))).token;
  assert.equal((await core.request('GET', path('?tail=2'), { token: viewer })).status, 200);
  const u = createUser(db, { role: 'operator' });
  const users = await core.request('GET', '/api/v1/users');
  const id = users.body.users.find((x) => x.username === u.username).id;
  assert.equal((await core.request('PATCH', `/api/v1/users/${id}`, { json: { node_labels: { env: 'prod' } } })).status, 200);
  const scoped = (await login(core, u)).token;
  const r = await core.request('GET', path('?tail=2'), { token: scoped });
  assert.equal(r.status, 404, r.text);
  assert.equal((await core.request('GET', path('?follow=1&container=logs_web_1'), { token: scoped })).status, 404);
  for (const scopes of [['view:stacks'], ['view:logs']]) {
    const g = await core.request('POST', '/api/v1/guest-links', { json: { scopes, ttl_seconds: 600 } });
    assert.equal(g.status, 201, g.text);
    assert.equal((await core.request('GET', path('?tail=2'), { token: g.body.token })).status, 403, scopes[0]);
  }
  const both = await core.request('POST', '/api/v1/guest-links', { json: { scopes: ['view:stacks', 'view:logs'], ttl_seconds: 600 } });
  assert.equal((await core.request('GET', path('?tail=2'), { token: both.body.token })).status, 200);
  assert.equal((await core.request('GET', path('?tail=2'), { token: null })).status, 401);
});
