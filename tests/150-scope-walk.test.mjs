// The scope walk (issue #13), generated from the route table like the
// permission matrix: every route is called by four label-scoped callers (an
// operator's session, a viewer's session, an operator's token scoped by its
// own labels, a guest link with every scope) limited to env=lab, against a
// node in scope and one out of scope (env=prod).
//   - A route with {id} under /api/v1/nodes, called with the out-of-scope
//     node, answers exactly as it does for a node that does not exist
//     (same status and error code, a 4xx), and never shows the node.
//   - Every list (a GET without path parameters, SSE streams read for a
//     moment with a replay of the whole log) never holds the out-of-scope
//     node's id or name: not its containers, events, audit entries, metrics
//     or logs, nor the requests the walk itself made to its routes.
//   - After the walk the out-of-scope node is unchanged and no change was
//     recorded on it.
// New routes are walked as they are added: nothing here names a route
// except optional request bodies that get past validation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createDatabase, createUser, login, runCore, startCore } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';

let db, core, sshd, lab, prod, routes;
const callers = {};

// Bodies that pass validation, so that a missing scope check cannot hide
// behind a 422 (the rest get {}).
const BODIES = {
  'POST /api/v1/nodes/{id}/exec': { command: 'touch /tmp/sbx-scope-walk' },
  'PATCH /api/v1/nodes/{id}': { labels: { env: 'lab' } },
  'POST /api/v1/nodes/{id}/containers': { name: 'walk', image: 'local/busybox:1' },
  'POST /api/v1/nodes/{id}/containers/{cid}/exec': { command: ['true'] },
  'POST /api/v1/nodes/{id}/images/pull': { image: 'local/busybox:1' },
  'POST /api/v1/nodes/{id}/volumes': { name: 'walk' },
  'POST /api/v1/nodes/{id}/networks': { name: 'walk' },
  'POST /api/v1/nodes/{id}/enroll-token': {},
};
const PARAMS = { cid: 'c0ffee', action: 'start', ref: 'local/busybox:1', name: 'walk', nid: 'walk' };

