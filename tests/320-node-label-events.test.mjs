// Node events for callers limited to node labels: a token scoped to
// env=prod sees the events of a prod node on the SSE stream (live, for a
// node registered while the stream is open, after a relabel, and in a
// replay) and never those of another node; the node labels come from an
// in-memory map kept current from the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { openSse } from './lib/sse.mjs';

let db, core, sshd;

before(async () => {
  sshd = startSshd();
  db = createDatabase('nodelabels');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
});
after(async () => {
  try {
    await core?.stop();
  } finally {
    sshd?.remove();
  }
});

const register = async (name, labels) => {
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels },
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
};
const exec = async (id, command) => {
  const r = await core.request('POST', `/api/v1/nodes/${id}/exec`, { json: { command } });
  assert.equal(r.status, 200, r.text);
};
const nodeIdOf = (e) => JSON.parse(e.data).data.id;

test('a token scoped to env=prod sees prod node events and never those of another node', async () => {
  const prod = await register('prod-1', { env: 'prod' });
  const staging = await register('staging-1', { env: 'staging' });
  const r = await core.request('POST', '/api/v1/tokens', { json: { name: 'prod', role: 'viewer', node_labels: { env: 'prod' } } });
  assert.equal(r.status, 201, r.text);
  const prodToken = r.body.token;

  const s = openSse(core.base, '/api/v1/events?topics=nodes', { token: prodToken });
  const all = openSse(core.base, '/api/v1/events?topics=nodes', { token: core.token });
  await s.ready;
  await all.ready;
  assert.equal(s.status, 200, s.errorBody);

  await exec(staging.id, 'echo staging');
  await exec(prod.id, 'echo prod');
  // A node registered while the stream is open: its labels must be known
  // before the stream filters its node.registered.
  const prod2 = await register('prod-2', { env: 'prod', tier: 'db' });
  const staging2 = await register('staging-2', { env: 'staging' });
  await exec(staging2.id, 'echo staging2');
  await exec(prod2.id, 'echo prod2');
  // A marker the admin stream sees last, so we know everything before it arrived.
  await exec(prod2.id, 'echo marker');
  await all.waitFor((x) => x.events.filter((e) => e.event === 'node.exec').length >= 5, { what: 'admin sees 5 execs' });
  await s.waitFor((x) => x.events.filter((e) => e.event === 'node.exec').length >= 3, { what: 'scoped sees 3 execs' });

  const seen = s.events.filter((e) => e.id).map(nodeIdOf);
  assert.ok(seen.includes(prod.id), 'prod exec seen');
  assert.ok(seen.includes(prod2.id), 'new prod node seen');
  assert.ok(s.events.some((e) => e.event === 'node.registered' && nodeIdOf(e) === prod2.id), 'registration of the new prod node seen');
  assert.ok(!seen.includes(staging.id) && !seen.includes(staging2.id), `staging never seen: ${JSON.stringify(s.events)}`);
  assert.ok(all.events.some((e) => nodeIdOf(e) === staging.id), 'the admin stream does see staging');

  // Relabel: staging-1 becomes prod, prod-1 becomes staging; later events follow the new labels.
  let u = await core.request('PATCH', `/api/v1/nodes/${staging.id}`, { json: { labels: { env: 'prod' } } });
  assert.equal(u.status, 200, u.text);
  u = await core.request('PATCH', `/api/v1/nodes/${prod.id}`, { json: { labels: { env: 'staging' } } });
  assert.equal(u.status, 200, u.text);
  const before = s.events.length;
  await exec(prod.id, 'echo now-staging');
  await exec(staging.id, 'echo now-prod');
  await s.waitFor((x) => x.events.slice(before).some((e) => e.event === 'node.exec' && nodeIdOf(e) === staging.id), { what: 'relabelled node seen' });
  assert.ok(!s.events.slice(before).some((e) => e.event === 'node.exec' && nodeIdOf(e) === prod.id), 'node moved out of scope is hidden');
  s.close();
  all.close();

  // A replay from the start applies the same rule (with today's labels).
  const re = openSse(core.base, '/api/v1/events?topics=nodes', { token: prodToken, headers: { 'Last-Event-ID': '0' } });
  await re.ready;
  await re.waitFor((x) => x.events.some((e) => e.event === 'node.exec' && nodeIdOf(e) === staging.id), { what: 'replay' });
  const ids = new Set(re.events.filter((e) => e.id).map(nodeIdOf));
  assert.ok(!ids.has(prod.id) && !ids.has(staging2.id), 'replay hides out-of-scope nodes');
  re.close();
});

test('the deletion of an in-scope node is seen; events of a deleted out-of-scope node are not', async () => {
  const r = await core.request('POST', '/api/v1/tokens', { json: { name: 'prod2', role: 'viewer', node_labels: { env: 'prod' } } });
  const s = openSse(core.base, '/api/v1/events?topics=nodes', { token: r.body.token });
  await s.ready;
  const n = await register('prod-3', { env: 'prod' });
  const d = await core.request('DELETE', `/api/v1/nodes/${n.id}`);
  assert.equal(d.status, 204, d.text);
  const o = await register('staging-3', { env: 'staging' });
  assert.equal((await core.request('DELETE', `/api/v1/nodes/${o.id}`)).status, 204);
  const m = await register('prod-4', { env: 'prod' });
  await s.waitFor((x) => x.events.some((e) => e.event === 'node.registered' && nodeIdOf(e) === m.id), { what: 'prod-4 registered' });
  assert.ok(s.events.some((e) => e.event === 'node.registered' && nodeIdOf(e) === n.id), 'prod-3 registered');
  assert.ok(s.events.some((e) => e.event === 'node.deleted' && nodeIdOf(e) === n.id), 'prod-3 deleted');
  assert.ok(!s.events.some((e) => e.id && nodeIdOf(e) === o.id), 'staging-3 never seen');
  s.close();
});
