// Dashboard bugs of issue #17 that cost an operator's trust, each checked in
// Chromium against the real core: an unknown path is the app's not-found
// page (a 404, never raw JSON); on a phone (390×844) every nav entry is in
// sight and no table cuts a column or lets the audit JSON overflow; the
// guest-link form offers exactly the scopes that grant something and the
// guest home says what the link opens; a fresh install's empty containers
// page says how to add this server's engine (the button for admins only).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn, navTo } from './lib/browser.mjs';

let db, core, admin, viewer, br;
before(async () => {
  db = createDatabase('dashtrust');
  // A fresh install whose own engine does not answer (no socket there).
  core = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_DOCKER_SOCKET: '/nonexistent/docker.sock' } });
  admin = createUser(db, { role: 'admin' });
  viewer = createUser(db, { role: 'viewer' });
  br = await openBrowser();
});
after(async () => {
  await br?.close();
  await core?.stop();
});

test('an unknown path is the app\'s not-found page for a browser, JSON for clients', async () => {
  const { page } = br;
  await logIn(page, core, admin);
  for (const path of ['/no-such-page', '/nodes-x/1', '/overview2']) {
    const res = await page.goto(`${core.base}${path}`);
    assert.equal(res.status(), 404, path);
    await page.locator('#not-found', { hasText: 'Page not found' }).waitFor();
    assert.ok((await page.locator('#not-found').textContent()).includes(path));
    assert.doesNotMatch(await page.locator('body').textContent(), /"error"|not_found/);
    // The shell is there: the nav and the way back.
    await page.getByRole('navigation').getByRole('link', { name: 'Nodes' }).waitFor();
  }
  await screenshot(page, '641-not-found');
  await page.getByRole('link', { name: 'Go to the overview' }).click();
  await page.waitForURL('**/overview');
  // Clients and the API keep the JSON 404.
  const api = await core.request('GET', '/no-such-page');
  assert.equal(api.status, 404);
  assert.equal(api.body.error.code, 'not_found');
  const apiHtml = await core.request('GET', '/api/v1/nope', { headers: { Accept: 'text/html' } });
  assert.equal(apiHtml.body.error.code, 'not_found');
  assert.deepEqual(br.problems.filter((p) => !/404/.test(p)), []);
});

test('a page the caller may not open says so instead of sending them away', async () => {
  const b = await openBrowser();
  try {
    await logIn(b.page, core, viewer);
    await b.page.goto(`${core.base}/users`);
    await b.page.locator('#not-found', { hasText: 'not available to you' }).waitFor();
    assert.match(await b.page.locator('#not-found').textContent(), /viewer/);
    assert.equal(new URL(b.page.url()).pathname, '/users');
    assert.deepEqual(b.problems, []);
  } finally {
    await b.close();
  }
});

test('a phone: all nav entries in sight, no table cut off, the audit JSON inside the page', async () => {
  const token = (await login(core, admin)).token;
  // An event whose data is long and wide.
  const a = await core.request('POST', '/api/v1/annotations', { token, json: { message: `wide ${'x'.repeat(300)} ${'word '.repeat(40)}` } });
  assert.equal(a.status, 201, a.text);
  const phone = await openBrowser({ viewport: { width: 390, height: 844 } });
  try {
    const p = phone.page;
    await logIn(p, core, admin);
    await p.locator('#recent-events tr').first().waitFor();
    // Folded: the nav takes no room until its button opens it, and the
    // button names the page.
    const toggle = p.locator('#menu-toggle');
    assert.match(await toggle.textContent(), /Overview/);
    assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
    assert.equal(await p.locator('nav.nav').isVisible(), false);
    await toggle.click();
    assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
    const inView = () => p.evaluate(() => [...document.querySelectorAll('nav.nav a')].map((el) => {
      const r = el.getBoundingClientRect();
      return { label: el.textContent, ok: r.left >= 0 && r.right <= window.innerWidth + 0.5 && r.width > 0 };
    }));
    const links = await inView();
    assert.ok(links.length >= 8, JSON.stringify(links));
    for (const l of links) assert.ok(l.ok, `nav entry ${l.label} is off-screen`);
    for (const l of ['Users', 'API tokens', 'Guest links']) assert.ok(links.some((x) => x.label === l), l);
    // Opened, it is a compact grid: at most half as many rows as entries.
    const rows = await p.evaluate(() => new Set([...document.querySelectorAll('nav.nav a')].map((el) => Math.round(el.getBoundingClientRect().top))).size);
    assert.ok(rows <= Math.ceil(links.length / 2), `${rows} rows for ${links.length} entries`);
    await toggle.click();
    // Nothing wider than the phone, and no table needing a sideways scroll
    // (its last column hidden) on any page.
    const cut = () => p.evaluate(() => {
      const out = [];
      if (document.documentElement.scrollWidth > window.innerWidth) out.push(`page ${document.documentElement.scrollWidth}px`);
      for (const w of document.querySelectorAll('.table-wrap')) if (w.scrollWidth > w.clientWidth + 1) out.push(`table ${w.scrollWidth} > ${w.clientWidth}`);
      for (const td of document.querySelectorAll('td')) {
        const r = td.getBoundingClientRect();
        if (r.width && r.right > window.innerWidth + 0.5) out.push(`cell "${td.textContent.slice(0, 30)}" ends at ${Math.round(r.right)}`);
      }
      return out;
    });
    assert.deepEqual(await cut(), [], 'overview');
    // The events table's last column (Outcome) is shown, named.
    const outcome = p.locator('#recent-events tr').first().locator('td').last();
    assert.ok(await outcome.isVisible());
    assert.equal(await outcome.getAttribute('data-label'), 'Outcome');
    await screenshot(p, '641-overview-phone');
    for (const path of ['/audit', '/users', '/tokens', '/guest-links', '/containers', '/nodes', '/stacks']) {
      await navTo(p, { '/audit': 'Audit', '/users': 'Users', '/tokens': 'API tokens', '/guest-links': 'Guest links', '/containers': 'Containers', '/nodes': 'Nodes', '/stacks': 'Stacks' }[path]);
      await p.waitForURL(`**${path}`);
      await p.locator('#main h1').first().waitFor();
      await p.waitForTimeout(300);
      if (path === '/audit') {
        const row = p.locator('#audit-rows tr[data-type="annotation.created"]').first();
        await row.waitFor();
        await row.locator('summary').click();
        const pre = row.locator('pre.json');
        await pre.waitFor();
        const box = await pre.boundingBox();
        assert.ok(box.x >= 0 && box.x + box.width <= 390.5, `the JSON spans ${box.x}..${box.x + box.width}`);
      }
      assert.deepEqual(await cut(), [], path);
      await screenshot(p, `641-phone${path.replace('/', '-')}`);
    }
    assert.deepEqual(phone.problems, []);
  } finally {
    await phone.close();
  }
});

