// The "pause during backup" policy (issue #19) with real restic and a
// private engine: with pause_services the stack's running containers are
// paused (docker pause) while the helper reads the volumes and unpaused
// after — the engine's own event order says so (pause, helper created,
// helper removed, unpause) — and also when the backup fails after pausing.
// A container the user had paused stays paused. The containers are recorded
// (backup.services_paused) before they are paused: when the daemon is killed
// meanwhile, the next one unpauses them. (network_mode: none.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, startCore, tempDir, waitFor } from './lib/harness.mjs';
import { startEngine, waitDeploy, eventsOf } from './lib/stacks.mjs';
import { awaitJob } from './lib/jobs.mjs';

let eng, db, core, stack, repo;

const COMPOSE = `version: "3.8"
services:
  app:
    image: local/busybox:1
    network_mode: none
    command: ["sh", "-c", "[ -f /data/a ] || seq 1 5000 > /data/a; exec sleep 3600"]
    volumes:
      - data:/data
  side:
    image: local/busybox:1
    network_mode: none
    command: ["sleep", "3600"]
volumes:
  data: {}
`;

const state = (c) => eng.docker('inspect', '-f', '{{.State.Running}} {{.State.Paused}}', c);
// The engine's container events between two times, in order: "name action".
function engineEvents(since, until) {
  const out = eng.docker('events', '--since', String(since), '--until', String(until), '--filter', 'type=container',
    '--filter', 'event=pause', '--filter', 'event=unpause', '--filter', 'event=create', '--filter', 'event=destroy',
    '--format', '{{.TimeNano}} {{.Actor.Attributes.name}} {{.Action}} {{index .Actor.Attributes "serverbox.backup"}}');
  return out.split('\n').filter(Boolean).map((l) => l.split(' ')).sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1))
    .map(([, name, action, backup]) => (backup ? `helper ${action}` : `${name} ${action}`));
}
const now = () => Math.floor(Date.now() / 1000);

before(async () => {
  eng = startEngine();
  db = createDatabase('bkpause');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_BACKUP_HELPER_IMAGE: 'local/busybox:1', SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  const s = await core.request('POST', '/api/v1/stacks', { json: { name: 'frozen', node_id: 'local', compose: COMPOSE } });
  assert.equal(s.status, 201, s.text);
  stack = s.body;
  assert.equal((await core.request('POST', `/api/v1/stacks/${stack.id}/deploy`, { json: {} })).status, 202);
  assert.equal((await waitDeploy(core, stack.id, 1)).deploy_status, 'deployed');
  await waitFor(() => { try { return state('frozen_app_1') === 'true false' && state('frozen_side_1') === 'true false'; } catch { return false; } },
    { timeout: 30000, what: 'both containers running' });
  const r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: 'cold', path: join(tempDir('sbx-repo-'), 'r'), password: 'pause-test-password' } });
  assert.equal(r.status, 201, r.text);
  repo = r.body;
});

after(async () => {
  try { await core?.stop(); } finally { eng?.stop(); }
});

async function run(plan) {
  const r = await core.request('POST', `/api/v1/backups/plans/${plan.id}/run`);
  assert.equal(r.status, 202, r.text);
  return awaitJob(core, r.body.job, { timeout: 120000 });
}

test('pause_services: the containers are paused while the helper reads, unpaused after', async () => {
  const p = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'paused-read', repository_id: repo.id, stack_id: stack.id, pause_services: true } });
  assert.equal(p.status, 201, p.text);
  assert.equal(p.body.pause_services, true);
  const t0 = now() - 1;
  const job = await run(p.body);
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  const t1 = now() + 1;
  assert.equal(state('frozen_app_1'), 'true false');
  assert.equal(state('frozen_side_1'), 'true false');
  const evs = engineEvents(t0, t1);
  const at = (x) => evs.indexOf(x);
  for (const c of ['frozen_app_1', 'frozen_side_1']) {
    assert.ok(at(`${c} pause`) >= 0 && at(`${c} unpause`) >= 0, evs.join(', '));
    assert.ok(at(`${c} pause`) < at('helper create'), evs.join(', '));
    assert.ok(at('helper destroy') < at(`${c} unpause`), evs.join(', '));
  }
  const ok = eventsOf(db, 'backup.run_succeeded').find((e) => e.data.id === job.id);
  assert.equal(ok.data.paused_containers, 2);
  // Without the policy nothing is paused.
  const q = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'live-read', repository_id: repo.id, stack_id: stack.id } });
  assert.equal(q.body.pause_services, false);
  await new Promise((res) => setTimeout(res, 1100)); // the engine's --since is in whole seconds
  const t2 = now();
  assert.equal((await run(q.body)).state, 'succeeded');
  assert.deepEqual(engineEvents(t2, now() + 1).filter((x) => !x.startsWith('helper')), []);
});

