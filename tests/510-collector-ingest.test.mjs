// Collector enrollment and ingest: the real collector binary against the real
// core; signed batches refused for the right reasons with nothing stored;
// series queries; /metrics passes promtool.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createDatabase, startCore, waitFor, runCore, createUser, login } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { openSse } from './lib/sse.mjs';
import { registerNode, collectorDir, runCollector, startCollector, makeAgentKey, signedBatch, sample } from './lib/collector.mjs';

let db, core, sshd, nodeA, nodeB;
before(async () => {
  sshd = startSshd();
  db = createDatabase('coll');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  nodeA = await registerNode(core, sshd);
  nodeB = await registerNode(core, sshd);
});
after(async () => {
  try { await core?.stop(); } finally { sshd?.remove(); }
});

async function enrollToken(node, body = {}) {
  const r = await core.request('POST', `/api/v1/nodes/${node}/enroll-token`, { json: body });
  assert.equal(r.status, 201, r.text);
  assert.match(r.body.token, /^sbe_[0-9a-f]{64}$/);
  return r.body.token;
}

async function enrollKey(node) {
  const key = makeAgentKey();
  const token = await enrollToken(node);
  const r = await core.request('POST', '/api/v1/agent/enroll', { json: { token, public_key: key.hex } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.fingerprint, key.fingerprint);
  return key;
}

function post(batch) {
  return core.request('POST', '/api/v1/agent/metrics', { body: batch.body, headers: batch.headers });
}

const rawRows = (node) => Number(db.sql(`SELECT count(*) FROM metrics_raw WHERE node_id = '${node}'`));

test('enroll-token: unknown node 404, bad ttl 422; the token is one-time and only its digest is logged', async () => {
  assert.equal((await core.request('POST', '/api/v1/nodes/8d5e7a55-1111-4a4a-8888-000000000000/enroll-token', { json: {} })).status, 404);
  assert.equal((await core.request('POST', '/api/v1/nodes/not-a-uuid/enroll-token', { json: {} })).status, 404);
  const bad = await core.request('POST', `/api/v1/nodes/${nodeA}/enroll-token`, { json: { ttl_seconds: 5 } });
  assert.equal(bad.status, 422);
  assert.equal(bad.body.error.field, 'ttl_seconds');
  const token = await enrollToken(nodeA);
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE body LIKE '%${token.slice(4)}%'`), '0', 'token never in the log');
  const key = makeAgentKey();
  const ok = await core.request('POST', '/api/v1/agent/enroll', { json: { token, public_key: key.hex } });
  assert.equal(ok.status, 201);
  const again = await core.request('POST', '/api/v1/agent/enroll', { json: { token, public_key: makeAgentKey().hex } });
  assert.equal(again.status, 401);
  const junk = await core.request('POST', '/api/v1/agent/enroll', { json: { token: 'sbe_nope', public_key: key.hex } });
  assert.equal(junk.status, 401);
  const badKey = await core.request('POST', '/api/v1/agent/enroll', { json: { token: await enrollToken(nodeA), public_key: 'zz' } });
  assert.equal(badKey.status, 422);
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE type = 'agent.enrolled' AND stream = 'node/${nodeA}'`), '1');
  assert.ok(Number(db.sql("SELECT count(*) FROM events WHERE type = 'agent.enroll_refused' AND outcome = 'denied'")) >= 2);
});

