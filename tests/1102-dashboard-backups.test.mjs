// The Backups page in a real browser (issue #19): plans with last run, size
// and next run; Run now shows the run live and then its outcome, size and
// snapshots; a volume snapshot's Restore… says which volume on which node
// will be emptied and overwritten, and after confirming the volume's
// checksums equal the snapshot's. A viewer sees the page without controls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, tempDir, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';
import { startEngine, waitDeploy } from './lib/stacks.mjs';

let eng, db, core, admin, br, token, plan, repo;

const COMPOSE = `version: "3.8"
services:
  app:
    image: local/busybox:1
    network_mode: none
    command: ["sh", "-c", "[ -f /data/a ] || { seq 1 5000 > /data/a; echo x > /data/b; }; exec sleep 3600"]
    volumes:
      - files:/data
volumes:
  files: {}
`;
const sums = () => eng.docker('exec', 'notes_app_1', 'sh', '-c',
  'cd /data && busybox find . -type f | busybox sort | while read f; do busybox md5sum "$f"; done');

before(async () => {
  eng = startEngine();
  db = createDatabase('dashbackups');
  core = await startCore({
    db,
    env: { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_BACKUP_HELPER_IMAGE: 'local/busybox:1', SERVERBOX_NODE_CHECK_INTERVAL: '0' },
  });
  admin = createUser(db, { role: 'admin' });
  token = (await login(core, admin)).token;
  const s = await core.request('POST', '/api/v1/stacks', { token, json: { name: 'notes', node_id: 'local', compose: COMPOSE } });
  assert.equal(s.status, 201, s.text);
  await core.request('POST', `/api/v1/stacks/${s.body.id}/deploy`, { token, json: {} });
  assert.equal((await waitDeploy({ request: (m, p, o = {}) => core.request(m, p, { ...o, token }) }, s.body.id, 1)).deploy_status, 'deployed');
  await waitFor(() => { try { return sums().includes('./b'); } catch { return false; } }, { timeout: 30000, what: 'volume content' });
  let r = await core.request('POST', '/api/v1/backups/repositories', { token, json: { name: 'shelf', path: join(tempDir('sbx-repo-'), 'r'), password: 'dashboard-test-pw' } });
  assert.equal(r.status, 201, r.text);
  repo = r.body;
  r = await core.request('POST', '/api/v1/backups/plans', { token, json: { name: 'notes-nightly', repository_id: repo.id, control_plane: true, stack_id: s.body.id, schedule: '30 2 * * *', retention: { daily: 7 } } });
  assert.equal(r.status, 201, r.text);
  plan = r.body;
  br = await openBrowser();
});

after(async () => {
  try {
    await br?.close();
    if (core) await core.stop();
  } finally {
    eng.stop();
  }
});

test('plans, Run now with its outcome, snapshots, and a restore that says what it overwrites', async () => {
  const { page } = br;
  await logIn(page, core, admin);
  await page.getByRole('navigation').getByRole('link', { name: 'Backups' }).click();
  await page.waitForURL('**/backups');
  const row = page.locator(`#backup-plan-rows tr[data-plan="${plan.id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /notes-nightly/);
  assert.match(await row.textContent(), /control plane \+ stack notes volumes/);
  assert.match(await row.textContent(), /30 2 \* \* \*/);
  assert.match(await row.textContent(), /never run/);

  await row.getByRole('button', { name: 'Run now' }).click();
  await page.locator('#backup-run-rows tr[data-status="succeeded"]').waitFor({ timeout: 120000 });
  await page.locator(`#backup-plan-rows tr[data-plan="${plan.id}"] .plan-last`, { hasText: 'succeeded' }).waitFor({ timeout: 20000 });
  const size = await page.locator(`#backup-plan-rows tr[data-plan="${plan.id}"] .plan-size`).textContent();
  assert.match(size, /\d+(\.\d+)? (B|KiB|MiB)/);
  const runText = await page.locator('#backup-run-rows tr[data-status="succeeded"]').first().textContent();
  assert.match(runText, /manual/);
  assert.match(runText, /volume:files/);
  assert.match(runText, /checked/);
  await screenshot(page, '1102-backups-run');

  // Snapshots of the repository; a volume one restores after saying what it overwrites.
  await page.locator('#backup-snapshot-rows tr[data-part="volume:files"]').waitFor({ timeout: 30000 });
  assert.ok(await page.locator('#backup-snapshot-rows tr[data-part="database"]', { hasText: 'serverbox-core restore' }).count() === 1);
  const before = sums();
  eng.docker('exec', 'notes_app_1', 'sh', '-c', 'rm -rf /data/*; echo junk > /data/junk');
  await page.locator('#backup-snapshot-rows tr[data-part="volume:files"]').getByRole('button', { name: 'Restore…' }).click();
  const dlg = page.locator('dialog');
  await dlg.waitFor();
  const warning = await dlg.textContent();
  assert.match(warning, /notes_files/);
  assert.match(warning, /node local/);
  assert.match(warning, /emptied/);
  await screenshot(page, '1102-backups-restore-dialog');
  await dlg.getByRole('button', { name: 'Overwrite notes_files' }).click();
  await page.locator('#backup-snapshot-rows tr[data-part="volume:files"][data-restored="succeeded"]').waitFor({ timeout: 120000 });
  assert.equal(sums(), before);
  assert.deepEqual(br.problems, []);
});

test('a viewer sees plans and snapshots without controls', async () => {
  const viewer = createUser(db, { role: 'viewer' });
  const br2 = await openBrowser();
  const { page } = br2;
  try {
    await logIn(page, core, viewer);
    await page.goto(`${core.base}/backups`);
    await page.locator(`#backup-plan-rows tr[data-plan="${plan.id}"]`).waitFor();
    await page.locator('#backup-snapshot-rows tr[data-part="volume:files"]').waitFor({ timeout: 30000 });
    assert.equal(await page.getByRole('button', { name: 'Run now' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Restore…' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Test restore' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Edit' }).count(), 0);
    assert.match(await page.locator(`#backup-plan-rows tr[data-plan="${plan.id}"] .plan-verified`).textContent(), /never tested/);
    assert.deepEqual(br2.problems, []);
  } finally { await br2.close(); }
});