test('a backup that fails after pausing unpauses; a container the user paused stays paused', async () => {
  // The plan names a volume the stack does not have: the run fails after the pause.
  const p = await core.request('POST', '/api/v1/backups/plans', {
    json: { name: 'fails', repository_id: repo.id, stack_id: stack.id, volumes: ['nope'], pause_services: true },
  });
  assert.equal(p.status, 201, p.text);
  eng.docker('pause', 'frozen_side_1');
  await new Promise((res) => setTimeout(res, 1100)); // the engine's --since is in whole seconds
  const t0 = now();
  const job = await run(p.body);
  assert.equal(job.state, 'failed', JSON.stringify(job));
  const t1 = now() + 1;
  assert.equal(state('frozen_app_1'), 'true false', 'unpaused after the failure');
  assert.equal(state('frozen_side_1'), 'true true', "the user's pause is left alone");
  const evs = engineEvents(t0, t1);
  assert.deepEqual(evs.filter((x) => x.startsWith('frozen_app_1')), ['frozen_app_1 pause', 'frozen_app_1 unpause']);
  assert.deepEqual(evs.filter((x) => x.startsWith('frozen_side_1')), []);
  const bad = eventsOf(db, 'backup.run_failed').find((e) => e.data.id === job.id);
  assert.match(bad.data.reason, /no named volume/);
  assert.equal(bad.data.paused_containers, 1);
  eng.docker('unpause', 'frozen_side_1');
});

test('pause_services is for plans with a stack, and a boolean; PATCH turns it on and off', async () => {
  let r = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'cp', repository_id: repo.id, control_plane: true, pause_services: true } });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field, 'pause_services');
  r = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'cp2', repository_id: repo.id, stack_id: stack.id, pause_services: 'yes' } });
  assert.equal(r.status, 422);
  assert.equal(r.body.error.field, 'pause_services');
  const plans = (await core.request('GET', '/api/v1/backups/plans')).body.plans;
  const live = plans.find((x) => x.name === 'live-read');
  r = await core.request('PATCH', `/api/v1/backups/plans/${live.id}`, { json: { pause_services: true } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.pause_services, true);
  const ev = eventsOf(db, 'backup.plan_updated').find((e) => e.data.id === live.id);
  assert.deepEqual(ev.data.changes, { pause_services: true });
});

test('kill -9 of the daemon while the containers are paused: the next daemon unpauses them', async () => {
  // Enough data that the read takes a while.
  eng.docker('exec', 'frozen_app_1', 'sh', '-c', 'head -c 300000000 /dev/urandom > /data/big');
  const p = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'killed', repository_id: repo.id, stack_id: stack.id, pause_services: true } });
  assert.equal(p.status, 201, p.text);
  const r = await core.request('POST', `/api/v1/backups/plans/${p.body.id}/run`);
  assert.equal(r.status, 202, r.text);
  await waitFor(() => state('frozen_app_1') === 'true true', { timeout: 60000, interval: 20, what: 'the container paused by the run' });
  const paused = eventsOf(db, 'backup.services_paused').find((e) => e.data.id === r.body.job.id);
  assert.equal(paused.data.containers.length, 2);
  const { dataDir } = core;
  core.proc.kill('SIGKILL');
  await core.exited;
  assert.equal(state('frozen_app_1'), 'true true', 'still paused: nobody unpaused them');
  core = await startCore({ db, admin: true, dataDir, env: { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_BACKUP_HELPER_IMAGE: 'local/busybox:1', SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  await waitFor(() => state('frozen_app_1') === 'true false' && state('frozen_side_1') === 'true false',
    { timeout: 150000, interval: 500, what: 'the new daemon to unpause the containers' });
  const swept = eventsOf(db, 'backup.services_unpaused').find((e) => e.data.id === r.body.job.id);
  assert.equal(swept.data.by, 'sweep');
  assert.deepEqual(swept.data.containers.sort(), paused.data.containers.sort());
  const run = (await core.request('GET', `/api/v1/backups/runs/${r.body.job.id}`)).body;
  assert.equal(run.status, 'failed');
  assert.equal(run.paused_containers, null);
});
