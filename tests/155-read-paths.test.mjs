// The read paths that pass PostgreSQL's JSON (or the stored event bodies)
// through without parsing them (issue #23) answer exactly what the parsing
// path answered: the same nodes for every scope and label filter, the same
// fields per caller, and audit entries byte-equal to the log with their hash.
// The node list is also cached (nodes/listcache.c): a read after a write on
// the same daemon sees the write, another daemon sees it once its follower
// has read the event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, login, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';

let db, core, sshd;
const nodes = {};
const HIDDEN = ['host', 'port', 'ssh_user', 'host_key_fingerprint', 'public_key', 'key_type', 'status_reason'];

before(async () => {
  sshd = startSshd();
  db = createDatabase('reads');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  const want = {
    'b-prod-sec': { env: 'prod', team: 'sec' },
    'a-prod': { env: 'prod' },
    'c-lab-sec': { env: 'lab', team: 'sec' },
    'd-bare': {},
  };
  for (const [name, labels] of Object.entries(want)) {
    const r = await core.request('POST', '/api/v1/nodes', {
      json: { name, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels },
    });
    assert.equal(r.status, 201, r.text);
    nodes[name] = r.body;
  }
});
after(async () => {
  try {
    await core?.stop();
  } finally {
    sshd?.remove();
  }
});

const names = (r) => r.body.items.map((n) => n.name);

async function user(role, node_labels) {
  const u = { username: `r${Math.random().toString(16).slice(2, 10)}`, password: `pw-${Math.random().toString(16).slice(2)}-long`, role };
  const r = await core.request('POST', '/api/v1/users', { json: { ...u, node_labels } });
  assert.equal(r.status, 201, r.text);
  return (await login(core, u)).token;
}

test('the node list: ordered by name, each item what the node route answers', async () => {
  const r = await core.request('GET', '/api/v1/nodes');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.deepEqual(names(r), ['a-prod', 'b-prod-sec', 'c-lab-sec', 'd-bare']);
  for (const item of r.body.items) {
    const one = await core.request('GET', `/api/v1/nodes/${item.id}`);
    const { pool, last_check, ...rest } = one.body;
    assert.deepEqual(item, rest);
  }
  assert.equal(r.body.items[0].ssh_user, 'root');
});

test('label filters: pairs and keys all hold; a key given twice with two values matches nothing', async () => {
  const q = async (f) => names(await core.request('GET', `/api/v1/nodes?label=${encodeURIComponent(f)}`));
  assert.deepEqual(await q('env=prod'), ['a-prod', 'b-prod-sec']);
  assert.deepEqual(await q('team'), ['b-prod-sec', 'c-lab-sec']);
  assert.deepEqual(await q('env=prod,team=sec'), ['b-prod-sec']);
  assert.deepEqual(await q('env=prod,team'), ['b-prod-sec']);
  assert.deepEqual(await q('env=prod,env=lab'), []);
  assert.deepEqual(await q('nope'), []);
  assert.deepEqual(await q('env='), []);
  assert.deepEqual(await q(',,'), ['a-prod', 'b-prod-sec', 'c-lab-sec', 'd-bare']);
  // Text that would be SQL or JSON elsewhere is only a label name or value.
  assert.deepEqual(await q(`env=prod' OR '1'='1`), []);
  assert.deepEqual(await q('{"env":"prod"}'), []);
  const long = await core.request('GET', `/api/v1/nodes?label=${'a'.repeat(501)}`);
  assert.equal(long.status, 400, long.text);
});

test('a scoped caller sees only its nodes, and a filter narrows within its scope', async () => {
  const t = await user('viewer', { team: 'sec' });
  let r = await core.request('GET', '/api/v1/nodes', { token: t });
  assert.deepEqual(names(r), ['b-prod-sec', 'c-lab-sec']);
  assert.equal(r.body.items[0].host, '127.0.0.1'); // viewers see connection settings
  r = await core.request('GET', '/api/v1/nodes?label=env=prod', { token: t });
  assert.deepEqual(names(r), ['b-prod-sec']);
  const none = await user('operator', { env: 'nowhere' });
  r = await core.request('GET', '/api/v1/nodes', { token: none });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { items: [] });
});

