// The collector across a 60-second core outage: every sample taken meanwhile
// is spooled and arrives once the core is back, none twice (counted by
// sequence number). Then presence: a silent collector makes the node
// node.offline (one event), and node.online again when batches resume.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { registerNode, collectorDir, runCollector, startCollector } from './lib/collector.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let core, collector, sshd;
after(async () => {
  try { await collector?.stop(); await core?.stop({ expectClean: false }); } finally { sshd?.remove(); }
});
const ENV = { SERVERBOX_NODE_CHECK_INTERVAL: '0' };

test('60 s outage: every sample arrives exactly once, oldest first; node offline/online events', async () => {
  const db = createDatabase('outage');
  sshd = startSshd();
  core = await startCore({ db, admin: true, env: ENV });
  const node = await registerNode(core, sshd);
  const port = core.port;
  const tok = await core.request('POST', `/api/v1/nodes/${node}/enroll-token`, { json: {} });
  const dir = collectorDir();
  const e = runCollector(['enroll', '--core', core.base, '--token', tok.body.token, '--state-dir', dir]);
  assert.equal(e.code, 0, e.stderr);
  const args = ['--core', core.base, '--state-dir', dir, '--interval', '1', '--backoff-max', '4', '--timeout', '2', '--docker-socket', ''];
  collector = startCollector(args);
  const rows = () => Number(db.sql(`SELECT count(*) FROM metrics_raw WHERE node_id = '${node}'`));
  await waitFor(() => rows() >= 3, { timeout: 20000, what: 'first samples' });

  await core.stop();
  const downAt = Date.now();
  const before = rows();
  await sleep(60000);
  const spooled = readdirSync(join(dir, 'spool')).filter((f) => f.endsWith('.json')).length;
  assert.ok(spooled >= 50, `spooled during the outage: ${spooled}`);
  core = await startCore({ db, admin: true, env: ENV, args: ['--listen', `127.0.0.1:${port}`] });
  await waitFor(() => readdirSync(join(dir, 'spool')).filter((f) => f.endsWith('.json')).length === 0,
    { timeout: 30000, what: 'spool drained' });
  const r = await collector.stop();
  assert.equal(r.code, 0, collector.log());
  assert.doesNotMatch(collector.log(), /AddressSanitizer|runtime error|dropped/);
  collector = null;

  const lastSeq = Number(readFileSync(join(dir, 'seq'), 'utf8'));
  const [min, max, n, distinct] = db.sql(`SELECT min(seq), max(seq), count(*), count(DISTINCT seq) FROM metrics_raw WHERE node_id = '${node}'`).split('|').map(Number);
  assert.equal(max, lastSeq, 'the last sample taken is stored');
  assert.equal(n, distinct, 'no sequence number twice');
  assert.equal(n, max - min + 1, 'no sequence number missing');
  assert.ok(n - before >= 50, `samples from the outage stored: ${n - before}`);
  const during = Number(db.sql(`SELECT count(*) FROM metrics_raw WHERE node_id = '${node}' AND ts > to_timestamp(${downAt / 1000}) AND ts < to_timestamp(${(downAt + 60000) / 1000})`));
  assert.ok(during >= 50, `samples timestamped during the outage: ${during}`);

  // presence: the collector is stopped now; the core notices within 3 intervals + 1 s
  await waitFor(() => db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${node}' AND type = 'node.offline'`) === '1',
    { timeout: 15000, what: 'node.offline' });
  // the collector's view moves agent_status; SSH reachability (status) is the health check's
  const st = await core.request('GET', `/api/v1/nodes/${node}`);
  assert.equal(st.body.agent_status, 'offline', st.text);
  assert.equal(st.body.status, 'online', st.text);
  collector = startCollector(args);
  await waitFor(() => db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${node}' AND type = 'node.online'`) === '2',
    { timeout: 15000, what: 'node.online again' });
  await sleep(2000);
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${node}' AND type = 'node.offline'`), '1', 'one event per change');
  assert.equal((await core.request('GET', `/api/v1/nodes/${node}`)).body.agent_status, 'online');
  // a core restarted while the node is online (per the log) still notices it went silent
  await core.stop();
  await collector.stop();
  collector = null;
  core = await startCore({ db, admin: true, env: ENV });
  await waitFor(() => db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${node}' AND type = 'node.offline'`) === '2',
    { timeout: 15000, what: 'node.offline after a core restart' });
  await core.stop();
  core = null;
});
