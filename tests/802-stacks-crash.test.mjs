// kill -9 of the core in the middle of a deploy: after a restart the job's
// lapsed lease is taken over and the deploy resumes and finishes (or fails
// with a reason) — never left half done without saying so. The plan is
// recomputed from what exists on the engine, so what the first attempt made
// is not made twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, waitFor, runCore } from './lib/harness.mjs';
import { startEngine, eventsOf } from './lib/stacks.mjs';

let eng, db, core;

before(async () => {
  eng = startEngine();
  db = createDatabase('stackscrash');
});

after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    eng.stop();
  }
});

// web takes a few seconds to become healthy, so the deploy is caught mid-way
const compose = `services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "sleep 4; mkdir -p /w; echo up > /w/index.html; exec httpd -f -p 8080 -h /w"]
    healthcheck: {test: ["CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"], interval: 500ms, retries: 20}
  worker:
    image: local/busybox:1
    command: ["sleep", "3600"]
    depends_on: {web: {condition: service_healthy}}
    deploy: {replicas: 2}
`;

test('kill -9 mid-deploy, restart: the deploy is resumed and completes exactly once', async () => {
  const env = { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_JOB_LEASE_MS: '2000' };
  core = await startCore({ db, admin: true, env });
  const c = await core.request('POST', '/api/v1/stacks', { json: { name: 'crash', node_id: 'local', compose } });
  assert.equal(c.status, 201, c.text);
  const d = await core.request('POST', `/api/v1/stacks/${c.body.id}/deploy`, { json: {} });
  assert.equal(d.status, 202, d.text);
  // the web container exists, not yet healthy, no worker yet
  await waitFor(() => eng.project('crash').length === 1, { timeout: 20000, what: 'web created' });
  const dataDir = core.dataDir;
  core.proc.kill('SIGKILL');
  await core.exited;
  core = null;
  assert.equal(db.sql(`SELECT status FROM stacks WHERE id = '${c.body.id}'`), 'deploying');

  core = await startCore({ db, admin: true, env, dataDir });
  // read the projection (the restarted core is checked through it)
  const status = await waitFor(() => {
    const s = db.sql(`SELECT status FROM stacks WHERE id = '${c.body.id}'`);
    return s === 'deployed' || s === 'failed' ? s : null;
  }, { timeout: 60000, what: 'deploy outcome after restart' });
  assert.equal(status, 'deployed', db.sql(`SELECT status_reason FROM stacks WHERE id = '${c.body.id}'`));
  const cs = eng.project('crash');
  const bySvc = (s) => cs.filter((x) => x.Config.Labels['com.docker.compose.service'] === s);
  assert.equal(bySvc('web').length, 1, cs.map((x) => x.Name).join(','));
  assert.equal(bySvc('worker').length, 2);
  assert.ok(cs.every((x) => x.State.Running));
  assert.equal(eng.inspect(bySvc('web')[0].Id).State.Health.Status, 'healthy');
  // one job, two attempts: the second took the first one's place
  const started = eventsOf(db, 'stack.deploy_started');
  assert.ok(started.length >= 2, JSON.stringify(started.map((e) => e.data)));
  assert.equal(new Set(started.map((e) => e.data.job_id)).size, 1);
  assert.equal(started[0].data.job_id, d.body.job.id);
  assert.ok(started.at(-1).data.attempt >= 2);
  assert.equal(eventsOf(db, 'stack.deploy_requested').length, 1);
  assert.equal(eventsOf(db, 'stack.deployed').length, 1);
  const job = await waitFor(async () => {
    const j = await core.request('GET', `/api/v1/jobs/${d.body.job.id}`);
    return j.body?.job?.state === 'succeeded' ? j.body.job : null;
  }, { timeout: 20000, what: 'job succeeded' });
  assert.ok(job.attempt >= 2, JSON.stringify(job));
});

test('rebuild-projections reproduces the stacks and their revisions from the log', async () => {
  const dump = () => db.sql(`SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM (
    SELECT id, name, node_id, revision, deployed_revision, pending_revision, pending_job, status, status_reason, scale,
      created_by, created_at, updated_at FROM stacks) x`) + db.sql(`SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), ''))
    FROM (SELECT * FROM stack_revisions) x`);
  const before = dump();
  assert.equal(db.sql('SELECT count(*) FROM stack_revisions'), '1');
  await core.stop();
  core = null;
  db.sql("UPDATE stacks SET status = 'down', revision = 9");
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(dump(), before);
});
