// Recurring maintenance windows per node label (issue #18): a weekly window
// {days, start HH:MM UTC, duration_s} on node_labels, stored as a silence
// (alert_silence.created with its recurrence). While it is open a node of
// those labels that goes offline fires silenced (an event, no
// notification); when the window closes the alert, still firing, notifies
// ("unsilenced"), once. Bad days and times are 422 naming the field, and
// nothing is stored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { eventsOf } from './lib/stacks.mjs';
import { startHttpReceiver } from './lib/receivers.mjs';

const ENV = { SERVERBOX_ALERTS_INTERVAL: '1', SERVERBOX_ALERTS_ALLOW_LOOPBACK: '1', SERVERBOX_NODE_CHECK_INTERVAL: '1' };
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
let db, core, hook, sshd, node;

const posts = (n) => hook.posts('/hook').filter((p) => p.json?.alert?.node_id === node.id && p.json.notification === n);

before(async () => {
  sshd = startSshd();
  hook = await startHttpReceiver();
  db = createDatabase('alertsmaint');
  core = await startCore({ db, admin: true, env: ENV });
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name: 'maint-1', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels: { env: 'maint' } },
  });
  assert.equal(r.status, 201, r.text);
  node = r.body;
  const c = await core.request('POST', '/api/v1/alerts/channels', { json: { name: 'hook', kind: 'webhook', url: hook.url('/hook'), secret: 'maint-secret-0123456789' } });
  assert.equal(c.status, 201, c.text);
  await waitFor(async () => (await core.request('GET', '/api/v1/alerts/rules')).body.rules?.some((x) => x.kind === 'node_offline'),
    { timeout: 30000, what: 'the default rules' });
});

after(async () => {
  try {
    await core?.stop();
  } finally {
    sshd?.remove();
    await hook?.stop();
  }
});

test('bad maintenance windows are 422 naming the field; nothing is stored', async () => {
  const before = db.sql("SELECT count(*) FROM events WHERE type LIKE 'alert_silence.%'");
  const rec = (x) => ({ days: ['mon'], start: '02:00', duration_s: 3600, ...x });
  const bad = [
    [{ node_labels: { env: 'maint' }, recurrence: rec({ days: ['funday'] }) }, 'recurrence.days'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ days: [] }) }, 'recurrence.days'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ days: ['mon', 'mon'] }) }, 'recurrence.days'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ start: '25:00' }) }, 'recurrence.start'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ start: '2am' }) }, 'recurrence.start'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ start: '02:60' }) }, 'recurrence.start'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ duration_s: 0 }) }, 'recurrence.duration_s'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ duration_s: -60 }) }, 'recurrence.duration_s'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ duration_s: 8 * 86400 }) }, 'recurrence.duration_s'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({ every: 'week' }) }, 'recurrence'],
    [{ recurrence: rec({}) }, 'node_labels'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({}), duration_s: 60 }, 'duration_s'],
    [{ node_labels: { env: 'maint' }, recurrence: rec({}), until: '2001-01-01T00:00:00Z' }, 'until'],
  ];
  for (const [body, field] of bad) {
    const r = await core.request('POST', '/api/v1/alerts/silences', { json: body });
    assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error.field, field, r.text);
  }
  assert.equal(db.sql("SELECT count(*) FROM events WHERE type LIKE 'alert_silence.%'"), before, 'nothing recorded');
  assert.equal(db.sql('SELECT count(*) FROM alert_silences'), '0');
});

test('an open window silences the node\'s alert; when it closes the alert notifies once', async () => {
  // A window that opened this minute and closes 40 s from now (60 s at least).
  const now = new Date();
  const elapsed = now.getUTCSeconds();
  const hhmm = `${String(now.getUTCHours()).padStart(2, '0')}:${String(now.getUTCMinutes()).padStart(2, '0')}`;
  const duration = Math.max(60, elapsed + 40);
  const closes = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), now.getUTCHours(), now.getUTCMinutes()) + duration * 1000;
  const w = await core.request('POST', '/api/v1/alerts/silences', {
    json: { node_labels: { env: 'maint' }, recurrence: { days: [DAYS[now.getUTCDay()]], start: hhmm, duration_s: duration }, comment: 'weekly patching' },
  });
  assert.equal(w.status, 201, w.text);
  assert.deepEqual(w.body.recurrence, { days: [DAYS[now.getUTCDay()]], start: hhmm, duration_s: duration });
  assert.equal(w.body.until, 'infinity');
  assert.equal(w.body.state, 'active');
  const created = eventsOf(db, 'alert_silence.created').find((e) => e.data.id === w.body.id);
  assert.deepEqual(created.data.recurrence.start, hhmm, 'the window is an event');

  sshd.stop();
  await waitFor(() => eventsOf(db, 'alert.fired').some((e) => e.data.node_id === node.id), { timeout: 60000, what: 'the offline alert' });
  const fired = eventsOf(db, 'alert.fired').find((e) => e.data.node_id === node.id);
  assert.ok(Date.now() < closes, 'fired while the window is open (the test was too slow otherwise)');
  assert.equal(fired.data.silenced, true, 'fired silenced inside the window');
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(posts('firing').length, 0, 'no notification inside the window');

  await waitFor(() => posts('unsilenced').length >= 1, { timeout: duration * 1000 + 60000, what: 'the notification when the window closes' });
  assert.ok(Date.now() >= closes, 'not before the window closed');
  const p = posts('unsilenced')[0];
  assert.equal(p.json.alert.kind, 'node_offline');
  assert.equal(p.json.alert.node_name, 'maint-1');
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(posts('unsilenced').length, 1, 'once');
  assert.equal(eventsOf(db, 'alert.unsilenced').filter((e) => e.data.id === fired.data.id).length, 1);
  // The window stays (it recurs) until deleted.
  let g = await core.request('GET', `/api/v1/alerts/silences/${w.body.id}`);
  assert.equal(g.body.state, 'active');
  const d = await core.request('DELETE', `/api/v1/alerts/silences/${w.body.id}`);
  assert.ok(d.status === 204 || d.status === 200, d.text);
  g = await core.request('GET', `/api/v1/alerts/silences/${w.body.id}`);
  assert.equal(g.body.state, 'deleted');
});