test('the real collector enrolls (key 0600) and its samples come back through the query API', async () => {
  const dir = collectorDir();
  const token = await enrollToken(nodeB);
  const e = runCollector(['enroll', '--core', core.base, '--token', token, '--state-dir', dir]);
  assert.equal(e.code, 0, e.stderr + e.stdout);
  assert.equal(statSync(join(dir, 'key')).mode & 0o777, 0o600);
  const fp = readFileSync(join(dir, 'identity'), 'utf8').match(/fingerprint=([0-9a-f]{64})/)[1];
  assert.equal(db.sql(`SELECT node_id FROM agent_keys WHERE fingerprint = '${fp}'`), nodeB);

  const once = runCollector(['--once', '--docker-socket', '']);
  assert.equal(once.code, 0, once.stderr);
  const s = JSON.parse(once.stdout);
  for (const k of ['ts', 'cpu', 'mem', 'swap', 'load1', 'uptime', 'procs', 'net', 'disks']) assert.ok(k in s, k);

  // live: the SSE topic of this node carries each sample; the other node's topic stays quiet
  const live = openSse(core.base, `/api/v1/events?topics=metrics/node/${nodeB}`, { token: core.token });
  const other = openSse(core.base, `/api/v1/events?topics=metrics/node/${nodeA}`, { token: core.token });
  await Promise.all([live.ready, other.ready]);
  assert.equal(live.status, 200);
  const c = startCollector(['--core', core.base, '--state-dir', dir, '--interval', '1', '--docker-socket', '']);
  try {
    await waitFor(() => rawRows(nodeB) >= 3, { timeout: 20000, what: 'three samples stored' });
    await live.waitFor((x) => x.events.filter((e) => e.event === 'metrics.sample').length >= 2, { what: 'two live samples' });
    // the first reading has no rates yet (cpu null); the second has them
    const m = JSON.parse(live.events.filter((e) => e.event === 'metrics.sample').at(-1).data);
    assert.equal(m.topic, `metrics/node/${nodeB}`);
    assert.equal(m.data.node_id, nodeB);
    assert.ok(m.data.sample.mem.total > 0 && typeof m.data.sample.cpu.total === 'number', JSON.stringify(m));
    assert.equal(other.events.filter((e) => e.event === 'metrics.sample').length, 0);
  } finally {
    live.close();
    other.close();
    const r = await c.stop();
    assert.equal(r.code, 0, c.log());
    assert.doesNotMatch(c.log(), /AddressSanitizer|runtime error/);
  }
  const q = await core.request('GET', `/api/v1/nodes/${nodeB}/metrics?from=${Date.now() - 600000}&step=1`);
  assert.equal(q.status, 200, q.text);
  assert.equal(q.body.resolution, 'raw');
  assert.ok(q.body.points.length >= 3);
  const p = q.body.points.at(-1);
  assert.ok(p.mem_total > 0 && p.procs > 0 && typeof p.cpu_pct === 'number', JSON.stringify(p));
  assert.ok(q.body.latest && q.body.latest.mem.total > 0);
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${nodeB}' AND type = 'node.online'`), '1');
  // metrics samples are not events
  assert.equal(db.sql("SELECT count(*) FROM events WHERE type LIKE 'metrics%'"), '0');
});

test('forged, replayed, stale, malformed and oversized batches are refused; nothing stored; the next valid one is taken', async () => {
  const key = await enrollKey(nodeA);
  const other = makeAgentKey();
  let seq = 1;
  const batch = (k = key, over = {}) => signedBatch(k, { v: 1, node_id: nodeA, seq: seq, sent_at: Date.now(), interval_ms: 5000, samples: [sample()], ...over });

  const good = batch();
  const r1 = await post(good);
  assert.equal(r1.status, 200, r1.text);
  assert.equal(r1.body.status, 'stored');
  const base = rawRows(nodeA);
  assert.equal(base, 1);
  const eventsBefore = Number(db.sql("SELECT count(*) FROM events WHERE type = 'agent.batch_refused'"));

  seq = 2;
  // signed by a key that is not enrolled
  assert.equal((await post(batch(other))).status, 401);
  // enrolled key named, another key's signature
  const forged = batch(other);
  forged.headers['X-Serverbox-Key'] = key.fingerprint;
  assert.equal((await post(forged)).status, 401);
  // body changed after signing
  const tampered = batch();
  tampered.body = tampered.body.replace('"procs":42', '"procs":43');
  assert.equal((await post(tampered)).status, 401);
  // no signature at all
  assert.equal((await core.request('POST', '/api/v1/agent/metrics', { json: { seq: 2 } })).status, 401);
  // stale timestamp
  assert.equal((await post(batch(key, { sent_at: Date.now() - 10 * 60 * 1000 }))).status, 401);
  // replay of an accepted batch: harmless, nothing stored
  const replay = await post(good);
  assert.equal(replay.status, 200);
  assert.equal(replay.body.status, 'duplicate');
  // malformed JSON, signed
  const mal = signedBatch(key, '{"v":1,"seq":');
  assert.equal((await post(mal)).status, 400);
  // a 10 MiB body
  const huge = signedBatch(key, JSON.stringify({ v: 1, node_id: nodeA, seq, sent_at: Date.now(), samples: [sample(Date.now(), { pad: 'x'.repeat(10 << 20) })] }));
  const big = await post(huge).catch((e) => ({ status: 'reset', e }));
  assert.ok(big.status === 413 || big.status === 'reset', `10 MiB body: ${big.status}`);
  // wrong node for the key
  assert.equal((await post(batch(key, { node_id: nodeB }))).status, 422);

  assert.equal(rawRows(nodeA), base, 'nothing stored');
  const refused = Number(db.sql("SELECT count(*) FROM events WHERE type = 'agent.batch_refused' AND outcome = 'denied'"));
  assert.ok(refused - eventsBefore >= 4, `refusals recorded: ${refused - eventsBefore}`);

  const next = await post(batch());
  assert.equal(next.status, 200, next.text);
  assert.equal(next.body.status, 'stored');
  assert.equal(rawRows(nodeA), base + 1);
});

