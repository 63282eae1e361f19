// Long operations answered 202 {"job"} (container stop/restart, image pull):
// follow the job until it ends. Progress comes live on the SSE topic
// job/<id> (job.progress {percent, step}, job.log {line}); the job's row is
// polled as well, so the outcome arrives even without the live stream.
import { api } from './api.js';
import { subscribe } from './live.js';

const FINISHED = ['succeeded', 'failed', 'cancelled'];

// onUpdate({state, percent, step, lines, job}) on every change. Resolves with the
// finished job; rejects only when the job cannot be read at all.
export function followJob(job, onUpdate = () => {}) {
  return new Promise((resolve, reject) => {
    let last = { state: job.state, percent: null, step: null, job };
    let done = false;
    let failures = 0;
    const update = (patch) => { last = { ...last, ...patch }; onUpdate(last); };
    const off = subscribe([`job/${job.id}`], (m, type) => {
      if (type === 'job.progress' && m.data) update({ state: 'running', percent: m.data.percent, step: m.data.step || last.step });
      // The job's log lines (a pull's engine status lines): the last 50.
      else if (type === 'job.log' && m.data?.line) update({ lines: [...(last.lines || []), m.data.line].slice(-50) });
    });
    const finish = (j) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      off();
      update({ state: j.state, job: j });
      resolve(j);
    };
    const poll = async () => {
      try {
        const r = await api('GET', `/api/v1/jobs/${encodeURIComponent(job.id)}`);
        failures = 0;
        if (FINISHED.includes(r.job.state)) finish(r.job);
        else if (r.job.state !== last.state) update({ state: r.job.state, job: r.job });
      } catch (e) {
        if (++failures >= 10 && !done) { done = true; clearInterval(timer); off(); reject(e); }
      }
    };
    const timer = setInterval(poll, 1000);
    onUpdate(last);
    if (FINISHED.includes(job.state)) finish(job); else poll();
  });
}

// Human words for a job's progress: "stopping… 40%".
export function progressText(verb, p) {
  const pct = p && typeof p.percent === 'number' ? ` ${p.percent}%` : '';
  if (!p || p.state === 'queued') return `${verb}… (queued)`;
  return `${verb}…${pct}`;
}
