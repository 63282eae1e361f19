// Docker on a remote node: a private dockerd (scripts/dockerd.sh) reached
// only through a real sshd (scripts/sshd.sh) as a registered node, over the
// SSH pool's direct-streamlocal channel. The local engine of the daemon is
// absent, so every answer about the node's containers came over SSH. List,
// create, logs, stop, start and remove on the node, each checked with the
// docker CLI against that dockerd; the node's label scope; the node
// unreachable (listed as unavailable, 503) and back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { requestJob } from './lib/jobs.mjs';
import { startSshd } from './lib/sshd.mjs';
import { openSse } from './lib/sse.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
let dir, sock, db, core, sshd, node;

function docker(...args) {
  return execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}
const running = (name) => JSON.parse(docker('inspect', name))[0].State.Running;

before(async () => {
  dir = mkdtempSync('/tmp/sbxr.');
  sock = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' }).match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  sshd = startSshd();
  db = createDatabase('rdocker');
  core = await startCore({
    db, admin: true,
    env: {
      SERVERBOX_DOCKER_SOCKET: join(dir, 'no-local-engine.sock'),
      SERVERBOX_NODE_DOCKER_SOCKET: sock,
      SERVERBOX_NODE_CHECK_INTERVAL: '0',
      SERVERBOX_NODE_DOCKER_EVENTS: '1',
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
    execFileSync(DOCKERD, ['stop', dir]);
  }
});

test('list, create, logs, stop, start, remove on a node reached over SSH, checked with the docker CLI', async () => {
  docker('run', '-d', '--name', 'made-outside', 'local/busybox:1', 'sleep', '600');

  const all = await core.request('GET', '/api/v1/containers');
  assert.equal(all.status, 200, all.text);
  const row = all.body.containers.find((c) => c.name === 'made-outside');
  assert.ok(row, all.text);
  assert.equal(row.node_id, node.id);
  assert.equal(row.node_name, 'remote-1');
  assert.equal(row.state, 'running');
  // The daemon's own engine is absent: it is listed as unavailable, the node is not.
  assert.deepEqual(all.body.unavailable.map((u) => u.node_id), ['local']);

  const mine = await core.request('GET', `/api/v1/nodes/${node.id}/containers`);
  assert.equal(mine.status, 200, mine.text);
  assert.deepEqual(mine.body.containers.map((c) => c.name), ['made-outside']);
  const q = await core.request('GET', `/api/v1/containers?node=${node.id}&state=running`);
  assert.deepEqual(q.body.containers.map((c) => c.name), ['made-outside']);

  // create and start through the API; the engine has it
  const c = await core.request('POST', `/api/v1/nodes/${node.id}/containers`, {
    json: { name: 'web-remote', image: 'local/busybox:1', command: ['sh', '-c', 'echo hello-from-remote; exec sleep 600'], labels: { app: 'web' } },
  });
  assert.equal(c.status, 201, c.text);
  assert.equal(c.body.node_id, node.id);
  assert.equal(running('web-remote'), true);
  assert.equal(JSON.parse(docker('inspect', 'web-remote'))[0].Config.Labels.app, 'web');

  await waitFor(async () => {
    const r = await core.request('GET', `/api/v1/nodes/${node.id}/containers/web-remote/logs?tail=all`);
    return r.status === 200 && r.text.includes('hello-from-remote');
  }, { what: 'logs over SSH' });

  // A large answer crosses the bridge whole (SSH window and socket back-pressure).
  docker('run', '--name', 'big-logs', 'local/busybox:1', 'seq', '1', '150000');
  const big = await core.request('GET', `/api/v1/nodes/${node.id}/containers/big-logs/logs?tail=all`);
  assert.equal(big.status, 200);
  const lines = big.text.split('\n').filter(Boolean).map((l) => JSON.parse(l).line);
  assert.equal(lines.length, 150000);
  assert.equal(lines[0], '1');
  assert.equal(lines[149999], '150000');
  assert.equal((await core.request('DELETE', `/api/v1/nodes/${node.id}/containers/big-logs`)).status, 204);

  // Following the logs: an SSE stream held open through the bridge.
  const follow = openSse(core.base, `/api/v1/nodes/${node.id}/containers/web-remote/logs?follow=1&tail=all`, { token: core.token });
  await follow.ready;
  assert.equal(follow.status, 200, follow.errorBody);
  await follow.waitFor((x) => x.events.some((e) => e.event === 'log' && JSON.parse(e.data).line === 'hello-from-remote'), { what: 'followed line' });
  follow.close();

  // a stop is a job (202); once it succeeded the container really is stopped
  const stop = await requestJob(core, 'POST', `/api/v1/nodes/${node.id}/containers/made-outside/stop?timeout=1`, {});
  assert.equal(stop.job.state, 'succeeded', JSON.stringify(stop.job));
  assert.equal(stop.job.node_id, node.id);
  assert.equal(running('made-outside'), false);
  const start = await core.request('POST', `/api/v1/nodes/${node.id}/containers/made-outside/start`, {});
  assert.equal(start.status, 200, start.text);
  assert.equal(running('made-outside'), true);

  const rm = await core.request('DELETE', `/api/v1/nodes/${node.id}/containers/web-remote?force=1`);
  assert.equal(rm.status, 204, rm.text);
  assert.equal(docker('ps', '-aq', '--filter', 'name=web-remote'), '');

  // Many requests in a row reuse one pooled session, not one per request.
  for (let i = 0; i < 20; i++) assert.equal((await core.request('GET', `/api/v1/nodes/${node.id}/containers`)).status, 200);
  const g = await core.request('GET', `/api/v1/nodes/${node.id}`);
  assert.ok(g.body.pool.open >= 1 && g.body.pool.open <= 3, JSON.stringify(g.body.pool));

  // With --node-docker-events the engine's own events come over SSH too:
  // container.started/died on the container's stream under this node, and
  // the containers projection knows the node's containers.
  const cid = JSON.parse(docker('inspect', 'made-outside'))[0].Id;
  await waitFor(() => {
    const t = db.sql(`SELECT string_agg(type, ',' ORDER BY seq) FROM events WHERE stream = 'container/${node.id}/${cid}'`);
    return /container\.died/.test(t) && /container\.started/.test(t);
  }, { what: 'engine events of the remote node', timeout: 15000 });
  const ev = JSON.parse(db.sql(`SELECT body FROM events WHERE stream = 'container/${node.id}/${cid}' AND type = 'container.died' ORDER BY seq DESC LIMIT 1`));
  assert.equal(ev.data.node_id, node.id);
  assert.equal(ev.data.name, 'made-outside');
  assert.equal(ev.actor.kind, 'system');
  await waitFor(() => db.sql(`SELECT state FROM containers WHERE node_id = '${node.id}' AND container_id = '${cid}'`) === 'running',
    { what: 'the containers projection has the remote container running' });

  // The actions are events on the container's stream, naming the node.
  const types = db.sql(`SELECT string_agg(type, ',' ORDER BY seq) FROM events WHERE stream LIKE 'container/${node.id}/%'`);
  assert.match(types, /container\.stop_requested/);
  assert.match(types, /container\.start_requested/);
});

test('a caller outside the node\'s label scope sees neither the node nor its containers', async () => {
  const t = await core.request('POST', '/api/v1/tokens', { json: { name: 'staging', role: 'viewer', node_labels: { env: 'staging' } } });
  assert.equal(t.status, 201, t.text);
  const as = (m, p) => core.request(m, p, { token: t.body.token });
  const all = await as('GET', '/api/v1/containers');
  assert.equal(all.status, 200, all.text);
  assert.deepEqual(all.body.containers, []);
  assert.equal((await as('GET', `/api/v1/nodes/${node.id}/containers`)).status, 404);
  assert.equal((await as('GET', `/api/v1/nodes/${node.id}/containers/made-outside`)).status, 404);
  const p = await core.request('POST', '/api/v1/tokens', { json: { name: 'prod', role: 'viewer', node_labels: { env: 'prod' } } });
  const mine = await core.request('GET', '/api/v1/containers', { token: p.body.token });
  assert.deepEqual(mine.body.containers.map((c) => c.name), ['made-outside']);
});

test('the node unreachable: listed as unavailable and 503 on its containers; back when sshd returns', async () => {
  sshd.stop();
  // The bridge's session breaks; the next requests cannot reconnect.
  await waitFor(async () => {
    const r = await core.request('GET', '/api/v1/containers');
    return r.status === 200 && r.body.unavailable.some((u) => u.node_id === node.id);
  }, { what: 'node unavailable', timeout: 30000 });
  const one = await core.request('GET', `/api/v1/nodes/${node.id}/containers/made-outside`);
  assert.equal(one.status, 503, one.text);
  sshd.start();
  await waitFor(async () => {
    const r = await core.request('GET', `/api/v1/nodes/${node.id}/containers/made-outside`);
    return r.status === 200;
  }, { what: 'node back', timeout: 30000 });
  assert.equal(running('made-outside'), true);
});

test('nodes that hang are listed as unavailable, checked at the same time, beside the reachable node', async () => {
  // Two nodes registered on a second sshd whose port then accepts TCP and never speaks SSH.
  const doomed = startSshd();
  const held = new Set();
  let hole;
  try {
    const ids = [];
    for (const name of ['hang-1', 'hang-2']) {
      const r = await core.request('POST', '/api/v1/nodes', {
        json: { name, host: '127.0.0.1', port: doomed.port, ssh_user: 'root', private_key: doomed.key },
      });
      assert.equal(r.status, 201, r.text);
      ids.push(r.body.id);
    }
    doomed.stop();
    hole = createServer((s) => { held.add(s); s.on('close', () => held.delete(s)); s.on('error', () => {}); });
    await new Promise((resolve, reject) => { hole.once('error', reject); hole.listen(doomed.port, '127.0.0.1', resolve); });

    const pending = core.request('GET', '/api/v1/containers');
    // Both hanging nodes are being reached at once (one list request).
    await waitFor(() => held.size >= 2, { what: 'both hanging nodes reached concurrently', timeout: 8000, interval: 50 });
    for (const s of held) s.destroy();
    const all = await pending;
    assert.equal(all.status, 200, all.text);
    assert.ok(all.body.containers.some((c) => c.name === 'made-outside' && c.node_id === node.id), all.text);
    const down = all.body.unavailable.map((u) => u.node_id);
    for (const id of ids) assert.ok(down.includes(id), `${id} unavailable: ${all.text}`);
    for (const id of ids) assert.equal((await core.request('DELETE', `/api/v1/nodes/${id}`)).status, 204);
  } finally {
    for (const s of held) s.destroy();
    hole?.close();
    doomed.remove();
  }
});

test('a node whose docker is "local" is the core\'s own engine, listed once under that node', async () => {
  // The same data dir: node keys are sealed with its master key.
  const other = await startCore({ db, admin: true, dataDir: core.dataDir, env: { SERVERBOX_DOCKER_SOCKET: sock, SERVERBOX_NODE_DOCKER_SOCKET: sock, SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  try {
    const r = await other.request('POST', '/api/v1/nodes', {
      json: { name: 'here', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, docker: 'local', labels: { env: 'here' } },
    });
    assert.equal(r.status, 201, r.text);
    const here = r.body.id;
    const all = await other.request('GET', '/api/v1/containers');
    assert.equal(all.status, 200, all.text);
    const rows = all.body.containers.filter((c) => c.name === 'made-outside');
    // The engine is reachable as `local`, as `here` (docker local) and as
    // remote-1 (over SSH, another path): `local` is not listed twice.
    assert.deepEqual(rows.map((c) => c.node_id).sort(), [here, node.id].sort(), all.text);
    assert.equal(rows.find((c) => c.node_id === here).node_name, 'here');
    const one = await other.request('GET', `/api/v1/nodes/${here}/containers?name=made-outside`);
    assert.deepEqual(one.body.containers.map((c) => c.node_id), [here]);
    const loc = await other.request('GET', '/api/v1/nodes/local/containers?name=made-outside');
    assert.deepEqual(loc.body.containers.map((c) => c.node_id), ['local']);
    // A caller scoped to env=here reaches the engine through that node only.
    const t = await other.request('POST', '/api/v1/tokens', { json: { name: 'here', role: 'viewer', node_labels: { env: 'here' } } });
    const scoped = await other.request('GET', '/api/v1/containers', { token: t.body.token });
    assert.deepEqual(scoped.body.containers.filter((c) => c.name === 'made-outside').map((c) => c.node_id), [here]);
    assert.equal((await other.request('GET', '/api/v1/nodes/local/containers', { token: t.body.token })).status, 404);
    assert.equal((await other.request('DELETE', `/api/v1/nodes/${here}`)).status, 204);
  } finally {
    await other.stop();
  }
});
