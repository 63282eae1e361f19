// Editing a backup plan (issue #19): PATCH /api/v1/backups/plans/{id}
// changes schedule, restore_test, retention, paused, name and volumes and
// records backup.plan_updated with only what changed; bad or unknown fields
// are 422 naming the field and change nothing; a paused plan's every-minute
// schedule does not fire (a real minute boundary passes), and resuming it
// counts from then. The Backups page's Edit form does the same in a browser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, startCore, tempDir, waitFor, ROOT } from './lib/harness.mjs';
import { eventsOf } from './lib/stacks.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';

let db, core, repo, br;

before(async () => {
  db = createDatabase('planedit');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  const r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: 'shelf', path: join(tempDir('sbx-repo-'), 'r'), password: 'plan-edit-password' } });
  assert.equal(r.status, 201, r.text);
  repo = r.body;
});

after(async () => {
  try { await br?.close(); } finally { await core?.stop(); }
});

const plan = async (json) => {
  const r = await core.request('POST', '/api/v1/backups/plans', { json: { repository_id: repo.id, control_plane: true, ...json } });
  assert.equal(r.status, 201, r.text);
  return r.body;
};
const updates = (id) => eventsOf(db, 'backup.plan_updated').filter((e) => e.data.id === id);

test('PATCH changes what it is given; the event holds only what changed', async () => {
  const p = await plan({ name: 'nightly', schedule: '0 3 * * *', retention: { daily: 7 } });
  const r = await core.request('PATCH', `/api/v1/backups/plans/${p.id}`, {
    json: { schedule: '30 4 * * 1', retention: { daily: 3, monthly: 6 }, restore_test: '0 5 * * 0', name: 'weekly', paused: false },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.name, 'weekly');
  assert.equal(r.body.schedule, '30 4 * * 1');
  assert.deepEqual(r.body.retention, { daily: 3, monthly: 6 });
  assert.equal(r.body.restore_test, '0 5 * * 0');
  assert.match(r.body.next_run, /T04:30:00/);
  assert.match(r.body.next_restore_test, /T05:00:00/);
  assert.equal(r.body.paused, false);
  const evs = updates(p.id);
  assert.equal(evs.length, 1);
  assert.deepEqual(Object.keys(evs[0].data.changes).sort(), ['name', 'restore_test', 'retention', 'schedule']);
  assert.equal(evs[0].actor.kind, 'user');
  // The same again changes nothing and records nothing.
  const again = await core.request('PATCH', `/api/v1/backups/plans/${p.id}`, { json: { schedule: '30 4 * * 1' } });
  assert.equal(again.status, 200);
  assert.equal(updates(p.id).length, 1);
  // null clears a schedule; GET answers the same.
  await core.request('PATCH', `/api/v1/backups/plans/${p.id}`, { json: { schedule: null } });
  const g = await core.request('GET', `/api/v1/backups/plans/${p.id}`);
  assert.equal(g.body.schedule, null);
  assert.equal(g.body.next_run, null);
});

test('bad or unknown fields: 422 naming the field, nothing changed or recorded', async () => {
  const p = await plan({ name: 'strict', schedule: '@daily' });
  await plan({ name: 'taken' });
  const cases = [
    [{ colour: 'red' }, 'colour'],
    [{ schedule: '61 * * * *' }, 'schedule'],
    [{ restore_test: 'every day' }, 'restore_test'],
    [{ retention: { hourly: 2 } }, 'retention'],
    [{ paused: 'yes' }, 'paused'],
    [{ volumes: ['data'] }, 'volumes'], // a control-plane plan has no stack
    [{ name: '' }, 'name'],
    [{ name: 'taken' }, 'name'],
    [{ schedule: '@hourly', repository_id: repo.id }, 'repository_id'],
  ];
  for (const [json, field] of cases) {
    const r = await core.request('PATCH', `/api/v1/backups/plans/${p.id}`, { json });
    assert.equal(r.status, 422, `${JSON.stringify(json)}: ${r.text}`);
    assert.equal(r.body.error.field, field, r.text);
  }
  assert.equal(updates(p.id).length, 0);
  const g = await core.request('GET', `/api/v1/backups/plans/${p.id}`);
  assert.equal(g.body.name, 'strict');
  assert.equal(g.body.schedule, '@daily');
  assert.equal((await core.request('PATCH', '/api/v1/backups/plans/00000000-0000-4000-8000-000000000000', { json: { paused: true } })).status, 404);
  const viewer = createUser(db, { role: 'viewer' });
  const { login } = await import('./lib/harness.mjs');
  const t = (await login(core, viewer)).token;
  assert.equal((await core.request('PATCH', `/api/v1/backups/plans/${p.id}`, { token: t, json: { paused: true } })).status, 403);
});

test('a paused plan does not fire across a minute boundary; resumed, it counts from then', async () => {
  const p = await plan({ name: 'minutely', schedule: '* * * * *', restore_test: '* * * * *' });
  const r = await core.request('PATCH', `/api/v1/backups/plans/${p.id}`, { json: { paused: true } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.paused, true);
  const since = Date.now();
  // A plan that is not paused fires within the same minute: the control.
  const control = await plan({ name: 'control', schedule: '* * * * *' });
  await waitFor(() => eventsOf(db, 'backup.plan_fired').some((e) => e.data.id === control.id),
    { timeout: 90000, interval: 500, what: 'the control plan to fire' });
  await core.request('DELETE', `/api/v1/backups/plans/${control.id}`);
  await waitFor(() => Date.now() - since > 61000, { timeout: 70000, interval: 500, what: 'a minute to pass' });
  await new Promise((res) => setTimeout(res, 6000)); // one more tick of the 5 s duty
  assert.equal(eventsOf(db, 'backup.plan_fired').filter((e) => e.data.id === p.id).length, 0);
  assert.equal(eventsOf(db, 'backup.restore_test_fired').filter((e) => e.data.id === p.id).length, 0);
  const resumed = await core.request('PATCH', `/api/v1/backups/plans/${p.id}`, { json: { paused: false } });
  assert.equal(resumed.status, 200);
  // Counted from the resume: the next fire is the next minute, not a catch-up now.
  assert.ok(Date.parse(resumed.body.next_run) > Date.now() - 1000, resumed.text);
  assert.ok(Date.parse(resumed.body.next_run) - Date.now() <= 61000, resumed.text);
  await core.request('DELETE', `/api/v1/backups/plans/${p.id}`);
});

test('the Backups page: Edit changes the schedule and pauses the plan', async () => {
  const p = await plan({ name: 'from-page', schedule: '0 1 * * *' });
  const admin = createUser(db, { role: 'admin' });
  br = await openBrowser();
  const { page } = br;
  await logIn(page, core, admin);
  await page.goto(`${core.base}/backups`);
  const row = page.locator(`#backup-plan-rows tr[data-plan="${p.id}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: 'Edit' }).click();
  const form = page.locator('#plan-form');
  await form.waitFor();
  await page.locator('#plan-schedule').fill('15 2 * * *');
  await page.locator('#plan-restore-test').fill('@weekly');
  await page.locator('#plan-keep-weekly').fill('4');
  await page.locator('#plan-paused').check();
  await screenshot(page, '1106-backups-plan-edit');
  await form.getByRole('button', { name: 'Save' }).click();
  await page.locator(`#backup-plan-rows tr[data-plan="${p.id}"] .plan-schedule`, { hasText: '15 2 * * *' }).waitFor({ timeout: 20000 });
  assert.match(await page.locator(`#backup-plan-rows tr[data-plan="${p.id}"] .plan-schedule`).textContent(), /paused/);
  const g = await core.request('GET', `/api/v1/backups/plans/${p.id}`);
  assert.equal(g.body.schedule, '15 2 * * *');
  assert.equal(g.body.restore_test, '@weekly');
  assert.deepEqual(g.body.retention, { weekly: 4 });
  assert.equal(g.body.paused, true);
  // A bad schedule from the form: the answer's message, nothing changed.
  await page.locator(`#backup-plan-rows tr[data-plan="${p.id}"]`).getByRole('button', { name: 'Edit' }).click();
  await page.locator('#plan-schedule').fill('99 * * * *');
  await page.locator('#plan-form').getByRole('button', { name: 'Save' }).click();
  await page.locator('#plan-form .error, #plan-form [role=alert]').first().waitFor({ timeout: 10000 });
  assert.equal((await core.request('GET', `/api/v1/backups/plans/${p.id}`)).body.schedule, '15 2 * * *');
  assert.equal(updates(p.id).length, 1);
  assert.deepEqual(br.problems.filter((x) => !/422/.test(x)), []);
});
