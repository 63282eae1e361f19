// Backup alerts (issue #18, "backup failed") against real restic runs and a
// real HTTP receiver: a plan whose repository is gone (its directory moved
// away) fails its run → the "Backup failed" default rule fires once for
// backup_plan/<id>, naming the plan and restic's reason; the repository
// back, the plan's next run succeeds → the alert resolves and the receiver
// gets the resolution. A run that succeeds fires nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createDatabase, startCore, tempDir, waitFor } from './lib/harness.mjs';
import { awaitJob } from './lib/jobs.mjs';
import { startHttpReceiver, signatureValid } from './lib/receivers.mjs';

const SECRET = 'backups-secret-0123456789';
let db, core, hook, repo, plan, rule;
const repoDir = tempDir('sbx-alrepo-');

const notes = (n) => hook.posts('/hook').filter((p) => p.json?.alert?.rule_id === rule.id && p.json.notification === n);

before(async () => {
  hook = await startHttpReceiver();
  db = createDatabase('alertsbackups');
  const keyDir = tempDir('sbx-key-');
  core = await startCore({
    db, admin: true,
    env: { SERVERBOX_ALERTS_INTERVAL: '1', SERVERBOX_ALERTS_ALLOW_LOOPBACK: '1', SERVERBOX_NODE_CHECK_INTERVAL: '0',
      SERVERBOX_MASTER_KEY_FILE: join(keyDir, 'master.key') },
  });
  const c = await core.request('POST', '/api/v1/alerts/channels', { json: { name: 'hook', kind: 'webhook', url: hook.url('/hook'), secret: SECRET } });
  assert.equal(c.status, 201, c.text);
  // The default rule of a fresh install.
  rule = await waitFor(async () => {
    const x = await core.request('GET', '/api/v1/alerts/rules');
    return x.body?.rules?.find((r) => r.kind === 'backup_failed');
  }, { timeout: 30000, what: 'the default backup_failed rule' });
  assert.equal(rule.builtin, true);
  let r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: 'here', path: join(repoDir, 'r'), password: `pw-${randomUUID()}` } });
  assert.equal(r.status, 201, r.text);
  repo = r.body;
  r = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'nightly-db', repository_id: repo.id, control_plane: true } });
  assert.equal(r.status, 201, r.text);
  plan = r.body;
});

after(async () => {
  try {
    await core?.stop();
  } finally {
    await hook?.stop();
  }
});

async function run() {
  const r = await core.request('POST', `/api/v1/backups/plans/${plan.id}/run`);
  assert.equal(r.status, 202, r.text);
  return awaitJob(core, r.body.job.id, { timeout: 240000 });
}

test('a good run fires nothing', async () => {
  const job = await run();
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  // Two rounds later still no alert for the plan.
  await new Promise((r) => setTimeout(r, 2500));
  const open = (await core.request('GET', '/api/v1/alerts?state=open')).body.alerts;
  assert.ok(!open.some((a) => a.target === `backup_plan/${plan.id}`), JSON.stringify(open));
  assert.equal(notes('firing').length, 0);
});

test('a failed run fires once, naming the plan and the reason; the next good run resolves it', async () => {
  renameSync(join(repoDir, 'r'), join(repoDir, 'gone'));
  const job = await run();
  assert.equal(job.state, 'failed', JSON.stringify(job));
  await waitFor(() => notes('firing').length >= 1, { timeout: 60000, what: 'the firing notification' });
  const p = notes('firing')[0];
  assert.ok(signatureValid(p, SECRET), 'the delivery is signed');
  const a = p.json.alert;
  assert.equal(a.kind, 'backup_failed');
  assert.equal(a.target, `backup_plan/${plan.id}`);
  assert.match(a.summary, /^plan nightly-db: backup run failed: .+/);
  assert.equal(a.state, 'firing');
  // A second failure while it is open does not notify again.
  assert.equal((await run()).state, 'failed');
  renameSync(join(repoDir, 'gone'), join(repoDir, 'r'));
  const ok = await run();
  assert.equal(ok.state, 'succeeded', JSON.stringify(ok));
  await waitFor(() => notes('resolved').length >= 1, { timeout: 60000, what: 'the resolution' });
  const res = notes('resolved')[0].json.alert;
  assert.equal(res.id, a.id);
  assert.equal(res.resolved_reason, 'the next backup run succeeded');
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(notes('firing').length, 1, 'one firing notification for two failed runs');
  assert.equal(notes('resolved').length, 1);
  const fired = Number(db.sql(`SELECT count(*) FROM events WHERE type = 'alert.fired' AND body::jsonb->'data'->>'target' = 'backup_plan/${plan.id}'`));
  assert.equal(fired, 1);
});
