// The restore test (issue #19) with real restic, PostgreSQL and a private
// engine: a plan's `restore_test` schedule fires and restores its last
// successful run where it hurts nothing (the dump into a scratch database
// whose audit chain is verified, the volume into a scratch volume whose
// files' sha256 equal the snapshot's), both scratches removed after. "Test
// restore" on the dashboard does it now; with the repository's pack files
// corrupted it fails: backup.restore_test_failed {plan_id, snapshot,
// reason}, the plan's "last verified restore" and the Backups page say so.
// (The stack runs with network_mode: none: no bridge is needed.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createDatabase, createUser, startCore, tempDir, waitFor, ROOT } from './lib/harness.mjs';
import { startEngine, waitDeploy, eventsOf } from './lib/stacks.mjs';
import { awaitJob } from './lib/jobs.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';

let eng, db, core, stack, br;
const scratchRole = `sbx_scratch_${randomBytes(3).toString('hex')}`;
const repoDirs = { sched: join(tempDir('sbx-repo-'), 'r'), manual: join(tempDir('sbx-repo-'), 'r') };
const repos = {};

const COMPOSE = `version: "3.8"
services:
  app:
    image: local/busybox:1
    network_mode: none
    command: ["sh", "-c", "mkdir -p /data/sub && [ -f /data/a.txt ] || { seq 1 20000 > /data/a.txt; echo hi > /data/sub/b; echo dot > /data/.hidden; }; exec sleep 3600"]
    volumes:
      - data:/data
volumes:
  data: {}
`;

const scratchDatabases = () => db.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'serverbox_restore_test_%'");
const scratchVolumes = () => eng.docker('volume', 'ls', '-q', '--filter', 'label=serverbox.backup=restore-test');
const testsBusy = () => db.sql("SELECT count(*) FROM jobs WHERE kind = 'backup.restore_test' AND state IN ('queued', 'running')");

before(async () => {
  eng = startEngine();
  db = createDatabase('restoretest');
  // The scratch database is made by a role that may create databases (the
  // schema owner here may not).
  db.sql(`CREATE ROLE ${scratchRole} LOGIN CREATEDB`);
  core = await startCore({
    db, admin: true,
    env: {
      SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_BACKUP_HELPER_IMAGE: 'local/busybox:1', SERVERBOX_NODE_CHECK_INTERVAL: '0',
      SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'),
      SERVERBOX_BACKUP_SCRATCH_DATABASE_URL: `postgresql://${scratchRole}@/postgres?host=${db.socket}&port=${db.port}`,
    },
  });
  const s = await core.request('POST', '/api/v1/stacks', { json: { name: 'ledger', node_id: 'local', compose: COMPOSE } });
  assert.equal(s.status, 201, s.text);
  stack = s.body;
  assert.equal((await core.request('POST', `/api/v1/stacks/${stack.id}/deploy`, { json: {} })).status, 202);
  assert.equal((await waitDeploy(core, stack.id, 1)).deploy_status, 'deployed');
  await waitFor(() => { try { return eng.docker('exec', 'ledger_app_1', 'ls', '/data/sub').includes('b'); } catch { return false; } },
    { timeout: 30000, what: 'volume content' });
  for (const [k, path] of Object.entries(repoDirs)) {
    const r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: k, path, password: `pw-${k}-${randomBytes(6).toString('hex')}` } });
    assert.equal(r.status, 201, r.text);
    repos[k] = r.body;
  }
});

after(async () => {
  try {
    await br?.close();
    await core?.stop();
  } finally { eng?.stop(); }
});

async function runPlan(plan) {
  const r = await core.request('POST', `/api/v1/backups/plans/${plan.id}/run`);
  assert.equal(r.status, 202, r.text);
  const job = await awaitJob(core, r.body.job, { timeout: 180000 });
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  return r.body.job.id;
}

test('the restore_test schedule fires: database restored and its chain verified, volume files equal, scratches removed', async () => {
  // Created well before a minute's end, so the run is queued before the
  // schedule's first fire (the test then waits behind it on the repository).
  await waitFor(() => new Date().getUTCSeconds() < 40, { timeout: 30000, interval: 200, what: 'early in a minute' });
  const p = await core.request('POST', '/api/v1/backups/plans', {
    json: { name: 'scheduled', repository_id: repos.sched.id, control_plane: true, stack_id: stack.id, restore_test: '* * * * *' },
  });
  assert.equal(p.status, 201, p.text);
  assert.equal(p.body.restore_test, '* * * * *');
  assert.ok(p.body.next_restore_test, p.text);
  assert.equal(p.body.last_verified_status, null);
  const runId = await runPlan(p.body);
  const ev = await waitFor(() => eventsOf(db, 'backup.restore_test_succeeded').find((e) => e.data.plan_id === p.body.id),
    { timeout: 150000, interval: 500, what: 'a scheduled restore test to succeed' });
  // No more fires: the plan goes, and what was running ends.
  assert.equal((await core.request('DELETE', `/api/v1/backups/plans/${p.body.id}`)).status, 200);
  assert.equal(ev.data.trigger, 'schedule');
  assert.equal(ev.data.run_id, runId);
  assert.ok(eventsOf(db, 'backup.restore_test_fired').some((e) => e.data.id === p.body.id));
  const byPart = Object.fromEntries(ev.data.snapshots.map((s) => [s.part, s]));
  assert.deepEqual(Object.keys(byPart).sort(), ['database', 'keys', 'volume:data']);
  assert.ok(ev.data.snapshots.every((s) => s.ok === true), JSON.stringify(ev.data));
  assert.ok(byPart.database.events > 10, JSON.stringify(byPart.database));
  assert.match(byPart.database.head_hash, /^[0-9a-f]{64}$/);
  assert.equal(byPart['volume:data'].files, 3); // a.txt, sub/b, .hidden
  assert.equal(byPart.keys.files >= 2, true); // master.key and the audit signing key
  assert.equal(ev.data.snapshot, byPart.database.id);
  await waitFor(() => testsBusy() === '0', { timeout: 120000, interval: 500, what: 'restore tests to end' });
  assert.equal(scratchDatabases(), '0');
  assert.equal(scratchVolumes(), '');
  assert.equal(eng.docker('ps', '-aq', '--filter', 'label=serverbox.backup'), '');
});