before(async () => {
  sshd = startSshd();
  db = createDatabase('scopewalk');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  routes = JSON.parse(runCore(['routes']).stdout);
  const register = async (name, labels) => {
    const r = await core.request('POST', '/api/v1/nodes', {
      json: { name, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels },
    });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  lab = await register('walk-lab', { env: 'lab' });
  prod = await register('walk-prod', { env: 'prod' });
  // Something of prod in the log besides its registration.
  const e = await core.request('POST', `/api/v1/nodes/${prod.id}/exec`, { json: { command: 'echo prod' } });
  assert.equal(e.status, 200, e.text);
  await core.request('POST', `/api/v1/nodes/${prod.id}/check`);

  const scoped = { env: 'lab' };
  const user = async (role, node_labels) => {
    const u = { username: `w${role}${Math.random().toString(16).slice(2, 8)}`, password: `pw-${randomUUID()}`, role };
    const r = await core.request('POST', '/api/v1/users', { json: { ...u, node_labels } });
    assert.equal(r.status, 201, r.text);
    return (await login(core, u)).token;
  };
  callers.operator = await user('operator', scoped);
  callers.viewer = await user('viewer', scoped);
  const opFree = await user('operator', undefined);
  let r = await core.request('POST', '/api/v1/tokens', { token: opFree, json: { name: 'walk', role: 'operator', node_labels: scoped } });
  assert.equal(r.status, 201, r.text);
  callers.token = r.body.token;
  r = await core.request('POST', '/api/v1/guest-links', {
    json: { scopes: ['view:metrics', 'view:containers', 'view:logs', 'view:deployments', 'view:audit'], ttl_seconds: 3600, node_labels: scoped },
  });
  assert.equal(r.status, 201, r.text);
  callers.guest = r.body.token;
  void createUser;
});
after(async () => { await core?.stop(); });

function concrete(pattern, nodeId) {
  return pattern.replace(/\{\*?([a-z_]+)\}/g, (_, n) => (n === 'id' ? nodeId : PARAMS[n] ?? 'x'));
}

// One request; a stream is read for a moment. Returns {status, code, text}.
async function call(method, path, token, body, { streamMs = 300 } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  let payload;
  if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
  const ac = new AbortController();
  const hard = setTimeout(() => ac.abort(), 15000);
  try {
    const res = await fetch(core.base + path, { method, headers, body: payload, signal: ac.signal });
    let text = '';
    if ((res.headers.get('content-type') || '').includes('text/event-stream')) {
      const dec = new TextDecoder();
      const reader = res.body.getReader();
      const end = Date.now() + streamMs;
      while (Date.now() < end) {
        const chunk = await Promise.race([reader.read(), new Promise((r) => setTimeout(() => r(null), Math.max(1, end - Date.now())))]);
        if (!chunk || chunk.done) break;
        text += dec.decode(chunk.value, { stream: true });
      }
      ac.abort();
    } else {
      text = await res.text();
    }
    let code;
    try { code = JSON.parse(text)?.error?.code; } catch { /* not JSON */ }
    return { status: res.status, code, text };
  } catch (e) {
    if (e.name === 'AbortError') return { status: 0, code: 'aborted', text: '' };
    throw e;
  } finally { clearTimeout(hard); }
}

const nodeRoutes = () => routes.filter((r) => r.path.startsWith('/api/v1/nodes/{id}') && !['public', 'agent'].includes(r.permission));
const listRoutes = () => routes.filter((r) => r.method === 'GET' && !r.path.includes('{') &&
  (r.path.startsWith('/api/') || r.path === '/metrics') && r.path !== '/api/v1/openapi.json');

test('the walk covers every node route and every list', () => {
  assert.ok(nodeRoutes().length >= 20, `node routes: ${nodeRoutes().length}`);
  assert.ok(listRoutes().some((r) => r.path === '/api/v1/audit') && listRoutes().some((r) => r.path === '/api/v1/events'));
});

test('in scope: each caller sees the lab node', async () => {
  for (const [who, token] of Object.entries(callers)) {
    const r = await call('GET', `/api/v1/nodes/${lab.id}`, token);
    assert.equal(r.status, 200, `${who}: ${r.text}`);
    const l = await call('GET', '/api/v1/nodes', token);
    assert.ok(l.text.includes(lab.id), `${who} lists lab`);
  }
});

test('out of scope: every node route answers as for a node that does not exist', async () => {
  const prodRow = db.sql(`SELECT row_to_json(n)::text FROM nodes n WHERE id = '${prod.id}'`);
  const prodEvents = db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${prod.id}'`);
  const failures = [];
  for (const [who, token] of Object.entries(callers)) {
    for (const r of nodeRoutes()) {
      const key = `${r.method} ${r.path}`;
      const body = r.takes_body ? (BODIES[key] ?? {}) : undefined;
      const ghost = randomUUID();
      const a = await call(r.method, concrete(r.path, prod.id), token, body);
      const b = await call(r.method, concrete(r.path, ghost), token, body);
      const same = a.status === b.status && a.code === b.code;
      const ok = same && a.status >= 400 && a.status < 500 && !a.text.includes(prod.id) && !a.text.includes(prod.name);
      if (!ok) failures.push(`${who} ${key}: out of scope ${a.status} ${a.code} vs none ${b.status} ${b.code} ${a.text.slice(0, 160)}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.equal(db.sql(`SELECT row_to_json(n)::text FROM nodes n WHERE id = '${prod.id}'`), prodRow, 'prod unchanged');
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${prod.id}'`), prodEvents, 'nothing recorded on prod');
});

test('out of scope: no list shows the node, its events or the requests made to it', async () => {
  const failures = [];
  for (const [who, token] of Object.entries(callers)) {
    for (const r of listRoutes()) {
      // Streams replay the whole log; pages read the whole log too.
      const q = r.path === '/api/v1/events' ? '?last_event_id=0' : r.path.startsWith('/api/v1/audit') || r.path.startsWith('/api/v1/events') ? '?limit=1000' : '';
      const a = await call('GET', r.path + q, token, undefined, { streamMs: 1500 });
      if (a.status >= 500) failures.push(`${who} GET ${r.path}: ${a.status} ${a.text.slice(0, 160)}`);
      for (const needle of [prod.id, prod.name])
        if (a.text.includes(needle)) failures.push(`${who} GET ${r.path} (${a.status}) shows ${needle}: …${a.text.slice(Math.max(0, a.text.indexOf(needle) - 200), a.text.indexOf(needle) + 80)}…`);
    }
  }
  assert.deepEqual(failures, []);
  // The lists are not empty for nothing: the admin sees prod in them.
  const all = await call('GET', '/api/v1/audit?limit=1000', core.token);
  assert.ok(all.text.includes(prod.id));
});
