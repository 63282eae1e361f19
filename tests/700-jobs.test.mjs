// Durable jobs on one daemon (core/src/jobs/README.md), with the test kinds
// (--job-test-kinds 1): queued → running (progress on the SSE topic
// job/<id>) → succeeded; retries with backoff; a failure that is not
// retried; cancellation of a queued and of a running job; one running job
// per concurrency key; the listing's filters, paging, permissions and label
// scope; rebuild-projections reproducing the jobs table.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, createUser, login, waitFor, tempDir, runCore, env } from './lib/harness.mjs';
import { openSse } from './lib/sse.mjs';

let db, core, dir;

before(async () => {
  db = createDatabase('jobs');
  dir = tempDir('sbx-jobs-');
  core = await startCore({ db, admin: true, redisUrl: env('SBX_TEST_REDIS_URL'),
    args: ['--job-test-kinds', '1', '--job-retry-base-ms', '300', '--job-workers', '8'] });
});
after(async () => { await core?.stop(); });

const enqueue = async (json) => {
  const r = await core.request('POST', '/api/v1/jobs/test', { json: { kind: 'test.sleep', ...json } });
  assert.equal(r.status, 202, r.text);
  assert.ok(r.body.job.id);
  return r.body.job;
};
const get = async (id) => {
  const r = await core.request('GET', `/api/v1/jobs/${id}`);
  assert.equal(r.status, 200, r.text);
  return r.body.job;
};
const until = (id, state, timeout = 15000) => waitFor(async () => {
  const j = await get(id);
  return j.state === state ? j : null;
}, { timeout, interval: 50, what: `job ${id} ${state}` });
const history = async (id) => {
  const r = await core.request('GET', `/api/v1/events/history?topics=job/${id}&limit=1000`);
  assert.equal(r.status, 200, r.text);
  return r.body.events;
};
const marker = (name) => join(dir, name);
const lines = (p) => (existsSync(p) ? readFileSync(p, 'utf8').trim().split('\n').filter(Boolean) : []);

test('a job goes queued → running (progress on job/<id>) → succeeded, and its events are in the log', async () => {
  const m = marker('basic');
  const job = await enqueue({ args: { ms: 1500, marker: m }, target: 'test/basic' });
  assert.ok(['queued', 'running'].includes(job.state), job.state);
  assert.equal(job.kind, 'test.sleep');
  assert.equal(job.target, 'test/basic');
  const s = openSse(core.base, `/api/v1/events?topics=job/${job.id}`, { token: core.token });
  await s.ready;
  assert.equal(s.status, 200, s.errorBody);
  const running = await until(job.id, 'running');
  assert.equal(running.attempt, 1);
  assert.ok(running.lease?.holder, 'a running job shows its lease');
  await s.waitFor((x) => x.events.some((e) => e.event === 'job.progress' && JSON.parse(e.data).data.percent > 0),
    { timeout: 5000, what: 'a progress sample' });
  const done = await until(job.id, 'succeeded');
  assert.equal(done.result.attempt, 1);
  assert.equal(done.lease, null);
  assert.ok(done.started_at && done.finished_at);
  await s.waitFor((x) => x.events.some((e) => e.event === 'job.succeeded'), { timeout: 5000, what: 'job.succeeded on the stream' });
  s.close();
  const types = (await history(job.id)).map((e) => e.type);
  assert.deepEqual(types, ['job.queued', 'job.started', 'job.succeeded']);
  assert.deepEqual(lines(m), [`${job.id} 1`]);
});

