// An alert transition and its delivery jobs commit in one transaction
// (issue #18; core/src/alerts/README.md). The crash point between them is
// made reachable with a PostgreSQL trigger on the jobs table:
//   - the delivery job's insert fails → the transition is not recorded
//     either (no alert.fired, no alert row); once it works the next round
//     fires and notifies, once;
//   - the delivery job's insert hangs (pg_sleep) while the daemon is killed
//     with SIGKILL, i.e. the daemon dies after the alert.fired row was
//     written in the transaction but before the jobs were → nothing of it
//     is committed, and a daemon started again fires and notifies once.
// Each committed alert.fired is followed by its job.queued events in the
// same transaction (consecutive seqs, one occurred_at).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { eventsOf } from './lib/stacks.mjs';
import { startHttpReceiver } from './lib/receivers.mjs';

const ENV = { SERVERBOX_ALERTS_INTERVAL: '1', SERVERBOX_ALERTS_ALLOW_LOOPBACK: '1', SERVERBOX_NODE_CHECK_INTERVAL: '1' };
let db, core, hook, sshA, sshB, nodeA, nodeB;
const killed = new Set();
const cores = [];

const posts = (nodeId, n) => hook.posts('/hook').filter((p) => p.json?.alert?.node_id === nodeId && p.json.notification === n);
const count = (sql) => Number(db.sql(sql));
const firedFor = (nodeId) => eventsOf(db, 'alert.fired').filter((e) => e.data.node_id === nodeId);

function trigger(body) {
  db.sql(`CREATE OR REPLACE FUNCTION sbx_inject() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.kind = 'alert.deliver' THEN ${body} END IF; RETURN NEW; END $$;
    CREATE TRIGGER sbx_inject BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION sbx_inject();`);
}
const untrigger = () => db.sql('DROP TRIGGER IF EXISTS sbx_inject ON jobs; DROP FUNCTION IF EXISTS sbx_inject();');

before(async () => {
  sshA = startSshd();
  sshB = startSshd();
  hook = await startHttpReceiver();
  db = createDatabase('alertsatomic');
  core = await startCore({ db, admin: true, env: ENV });
  cores.push(core);
  const register = async (name, sshd) => {
    const r = await core.request('POST', '/api/v1/nodes', { json: { name, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key } });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  nodeA = await register('atomic-a', sshA);
  nodeB = await register('atomic-b', sshB);
  const c = await core.request('POST', '/api/v1/alerts/channels', { json: { name: 'hook', kind: 'webhook', url: hook.url('/hook'), secret: 'atomic-secret-0123456789' } });
  assert.equal(c.status, 201, c.text);
  await waitFor(async () => (await core.request('GET', '/api/v1/alerts/rules')).body.rules?.some((r) => r.kind === 'node_offline'),
    { timeout: 30000, what: 'the default rules' });
});

after(async () => {
  if (process.env.SBX_ALERTS_DEBUG) (await import('node:fs')).writeFileSync('/tmp/sbx-alerts-1008.log', cores.map((c) => c.log()).join('\n----- next\n'));
  try {
    untrigger();
    for (const c of cores) await c.stop({ expectClean: !killed.has(c) });
  } finally {
    sshA?.remove();
    sshB?.remove();
    await hook?.stop();
  }
});

// Every alert.fired of the node and the job.queued of its deliveries: one transaction.
function assertTogether(nodeId) {
  for (const f of firedFor(nodeId)) {
    const rows = db.sql(`SELECT seq, type, occurred_at FROM events WHERE seq > ${f.seq} AND seq <= ${f.seq + 1} ORDER BY seq`).split('\n');
    const [seq, type, at] = rows[0].split('|');
    assert.equal(Number(seq), f.seq + 1);
    assert.equal(type, 'job.queued', 'the delivery job right after the transition');
    assert.equal(at, db.sql(`SELECT occurred_at FROM events WHERE seq = ${f.seq}`), 'in the same transaction');
    const job = JSON.parse(db.sql(`SELECT body FROM events WHERE seq = ${seq}`));
    assert.equal(job.data.args.alert_id, f.data.id);
  }
}

test('the delivery job cannot be queued → the transition is not recorded either; then it fires and notifies once', async () => {
  trigger("RAISE EXCEPTION 'injected failure';");
  const mark = core.log().length;
  sshA.stop();
  await waitFor(async () => (await core.request('GET', `/api/v1/nodes/${nodeA.id}`)).body.status === 'offline', { timeout: 60000, what: 'node a offline' });
  // Rounds that try to fire it and fail (the daemon says so).
  await waitFor(() => (core.log().slice(mark).match(/alert not recorded.*P0001/g) || []).length >= 2,
    { timeout: 60000, what: 'failed attempts to record the alert' });
  assert.equal(firedFor(nodeA.id).length, 0, 'no alert.fired without its delivery job');
  assert.equal(count(`SELECT count(*) FROM alerts WHERE node_id = '${nodeA.id}'`), 0);
  assert.equal(count("SELECT count(*) FROM jobs WHERE kind = 'alert.deliver'"), 0);
  untrigger();
  await waitFor(() => posts(nodeA.id, 'firing').length >= 1, { timeout: 60000, what: 'the notification' });
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(posts(nodeA.id, 'firing').length, 1);
  assert.equal(firedFor(nodeA.id).length, 1);
  assertTogether(nodeA.id);
});

test('kill -9 between the transition and its jobs (inside the transaction): nothing is kept; the next daemon fires and notifies', async () => {
  // The job insert waits; the daemon dies there. The backend notices its
  // client is gone (client_connection_check_interval) and rolls back.
  trigger("PERFORM set_config('client_connection_check_interval', '200', true); PERFORM pg_sleep(120);");
  sshB.stop();
  await waitFor(() => count("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") >= 1,
    { timeout: 60000, what: 'the evaluator inside the transaction, at the jobs insert' });
  // Inside the open transaction the alert.fired row and the alert row are written already.
  core.proc.kill('SIGKILL');
  killed.add(core);
  await core.exited;
  const sleeping = () => count("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
  try {
    await waitFor(() => sleeping() === 0, { timeout: 10000, what: 'the dead daemon\'s transaction to end' });
  } catch {
    // The server had not noticed its client is gone: end the backend as it would.
    db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
    await waitFor(() => sleeping() === 0, { timeout: 10000, what: 'the backend to end' });
  }
  untrigger();
  assert.equal(firedFor(nodeB.id).length, 0, 'the killed transaction kept nothing');
  assert.equal(count(`SELECT count(*) FROM alerts WHERE node_id = '${nodeB.id}'`), 0);
  assert.equal(posts(nodeB.id, 'firing').length, 0);
  const again = await startCore({ db, env: ENV, dataDir: core.dataDir }); // its master key opens the channel's secret
  again.token = core.token;
  cores.push(again);
  core = again;
  await waitFor(() => posts(nodeB.id, 'firing').length >= 1, { timeout: 90000, what: 'the notification from the new daemon' });
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(posts(nodeB.id, 'firing').length, 1, 'notified once');
  assert.equal(firedFor(nodeB.id).length, 1);
  assertTogether(nodeB.id);
  assertTogether(nodeA.id);
});
