// An idle guest page writes nothing to the audit chain. The page checks
// every 10 s that its link still works by asking /api/v1/me, which answers a
// guest with its grant (permission self:read) and is not an audit event; the
// live stream stays open. Opening the page is audited once (its first
// request of the window), the rest of its loading ends up in one
// guest.requests_summary. Chromium, 60 s of idleness.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { adminToken, createDatabase, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot } from './lib/browser.mjs';

let db, core, br;
before(async () => {
  db = createDatabase('guestidle');
  core = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_AUDIT_WINDOW: '5' } });
  br = await openBrowser();
});
after(async () => {
  await br?.close();
  await core?.stop();
});

const headSeq = () => Number(db.sql('SELECT coalesce(max(seq), 0) FROM events'));

test('an idle guest page adds zero events in 60 s', { timeout: 120000 }, async () => {
  const admin = await adminToken(core, db);
  const g = await core.request('POST', '/api/v1/guest-links', { token: admin, json: { scopes: ['view:audit', 'view:metrics'], ttl_seconds: 3600, note: 'idle auditor' } });
  assert.equal(g.status, 201, g.text);
  const { page } = br;
  const me = [];
  page.on('response', (r) => { if (new URL(r.url()).pathname === '/api/v1/me') me.push(r.status()); });
  await page.goto(`${core.base}${g.body.url}`);
  await page.locator('#guest-countdown', { hasText: /Expires in/ }).waitFor();
  await page.locator('#live-indicator[data-state="live"]').waitFor({ timeout: 15000 });
  // Loading the page: audited, then summarized when its window (5 s) closes.
  const stream = `guest_link/${g.body.id}`;
  await waitFor(() => db.sql(`SELECT count(*) FROM events WHERE stream = '${stream}' AND type = 'guest.requests_summary'`) === '1',
    { timeout: 15000, what: 'the summary of the page load' });
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE stream = '${stream}' AND type = 'guest.request'`), '1');
  const seq0 = headSeq();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 60000));
  const added = JSON.parse(db.sql(`SELECT coalesce(json_agg(json_build_object('type', type, 'data', data)), '[]') FROM events WHERE seq > ${seq0}`));
  assert.deepEqual(added, [], `events in ${Date.now() - t0} ms of an idle guest page`);
  // The page did check its link meanwhile, and the core answered.
  assert.ok(me.length >= 5, `only ${me.length} link checks`);
  assert.deepEqual([...new Set(me)], [200]);
  assert.ok(await page.locator('#guest-expired').count() === 0);
  await screenshot(page, '172-guest-idle');
  assert.deepEqual(br.problems, []);
});