test('Test restore now: passes on the page; with the pack files corrupted it fails, and the event, plan and page say so', async () => {
  const p = await core.request('POST', '/api/v1/backups/plans', {
    json: { name: 'manual', repository_id: repos.manual.id, control_plane: true, stack_id: stack.id },
  });
  assert.equal(p.status, 201, p.text);
  assert.equal(p.body.next_restore_test, null);
  const plan = p.body;
  await runPlan(plan);

  const admin = createUser(db, { role: 'admin' });
  br = await openBrowser();
  const { page } = br;
  await logIn(page, core, admin);
  await page.goto(`${core.base}/backups`);
  const row = page.locator(`#backup-plan-rows tr[data-plan="${plan.id}"]`);
  await row.waitFor();
  assert.match(await row.locator('.plan-verified').textContent(), /never tested/);
  await row.getByRole('button', { name: 'Test restore' }).click();
  await page.locator(`#backup-plan-rows tr[data-plan="${plan.id}"] .plan-verified[data-verified="succeeded"]`).waitFor({ timeout: 150000 });
  const ok = eventsOf(db, 'backup.restore_test_succeeded').find((e) => e.data.plan_id === plan.id);
  assert.ok(ok && ok.data.trigger === 'manual' && ok.actor.kind === 'system');
  let got = await core.request('GET', `/api/v1/backups/plans/${plan.id}`);
  assert.equal(got.body.last_verified_status, 'succeeded');
  assert.ok(got.body.last_verified_at);

  // Every pack file gets 64 random bytes in its middle.
  const data = join(repoDirs.manual, 'data');
  let packs = 0;
  for (const sub of readdirSync(data)) {
    for (const f of readdirSync(join(data, sub))) {
      const path = join(data, sub, f);
      const size = statSync(path).size;
      const fd = openSync(path, 'r+');
      writeSync(fd, randomBytes(64), 0, 64, Math.floor(size / 2));
      closeSync(fd);
      packs++;
    }
  }
  assert.ok(packs > 0);
  const r = await core.request('POST', `/api/v1/backups/plans/${plan.id}/restore-test`);
  assert.equal(r.status, 202, r.text);
  const job = await awaitJob(core, r.body.job, { timeout: 150000 });
  assert.equal(job.state, 'failed', JSON.stringify(job));
  const bad = eventsOf(db, 'backup.restore_test_failed').find((e) => e.data.plan_id === plan.id);
  assert.ok(bad, 'a backup.restore_test_failed event');
  assert.equal(bad.outcome, 'failure');
  assert.equal(bad.data.id, r.body.job.id);
  assert.match(bad.data.snapshot, /^[0-9a-f]{8,64}$/);
  assert.ok(bad.data.reason.length > 10, bad.data.reason);
  assert.equal(bad.data.snapshots.at(-1).ok, false);
  assert.equal(bad.data.snapshots.at(-1).id, bad.data.snapshot);
  got = await core.request('GET', `/api/v1/backups/plans/${plan.id}`);
  assert.equal(got.body.last_verified_status, 'failed');
  assert.equal(got.body.last_verified_reason, bad.data.reason);
  assert.equal(got.body.last_verified_snapshot, bad.data.snapshot);
  const cell = page.locator(`#backup-plan-rows tr[data-plan="${plan.id}"] .plan-verified[data-verified="failed"]`);
  await cell.waitFor({ timeout: 20000 });
  assert.ok((await cell.textContent()).includes(bad.data.reason.slice(0, 40)));
  await screenshot(page, '1104-backups-restore-test-failed');
  // The scratches went even so.
  assert.equal(scratchDatabases(), '0');
  assert.equal(scratchVolumes(), '');
  assert.deepEqual(br.problems, []);
});

test('restore_test is validated like a schedule; the route needs backups:write', async () => {
  let r = await core.request('POST', '/api/v1/backups/plans', {
    json: { name: 'bad', repository_id: repos.manual.id, control_plane: true, restore_test: '61 * * * *' },
  });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.field, 'restore_test');
  const viewer = createUser(db, { role: 'viewer' });
  const { login } = await import('./lib/harness.mjs');
  const t = (await login(core, viewer)).token;
  const plans = await core.request('GET', '/api/v1/backups/plans', { token: t });
  r = await core.request('POST', `/api/v1/backups/plans/${plans.body.plans[0].id}/restore-test`, { token: t });
  assert.equal(r.status, 403, r.text);
});