test('a job failing with a transient error is retried with a growing delay, then succeeds', async () => {
  const m = marker('retry');
  const job = await enqueue({ args: { ms: 10, fail_times: 2, marker: m } });
  const done = await until(job.id, 'succeeded');
  assert.equal(done.attempt, 3);
  const evs = await history(job.id);
  assert.deepEqual(evs.map((e) => e.type),
    ['job.queued', 'job.started', 'job.retrying', 'job.started', 'job.retrying', 'job.started', 'job.succeeded']);
  const retries = evs.filter((e) => e.type === 'job.retrying');
  assert.deepEqual(retries.map((e) => e.data.delay_ms), [300, 600]);
  assert.equal(retries[0].data.error.code, 'unavailable');
  // each start waits for its backoff
  const starts = evs.filter((e) => e.type === 'job.started').map((e) => Date.parse(e.occurred_at));
  assert.ok(starts[1] - starts[0] >= 300, `second start ${starts[1] - starts[0]} ms after the first`);
  assert.ok(starts[2] - starts[1] >= 600, `third start ${starts[2] - starts[1]} ms after the second`);
  assert.deepEqual(lines(m), [`${job.id} 3`]);
});

test('attempts are bounded, and a permanent error fails at once', async () => {
  const a = await enqueue({ args: { ms: 10, fail_times: 10 } });
  const fa = await until(a.id, 'failed');
  assert.equal(fa.attempt, 3);
  assert.equal(fa.max_attempts, 3);
  assert.equal(fa.error.code, 'unavailable');
  const b = await enqueue({ args: { ms: 10, fail_times: 1, fail_code: 'invalid' } });
  const fb = await until(b.id, 'failed');
  assert.equal(fb.attempt, 1);
  assert.equal(fb.error.code, 'validation_failed'); // SB_EINVAL in the error vocabulary
  assert.deepEqual((await history(b.id)).map((e) => e.type), ['job.queued', 'job.started', 'job.failed']);
});

test('one running job per concurrency key, in order; cancel a queued and a running job', async () => {
  const key = `k-${Date.now()}`;
  const m = marker('key');
  const jobs = [];
  for (let i = 0; i < 3; i++) jobs.push(await enqueue({ concurrency_key: key, args: { ms: 600, marker: m } }));
  const last = await enqueue({ concurrency_key: key, args: { ms: 60000 } });
  const victim = await enqueue({ concurrency_key: key, args: { ms: 10 } });
  // the victim waits behind the others: cancel it while queued
  let r = await core.request('POST', `/api/v1/jobs/${victim.id}/cancel`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.job.state, 'cancelled');
  for (const j of jobs) await until(j.id, 'succeeded');
  const rows = await Promise.all(jobs.map((j) => get(j.id)));
  for (let i = 1; i < rows.length; i++) {
    assert.ok(Date.parse(rows[i].started_at) >= Date.parse(rows[i - 1].finished_at),
      `job ${i} started before job ${i - 1} finished`);
  }
  assert.deepEqual(lines(m), jobs.map((j) => `${j.id} 1`));
  // the long one runs now: ask it to stop
  await until(last.id, 'running');
  r = await core.request('POST', `/api/v1/jobs/${last.id}/cancel`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.job.cancel_requested, true);
  const c = await until(last.id, 'cancelled', 5000);
  assert.ok(c.finished_at);
  assert.deepEqual((await history(last.id)).map((e) => e.type),
    ['job.queued', 'job.started', 'job.cancel_requested', 'job.cancelled']);
  assert.deepEqual((await history(victim.id)).map((e) => e.type), ['job.queued', 'job.cancelled']);
  // a finished job cannot be cancelled; a cancelled one answers as it is
  r = await core.request('POST', `/api/v1/jobs/${jobs[0].id}/cancel`);
  assert.equal(r.status, 409, r.text);
  r = await core.request('POST', `/api/v1/jobs/${victim.id}/cancel`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.job.state, 'cancelled');
});