test('containers: per-container series; downsampling caps a 30-day query', async () => {
  const key = await enrollKey(nodeA);
  const now = Date.now();
  const samples = [];
  for (let i = 0; i < 30; i++) {
    samples.push(sample(now - (30 - i) * 1000, { containers: [{ id: 'abc123', name: 'web', cpu: i, mem: 1000 + i, mem_limit: 5000, net_rx_bps: 1, net_tx_bps: 2, blk_read_bps: 3, blk_write_bps: 4 }] }));
  }
  const r = await post(signedBatch(key, { v: 1, node_id: nodeA, seq: now, sent_at: now, interval_ms: 1000, samples }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.samples, 30);
  const c = await core.request('GET', `/api/v1/nodes/${nodeA}/containers/abc123/metrics?from=${now - 60000}&to=${now}&step=10`);
  assert.equal(c.status, 200, c.text);
  assert.ok(c.body.points.length >= 3 && c.body.points.length <= 7, JSON.stringify(c.body.points.length));
  assert.equal(c.body.points[0].name, 'web');
  assert.equal((await core.request('GET', `/api/v1/nodes/${nodeA}/containers/..%2Fx/metrics`)).status, 404);
  const month = await core.request('GET', `/api/v1/nodes/${nodeA}/metrics?from=${now - 30 * 86400000}&to=${now}&step=1`);
  assert.equal(month.status, 200, month.text);
  assert.equal(month.body.resolution, '1m');
  assert.ok(month.body.step >= 1296, `step ${month.body.step}`);
  assert.equal((await core.request('GET', `/api/v1/nodes/${nodeA}/metrics?from=banana`)).status, 400);
});

test('/metrics carries the latest value per node and container and passes promtool', async () => {
  const r = await core.request('GET', '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.text, new RegExp(`serverbox_node_up\\{node="${nodeB}"\\} 1`));
  assert.match(r.text, /serverbox_node_memory_total_bytes\{node="/);
  assert.match(r.text, /serverbox_container_cpu_percent\{node="[^"]+",container="abc123",name="web"\}/);
  // the core's own figures: requests, live streams, pools, events appended
  const figure = (name) => Number((r.text.match(new RegExp(`^${name} (\\S+)$`, 'm')) || [])[1]);
  assert.ok(figure('serverbox_http_requests_total') > 10, 'requests');
  assert.ok(figure('serverbox_events_appended_total') > 5, 'events appended');
  assert.ok(figure('serverbox_db_pool_open') >= 1, 'database pool');
  assert.ok(Number.isInteger(figure('serverbox_ssh_pool_open')), 'ssh pool');
  assert.ok(Number.isInteger(figure('serverbox_events_streams')), 'live streams');
  const f = join(tmpdir(), `sbx-metrics-${process.pid}.txt`);
  writeFileSync(f, r.text);
  try {
    execFileSync('sh', ['-c', `promtool check metrics < ${f}`], { stdio: 'pipe' });
  } finally {
    rmSync(f, { force: true });
  }
});

test('partitions are maintained by metrics_maintain; old ones are dropped whole', () => {
  db.sql("CREATE TABLE metrics_raw_p20000101 PARTITION OF metrics_raw FOR VALUES FROM ('2000-01-01') TO ('2000-01-02')", 'serverbox');
  assert.equal(db.sql('SELECT metrics_maintain(7, 90)', 'serverbox_app'), '1');
  assert.equal(db.sql("SELECT to_regclass('metrics_raw_p20000101') IS NULL"), 't');
  assert.ok(Number(db.sql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'metrics_raw'::regclass")) >= 5);
});

test('the chain verifies, and rebuild-projections reproduces agent_keys and agent_enroll_tokens', () => {
  const keys = db.sql('SELECT fingerprint, node_id, public_key, enrolled_at, token_sha256 FROM agent_keys ORDER BY 1');
  const tokens = db.sql('SELECT token_sha256, node_id, expires_at, issued_at, used_at FROM agent_enroll_tokens ORDER BY 1');
  assert.match(runCore(['verify-audit'], { SERVERBOX_DATABASE_URL: db.url }).stdout, /chain ok/);
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(db.sql('SELECT fingerprint, node_id, public_key, enrolled_at, token_sha256 FROM agent_keys ORDER BY 1'), keys);
  assert.equal(db.sql('SELECT token_sha256, node_id, expires_at, issued_at, used_at FROM agent_enroll_tokens ORDER BY 1'), tokens);
});

test('collector options: flag over environment over config file; bad config lines refused', async () => {
  const dir = collectorDir();
  const conf = join(dir, 'collector.conf');
  writeFileSync(conf, `# comment\ncore = http://127.0.0.1:1\ntoken = sbe_from_file\nstate-dir = ${dir}\n`);
  const token = await enrollToken(nodeA);
  // core from the environment beats the file; token from the flag beats the file
  const r = runCollector(['enroll', '--config', conf, '--token', token], { SERVERBOX_COLLECTOR_CORE: core.base });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(readFileSync(join(dir, 'identity'), 'utf8'), new RegExp(`node_id=${nodeA}`));
  writeFileSync(conf, 'no-such-option = 1\n');
  const bad = runCollector(['--once', '--config', conf]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown option 'no-such-option'/);
  const notEnrolled = runCollector(['run', '--state-dir', collectorDir(), '--core', core.base]);
  assert.equal(notEnrolled.code, 2);
  assert.match(notEnrolled.stderr, /not enrolled/);
});

test('concurrent batches from many nodes, each sent twice at once: stored exactly once, answers match rows', async () => {
  const nodes = [];
  for (let i = 0; i < 8; i++) {
    const node = await registerNode(core, sshd);
    const tok = await enrollToken(node);
    const key = makeAgentKey();
    assert.equal((await core.request('POST', '/api/v1/agent/enroll', { json: { token: tok, public_key: key.hex } })).status, 201);
    nodes.push({ node, key });
  }
  const now = Date.now();
  const jobs = [];
  for (const { node, key } of nodes) {
    for (let seq = 1; seq <= 5; seq++) {
      const b = signedBatch(key, { v: 1, node_id: node, seq, sent_at: now, interval_ms: 1000, samples: [sample(now - 10000 + seq * 1000)] });
      for (let copy = 0; copy < 2; copy++) jobs.push(post(b).then((r) => ({ node, seq, status: r.status, what: r.body?.status })));
    }
  }
  const answers = await Promise.all(jobs);
  for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a));
  for (const { node } of nodes) {
    const stored = answers.filter((a) => a.node === node && a.what === 'stored');
    const seqs = new Set(stored.map((a) => a.seq));
    assert.equal(seqs.size, stored.length, `a seq stored twice for ${node}`);
    assert.ok(stored.length >= 1);
    const [n, distinct] = db.sql(`SELECT count(*), count(DISTINCT seq) FROM metrics_raw WHERE node_id = '${node}'`).split('|').map(Number);
    assert.equal(n, stored.length, 'rows match the "stored" answers');
    assert.equal(distinct, n);
  }
});

test('label scope: a viewer limited to env=prod sees the prod node\'s series, not the other node\'s; agent_status follows presence', async () => {
  const prod = await registerNode(core, sshd, { labels: { env: 'prod' } });
  const key = await enrollKey(prod);
  const now = Date.now();
  assert.equal((await post(signedBatch(key, { v: 1, node_id: prod, seq: 1, sent_at: now, interval_ms: 1000, samples: [sample(now)] }))).status, 200);
  const u = createUser(db, { role: 'viewer' });
  const admin = core.token;
  const uid = (await core.request('GET', '/api/v1/users')).body.users.find((x) => x.username === u.username).id;
  assert.equal((await core.request('PATCH', `/api/v1/users/${uid}`, { json: { node_labels: { env: 'prod' } } })).status, 200);
  const { token } = await login(core, u);
  assert.equal((await core.request('GET', `/api/v1/nodes/${prod}/metrics`, { token })).status, 200);
  const hidden = await core.request('GET', `/api/v1/nodes/${nodeA}/metrics`, { token });
  assert.equal(hidden.status, 404, hidden.text);
  assert.equal((await core.request('GET', `/api/v1/nodes/${nodeA}/containers/abc/metrics`, { token })).status, 404);
  // a viewer may not issue enrollment tokens at all
  assert.equal((await core.request('POST', `/api/v1/nodes/${prod}/enroll-token`, { token, json: {} })).status, 403);
  // the first batch set the node's agent_status (NULL before: no collector had reported)
  const n = await core.request('GET', `/api/v1/nodes/${prod}`, { token: admin });
  assert.equal(n.body.agent_status, 'online', n.text);
  assert.ok(n.body.agent_status_changed_at);
  const quiet = await registerNode(core, sshd);
  assert.equal((await core.request('GET', `/api/v1/nodes/${quiet}`, { token: admin })).body.agent_status, null);
  const ev = JSON.parse(db.sql(`SELECT body FROM events WHERE stream = 'node/${prod}' AND type = 'node.online'`));
  assert.equal(ev.data.source, 'collector');
});

test('the SSH health check\'s node.online is not the collector\'s: its first batch still sets agent_status', async () => {
  const own = startSshd();
  try {
    const node = await registerNode(core, own);
    own.stop();
    assert.equal((await core.request('POST', `/api/v1/nodes/${node}/check`)).body.status, 'offline');
    own.start();
    assert.equal((await core.request('POST', `/api/v1/nodes/${node}/check`)).body.status, 'online');
    assert.equal(db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${node}' AND type = 'node.online' AND body::jsonb->'data'->>'source' IS NULL`), '1');
    const key = await enrollKey(node);
    const now = Date.now();
    assert.equal((await post(signedBatch(key, { v: 1, node_id: node, seq: 1, sent_at: now, interval_ms: 1000, samples: [sample(now)] }))).status, 200);
    const n = await core.request('GET', `/api/v1/nodes/${node}`);
    assert.equal(n.body.agent_status, 'online', n.text);
    assert.equal(n.body.agent_interval_ms, 1000);
    assert.equal(db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${node}' AND type = 'node.online' AND body::jsonb->'data'->>'source' = 'collector'`), '1');
  } finally {
    own.remove();
  }
});

test('deleting a node revokes its collector keys: its batches are refused (401)', async () => {
  const gone = await registerNode(core, sshd);
  const key = await enrollKey(gone);
  assert.equal((await core.request('DELETE', `/api/v1/nodes/${gone}`)).status, 204);
  assert.notEqual(db.sql(`SELECT revoked_at FROM agent_keys WHERE fingerprint = '${key.fingerprint}'`), '');
  const now = Date.now();
  const r = await post(signedBatch(key, { v: 1, node_id: gone, seq: 1, sent_at: now, interval_ms: 1000, samples: [sample(now)] }));
  assert.equal(r.status, 401, r.text);
  assert.equal(rawRows(gone), 0);
  assert.equal((await core.request('POST', `/api/v1/nodes/${gone}/enroll-token`, { json: {} })).status, 404);
});