test('the guest-link form offers exactly the scopes that grant something; the guest home is true', async () => {
  const { page } = br;
  const token = (await login(core, admin)).token;
  await page.goto(`${core.base}/guest-links`);
  const offered = await page.locator('input[name="scope"]').evaluateAll((els) => els.map((e) => e.value));
  assert.ok(!offered.includes('view:deployments'), 'view:deployments grants nothing');
  // A scope-less guest's permissions: what every link has anyway.
  const grant = async (scopes) => {
    const g = await core.request('POST', '/api/v1/guest-links', { token, json: { scopes, ttl_seconds: 600 } });
    assert.equal(g.status, 201, g.text);
    const me = await core.request('GET', g.body.url);
    assert.equal(me.status, 200, me.text);
    return { url: g.body.url, permissions: me.body.permissions };
  };
  const base = new Set((await grant(['view:deployments'])).permissions);
  // Every scope offered grants a permission beyond that…
  for (const s of offered) {
    const extra = (await grant([s])).permissions.filter((x) => !base.has(x));
    assert.ok(extra.length > 0, `${s} grants nothing beyond a bare link`);
  }
  // …and the bare link's own permissions open no page.
  for (const p of base) assert.ok(['public', 'agent', 'self:read', 'events:read', 'deployments:read'].includes(p), p);
  assert.deepEqual([...offered].sort(), ['view:audit', 'view:containers', 'view:logs', 'view:metrics', 'view:recordings', 'view:stacks']);

  const { url } = await grant(['view:metrics', 'view:containers']);
  const guest = await openBrowser();
  try {
    const g = guest.page;
    await g.goto(`${core.base}${url}`);
    await g.locator('#guest-scopes').waitFor();
    const text = await g.locator('#main').textContent();
    assert.doesNotMatch(text, /once this server offers/);
    assert.doesNotMatch(text, /deployments/i);
    assert.deepEqual(await g.locator('#guest-pages a').allTextContents(), ['Nodes and their metrics', 'Containers']);
    await g.locator('#guest-pages a', { hasText: 'Containers' }).click();
    await g.waitForURL(/\/g\/[^/]+\/containers$/);
    await g.locator('#container-count').waitFor();
    await screenshot(g, '641-guest-containers');
    // A guest sees no hint to add anything.
    assert.equal(await g.locator('#add-local-engine').count(), 0);
    assert.deepEqual(guest.problems, []);
  } finally {
    await guest.close();
  }
});

test('a fresh install\'s empty containers page says how to add this server\'s engine', async () => {
  const { page } = br;
  await page.goto(`${core.base}/containers`);
  const empty = page.locator('#containers-empty');
  await empty.waitFor();
  const text = await empty.textContent();
  assert.match(text, /No containers yet/);
  assert.match(text, /\/nonexistent\/docker\.sock|did not answer/);
  assert.match(text, /local socket \(this machine\)/);
  await screenshot(page, '641-containers-empty');
  await page.locator('#add-local-engine').click();
  await page.waitForURL(/\/nodes\?docker=local/);
  assert.equal(await page.locator('#n-docker').inputValue(), 'local');
  // A viewer reads how, without the button.
  const b = await openBrowser();
  try {
    await logIn(b.page, core, viewer);
    await b.page.goto(`${core.base}/containers`);
    await b.page.locator('#containers-empty', { hasText: 'an administrator adds a node' }).waitFor();
    assert.equal(await b.page.locator('#add-local-engine').count(), 0);
  } finally {
    await b.close();
  }
  // A filter that matches nothing is not a fresh install.
  await page.goto(`${core.base}/containers`);
  await page.locator('#c-name').fill('nothing-like-this');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('#container-count', { hasText: '0 containers' }).waitFor();
  await page.waitForFunction(() => !document.querySelector('#containers-empty'));
});