test('the listing filters and pages; permissions and label scope hold', async () => {
  const tag = `t-${Date.now()}`;
  for (let i = 0; i < 5; i++) await enqueue({ target: tag, args: { ms: 1 } });
  let r = await core.request('GET', `/api/v1/jobs?target=${tag}&limit=2`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.jobs.length, 2);
  const seen = r.body.jobs.map((j) => j.id);
  assert.ok(r.body.next_before);
  r = await core.request('GET', `/api/v1/jobs?target=${tag}&limit=2&before=${r.body.next_before}`);
  assert.equal(r.body.jobs.length, 2);
  for (const j of r.body.jobs) assert.ok(!seen.includes(j.id), 'pages do not overlap');
  r = await core.request('GET', `/api/v1/jobs?target=${tag}&limit=10`);
  assert.equal(r.body.jobs.length, 5);
  assert.equal(r.body.next_before, null);
  const seqs = r.body.jobs.map((j) => j.seq);
  assert.deepEqual([...seqs].sort((a, b) => b - a), seqs, 'newest first');
  await waitFor(async () => (await core.request('GET', `/api/v1/jobs?target=${tag}&state=succeeded`)).body.jobs.length === 5,
    { what: 'all five succeeded' });
  r = await core.request('GET', '/api/v1/jobs?kind=test.sleep&state=failed');
  assert.ok(r.body.jobs.length >= 2 && r.body.jobs.every((j) => j.state === 'failed' && j.kind === 'test.sleep'));
  assert.equal((await core.request('GET', '/api/v1/jobs?state=bogus')).status, 400);
  assert.equal((await core.request('GET', '/api/v1/jobs?limit=0')).status, 400);
  assert.equal((await core.request('GET', '/api/v1/jobs/00000000-0000-4000-8000-000000000000')).status, 404);
  assert.equal((await core.request('GET', '/api/v1/jobs/not-a-uuid')).status, 404);
  assert.equal((await core.request('POST', '/api/v1/jobs/test', { json: { kind: 'test.sleep', extra: 1 } })).status, 422);
  assert.equal((await core.request('POST', '/api/v1/jobs/test', { json: { kind: 'container.nothing' } })).status, 422);

  const viewer = await login(core, createUser(db, { role: 'viewer' }));
  r = await core.request('GET', `/api/v1/jobs?target=${tag}`, { token: viewer.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.jobs.length, 5);
  const one = r.body.jobs[0].id;
  assert.equal((await core.request('POST', `/api/v1/jobs/${one}/cancel`, { token: viewer.token })).status, 403);
  assert.equal((await core.request('POST', '/api/v1/jobs/test', { token: viewer.token, json: { kind: 'test.sleep' } })).status, 403);
  // a label-scoped caller sees no job of a node outside its scope (these have none)
  const made = await core.request('POST', '/api/v1/tokens', { json: { name: 'scoped', role: 'viewer', node_labels: { env: 'nowhere' } } });
  assert.equal(made.status, 201, made.text);
  const scoped = made.body;
  r = await core.request('GET', `/api/v1/jobs?target=${tag}`, { token: scoped.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.jobs.length, 0);
  assert.equal((await core.request('GET', `/api/v1/jobs/${one}`, { token: scoped.token })).status, 404);
  assert.equal((await core.request('GET', `/api/v1/jobs/${one}`, { token: null })).status, 401);
});

test('rebuild-projections reproduces the jobs table from the log', async () => {
  await waitFor(async () => (await core.request('GET', '/api/v1/jobs?state=running')).body.jobs.length === 0
    && (await core.request('GET', '/api/v1/jobs?state=queued')).body.jobs.length === 0, { what: 'no active job' });
  const dump = () => db.sql(`SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM (SELECT id, queued_seq, kind, target,
    node_id, concurrency_key, args, state, attempt, max_attempts, timeout_s, run_at, cancel_requested, result, error,
    created_by, created_at, started_at, finished_at, updated_at FROM jobs) x`);
  const beforeRebuild = dump();
  const n = db.sql('SELECT count(*) FROM jobs');
  assert.ok(Number(n) >= 14, n);
  await core.stop();
  db.sql("UPDATE jobs SET state = 'failed', attempt = 99");
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(db.sql('SELECT count(*) FROM jobs'), n);
  assert.equal(dump(), beforeRebuild);
  assert.equal(db.sql('SELECT count(*) FROM jobs WHERE lease_holder IS NOT NULL'), '0');
  core = null;
});