test('guests get the public fields only, in scope', async () => {
  const g = await core.request('POST', '/api/v1/guest-links', { json: { scopes: ['view:metrics'], ttl_seconds: 600, node_labels: { env: 'prod' } } });
  assert.equal(g.status, 201, g.text);
  const r = await core.request('GET', '/api/v1/nodes', { token: g.body.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(names(r), ['a-prod', 'b-prod-sec']);
  for (const item of r.body.items) {
    for (const k of HIDDEN) assert.ok(!(k in item), `${k} hidden: ${r.text}`);
    assert.equal(item.id, nodes[item.name].id);
    assert.deepEqual(item.labels, nodes[item.name].labels);
    assert.ok(item.status && item.created_at && item.docker);
  }
  assert.ok(!r.text.includes(sshd.fingerprint) && !r.text.includes('127.0.0.1'), r.text);
});

test('audit pages: each entry is the stored body with its hash; the cursor pages the whole log', async () => {
  const log = db.sql("SELECT seq || ' ' || encode(hash, 'hex') FROM events ORDER BY seq").split('\n');
  const bodies = db.sql('SELECT body FROM events ORDER BY seq').split('\n').map((b) => JSON.parse(b));
  const seen = [];
  let after = 0;
  for (let pages = 0; pages < 100; pages++) {
    const r = await core.request('GET', `/api/v1/audit?limit=7&after=${after}`);
    assert.equal(r.status, 200, r.text);
    for (const e of r.body.events) {
      const { hash, ...body } = e;
      assert.deepEqual(body, bodies[seen.length]);
      seen.push(`${e.seq} ${hash}`);
    }
    if (r.body.next_after === null) break;
    assert.equal(r.body.events.length, 7);
    after = r.body.next_after;
  }
  // The log has grown by the reads' own guest link only if that was recorded
  // before; compare the prefix the listing covered.
  assert.ok(seen.length >= log.length, `${seen.length} of ${log.length}`);
  assert.deepEqual(seen.slice(0, log.length), log);
  // Filters still apply, and a scoped caller still gets the filtered path.
  const typed = await core.request('GET', '/api/v1/audit?type=node.&limit=1000');
  assert.ok(typed.body.events.length >= 4 && typed.body.events.every((e) => e.type.startsWith('node.')), typed.text.slice(0, 300));
  const t = await user('viewer', { env: 'lab' });
  const scoped = await core.request('GET', '/api/v1/audit?type=node.registered&limit=1000', { token: t });
  assert.equal(scoped.status, 200, scoped.text);
  assert.deepEqual(scoped.body.events.map((e) => e.data.name), ['c-lab-sec']);
  const empty = await core.request('GET', `/api/v1/audit?after=${Number(log.at(-1).split(' ')[0]) + 100000}`);
  assert.deepEqual(empty.body, { events: [], next_after: null });
});

test('the cached node list: a read after a write sees it on this daemon, and on another once it has the event', async () => {
  const other = await startCore({ db, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  try {
    const id = nodes['d-bare'].id;
    const labelsOn = async (c) => (await c.request('GET', '/api/v1/nodes', { token: core.token })).body.items.find((n) => n.id === id).labels;
    for (let i = 0; i < 5; i++) {
      // Both caches warm, then one write: this daemon answers it at once.
      await labelsOn(core);
      await labelsOn(core);
      await labelsOn(other);
      const labels = { round: String(i) };
      const u = await core.request('PATCH', `/api/v1/nodes/${id}`, { json: { labels } });
      assert.equal(u.status, 200, u.text);
      assert.deepEqual(await labelsOn(core), labels, `round ${i}: read after write`);
      await waitFor(async () => (await labelsOn(other)).round === String(i), { timeout: 10000, what: `round ${i} on the other daemon` });
    }
    // A scoped caller's cached list follows the labels too: the node leaves its scope.
    const tok = await user('viewer', { round: '4' });
    const seen = async () => names(await core.request('GET', '/api/v1/nodes', { token: tok }));
    assert.deepEqual(await seen(), ['d-bare']);
    assert.equal((await core.request('PATCH', `/api/v1/nodes/${id}`, { json: { labels: {} } })).status, 200);
    assert.deepEqual(await seen(), []);
  } finally {
    await other.stop();
  }
});

test('audit pages from the page cache: a full page is the same bytes again; the page at the head grows with the log', async () => {
  const a = await core.request('GET', '/api/v1/audit?limit=3&type=node.');
  const b = await core.request('GET', '/api/v1/audit?limit=3&type=node.');
  assert.equal(a.body.events.length, 3);
  assert.equal(b.text, a.text);
  // Another filter is another page, not the cached one.
  const c = await core.request('GET', '/api/v1/audit?limit=3&type=node.registered');
  assert.ok(c.body.events.every((e) => e.type === 'node.registered'), c.text.slice(0, 300));
  // The head: a page with fewer entries than its limit is never kept.
  const head = Number(db.sql('SELECT max(seq) FROM events'));
  const path = `/api/v1/audit?limit=50&after=${head - 1}&type=annotation.`;
  const before = await core.request('GET', path);
  const again = await core.request('GET', path);
  assert.deepEqual(again.body, before.body);
  for (let i = 0; i < 2; i++) {
    const r = await core.request('POST', '/api/v1/annotations', { json: { message: `page cache ${i}` } });
    assert.equal(r.status, 201, r.text);
    const now = await core.request('GET', path);
    assert.equal(now.body.events.length, before.body.events.length + i + 1, now.text.slice(0, 300));
    assert.equal(now.body.events.at(-1).data.message, `page cache ${i}`);
  }
});
