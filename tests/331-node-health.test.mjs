// A node's health told apart (issue #17, items 3 and 4): SSH (`status`),
// its Docker engine (`docker_status`, `docker_reason`) and the collector
// (`agent_status`) are separate fields, each moved by its own events. A
// node reachable over SSH whose Docker socket is missing is online over SSH,
// and its Docker is unreachable with the reason said in words, on the node
// record, in its last check and in the containers listing; pointed at a
// socket that answers like an engine it turns reachable. And a node whose
// sshd stops accepting connections is offline within two check intervals
// even while a pooled session to it lives on (the connection's own sshd
// process outlives the listener, as after `systemctl stop ssh` on Debian).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';

const INTERVAL_S = 2;
let db, core, s1, s2, fakeDir, fake;
const orphans = new Set(); // sshd connection processes left by killing a listener alone

before(async () => {
  s1 = startSshd();
  s2 = startSshd();
  fakeDir = mkdtempSync(join(tmpdir(), 'sbx-fake-docker-'));
  chmodSync(fakeDir, 0o755);
  db = createDatabase('nodehealth');
  core = await startCore({ db, admin: true, env: {
    SERVERBOX_NODE_CHECK_INTERVAL: String(INTERVAL_S),
    SERVERBOX_NODE_DOCKER_SOCKET: join(fakeDir, 'docker.sock'),
  } });
});
after(async () => {
  try {
    await core?.stop();
  } finally {
    for (const pid of orphans) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    fake?.close();
    s1?.remove();
    s2?.remove();
    rmSync(fakeDir, { recursive: true, force: true });
  }
});

const register = async (name, s) => {
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name, host: '127.0.0.1', port: s.port, ssh_user: 'root', private_key: s.key },
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
};
const node = async (id) => (await core.request('GET', `/api/v1/nodes/${id}`)).body;
const events = (id, type) => JSON.parse(db.sql(`SELECT coalesce(json_agg(body::json ORDER BY seq), '[]') FROM events
  WHERE stream = 'node/${id}' AND type = '${type}'`));

// Answers /_ping and /version as a Docker engine would, on a unix socket.
function startFakeEngine(path) {
  const srv = createServer((req, res) => {
    if (req.url.endsWith('/_ping')) { res.writeHead(200, { 'Content-Type': 'text/plain', 'Api-Version': '1.41' }); res.end('OK'); return; }
    if (req.url.endsWith('/version')) { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(JSON.stringify({ ApiVersion: '1.41', MinAPIVersion: '1.12', Version: 'fake' })); return; }
    if (req.url.includes('/containers/json')) { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('[]'); return; }
    res.writeHead(404, { 'Content-Type': 'application/json' }); res.end('{"message":"not here"}');
  });
  return new Promise((resolve) => srv.listen(path, () => { chmodSync(path, 0o666); resolve(srv); }));
}

