// Helpers for routes that answer 202 {"job"} (core/src/jobs/): wait for the
// job to end and hand back its final row.
import assert from 'node:assert/strict';
import { waitFor } from './harness.mjs';

export const FINISHED = ['succeeded', 'failed', 'cancelled'];

// Polls GET /api/v1/jobs/{id} until the job has finished; returns the job.
export async function awaitJob(core, jobOrId, { token, timeout = 60000 } = {}) {
  const id = typeof jobOrId === 'string' ? jobOrId : jobOrId.id;
  const opts = token !== undefined ? { token } : {};
  return waitFor(async () => {
    const r = await core.request('GET', `/api/v1/jobs/${id}`, opts);
    assert.equal(r.status, 200, r.text);
    return FINISHED.includes(r.body.job.state) ? r.body.job : null;
  }, { timeout, interval: 50, what: `job ${id} to finish` });
}

// A request answered 202 {"job"}, then the job run to its end: returns
// {status, job} (job: the finished row).
export async function requestJob(core, method, path, opts = {}) {
  const r = await core.request(method, path, opts);
  assert.equal(r.status, 202, `${method} ${path}: ${r.status} ${r.text}`);
  assert.ok(r.body.job?.id, r.text);
  assert.ok(['queued', 'running', ...FINISHED].includes(r.body.job.state));
  const job = await awaitJob(core, r.body.job, { token: 'token' in opts ? opts.token : undefined, timeout: opts.timeout });
  return { status: r.status, accepted: r.body.job, job };
}
