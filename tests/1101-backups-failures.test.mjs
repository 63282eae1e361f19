// Backups when things go wrong, and their rules (issue #19):
//   - the SFTP target becomes unreachable mid-run (its sshd and sessions
//     stopped): the run fails cleanly (run_failed with a reason, no snapshot
//     of that run), the next run succeeds, and `restic check` passes;
//   - a cron schedule with two daemons on one database fires each minute
//     once (the backup-schedule duty): one plan_fired and one run per minute;
//   - bad input is 422 (or 400) with the field named, and changes nothing;
//   - scope: a label-scoped operator sees no control-plane or other-node
//     plan, cannot add a repository; a viewer reads but cannot write; an
//     operator cannot restore.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createDatabase, startCore, createUser, login, tempDir, waitFor } from './lib/harness.mjs';
import { startEngine, waitDeploy, eventsOf } from './lib/stacks.mjs';
import { startSshd } from './lib/sshd.mjs';
import { awaitJob } from './lib/jobs.mjs';
import { openSse } from './lib/sse.mjs';

let eng, db, core, core2, sshd, stack, sftpRepo, localRepo;
const PW = `pw-${randomUUID()}`;
const sftpDir = tempDir('sbx-sftp-');
const localDir = tempDir('sbx-repo-');

const COMPOSE = `version: "3.8"
services:
  big:
    image: local/busybox:1
    network_mode: none
    command: ["sh", "-c", "[ -f /data/big ] || busybox head -c 160000000 /dev/urandom > /data/big.tmp && busybox mv /data/big.tmp /data/big; exec sleep 3600"]
    volumes:
      - data:/data
volumes:
  data: {}
`;

const backupEvents = () => Number(db.sql("SELECT count(*) FROM events WHERE type LIKE 'backup.%'"));

before(async () => {
  eng = startEngine();
  sshd = startSshd();
  db = createDatabase('backupfail');
  const keyDir = tempDir('sbx-key-');
  const env = {
    SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_BACKUP_HELPER_IMAGE: 'local/busybox:1', SERVERBOX_NODE_CHECK_INTERVAL: '0',
    SERVERBOX_MASTER_KEY_FILE: join(keyDir, 'master.key'), SERVERBOX_JOB_LEASE_MS: '2000',
  };
  core = await startCore({ db, admin: true, env });
  core2 = await startCore({ db, env });
  core2.token = core.token;
  const s = await core.request('POST', '/api/v1/stacks', { json: { name: 'bulk', node_id: 'local', compose: COMPOSE } });
  assert.equal(s.status, 201, s.text);
  stack = s.body;
  await core.request('POST', `/api/v1/stacks/${stack.id}/deploy`, { json: {} });
  const dep = await waitDeploy(core, stack.id, 1);
  assert.equal(dep.deploy_status, 'deployed', JSON.stringify(dep));
  await waitFor(() => { try { eng.docker('exec', 'bulk_big_1', 'sh', '-c', '[ -f /data/big ]'); return true; } catch { return false; } },
    { timeout: 120000, what: 'the big file' });
  let r = await core.request('POST', '/api/v1/backups/repositories', {
    json: { name: 'offsite', kind: 'sftp', host: '127.0.0.1', port: sshd.port, private_key: sshd.key, path: join(sftpDir, 'r'), password: PW },
  });
  assert.equal(r.status, 201, r.text);
  sftpRepo = r.body;
  r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: 'here', path: join(localDir, 'r'), password: PW } });
  assert.equal(r.status, 201, r.text);
  localRepo = r.body;
});

const killed = new Set();
after(async () => {
  try {
    for (const c of [core2, core]) if (c) await c.stop({ expectClean: !killed.has(c) });
  } finally { eng?.stop(); sshd?.stop(); }
});

