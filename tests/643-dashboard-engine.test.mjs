// The Images, Volumes and Networks pages (issue #17) against a real Docker
// engine (scripts/dockerd.sh) and a real pull from a registry on loopback
// (tests/lib/registry.mjs, slowed so the job's progress shows): pull with
// progress, a failed pull that stays until dismissed, create and remove
// with a dialog naming what goes — each checked with the Docker CLI against
// the engine itself. A caller limited to node labels gets the core's 404
// for this server's engine; a viewer sees the lists without controls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';
import { startRegistry } from './lib/registry.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
let dir, sock, db, core, admin, token, br, registry;

function docker(...args) {
  return execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}
const hasImage = (ref) => docker('images', '--format', '{{.Repository}}:{{.Tag}}').split('\n').includes(ref);

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  sock = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' }).match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  registry = await startRegistry({ blobDelayMs: 3000 });
  db = createDatabase('dashengine');
  core = await startCore({ db, env: { SERVERBOX_DOCKER_SOCKET: sock, SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
  admin = createUser(db, { role: 'admin' });
  token = (await login(core, admin)).token;
  br = await openBrowser();
  await logIn(br.page, core, admin);
});

after(async () => {
  try {
    await br?.close();
    if (core) await core.stop();
    await registry?.close();
  } finally {
    if (dir) execFileSync(DOCKERD, ['stop', dir]);
  }
});

test('images: pull with the job\'s progress, a failed pull stays shown, remove after a dialog naming the image', async () => {
  const { page } = br;
  await page.getByRole('navigation').getByRole('link', { name: 'Images', exact: true }).click();
  await page.waitForURL('**/images');
  await page.locator('#image-rows tr[data-image="local/busybox:1"]').waitFor();
  assert.equal(await page.locator('#engine-node').inputValue(), 'local');
  assert.match(await page.locator('#engine-count').textContent(), /1 image on /);

  // A real pull, slowed by the registry: the step shows while it runs.
  await page.locator('#pull-image').fill(registry.image);
  await page.locator('#pull-tag').fill(registry.tag);
  await page.getByRole('button', { name: 'Pull', exact: true }).click();
  await page.locator('#pull-step', { hasText: /Pulling .*demo\/hello:1 on .*(pulling|queued)/ }).waitFor();
  assert.ok(await page.getByRole('button', { name: 'Pull', exact: true }).isDisabled(), 'the button waits for the job');
  await page.locator('#pull-done', { hasText: 'Pulled' }).waitFor({ timeout: 60000 });
  const row = page.locator(`#image-rows tr[data-image="${registry.ref}"]`);
  await row.waitFor();
  assert.ok(hasImage(registry.ref), 'the engine has the image');
  assert.ok(registry.requests.some((r) => r.startsWith('GET /v2/demo/hello/blobs/')));
  await screenshot(page, '643-images');

  // A pull the registry refuses: the engine's words, kept until dismissed.
  await page.locator('#pull-image').fill(`127.0.0.1:${registry.port}/demo/missing`);
  await page.locator('#pull-tag').fill('');
  await page.getByRole('button', { name: 'Pull', exact: true }).click();
  const failed = page.locator('#pull-failed');
  await failed.waitFor({ timeout: 60000 });
  assert.match(await failed.textContent(), /demo\/missing:latest .*failed: .*(not found|manifest unknown|not here|does not exist)/i);
  await page.waitForTimeout(1500);
  assert.ok(await failed.isVisible(), 'a failure stays until dismissed');
  await failed.getByRole('button', { name: 'Dismiss' }).click();
  assert.equal(await page.locator('#pull-failed').count(), 0);

  // Remove: the dialog names the image, its size and the node.
  await row.getByRole('button', { name: 'Remove' }).click();
  const dlg = page.locator('dialog');
  const text = await dlg.textContent();
  assert.match(text, new RegExp(`removes the image ${registry.ref.replace(/[.]/g, '\\.')} \\([0-9a-f]{12}, [0-9]+ B\\) from this server`));
  await dlg.getByRole('button', { name: 'Cancel' }).click();
  assert.ok(hasImage(registry.ref), 'cancel changes nothing');
  await row.getByRole('button', { name: 'Remove' }).click();
  await page.locator('dialog').getByRole('button', { name: 'Remove' }).click();
  await row.waitFor({ state: 'detached' });
  assert.ok(!hasImage(registry.ref), 'the engine no longer has it');
  // Busybox is used by no container: "none".
  assert.match(await page.locator('#image-rows tr[data-image="local/busybox:1"]').textContent(), /none/);
  assert.deepEqual(br.problems, []);
});

test('volumes and networks: create, list, remove after a dialog, as the engine sees it', async () => {
  const { page } = br;
  await page.goto(`${core.base}/volumes?node=local`);
  await page.locator('#volume-name').fill('vol-keep');
  await page.getByRole('button', { name: 'Create volume' }).click();
  const vrow = page.locator('#volume-rows tr[data-volume="vol-keep"]');
  await vrow.waitFor();
  assert.ok(docker('volume', 'ls', '--format', '{{.Name}}').split('\n').includes('vol-keep'));
  await vrow.getByRole('button', { name: 'Remove' }).click();
  assert.match(await page.locator('dialog').textContent(), /deletes the volume vol-keep on this server \(local engine\) and all the data in it/);
  await screenshot(page, '643-volumes-confirm');
  await page.locator('dialog').getByRole('button', { name: 'Remove' }).click();
  await vrow.waitFor({ state: 'detached' });
  assert.ok(!docker('volume', 'ls', '--format', '{{.Name}}').split('\n').includes('vol-keep'));

  const n = await core.request('POST', '/api/v1/nodes/local/networks', { token, json: { name: 'appnet', driver: 'bridge' } });
  assert.equal(n.status, 201, n.text);
  await page.getByRole('navigation').getByRole('link', { name: 'Networks', exact: true }).click();
  await page.waitForURL('**/networks');
  const nrow = page.locator('#network-rows tr[data-network="appnet"]');
  await nrow.waitFor();
  // The engine's own networks cannot be removed from here.
  const builtin = page.locator('#network-rows tr[data-network="none"]');
  assert.match(await builtin.textContent(), /built in/);
  assert.equal(await builtin.getByRole('button', { name: 'Remove' }).count(), 0);
  await screenshot(page, '643-networks');
  await nrow.getByRole('button', { name: 'Remove' }).click();
  assert.match(await page.locator('dialog').textContent(), /removes the network appnet \([0-9a-f]{12}/);
  await page.locator('dialog').getByRole('button', { name: 'Remove' }).click();
  await nrow.waitFor({ state: 'detached' });
  assert.ok(!docker('network', 'ls', '--format', '{{.Name}}').split('\n').includes('appnet'));
  assert.deepEqual(br.problems, []);
});

test('a caller limited to node labels: this server\'s engine does not exist for it (404); a viewer has no controls', async () => {
  const scoped = { username: 'scopedops', password: 'scoped-password-123', role: 'operator' };
  const u = await core.request('POST', '/api/v1/users', { token, json: { ...scoped, node_labels: { env: 'prod' } } });
  assert.equal(u.status, 201, u.text);
  const st = (await login(core, scoped)).token;
  for (const kind of ['images', 'volumes', 'networks']) {
    const r = await core.request('GET', `/api/v1/nodes/local/${kind}`, { token: st });
    assert.equal(r.status, 404, `${kind}: ${r.text}`);
  }
  const b = await openBrowser();
  try {
    await logIn(b.page, core, scoped);
    await b.page.goto(`${core.base}/images?node=local`);
    await b.page.locator('#engine-missing', { hasText: 'No such node' }).waitFor();
    assert.equal(await b.page.locator('#image-rows tr').count(), 0);
  } finally {
    await b.close();
  }
  const viewer = createUser(db, { role: 'viewer' });
  const v = await openBrowser();
  try {
    await logIn(v.page, core, viewer);
    await v.page.goto(`${core.base}/images?node=local`);
    await v.page.locator('#image-rows tr[data-image="local/busybox:1"]').waitFor();
    assert.equal(await v.page.locator('#pull-form').count(), 0);
    assert.equal(await v.page.locator('#image-rows button').count(), 0);
    assert.equal(await v.page.locator('#image-prune').count(), 0);
    assert.deepEqual(v.problems, []);
  } finally {
    await v.close();
  }
});
