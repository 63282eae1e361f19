// A container stop with a 30 s grace is a job: GET /api/v1/jobs/{id} shows
// queued → running (progress on the SSE topic job/<id>) → succeeded, and the
// engine really stopped the container (it ignores SIGTERM, so it was killed
// when the grace ran out). 64 such stops at once hold no HTTP worker:
// /api/v1/me keeps answering all along (a generous sanity bound only; the
// timing itself belongs to bench/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor, env, ROOT } from './lib/harness.mjs';
import { openSse } from './lib/sse.mjs';
import { awaitJob } from './lib/jobs.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
const N = 64;
const GRACE = 30;
let dir, sock, db, core;

function docker(...args) {
  return execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  sock = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' }).match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  db = createDatabase('jobstop');
  // fewer HTTP workers than stops: a stop that held one would starve /me
  core = await startCore({ db, admin: true, redisUrl: env('SBX_TEST_REDIS_URL'),
    // (and no credential rate limit: the test polls 64 jobs at once, which is not what it is about)
    env: { SERVERBOX_DOCKER_SOCKET: sock }, args: ['--job-workers', String(N + 4), '--workers', '16', '--token-rate-limit', '0'] });
});
after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    if (dir) execFileSync(DOCKERD, ['stop', dir]);
  }
});

test(`${N} stops with a ${GRACE} s grace run as jobs; /me keeps answering; the containers really stop`, async () => {
  const names = Array.from({ length: N }, (_, i) => `stubborn${i}`);
  for (let i = 0; i < N; i += 8) {
    await Promise.all(names.slice(i, i + 8).map(async (name) => {
      const r = await core.request('POST', '/api/v1/nodes/local/containers', { json: {
        name, image: 'local/busybox:1', command: ['sh', '-c', 'trap "" TERM; sleep 1000 & wait; sleep 1000'] } });
      assert.equal(r.status, 201, r.text);
    }));
  }
  assert.equal(docker('ps', '-q', '--filter', 'name=stubborn').split('\n').filter(Boolean).length, N);

  // /me all along, from before the stops until every job has ended
  let meDone = false;
  const meTimes = [];
  const meLoop = (async () => {
    while (!meDone) {
      const t0 = Date.now();
      const r = await core.request('GET', '/api/v1/me');
      assert.equal(r.status, 200, r.text);
      meTimes.push(Date.now() - t0);
      await new Promise((res) => setTimeout(res, 200));
    }
  })();

  const jobs = await Promise.all(names.map(async (name) => {
    const r = await core.request('POST', `/api/v1/nodes/local/containers/${name}/stop?timeout=${GRACE}`, {});
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.job.kind, 'container.stop');
    assert.ok(['queued', 'running'].includes(r.body.job.state), r.body.job.state);
    return r.body.job;
  }));
  const first = jobs[0];
  const s = openSse(core.base, `/api/v1/events?topics=job/${first.id}`, { token: core.token });
  await s.ready;
  assert.equal(s.status, 200, s.errorBody);

  // running, with progress on job/<id>, while the grace runs
  const running = await waitFor(async () => {
    const j = (await core.request('GET', `/api/v1/jobs/${first.id}`)).body.job;
    return j.state === 'running' ? j : null;
  }, { timeout: 10000, interval: 100, what: 'the first stop running' });
  assert.equal(running.attempt, 1);
  await s.waitFor((x) => x.events.some((e) => e.event === 'job.progress' && JSON.parse(e.data).data.step === 'stopping'),
    { timeout: 10000, what: 'progress of the stop' });
  await s.waitFor((x) => x.events.some((e) => e.event === 'job.progress' && JSON.parse(e.data).data.percent > 0),
    { timeout: 10000, what: 'the grace period advancing' });
  const r = await core.request('GET', '/api/v1/jobs?kind=container.stop&state=running&limit=500');
  assert.ok(r.body.jobs.length >= N / 2, `${r.body.jobs.length} stops running at once`);
  assert.equal(JSON.parse(docker('inspect', names[0]))[0].State.Running, true, 'still in its grace period');

  const finished = await Promise.all(jobs.map((j) => awaitJob(core, j, { timeout: (GRACE + 60) * 1000 })));
  meDone = true;
  await meLoop;
  for (const j of finished) {
    assert.equal(j.state, 'succeeded', JSON.stringify(j));
    assert.equal(j.result.changed, true);
  }
  await s.waitFor((x) => x.events.some((e) => e.event === 'job.succeeded'), { timeout: 5000, what: 'job.succeeded on job/<id>' });
  s.close();
  for (const name of names) {
    const st = JSON.parse(docker('inspect', name))[0].State;
    assert.equal(st.Running, false, name);
    assert.equal(st.ExitCode, 137, `${name} was killed when its grace ran out`);
  }
  // the outcome events are kept, with the caller as actor and the job named
  const evs = await core.request('GET', '/api/v1/audit?type=container.stop_requested&limit=1000');
  const ok = evs.body.events.filter((e) => e.outcome === 'success' && e.data.job_id);
  assert.equal(ok.length, N);
  assert.ok(ok.every((e) => e.actor.kind === 'user'));
  assert.ok(meTimes.length >= 10, `/me answered ${meTimes.length} times during the stops`);
  assert.ok(Math.max(...meTimes) < 10000, `/me took up to ${Math.max(...meTimes)} ms`);
});