function resticCheck() {
  return execFileSync('restic', ['-r', `sftp:root@127.0.0.1:${join(sftpDir, 'r')}`, '--no-cache', '-o',
    `sftp.command=ssh -F /dev/null -p ${sshd.port} -i ${sshd.keyPath} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1 -s sftp`,
    'check'], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/root', RESTIC_PASSWORD: PW }, stdio: ['ignore', 'pipe', 'pipe'] });
}

test('the target unreachable mid-run: the run fails cleanly, the next succeeds, restic check passes', async () => {
  const p = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'bulk-offsite', repository_id: sftpRepo.id, stack_id: stack.id } });
  assert.equal(p.status, 201, p.text);
  const r = await core.request('POST', `/api/v1/backups/plans/${p.body.id}/run`);
  assert.equal(r.status, 202, r.text);
  const id = r.body.job.id;
  // Whichever daemon runs it publishes its progress on job/<id> (Redis fans it out).
  const s = openSse(core.base, `/api/v1/events?topics=job/${id}`, { token: core.token });
  await s.waitFor((x) => x.events.some((e) => e.event === 'job.progress' && /volume/.test(JSON.parse(e.data).data?.step || '')),
    { timeout: 120000, what: 'the volume part to start' });
  s.close();
  sshd.stop(); // the listener and every session: the host is gone
  const job = await awaitJob(core, id, { timeout: 180000 });
  assert.equal(job.state, 'failed', JSON.stringify(job));
  const run = (await core.request('GET', `/api/v1/backups/runs/${id}`)).body;
  assert.equal(run.status, 'failed');
  assert.ok(run.reason && run.reason.length > 0, JSON.stringify(run));
  const failed = eventsOf(db, 'backup.run_failed').find((e) => e.data.id === id);
  assert.ok(failed, 'backup.run_failed recorded');
  sshd = startSshd(sshd.dir);
  const again = await core.request('POST', `/api/v1/backups/plans/${p.body.id}/run`);
  const job2 = await awaitJob(core, again.body.job, { timeout: 240000 });
  assert.equal(job2.state, 'succeeded', JSON.stringify(job2));
  const snaps = (await core.request('GET', `/api/v1/backups/repositories/${sftpRepo.id}/snapshots`)).body.snapshots;
  assert.ok(snaps.some((x) => x.run_id === again.body.job.id), 'the second run made its snapshot');
  assert.ok(!snaps.some((x) => x.run_id === id), 'the failed run left no snapshot');
  assert.match(resticCheck(), /no errors were found/);
  const plan = (await core.request('GET', `/api/v1/backups/plans/${p.body.id}`)).body;
  assert.equal(plan.last_status, 'succeeded');
});

test('a schedule with two daemons fires each minute once', async () => {
  const p = await core.request('POST', '/api/v1/backups/plans', {
    json: { name: 'every-minute', repository_id: localRepo.id, control_plane: true, schedule: '* * * * *', retention: { daily: 2 } },
  });
  assert.equal(p.status, 201, p.text);
  const fired = () => eventsOf(db, 'backup.plan_fired').filter((e) => e.data.id === p.body.id);
  await waitFor(() => fired().length >= 2, { timeout: 200000, interval: 1000, what: 'two scheduled fires' });
  const ats = fired().map((e) => e.data.at);
  assert.equal(new Set(ats).size, ats.length, `one fire per minute: ${ats}`);
  const runs = await waitFor(async () => {
    const l = (await core.request('GET', `/api/v1/backups/runs?plan_id=${p.body.id}`)).body.runs;
    return l.length >= 2 && l.every((x) => x.status !== 'running') ? l : null;
  }, { timeout: 120000, interval: 500, what: 'the scheduled runs to end' });
  assert.ok(runs.every((x) => x.trigger === 'schedule' && x.status === 'succeeded'), JSON.stringify(runs));
  // No more runs than fires (each fire is one run).
  assert.ok(runs.length <= fired().length);
  await core.request('DELETE', `/api/v1/backups/plans/${p.body.id}`);
});

