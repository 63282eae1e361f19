// Several daemons on one database share the job queue. kill -9 of the
// daemon running a job: another daemon takes it over when the lease lapses
// and finishes it; the job ran to completion once (one job.succeeded, one
// side effect). A daemon frozen past its lease (SIGSTOP) loses the job to
// another and, once it resumes, never records an outcome for it nor does
// its side effect.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, createUser, login, waitFor, tempDir, env } from './lib/harness.mjs';

const LEASE = 1500;
const daemons = [];
after(async () => {
  for (const d of daemons) if (d.alive()) await d.stop({ expectClean: false });
});

const start = async (db) => {
  const d = await startCore({ db, redisUrl: env('SBX_TEST_REDIS_URL'),
    args: ['--job-test-kinds', '1', '--job-lease-ms', String(LEASE), '--job-workers', '4'] });
  d.daemonId = d.log().match(/msg="jobs started" daemon=([0-9a-f-]{36})/)[1];
  daemons.push(d);
  return d;
};
const lines = (p) => (existsSync(p) ? readFileSync(p, 'utf8').trim().split('\n').filter(Boolean) : []);

async function setup(name) {
  const db = createDatabase(name);
  const a = await start(db);
  const b = await start(db);
  const token = (await login(a, createUser(db, { role: 'admin' }))).token;
  return { db, a, b, token };
}

const enqueueAndWaitRunning = async (via, token, args) => {
  const r = await via.request('POST', '/api/v1/jobs/test', { token, json: { kind: 'test.sleep', args } });
  assert.equal(r.status, 202, r.text);
  const id = r.body.job.id;
  const job = await waitFor(async () => {
    const j = (await via.request('GET', `/api/v1/jobs/${id}`, { token })).body.job;
    return j.state === 'running' && j.lease ? j : null;
  }, { what: 'the job running', interval: 50 });
  return job;
};
const types = async (via, token, id) =>
  (await via.request('GET', `/api/v1/events/history?topics=job/${id}&limit=100`, { token })).body.events;

test('kill -9 of the daemon running a job: another daemon finishes it, once', async () => {
  const { a, b, token } = await setup('jobkill');
  const m = join(tempDir('sbx-jobkill-'), 'marker');
  const job = await enqueueAndWaitRunning(a, token, { ms: 3000, marker: m });
  const holder = [a, b].find((d) => job.lease.holder.startsWith(d.daemonId));
  const other = holder === a ? b : a;
  assert.ok(holder, `lease holder ${job.lease.holder} is one of the two daemons`);
  await new Promise((r) => setTimeout(r, 300));
  holder.proc.kill('SIGKILL');
  await holder.exited;
  const done = await waitFor(async () => {
    const j = (await other.request('GET', `/api/v1/jobs/${job.id}`, { token })).body.job;
    return j.state === 'succeeded' ? j : null;
  }, { timeout: 20000, what: 'the job finished by the other daemon', interval: 100 });
  assert.equal(done.attempt, 2);
  const evs = await types(other, token, job.id);
  const started = evs.filter((e) => e.type === 'job.started');
  assert.equal(started.length, 2);
  assert.equal(started[1].data.takeover, true);
  assert.ok(started[1].data.holder.startsWith(other.daemonId));
  assert.equal(evs.filter((e) => e.type === 'job.succeeded').length, 1);
  assert.deepEqual(lines(m), [`${job.id} 2`], 'the side effect happened once');
  await other.stop();
});

test('a daemon frozen past its lease loses the job and does not run it again when it resumes', async () => {
  const { a, b, token } = await setup('jobfreeze');
  const m = join(tempDir('sbx-jobfreeze-'), 'marker');
  const job = await enqueueAndWaitRunning(a, token, { ms: 2500, marker: m });
  const holder = [a, b].find((d) => job.lease.holder.startsWith(d.daemonId));
  const other = holder === a ? b : a;
  holder.proc.kill('SIGSTOP');
  try {
    await waitFor(async () => {
      const j = (await other.request('GET', `/api/v1/jobs/${job.id}`, { token })).body.job;
      return j.attempt === 2 && j.lease?.holder.startsWith(other.daemonId);
    }, { timeout: 15000, what: 'the takeover', interval: 100 });
  } finally {
    holder.proc.kill('SIGCONT');
  }
  const done = await waitFor(async () => {
    const j = (await other.request('GET', `/api/v1/jobs/${job.id}`, { token })).body.job;
    return j.state === 'succeeded' ? j : null;
  }, { timeout: 20000, what: 'the job finished', interval: 100 });
  assert.equal(done.attempt, 2);
  await new Promise((r) => setTimeout(r, 3500)); // the resumed attempt would have finished by now
  const evs = await types(other, token, job.id);
  assert.deepEqual(evs.map((e) => e.type), ['job.queued', 'job.started', 'job.started', 'job.succeeded']);
  assert.deepEqual(lines(m), [`${job.id} 2`], 'the frozen attempt did not do its side effect');
  assert.match(holder.log(), /job lease lost|job lease|outcome dropped/);
  await holder.stop();
  await other.stop();
});
