// The Stacks page in a real browser against a real engine: create a stack
// from the form, preview its plan, deploy it and watch the progress, see its
// services healthy, type into the compose editor (CodeMirror 6, from
// dashboard/vendor) and redeploy, roll back with one click; each outcome
// checked with the docker CLI. A viewer sees the editor read-only and no
// controls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';
import { startEngine } from './lib/stacks.mjs';

let eng, db, core, admin, br;

before(async () => {
  eng = startEngine();
  db = createDatabase('dashstacks');
  core = await startCore({ db, env: { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
  admin = createUser(db, { role: 'admin' });
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

const webs = () => eng.project('demo').filter((c) => c.Config.Labels['com.docker.compose.service'] === 'web');

test('create, preview, deploy, edit, redeploy and roll back a stack from the browser', async () => {
  const { page } = br;
  await logIn(page, core, admin);
  await page.getByRole('navigation').getByRole('link', { name: 'Stacks' }).click();
  await page.waitForURL('**/stacks');
  await page.locator('#stack-name').fill('demo');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/stacks\/[0-9a-f-]{36}$/);
  const content = page.locator('#compose-editor[data-ready="codemirror"] .cm-content');
  await content.waitFor();
  await waitFor(async () => (await content.innerText()).includes('httpd'), { what: 'compose loaded' });
  // CodeMirror's own styles apply (in its shadow root; the CSP allows them)
  assert.equal(await content.evaluate((el) => getComputedStyle(el).whiteSpace), 'pre');
  // the YAML language is on: keys and strings are highlighted tokens
  assert.ok(await page.locator('#compose-editor .cm-line span').count() > 3);

  await page.getByRole('button', { name: 'Preview plan' }).click();
  await page.locator('#plan-view tr[data-service="web"][data-action="create"]').waitFor();

  await page.getByRole('button', { name: 'Deploy' }).click();
  await page.locator('#deploy-progress progress').waitFor();
  await page.locator('#revision-rows tr[data-revision="1"][data-status="deployed"]').waitFor({ timeout: 60000 });
  await page.locator('#service-rows tr[data-service="web"] td.healthy', { hasText: '1' }).waitFor({ timeout: 20000 });
  assert.equal(webs().length, 1);
  assert.equal(webs()[0].State.Health.Status, 'healthy');
  await screenshot(page, '810-stack-deployed');
  // the service's logs: the core lists its container (httpd -f writes no line)
  await page.locator('#service-rows tr[data-service="web"]').getByRole('button', { name: 'logs of web' }).click();
  await page.locator('#service-log-state', { hasText: '1 container(s)' }).waitFor({ timeout: 10000 });
  await page.getByRole('button', { name: 'Close' }).click();

  // edit by typing into the editor: a second revision, start-first
  await page.locator('#compose-editor .cm-line', { hasText: 'interval: 1s' }).click();
  await page.keyboard.press('End');
  await page.keyboard.press('Enter'); // the editor keeps the healthcheck's indentation
  await page.keyboard.type('timeout: 2s');
  await waitFor(async () => (await content.innerText()).includes('      timeout: 2s'), { what: 'typed text', timeout: 5000 }).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await content.innerText())}`); });
  await page.getByRole('button', { name: 'Preview plan' }).click();
  await page.locator('#plan-view tr[data-service="web"][data-action="recreate"]', { hasText: 'start-first' }).waitFor();
  await page.getByRole('button', { name: 'Deploy' }).click();
  await page.locator('#revision-rows tr[data-revision="2"][data-status="deployed"]').waitFor({ timeout: 60000 });
  await waitFor(() => webs().length === 1 && webs()[0].Name === '/demo_web_2', { timeout: 30000, what: 'web_2 alone' });
  assert.equal(webs()[0].Config.Healthcheck.Timeout, 2e9); // what was typed runs

  // one-click rollback to revision 1
  await page.locator('#revision-rows tr[data-revision="1"]').getByRole('button', { name: 'Roll back' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Roll back' }).click();
  await page.locator('#revision-rows tr[data-revision="3"][data-status="deployed"]').waitFor({ timeout: 60000 });
  await waitFor(() => webs().length === 1 && webs()[0].Config.Healthcheck.Timeout === 30e9, { timeout: 30000, what: 'revision 1 config back' });
  await waitFor(async () => !(await content.innerText()).includes('timeout: 2s'), { what: 'the editor shows revision 3', timeout: 10000 });

  // the list shows the stack healthy
  await page.getByRole('navigation').getByRole('link', { name: 'Stacks' }).click();
  await page.locator('#stack-rows tr[data-stack="demo"][data-health="healthy"]').waitFor({ timeout: 20000 });

  // a viewer sees the stack, not the controls
  const viewer = createUser(db, { role: 'viewer' });
  await page.locator('#logout').click();
  await page.waitForURL('**/login');
  const p2 = page;
  await logIn(p2, core, viewer);
  await p2.goto(`${core.base}/stacks`);
  try {
    await p2.locator('#stack-rows tr[data-stack="demo"]').waitFor({ timeout: 10000 });
  } catch (e) {
    await screenshot(p2, '810-viewer-failed');
    throw new Error(`${e.message}\n${(await p2.locator('main').innerText()).slice(0, 500)} ${br.problems}`);
  }
  assert.equal(await p2.locator('#new-stack').count(), 0);
  await p2.locator('#stack-rows a', { hasText: 'demo' }).click();
  await p2.locator('#compose-editor[data-ready="codemirror"] .cm-content[contenteditable="false"]').waitFor();
  assert.equal(await p2.getByRole('button', { name: 'Deploy' }).count(), 0);
  assert.deepEqual(br.problems, []);
});
