// The dashboard's live connection in a real browser (Chromium) against the
// real GET /api/v1/events: the indicator says Live; when the core stops it
// says Reconnecting, then Offline; an event is recorded while the core is
// down (the CLI writes to the same database); the core comes back on the
// same address and the page reconnects by itself, sending Last-Event-ID,
// and the event from the drop arrives over the stream (not by a reload).
// The browser losing its network (Chromium's offline emulation) shows
// Offline at once and resumes the same way when the network is back.
// A guest link's page is live too (its token travels with the stream).
// Screenshots go to tests/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';

const DASH = { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') };
let db, core, admin, br;
before(async () => {
  db = createDatabase('dashlive');
  core = await startCore({ db, env: DASH });
  admin = createUser(db, { role: 'admin' });
  br = await openBrowser();
});
after(async () => {
  await br?.close();
  await core?.stop();
});

const seqOf = (type, cond) => Number(db.sql(`SELECT coalesce(max(seq), 0) FROM events WHERE type = '${type}' AND ${cond}`));

test('connected, then reconnecting and offline while the core is down, then resumed with Last-Event-ID', async () => {
  const { page } = br;
  const streamRequests = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/v1/events') streamRequests.push({ at: Date.now(), lastEventId: r.headers()['last-event-id'] ?? null });
  });
  await logIn(page, core, admin);
  const live = page.locator('#live-indicator');
  await page.locator('#live-indicator[data-state="live"]', { hasText: 'Live' }).waitFor();
  // An event while connected arrives over the stream: the indicator notes its seq.
  const token = (await login(core, admin)).token;
  const a = await core.request('POST', '/api/v1/annotations', { token, json: { message: 'before the drop' } });
  assert.equal(a.status, 201, a.text);
  const annSeq = seqOf('annotation.created', "data->>'message' = 'before the drop'");
  await waitFor(async () => Number(await live.getAttribute('data-last-seq')) >= annSeq, { what: 'the annotation over the stream' });
  await page.locator(`#recent-events tr[data-seq="${annSeq}"]`).waitFor();
  const seenBefore = Number(await live.getAttribute('data-last-seq'));
  await screenshot(page, '640-live-connected');

  // The core goes away.
  const { port, dataDir } = core;
  await core.stop();
  core = null;
  const drop = Date.now();
  await page.locator('#live-indicator[data-state="reconnecting"]', { hasText: 'Reconnecting' }).waitFor({ timeout: 10000 });
  await screenshot(page, '640-live-reconnecting');
  await page.locator('#live-indicator[data-state="offline"]', { hasText: 'Offline' }).waitFor({ timeout: 20000 });
  assert.match(await live.getAttribute('title'), /cannot be reached/);
  await screenshot(page, '640-live-offline');

  // Something happens while the dashboard cannot see it: the CLI creates a
  // user in the same database (a user.created event).
  createUser(db, { username: 'made-during-the-drop', role: 'viewer' });
  const dropSeq = seqOf('user.created', "data->>'username' = 'made-during-the-drop'");
  assert.ok(dropSeq > seenBefore, `${dropSeq} > ${seenBefore}`);

  // The core comes back on the same address with the same data directory
  // (the browser's session stays valid); the page reconnects by itself.
  core = await startCore({ db, dataDir, env: { ...DASH, SERVERBOX_LISTEN: `127.0.0.1:${port}` } });
  await page.locator('#live-indicator[data-state="live"]').waitFor({ timeout: 20000 });
  // The reconnection asked for what came after the last event it had seen…
  const resumed = streamRequests.filter((r) => r.at > drop);
  assert.ok(resumed.length > 0, 'reconnection attempts were made');
  assert.equal(resumed.at(-1).lastEventId, String(seenBefore), JSON.stringify(resumed));
  // …and the core replayed it: the event from the drop came over the stream
  // (the indicator's last seq moves only with stream events) and is listed.
  await waitFor(async () => Number(await live.getAttribute('data-last-seq')) >= dropSeq, { timeout: 15000, what: 'the missed event replayed' });
  await page.locator(`#recent-events tr[data-seq="${dropSeq}"]`, { hasText: 'user.created' }).waitFor();
  await screenshot(page, '640-live-resumed');
  // Still live afterwards: a new event arrives at once.
  const b = await core.request('POST', '/api/v1/annotations', { token, json: { message: 'after the drop' } });
  assert.equal(b.status, 201, b.text);
  const afterSeq = seqOf('annotation.created', "data->>'message' = 'after the drop'");
  await page.locator(`#recent-events tr[data-seq="${afterSeq}"]`).waitFor({ timeout: 10000 });
  assert.equal(await live.getAttribute('data-state'), 'live');
  assert.deepEqual(br.problems, []);
});

test('the browser loses its network: offline at once, then resumed with Last-Event-ID when it is back', async () => {
  const { page, context } = br;
  const live = page.locator('#live-indicator');
  await page.locator('#live-indicator[data-state="live"]').waitFor({ timeout: 15000 });
  const token = (await login(core, admin)).token;
  const seenBefore = Number(await live.getAttribute('data-last-seq'));
  const resumedWith = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/v1/events') resumedWith.push(r.headers()['last-event-id'] ?? null);
  });
  await context.setOffline(true);
  await page.locator('#live-indicator[data-state="offline"]').waitFor({ timeout: 5000 });
  // Meanwhile, on the server: a new annotation.
  const a = await core.request('POST', '/api/v1/annotations', { token, json: { message: 'while the browser was offline' } });
  assert.equal(a.status, 201, a.text);
  const seq = seqOf('annotation.created', "data->>'message' = 'while the browser was offline'");
  await context.setOffline(false);
  await page.locator('#live-indicator[data-state="live"]').waitFor({ timeout: 15000 });
  await waitFor(async () => Number(await live.getAttribute('data-last-seq')) >= seq, { what: 'the missed annotation replayed' });
  await page.locator(`#recent-events tr[data-seq="${seq}"]`).waitFor();
  // The reconnection named what it had seen (not the annotation, which it
  // got by replay).
  const last = resumedWith.at(-1);
  assert.ok(last !== null && last !== undefined && Number(last) >= seenBefore && Number(last) < seq, JSON.stringify({ resumedWith, seenBefore, seq }));
  assert.deepEqual(br.problems, []);
});

test('a guest link page is live over the same stream, with only what its scopes allow', async () => {
  const token = (await login(core, admin)).token;
  const g = await core.request('POST', '/api/v1/guest-links', { token, json: { scopes: ['view:audit'], ttl_seconds: 600, note: 'live check' } });
  assert.equal(g.status, 201, g.text);
  const guest = await openBrowser();
  try {
    const p = guest.page;
    await p.goto(`${core.base}${g.body.url}/audit`);
    await p.locator('#live-indicator[data-state="live"]').waitFor({ timeout: 15000 });
    const before = Number(await p.locator('#live-indicator').getAttribute('data-last-seq') || 0);
    const a = await core.request('POST', '/api/v1/annotations', { token, json: { message: 'seen by the guest' } });
    assert.equal(a.status, 201, a.text);
    const seq = seqOf('annotation.created', "data->>'message' = 'seen by the guest'");
    await waitFor(async () => Number(await p.locator('#live-indicator').getAttribute('data-last-seq')) >= seq, { what: 'the annotation on the guest stream' });
    assert.ok(seq > before);
    await screenshot(p, '640-guest-live');
    assert.deepEqual(guest.problems, []);
  } finally {
    await guest.close();
  }
});