test('bad input: 422 with the field named, nothing recorded', async () => {
  const n = backupEvents();
  const bad = [
    [{ kind: 'local', path: '/tmp/x', password: 'long-enough' }, 'name'],
    [{ name: 'x', kind: 's3', path: '/tmp/x', password: 'long-enough' }, 'kind'],
    [{ name: 'x', path: 'relative/dir', password: 'long-enough' }, 'path'],
    [{ name: 'x', path: '/tmp/a b', password: 'long-enough' }, 'path'],
    [{ name: 'x', path: '/tmp/x', password: 'short' }, 'password'],
    [{ name: 'x', path: '/tmp/x', password: 12345678901 }, 'password'],
    [{ name: 'x', kind: 'sftp', host: '127.0.0.1', path: '/tmp/x', password: 'long-enough' }, 'private_key'],
    [{ name: 'x', kind: 'sftp', host: 'bad host!', private_key: 'x', path: '/tmp/x', password: 'long-enough' }, 'host'],
    [{ name: 'x', kind: 'sftp', host: '127.0.0.1', port: 70000, private_key: 'x', path: '/tmp/x', password: 'long-enough' }, 'port'],
  ];
  for (const [body, field] of bad) {
    const r = await core.request('POST', '/api/v1/backups/repositories', { json: body });
    assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
    assert.ok(r.body.error.message.includes(field) || r.body.error.field === field, `${field}: ${r.text}`);
  }
  let r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: 'x', path: '/tmp/x', password: 'long-enough', extra: 1 } });
  assert.equal(r.status, 422, r.text);
  r = await core.request('POST', '/api/v1/backups/repositories', { body: '{"name":', headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 400, r.text);
  const plans = [
    [{ name: 'p', repository_id: localRepo.id }, 'stack_id'],
    [{ name: 'p', repository_id: randomUUID(), control_plane: true }, 'repository_id'],
    [{ name: 'p', repository_id: localRepo.id, control_plane: true, schedule: '61 * * * *' }, 'schedule'],
    [{ name: 'p', repository_id: localRepo.id, control_plane: true, schedule: '* * *' }, 'schedule'],
    [{ name: 'p', repository_id: localRepo.id, control_plane: true, retention: { hourly: 3 } }, 'retention'],
    [{ name: 'p', repository_id: localRepo.id, control_plane: true, retention: { daily: -1 } }, 'retention'],
    [{ name: 'p', repository_id: localRepo.id, control_plane: 'yes' }, 'control_plane'],
    [{ name: '', repository_id: localRepo.id, control_plane: true }, 'name'],
    [{ name: 'p', repository_id: localRepo.id, stack_id: randomUUID() }, 'stack_id'],
    [{ name: 'p', repository_id: localRepo.id, stack_id: stack.id, volumes: ['../etc'] }, 'volumes'],
    [{ name: 'p', repository_id: localRepo.id, control_plane: true, volumes: ['data'] }, 'volumes'],
  ];
  for (const [body, field] of plans) {
    const x = await core.request('POST', '/api/v1/backups/plans', { json: body });
    assert.equal(x.status, 422, `${JSON.stringify(body)}: ${x.text}`);
    assert.ok(x.text.includes(field), `${field}: ${x.text}`);
  }
  for (const body of [{ repository_id: localRepo.id, snapshot_id: 'zz' }, { repository_id: randomUUID(), snapshot_id: 'abcdef12' },
    { repository_id: localRepo.id, snapshot_id: 'abcdef12', volume: '../x' }]) {
    const x = await core.request('POST', '/api/v1/backups/restore', { json: body });
    assert.equal(x.status, 422, `${JSON.stringify(body)}: ${x.text}`);
  }
  const x = await core.request('GET', '/api/v1/backups/runs?plan_id=nope');
  assert.equal(x.status, 400);
  assert.equal((await core.request('GET', `/api/v1/backups/plans/${randomUUID()}`)).status, 404);
  // A repository in use is not deleted.
  const inUse = await core.request('DELETE', `/api/v1/backups/repositories/${sftpRepo.id}`);
  assert.equal(inUse.status, 409, inUse.text);
  assert.equal(backupEvents(), n, 'nothing recorded');
});

