// Notification delivery through the jobs queue (issue #18): the HTTP
// receiver is down for more than 60 s while an alert fires, and the core is
// restarted meanwhile; when the receiver comes back it gets the
// notification exactly once, and the delivery log holds every failed
// attempt and the one that worked, with the receiver's answer. A receiver
// answering 4xx fails the delivery at once (no retries). A transition and
// its delivery jobs are appended in one transaction (tests/1008 injects the
// failure and a kill -9 between them). The alert projections rebuild from
// the log to the same rows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, runCore, waitFor } from './lib/harness.mjs';
import { startEngine, eventsOf } from './lib/stacks.mjs';
import { startHttpReceiver, signatureValid } from './lib/receivers.mjs';

const SECRET = 'delivery-secret-0123456789';
let db, core, engine, hook, channelId;

const HOG = 'if [ -f /tmp/ok ]; then exec sleep 100000; fi; touch /tmp/ok; x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done';
const ENV = () => ({
  SERVERBOX_DOCKER_SOCKET: engine.sock,
  SERVERBOX_ALERTS_INTERVAL: '1',
  SERVERBOX_ALERTS_ALLOW_LOOPBACK: '1',
  SERVERBOX_NODE_CHECK_INTERVAL: '0',
  SERVERBOX_JOB_RETRY_BASE_MS: '500',
});

async function oomContainer(name) {
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name, image: 'local/busybox:1', command: ['sh', '-c', HOG], memory_bytes: 16 * 1024 * 1024 },
  });
  assert.equal(c.status, 201, c.text);
  return c.body.id;
}
const deliveredTo = (cid) => hook.posts('/hook').filter((p) => p.json?.alert?.container_id === cid && p.json?.notification === 'firing');

before(async () => {
  engine = startEngine();
  hook = await startHttpReceiver();
  db = createDatabase('alertsdel');
  core = await startCore({ db, admin: true, env: ENV() });
  const r = await core.request('POST', '/api/v1/alerts/channels', { json: { name: 'hook', kind: 'webhook', url: hook.url('/hook'), secret: SECRET } });
  assert.equal(r.status, 201, r.text);
  channelId = r.body.id;
});

after(async () => {
  try {
    await core?.stop();
  } finally {
    await hook?.stop().catch(() => {});
    engine?.stop();
  }
});

test('a receiver down for 60 s, and a core restart meanwhile: the notification arrives once when it is back', async () => {
  await hook.down();
  const downAt = Date.now();
  const cid = await oomContainer('hog-down');
  const alert = await waitFor(async () => (await core.request('GET', '/api/v1/alerts?state=firing')).body.alerts.find((a) => a.container_id === cid),
    { timeout: 60000, what: 'the OOM alert' });
  await waitFor(() => eventsOf(db, 'alert.delivery_failed').filter((e) => e.data.id === alert.id).length >= 2,
    { timeout: 60000, what: 'failed attempts' });
  // A restart loses nothing: the delivery is a job in PostgreSQL.
  const token = core.token, admin = core.admin, dataDir = core.dataDir;
  await core.stop();
  core = await startCore({ db, env: ENV(), dataDir });
  core.token = token;
  core.admin = admin;
  const left = 60000 - (Date.now() - downAt);
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  assert.equal(deliveredTo(cid).length, 0);
  await hook.up();
  await waitFor(() => deliveredTo(cid).length >= 1, { timeout: 180000, interval: 250, what: 'the late delivery' });
  await new Promise((r) => setTimeout(r, 5000));
  const got = deliveredTo(cid);
  assert.equal(got.length, 1, 'delivered exactly once');
  assert.ok(signatureValid(got[0], SECRET));
  assert.equal(got[0].json.alert.container_name, 'hog-down');
  const a = await core.request('GET', `/api/v1/alerts/${alert.id}`);
  assert.equal(a.status, 200, a.text);
  const log = a.body.deliveries;
  assert.ok(log.filter((d) => d.outcome === 'failed').length >= 2, JSON.stringify(log));
  assert.ok(log.filter((d) => d.outcome === 'failed').every((d) => d.answer.length > 0), 'each failure says why');
  const ok = log.filter((d) => d.outcome === 'delivered');
  assert.equal(ok.length, 1);
  assert.equal(ok[0].status, 200);
  assert.equal(ok[0].answer, 'ok, got it');
  assert.equal(ok[0].channel_id, channelId);
  assert.ok(ok[0].attempt >= 3, `attempt ${ok[0].attempt}`);
  // One alert.fired for it, whatever the restart.
  assert.equal(eventsOf(db, 'alert.fired').filter((e) => e.data.container_id === cid).length, 1);
});

test('a receiver answering 4xx fails the delivery at once; the test route says so', async () => {
  hook.status = 404;
  try {
    const t = await core.request('POST', `/api/v1/alerts/channels/${channelId}/test`);
    assert.equal(t.status, 202, t.text);
    const job = await waitFor(async () => {
      const j = await core.request('GET', `/api/v1/jobs/${t.body.job.id}`);
      return ['failed', 'succeeded'].includes(j.body?.job?.state) ? j.body.job : null;
    }, { timeout: 30000, what: 'the test job' });
    assert.equal(job.state, 'failed');
    assert.equal(job.attempt, 1, 'not retried');
    const c = await core.request('GET', `/api/v1/alerts/channels/${channelId}`);
    const d = c.body.tests.find((x) => x.job_id === job.id);
    assert.equal(d.outcome, 'failed');
    assert.equal(d.status, 404);
    assert.equal(d.answer, 'receiver says no');
  } finally {
    hook.status = 200;
  }
});

test('an OOM alert and its delivery job are one transaction (the job.queued right after alert.fired, same commit)', async () => {
  const cid = await oomContainer('hog-atomic');
  await waitFor(() => deliveredTo(cid).length >= 1, { timeout: 120000, interval: 250, what: 'the delivery' });
  const fired = eventsOf(db, 'alert.fired').find((e) => e.data.container_id === cid);
  const next = JSON.parse(db.sql(`SELECT body FROM events WHERE seq = ${fired.seq + 1}`));
  assert.equal(next.type, 'job.queued');
  assert.equal(next.data.args.alert_id, fired.data.id);
  assert.equal(next.data.args.notification, 'firing');
  assert.equal(next.occurred_at, fired.occurred_at, 'appended in the same transaction');
  assert.ok(!/notification was never queued/.test(core.log()));
});

test('the alert projections rebuild from the log to the same rows', async () => {
  const snap = () => db.sql(`SELECT json_agg(x ORDER BY x::text)::text FROM (
      SELECT row_to_json(a)::text AS x FROM alerts a UNION ALL SELECT row_to_json(r)::text FROM alert_rules r
      UNION ALL SELECT row_to_json(c)::text FROM alert_channels c UNION ALL SELECT row_to_json(d)::text FROM alert_deliveries d) t`);
  const token = core.token;
  const dataDir = core.dataDir;
  await core.stop();
  const before = snap();
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(snap(), before);
  core = await startCore({ db, env: ENV(), dataDir });
  core.token = token;
});