test('SSH online, Docker unreachable: the socket missing is said in words, apart from SSH and the collector', async () => {
  const n = await register('no-docker', s1);
  assert.equal(n.status, 'online');
  // The registration queues a check at once; the status follows it.
  const want = `Docker socket ${join(fakeDir, 'docker.sock')} not found on the node`;
  const got = await waitFor(async () => {
    const x = await node(n.id);
    return x.docker_status === 'unreachable' ? x : null;
  }, { timeout: 30000, what: 'docker unreachable' });
  assert.equal(got.status, 'online', 'SSH is fine');
  assert.equal(got.docker_reason, want);
  assert.equal(got.agent_status, null, 'no collector ever reported');
  assert.equal(got.last_check.status, 'online');
  assert.deepEqual(got.last_check.docker, { status: 'unreachable', reason: want });
  // One event for the change, by the checker, with the reason; not one per check.
  await new Promise((r) => setTimeout(r, 2 * INTERVAL_S * 1000 + 500));
  const evs = events(n.id, 'node.docker_unreachable');
  assert.equal(evs.length, 1, JSON.stringify(evs));
  assert.equal(evs[0].data.reason, want);
  assert.equal(evs[0].actor.kind, 'system');
  // The containers listing names the same cause, not a transport error.
  const c = await core.request('GET', `/api/v1/containers?node=${n.id}`);
  assert.equal(c.status, 200, c.text);
  const u = (c.body.unavailable || []).find((x) => x.node_id === n.id);
  assert.ok(u, JSON.stringify(c.body));
  assert.match(u.message, /not found on the node/);
  assert.doesNotMatch(u.message, /Failure when receiving data/);
  // The check asked by hand answers the same.
  const chk = await core.request('POST', `/api/v1/nodes/${n.id}/check`);
  assert.equal(chk.status, 200, chk.text);
  assert.deepEqual(chk.body.docker, { status: 'unreachable', reason: want });

  // An engine appears at the socket: Docker turns reachable (one event).
  fake = await startFakeEngine(join(fakeDir, 'docker.sock'));
  await waitFor(async () => ((await node(n.id)).docker_status === 'reachable' ? true : null),
    { timeout: 30000, what: 'docker reachable' });
  assert.equal(events(n.id, 'node.docker_reachable').length, 1);
  const x = await node(n.id);
  assert.equal(x.docker_reason, null);
  assert.equal(x.last_check.docker.status, 'reachable');
  fake.close();
  fake = null;
  await waitFor(async () => ((await node(n.id)).docker_status === 'unreachable' ? true : null),
    { timeout: 30000, what: 'docker unreachable again' });
  assert.equal((await node(n.id)).docker_reason, want);
});

test('a dead sshd is offline within two intervals although a pooled session to it lives on', async () => {
  const n = await register('pooled-dead', s2);
  // Warm the pool: a session stays open after the command.
  const ex = await core.request('POST', `/api/v1/nodes/${n.id}/exec`, { json: { command: 'true' } });
  assert.equal(ex.status, 200, ex.text);
  assert.ok((await node(n.id)).pool.open >= 1, 'a pooled session is open');
  await waitFor(async () => ((await node(n.id)).last_check?.status === 'online' ? true : null),
    { timeout: 30000, what: 'checked online first' });

  // Stop the listener only; the pooled session's own sshd process lives on.
  const pid = Number(readFileSync(join(s2.dir, 'sshd.pid'), 'utf8').trim());
  const children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  assert.ok(children.length >= 1, 'the pooled session has its own sshd process');
  for (const c of children) orphans.add(c);
  process.kill(pid, 'SIGKILL');
  const stopped = Date.now();
  // The old session still works: only a fresh login tells the node is gone.
  await waitFor(async () => ((await node(n.id)).status === 'offline' ? true : null),
    { timeout: 2 * INTERVAL_S * 1000 + 8000, interval: 100, what: 'node offline within two intervals (+ slack)' });
  const took = Date.now() - stopped;
  const off = events(n.id, 'node.offline');
  assert.equal(off.length, 1);
  assert.match(off[0].data.reason, /connect/i);
  // SSH down: Docker over SSH is unreachable too, for that reason.
  const x = await node(n.id);
  assert.equal(x.docker_status, 'unreachable');
  assert.equal(x.docker_reason, 'the node is not reachable over SSH');
  await waitFor(async () => ((await node(n.id)).pool.open === 0 ? true : null),
    { timeout: 15000, what: 'the stale pooled sessions forgotten' });
  // Back: online again (its own event).
  for (const c of children) { try { process.kill(c, 'SIGKILL'); } catch { /* gone */ } orphans.delete(c); }
  startSshd(s2.dir);
  await waitFor(async () => ((await node(n.id)).status === 'online' ? true : null),
    { timeout: 2 * INTERVAL_S * 1000 + 8000, what: 'node online again' });
  assert.equal(events(n.id, 'node.online').length, 1);
  assert.ok(took >= 0);
});
