// Every page of the dashboard (issue #17), as an admin sees it with some
// content (a real Docker engine with a container, a node behind a real
// sshd with collector figures, a user, a token, a guest link, an event with
// long data), at 1440×900 and at 390×844: a screenshot of each under
// tests/artifacts/, and on the phone no page wider than the screen
// (document.documentElement.scrollWidth <= innerWidth), each offender named.
// The pages are those the app's own nav offers, plus a node's page, the
// login page, the not-found page and a guest view.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';
import { startSshd } from './lib/sshd.mjs';
import { makeAgentKey, signedBatch, sample } from './lib/collector.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
let dir, sock, db, core, admin, token, sshd, nodeId, guestUrl;

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  sock = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' }).match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  execFileSync('docker', ['-H', `unix://${sock}`, 'run', '-d', '--name', 'a-container-with-a-rather-long-name', 'local/busybox:1', 'sh', '-c', 'while true; do echo tick; sleep 1; done'], { stdio: 'pipe' });
  sshd = startSshd();
  db = createDatabase('dashscreens');
  core = await startCore({ db, env: { SERVERBOX_DOCKER_SOCKET: sock, SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  admin = createUser(db, { role: 'admin' });
  createUser(db, { role: 'viewer' });
  token = (await login(core, admin)).token;
  const n = await core.request('POST', '/api/v1/nodes', { token, json: {
    name: 'web-frontend-production-01', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels: { env: 'production', region: 'eu-central' } } });
  assert.equal(n.status, 201, n.text);
  nodeId = n.body.id;
  const key = makeAgentKey();
  const t = await core.request('POST', `/api/v1/nodes/${nodeId}/enroll-token`, { token, json: {} });
  assert.equal((await core.request('POST', '/api/v1/agent/enroll', { json: { token: t.body.token, public_key: key.hex } })).status, 201);
  const b = signedBatch(key, { v: 1, node_id: nodeId, seq: 1, sent_at: Date.now(), interval_ms: 5000, samples: [sample(Date.now(), {
    containers: [{ id: 'c'.repeat(64), name: 'a-container-with-a-rather-long-name', cpu: 12, mem: 5e7, mem_limit: 1e9, net_rx_bps: 0, net_tx_bps: 0, blk_read_bps: 0, blk_write_bps: 0 }] })] });
  assert.ok([200, 202].includes((await core.request('POST', '/api/v1/agent/metrics', { body: b.body, headers: b.headers })).status));
  assert.equal((await core.request('POST', '/api/v1/tokens', { token, json: { name: 'ci-deploy-pipeline-token', role: 'operator' } })).status, 201);
  const g = await core.request('POST', '/api/v1/guest-links', { token, json: { scopes: ['view:metrics', 'view:containers', 'view:audit'], ttl_seconds: 3600, note: 'auditor' } });
  assert.equal(g.status, 201, g.text);
  guestUrl = g.body.url;
  assert.equal((await core.request('POST', '/api/v1/annotations', { token, json: { message: `deploy ${'x'.repeat(200)}` } })).status, 201);
});

after(async () => {
  try {
    await core?.stop();
  } finally {
    sshd?.remove();
    if (dir) execFileSync(DOCKERD, ['stop', dir]);
  }
});

// What sticks out at the right of the screen, for the failure message.
const overflow = (page) => page.evaluate(() => {
  const w = window.innerWidth;
  if (document.documentElement.scrollWidth <= w) return null;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > w + 0.5 && ![...el.children].some((c) => c.getBoundingClientRect().right > w + 0.5)) {
      out.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ')[0]}` : ''} ends at ${Math.round(r.right)}`);
      if (out.length >= 5) break;
    }
  }
  return `${document.documentElement.scrollWidth}px wide: ${out.join('; ')}`;
});

// Waits for a page to have drawn its data: its heading, then no request in
// flight for a moment.
async function settle(page) {
  await page.locator('#main h1, #not-found h1, .login h1, form#login-form, #guest-expired').first().waitFor({ timeout: 60000 });
  await page.waitForLoadState('networkidle', { timeout: 3000 }).catch(() => {});
  await page.waitForTimeout(400);
}

for (const [w, h] of [[1440, 900], [390, 844]]) {
  test(`every page at ${w}×${h}: a screenshot each${w < 500 ? ', none wider than the screen' : ''}`, async () => {
    const br = await openBrowser({ viewport: { width: w, height: h } });
    const wide = [];
    const seen = [];
    try {
      const { page } = br;
      await page.goto(`${core.base}/login`);
      await settle(page);
      await screenshot(page, `646-login-${w}`);
      if (w < 500 && await overflow(page)) wide.push(`/login: ${await overflow(page)}`);
      await logIn(page, core, admin);
      await page.locator('nav.nav a').first().waitFor({ state: 'attached' });
      const paths = await page.locator('nav.nav a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
      assert.ok(paths.length >= 15, JSON.stringify(paths));
      for (const path of [...paths, `/nodes/${nodeId}`, '/no-such-page']) {
        await page.goto(`${core.base}${path}`);
        await settle(page);
        const name = path.slice(1).replace(/\//g, '-').replace(/-[0-9a-f-]{36}$/, '-detail');
        await screenshot(page, `646-${name}-${w}`);
        seen.push(path);
        if (w < 500) {
          const o = await overflow(page);
          if (o) wide.push(`${path}: ${o}`);
        }
      }
      if (w < 500) {
        // The folded nav, opened.
        await page.goto(`${core.base}/overview`);
        await settle(page);
        await page.locator('#menu-toggle').click();
        await screenshot(page, `646-nav-open-${w}`);
        const o = await overflow(page);
        if (o) wide.push(`nav open: ${o}`);
      }
      await page.goto(`${core.base}${guestUrl}`);
      await settle(page);
      await screenshot(page, `646-guest-${w}`);
      if (w < 500 && await overflow(page)) wide.push(`guest: ${await overflow(page)}`);
      assert.deepEqual(wide, [], `pages wider than ${w}px`);
      assert.deepEqual(br.problems.filter((p) => !/404/.test(p)), []);
      assert.ok(seen.length >= 17, seen.join(' '));
    } finally {
      await br.close();
    }
  });
}
