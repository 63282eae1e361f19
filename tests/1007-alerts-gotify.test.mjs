// The Gotify channel (issue #18, "ntfy/Gotify"). Gotify itself is not
// installable here (no Debian package), so a local HTTP receiver stands in
// and checks the exact request Gotify's API takes: POST <server>/message,
// Content-Type application/json, the application token in X-Gotify-Key,
// and {"title": string, "message": string, "priority": integer 0-10}. The
// token is sealed: never in the URL, events, job rows or answers. A real
// alert (a backup run that fails against a repository that is gone, and the
// next good run) arrives as firing (priority 5: warning) and resolved (2).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createDatabase, startCore, tempDir, waitFor } from './lib/harness.mjs';
import { awaitJob } from './lib/jobs.mjs';
import { startHttpReceiver } from './lib/receivers.mjs';

const TOKEN = 'AzyoeNS.D4iJLVa-gotify-app';
let db, core, hook, channel, plan;
const repoDir = tempDir('sbx-gorepo-');

// What Gotify's POST /message accepts.
function gotifyShaped(q) {
  assert.equal(q.method, 'POST');
  assert.equal(q.url, '/gotify/message', 'the message endpoint under the server\'s base URL, no query');
  assert.equal(q.headers['x-gotify-key'], TOKEN);
  assert.match(q.headers['content-type'], /^application\/json/);
  assert.equal(q.headers.authorization, undefined);
  const m = JSON.parse(q.body);
  assert.deepEqual(Object.keys(m).sort(), ['message', 'priority', 'title']);
  assert.equal(typeof m.title, 'string');
  assert.ok(m.title.length > 0 && !m.title.includes('\n'));
  assert.equal(typeof m.message, 'string');
  assert.ok(Number.isInteger(m.priority) && m.priority >= 0 && m.priority <= 10, `priority ${m.priority}`);
  return m;
}
const gotify = () => hook.requests.filter((q) => q.url.startsWith('/gotify'));

before(async () => {
  hook = await startHttpReceiver();
  db = createDatabase('alertsgotify');
  const keyDir = tempDir('sbx-key-');
  core = await startCore({
    db, admin: true,
    env: { SERVERBOX_ALERTS_INTERVAL: '1', SERVERBOX_ALERTS_ALLOW_LOOPBACK: '1', SERVERBOX_NODE_CHECK_INTERVAL: '0',
      SERVERBOX_MASTER_KEY_FILE: join(keyDir, 'master.key') },
  });
});

after(async () => {
  try {
    await core?.stop();
  } finally {
    await hook?.stop();
  }
});

test('bad Gotify channels are refused with 422 and nothing is stored', async () => {
  const before = db.sql('SELECT count(*) FROM events');
  const bad = [
    [{ name: 'g', kind: 'gotify', url: hook.url('/gotify') }, 'token'],
    [{ name: 'g', kind: 'gotify', url: hook.url('/gotify'), token: '' }, 'token'],
    [{ name: 'g', kind: 'gotify', url: hook.url('/gotify'), token: 'has space' }, 'token'],
    [{ name: 'g', kind: 'gotify', url: `${hook.url('/gotify')}?token=${TOKEN}`, token: TOKEN }, 'url'],
    [{ name: 'g', kind: 'gotify', url: 'file:///etc/passwd', token: TOKEN }, 'url'],
    [{ name: 'g', kind: 'gotify', url: 'http://169.254.169.254/', token: TOKEN }, 'url'],
    [{ name: 'g', kind: 'gotify', url: hook.url('/gotify'), token: TOKEN, secret: 'x'.repeat(20) }, 'secret'],
    [{ name: 'g', kind: 'slack', url: hook.url('/slack'), token: TOKEN }, 'token'],
  ];
  for (const [body, field] of bad) {
    const r = await core.request('POST', '/api/v1/alerts/channels', { json: body });
    assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error.field, field, r.text);
  }
  assert.equal(db.sql('SELECT count(*) FROM events'), before, 'nothing recorded');
});

test('a Gotify channel: the token sealed and masked; the test message is what Gotify takes', async () => {
  const r = await core.request('POST', '/api/v1/alerts/channels', { json: { name: 'phone', kind: 'gotify', url: hook.url('/gotify/'), token: TOKEN } });
  assert.equal(r.status, 201, r.text);
  channel = r.body;
  assert.equal(channel.token, '********');
  assert.ok(!JSON.stringify(channel).includes(TOKEN));
  assert.ok(!channel.url.includes('gotify'), `the path is masked: ${channel.url}`);
  // A change that gives the mask keeps the token.
  const p = await core.request('PATCH', `/api/v1/alerts/channels/${channel.id}`, { json: { name: 'phone', token: '********' } });
  assert.equal(p.status, 200, p.text);
  const t = await core.request('POST', `/api/v1/alerts/channels/${channel.id}/test`);
  assert.equal(t.status, 202, t.text);
  const job = await awaitJob(core, t.body.job.id, { timeout: 30000 });
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  assert.equal(gotify().length, 1);
  const m = gotifyShaped(gotify()[0]);
  assert.match(m.title, /^\[TEST\]/);
  assert.match(m.message, /Serverbox can reach it/);
});

test('a real alert: firing (priority 5) and resolved (priority 2); the token nowhere in the database but sealed', async () => {
  let r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: 'here', path: join(repoDir, 'r'), password: `pw-${randomUUID()}` } });
  assert.equal(r.status, 201, r.text);
  r = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'db', repository_id: r.body.id, control_plane: true } });
  assert.equal(r.status, 201, r.text);
  plan = r.body;
  const run = async () => {
    const x = await core.request('POST', `/api/v1/backups/plans/${plan.id}/run`);
    assert.equal(x.status, 202, x.text);
    return awaitJob(core, x.body.job.id, { timeout: 240000 });
  };
  renameSync(join(repoDir, 'r'), join(repoDir, 'gone'));
  assert.equal((await run()).state, 'failed');
  await waitFor(() => gotify().length >= 2, { timeout: 60000, what: 'the firing message' });
  const fired = gotifyShaped(gotify()[1]);
  assert.match(fired.title, /^\[FIRING\] warning: Backup failed - plan db: backup run failed/);
  assert.equal(fired.priority, 5);
  assert.match(fired.message, new RegExp(`Target: backup_plan/${plan.id}`));
  renameSync(join(repoDir, 'gone'), join(repoDir, 'r'));
  assert.equal((await run()).state, 'succeeded');
  await waitFor(() => gotify().length >= 3, { timeout: 60000, what: 'the resolved message' });
  const resolved = gotifyShaped(gotify()[2]);
  assert.match(resolved.title, /^\[RESOLVED\]/);
  assert.equal(resolved.priority, 2);
  // The delivery log holds the receiver's answer, not the token.
  const a = (await core.request('GET', '/api/v1/alerts?state=resolved')).body.alerts.find((x) => x.target === `backup_plan/${plan.id}`);
  const one = (await core.request('GET', `/api/v1/alerts/${a.id}`)).body;
  assert.ok(one.deliveries.some((d) => d.status === 200 && d.channel_id === channel.id), JSON.stringify(one.deliveries));
  for (const table of ['events', 'jobs', 'alert_channels', 'alert_deliveries']) {
    assert.equal(db.sql(`SELECT count(*) FROM ${table} t WHERE t::text LIKE '%${TOKEN}%'`), '0', `no token in ${table}`);
  }
  assert.equal(db.sql(`SELECT count(*) FROM alert_channel_secrets WHERE channel_id = '${channel.id}'`), '1');
  assert.ok(!core.log().includes(TOKEN), 'no token in the daemon log');
});
