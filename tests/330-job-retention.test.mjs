// Job retention (core/src/jobs/README.md "Retention"): finished jobs
// (succeeded, failed, cancelled) older than --job-retention-days are pruned
// by the singleton duty "job-prune" in job.pruned events that name their
// ids; queued and running jobs and recent finished ones stay, and
// rebuild-projections reproduces the pruned table. The test ages rows by
// moving their finished_at back 8 days (the events keep their real times).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, waitFor, runCore, env } from './lib/harness.mjs';

let db, core;

before(async () => {
  db = createDatabase('jobret');
  core = await startCore({ db, admin: true, redisUrl: env('SBX_TEST_REDIS_URL'),
    args: ['--job-test-kinds', '1', '--job-retention-days', '7', '--job-prune-interval', '1'] });
});
after(async () => { await core?.stop(); });

const enqueue = async (args) => {
  const r = await core.request('POST', '/api/v1/jobs/test', { json: { kind: 'test.sleep', args } });
  assert.equal(r.status, 202, r.text);
  return r.body.job;
};
const state = async (id) => {
  const r = await core.request('GET', `/api/v1/jobs/${id}`);
  return r.status === 404 ? 'gone' : r.body.job.state;
};
const until = (id, want, timeout = 30000) =>
  waitFor(async () => ((await state(id)) === want ? true : null), { timeout, interval: 100, what: `job ${id} ${want}` });
const age = (ids) => db.sql(`UPDATE jobs SET finished_at = now() - interval '8 days' WHERE id IN (${
  ids.map((id) => `'${id}'`).join(',')})`);

test('finished jobs past the retention are pruned by the duty; active and recent ones stay', async () => {
  const oldDone = await enqueue({ ms: 10 });
  const recentDone = await enqueue({ ms: 10 });
  const oldCancelled = await enqueue({ ms: 60000 });
  const running = await enqueue({ ms: 60000 });
  await until(oldDone.id, 'succeeded');
  await until(recentDone.id, 'succeeded');
  await until(oldCancelled.id, 'running');
  let r = await core.request('POST', `/api/v1/jobs/${oldCancelled.id}/cancel`);
  assert.equal(r.status, 200, r.text);
  await until(oldCancelled.id, 'cancelled');
  await until(running.id, 'running');

  // The duty holds its lease on this (only) daemon.
  await waitFor(async () => {
    const m = await core.request('GET', '/metrics');
    return /serverbox_duty_held\{duty="job-prune"\} 1/.test(m.text) ? true : null;
  }, { timeout: 30000, what: 'the job-prune duty held' });

  // A running job with an (impossible) old finished_at is not pruned: only
  // finished states are.
  age([oldDone.id, oldCancelled.id, running.id]);
  await until(oldDone.id, 'gone');
  await until(oldCancelled.id, 'gone');
  assert.equal(await state(recentDone.id), 'succeeded');
  assert.equal(await state(running.id), 'running');

  // The prune is in the log, by the system, naming exactly what went.
  const evs = JSON.parse(db.sql(`SELECT coalesce(json_agg(body::json ORDER BY seq), '[]') FROM events
    WHERE type = 'job.pruned'`));
  assert.ok(evs.length >= 1, 'a job.pruned event');
  const pruned = evs.flatMap((e) => e.data.ids);
  assert.deepEqual(pruned.sort(), [oldDone.id, oldCancelled.id].sort());
  for (const e of evs) {
    assert.equal(e.stream, 'jobs');
    assert.equal(e.actor.kind, 'system');
    assert.equal(e.data.retention_days, 7);
    assert.equal(e.data.count, e.data.ids.length);
    assert.ok(Date.parse(e.data.finished_before) < Date.now() - 6.9 * 86400e3, e.data.finished_before);
  }

  // The listing no longer shows them.
  r = await core.request('GET', '/api/v1/jobs?limit=500');
  assert.equal(r.status, 200, r.text);
  const listed = r.body.jobs.map((j) => j.id);
  assert.ok(!listed.includes(oldDone.id) && !listed.includes(oldCancelled.id), 'pruned jobs are not listed');
  assert.ok(listed.includes(recentDone.id) && listed.includes(running.id));

  r = await core.request('POST', `/api/v1/jobs/${running.id}/cancel`);
  assert.equal(r.status, 200, r.text);
  await until(running.id, 'cancelled');
});

test('rebuild-projections deletes the same rows: pruned jobs stay gone, the others come back', async () => {
  const ids = () => db.sql('SELECT coalesce(string_agg(id::text, \',\' ORDER BY id), \'\') FROM jobs');
  const kept = ids();
  assert.ok(kept.length > 0);
  await core.stop();
  core = null;
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(ids(), kept);
});

test('--job-retention-days 0 keeps every job: no daemon takes the prune duty', async () => {
  const db2 = createDatabase('jobret0');
  const c = await startCore({ db: db2, admin: true, redisUrl: env('SBX_TEST_REDIS_URL'),
    args: ['--job-test-kinds', '1', '--job-retention-days', '0', '--job-prune-interval', '1'] });
  try {
    const r = await c.request('POST', '/api/v1/jobs/test', { json: { kind: 'test.sleep', args: { ms: 10 } } });
    assert.equal(r.status, 202, r.text);
    const id = r.body.job.id;
    await waitFor(async () => ((await c.request('GET', `/api/v1/jobs/${id}`)).body.job?.state === 'succeeded' ? true : null),
      { timeout: 30000, what: 'the job succeeded' });
    db2.sql(`UPDATE jobs SET finished_at = now() - interval '800 days' WHERE id = '${id}'`);
    const m = await c.request('GET', '/metrics');
    assert.doesNotMatch(m.text, /duty="job-prune"/);
    await new Promise((res) => setTimeout(res, 2500));
    assert.equal((await c.request('GET', `/api/v1/jobs/${id}`)).status, 200);
    assert.equal(db2.sql("SELECT count(*) FROM events WHERE type = 'job.pruned'"), '0');
  } finally {
    await c.stop();
  }
});