test('scope and roles: scoped callers see only their nodes; viewers read; operators do not restore', async () => {
  const mk = async (role, node_labels) => {
    const u = { username: `b${role}${randomUUID().slice(0, 6)}`, password: `pw-${randomUUID()}`, role };
    const r = await core.request('POST', '/api/v1/users', { json: { ...u, node_labels } });
    assert.equal(r.status, 201, r.text);
    return (await login(core, u)).token;
  };
  const scoped = await mk('operator', { env: 'lab' });
  const viewer = await mk('viewer');
  const operator = await mk('operator');
  const all = (await core.request('GET', '/api/v1/backups/plans')).body.plans;
  assert.ok(all.length >= 1);
  const seen = await core.request('GET', '/api/v1/backups/plans', { token: scoped });
  assert.equal(seen.status, 200);
  assert.deepEqual(seen.body.plans, [], 'a lab-scoped operator sees no plan of the local engine or the control plane');
  const runs = await core.request('GET', '/api/v1/backups/runs', { token: scoped });
  assert.deepEqual(runs.body.runs, []);
  assert.equal((await core.request('GET', `/api/v1/backups/plans/${all[0].id}`, { token: scoped })).status, 404);
  assert.equal((await core.request('POST', `/api/v1/backups/plans/${all[0].id}/run`, { token: scoped })).status, 404);
  const snaps = await core.request('GET', `/api/v1/backups/repositories/${sftpRepo.id}/snapshots`, { token: scoped });
  assert.equal(snaps.status, 200, snaps.text);
  assert.deepEqual(snaps.body.snapshots, []);
  let r = await core.request('POST', '/api/v1/backups/repositories', { token: scoped, json: { name: 'mine', path: '/tmp/mine', password: 'long-enough' } });
  assert.equal(r.status, 403, r.text);
  r = await core.request('POST', '/api/v1/backups/plans', { token: scoped, json: { name: 'cp', repository_id: localRepo.id, control_plane: true } });
  assert.equal(r.status, 403, r.text);
  assert.equal((await core.request('GET', '/api/v1/backups/plans', { token: viewer })).body.plans.length, all.length);
  assert.equal((await core.request('POST', `/api/v1/backups/plans/${all[0].id}/run`, { token: viewer })).status, 403);
  r = await core.request('POST', '/api/v1/backups/restore', { token: operator, json: { repository_id: localRepo.id, snapshot_id: 'abcdef12' } });
  assert.equal(r.status, 403, r.text);
});

test('kill -9 of the daemon running a backup: the run is recorded failed (lease lost), never left running', async () => {
  const daemonId = (c) => c.log().match(/msg="jobs started" daemon=([0-9a-f-]{36})/)[1];
  const p = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'bulk-local', repository_id: localRepo.id, stack_id: stack.id } });
  assert.equal(p.status, 201, p.text);
  const r = await core.request('POST', `/api/v1/backups/plans/${p.body.id}/run`);
  assert.equal(r.status, 202, r.text);
  const id = r.body.job.id;
  const job = await waitFor(async () => {
    const j = (await core.request('GET', `/api/v1/jobs/${id}`)).body.job;
    return j.state === 'running' && j.lease?.holder ? j : null;
  }, { timeout: 60000, interval: 100, what: 'the run to start' });
  const holder = [core, core2].find((c) => job.lease.holder.startsWith(daemonId(c)));
  const other = holder === core ? core2 : core;
  holder.proc.kill('SIGKILL');
  killed.add(holder);
  await holder.exited;
  const done = await awaitJob(other, id, { token: core.token, timeout: 60000 });
  assert.equal(done.state, 'failed');
  const run = (await other.request('GET', `/api/v1/backups/runs/${id}`, { token: core.token })).body;
  assert.equal(run.status, 'failed', JSON.stringify(run));
  assert.ok(run.reason, JSON.stringify(run));
});

test('a plan naming no volume of its stack fails its run saying so', async () => {
  const live = [core, core2].find((c) => !killed.has(c));
  const p = await live.request('POST', '/api/v1/backups/plans', { token: core.token, json: { name: 'nothing', repository_id: localRepo.id, stack_id: stack.id, volumes: ['nope'] } });
  assert.equal(p.status, 201, p.text);
  const r = await live.request('POST', `/api/v1/backups/plans/${p.body.id}/run`, { token: core.token });
  const job = await awaitJob(live, r.body.job, { token: core.token, timeout: 60000 });
  assert.equal(job.state, 'failed');
  const run = (await live.request('GET', `/api/v1/backups/runs/${r.body.job.id}`, { token: core.token })).body;
  assert.match(run.reason, /no named volume/);
});
