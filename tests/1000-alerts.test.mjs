// Alerts and notifications (issue #18) with real receivers: a local HTTP
// receiver (signed webhook) and a real SMTP server (aiosmtpd, STARTTLS).
//   - a fresh install has the default rules;
//   - bad rules, silences and channels (unknown metric, negative duration,
//     file://, gopher://, loopback without --alerts-allow-loopback) → 422,
//     nothing stored;
//   - channel secrets are sealed at rest and masked in answers; "send test"
//     reaches both receivers and is in the delivery log;
//   - a container killed by the OOM killer → one notification per channel
//     naming node, container and time, the signature verifies; resolved
//     (one more each) when it runs again; serverbox_alerts_firing on /metrics;
//   - a silence suppresses the notification; its end re-notifies while the
//     alert still fires.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startEngine, eventsOf } from './lib/stacks.mjs';
import { startHttpReceiver, startSmtp, makeCert, signatureValid } from './lib/receivers.mjs';

const SECRET = 'whsec-0123456789abcdef-sbx';
const SMTP_PASSWORD = 'smtp-pass-never-shown-42';
let db, core, engine, hook, smtp, cert, webhookId, emailId;

// A container that fills its memory until the OOM killer ends it, unless
// /tmp/ok exists (made before the first fill): started again, it runs.
const HOG = 'if [ -f /tmp/ok ]; then exec sleep 100000; fi; touch /tmp/ok; x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done';

async function oomContainer(name) {
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name, image: 'local/busybox:1', command: ['sh', '-c', HOG], memory_bytes: 16 * 1024 * 1024 },
  });
  assert.equal(c.status, 201, c.text);
  return c.body.id;
}

const firingFor = (cid, notification = 'firing') =>
  hook.posts('/hook').filter((p) => p.json?.notification === notification && p.json?.alert?.container_id === cid);
const mailsFor = (name, tag) => smtp.messages().filter((m) => m.data.includes(`Container: ${name}`) && m.data.includes(`[${tag}]`));

before(async () => {
  engine = startEngine();
  hook = await startHttpReceiver();
  cert = makeCert();
  smtp = await startSmtp(cert, { user: 'ops', password: SMTP_PASSWORD });
  db = createDatabase('alerts');
  core = await startCore({
    db, admin: true,
    env: {
      SERVERBOX_DOCKER_SOCKET: engine.sock,
      SERVERBOX_ALERTS_INTERVAL: '1',
      SERVERBOX_ALERTS_ALLOW_LOOPBACK: '1',
      SERVERBOX_ALERTS_CA_FILE: cert.cert,
      SERVERBOX_NODE_CHECK_INTERVAL: '0',
    },
  });
});

after(async () => {
  if (process.env.SBX_ALERTS_DEBUG) (await import('node:fs')).writeFileSync('/tmp/sbx-alerts-1000.log', core?.log() || '');
  try {
    await core?.stop();
  } finally {
    smtp?.stop();
    await hook?.stop();
    engine?.stop();
  }
});

test('a fresh install has the default rules', async () => {
  const r = await waitFor(async () => {
    const x = await core.request('GET', '/api/v1/alerts/rules');
    return x.body?.rules?.length >= 5 ? x : null;
  }, { timeout: 30000, what: 'default rules' });
  const kinds = r.body.rules.map((x) => x.kind).sort();
  assert.deepEqual(kinds, ['audit_chain_broken', 'backup_failed', 'container_oom', 'metric', 'node_offline']);
  assert.ok(r.body.rules.every((x) => x.builtin === true && x.enabled === true));
  const disk = r.body.rules.find((x) => x.kind === 'metric');
  assert.deepEqual({ ...disk.params }, { metric: 'node.disk', op: '>', threshold: 90, for_s: 300 });
});

test('bad rules, silences and channels are refused with 422 and nothing is stored', async () => {
  const before = db.sql('SELECT count(*) FROM events');
  const rules = db.sql('SELECT count(*) FROM alert_rules');
  const bad = [
    ['/api/v1/alerts/rules', { name: 'x', kind: 'metric', metric: 'node.temperature', threshold: 5 }, 'metric'],
    ['/api/v1/alerts/rules', { name: 'x', kind: 'metric', metric: 'node.cpu', threshold: 90, for_s: -5 }, 'for_s'],
    ['/api/v1/alerts/rules', { name: 'x', kind: 'metric', metric: 'node.cpu', threshold: 'high' }, 'threshold'],
    ['/api/v1/alerts/rules', { name: 'x', kind: 'cpu_melted' }, 'kind'],
    ['/api/v1/alerts/rules', { name: 'x', kind: 'node_offline', repeat_s: -1 }, 'repeat_s'],
    ['/api/v1/alerts/rules', { name: 'x', kind: 'container_restart_loop', window_s: -60 }, 'window_s'],
    ['/api/v1/alerts/rules', { name: 'x', kind: 'node_offline', sql: 'drop' }, 'sql'],
    ['/api/v1/alerts/rules', { name: 'x', kind: 'node_offline', channels: ['not-a-uuid'] }, 'channels'],
    ['/api/v1/alerts/rules', { name: 'x', kind: 'node_offline', channels: ['6b0c9f1e-3f3a-4a61-9a53-9b6a1c0e2d11'] }, 'channels'],
    ['/api/v1/alerts/silences', { matchers: { kind: 'node_offline' }, duration_s: -10 }, 'duration_s'],
    ['/api/v1/alerts/silences', { matchers: { colour: 'red' }, duration_s: 60 }, 'matchers'],
    ['/api/v1/alerts/silences', { matchers: {}, until: '2001-01-01T00:00:00Z' }, 'until'],
    ['/api/v1/alerts/channels', { name: 'f', kind: 'webhook', url: 'file:///etc/passwd', secret: SECRET }, 'url'],
    ['/api/v1/alerts/channels', { name: 'g', kind: 'webhook', url: 'gopher://127.0.0.1:70/_x', secret: SECRET }, 'url'],
    ['/api/v1/alerts/channels', { name: 'm', kind: 'slack', url: 'http://169.254.169.254/latest/meta-data' }, 'url'],
    ['/api/v1/alerts/channels', { name: 'u', kind: 'discord', url: 'http://user:pw@example.invalid/x' }, 'url'],
    ['/api/v1/alerts/channels', { name: 'n', kind: 'webhook', url: hook.url(), secret: 'short' }, 'secret'],
    ['/api/v1/alerts/channels', { name: 'e', kind: 'email', url: 'http://127.0.0.1:25', from: 'a@b.c', to: ['x@y.z'] }, 'url'],
    ['/api/v1/alerts/channels', { name: 'e', kind: 'email', url: smtp.url, from: 'not an address', to: ['x@y.z'] }, 'from'],
    ['/api/v1/alerts/channels', { name: 'k', kind: 'pager', url: hook.url() }, 'kind'],
  ];
  for (const [path, json, field] of bad) {
    const r = await core.request('POST', path, { json });
    assert.equal(r.status, 422, `${path} ${JSON.stringify(json)}: ${r.text}`);
    assert.equal(r.body.error.code, 'validation_failed');
    assert.equal(r.body.error.field, field, r.text);
    if (/^(file|gopher):/.test(json.url || '')) assert.match(r.body.error.message, /^url must be http\(s\):\/\/, not (file|gopher):\/\//);
  }
  const m = await core.request('POST', '/api/v1/alerts/rules', { body: '{"name":', headers: { 'Content-Type': 'application/json' } });
  assert.equal(m.status, 400);
  assert.equal(db.sql('SELECT count(*) FROM alert_rules'), rules);
  assert.equal(db.sql('SELECT count(*) FROM alert_channels'), '0');
  assert.equal(db.sql('SELECT count(*) FROM alert_silences'), '0');
  // Only the evaluator's own events (none: nothing fires) may have been added.
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE seq > ${before} AND type NOT LIKE 'alert.%' AND type NOT LIKE 'job.%'`), '0');
});

test('channels: secrets sealed at rest and masked; send test reaches both receivers', async () => {
  let r = await core.request('POST', '/api/v1/alerts/channels', {
    json: { name: 'hook', kind: 'webhook', url: hook.url('/hook?token=abc'), secret: SECRET },
  });
  assert.equal(r.status, 201, r.text);
  webhookId = r.body.id;
  assert.equal(r.body.secret, '********');
  assert.equal(r.body.url, `http://127.0.0.1:${hook.port}/********`);
  r = await core.request('POST', '/api/v1/alerts/channels', {
    json: { name: 'mail', kind: 'email', url: smtp.url, from: 'alerts@serverbox.test', to: ['ops@example.test'],
      username: 'ops', password: SMTP_PASSWORD },
  });
  assert.equal(r.status, 201, r.text);
  emailId = r.body.id;
  assert.equal(r.body.password, '********');
  assert.equal(r.body.starttls, 'try');
  const dup = await core.request('POST', '/api/v1/alerts/channels', { json: { name: 'hook', kind: 'slack', url: hook.url() } });
  assert.equal(dup.status, 409, dup.text);
  // Nothing secret in the answers, the log or the projection.
  const list = await core.request('GET', '/api/v1/alerts/channels');
  for (const s of [SECRET, SMTP_PASSWORD, 'token=abc']) {
    assert.ok(!list.text.includes(s), `list shows ${s}`);
    assert.equal(db.sql(`SELECT count(*) FROM events WHERE body LIKE '%${s}%'`), '0', `log holds ${s}`);
    assert.equal(db.sql(`SELECT count(*) FROM alert_channels WHERE config::text LIKE '%${s}%'`), '0');
  }
  assert.match(db.sql(`SELECT sealed FROM alert_channel_secrets WHERE channel_id = '${webhookId}'`), /^sb1:/);
  // PATCH with the mask keeps the secret; the URL stays.
  r = await core.request('PATCH', `/api/v1/alerts/channels/${webhookId}`, { json: { secret: '********', url: r.body.url, name: 'hook' } });
  assert.equal(r.status, 200, r.text);

  // The AUTH over plain text is refused by curl unless TLS is up: the server requires STARTTLS.
  for (const id of [webhookId, emailId]) {
    const t = await core.request('POST', `/api/v1/alerts/channels/${id}/test`);
    assert.equal(t.status, 202, t.text);
  }
  await waitFor(() => hook.posts('/hook?token=abc').some((p) => p.json?.notification === 'test'), { timeout: 30000, what: 'test webhook' });
  const t = hook.posts('/hook?token=abc').find((p) => p.json?.notification === 'test');
  assert.ok(signatureValid(t, SECRET), 'the test delivery is signed');
  assert.equal(t.headers['x-serverbox-event'], 'test');
  await waitFor(() => smtp.messages().some((m) => m.data.includes('[TEST]')), { timeout: 30000, what: `test mail: ${smtp.log()}` });
  const mail = smtp.messages().find((m) => m.data.includes('[TEST]'));
  assert.equal(mail.tls, true, 'STARTTLS was used');
  assert.equal(mail.login, 'ops', 'logged in with the sealed password');
  assert.deepEqual(mail.rcpt_tos, ['ops@example.test']);
  assert.match(mail.data, /^Subject: \[TEST\]/m);
  // The delivery log, with the receivers' answers.
  const g = await waitFor(async () => {
    const x = await core.request('GET', `/api/v1/alerts/channels/${emailId}`);
    return x.body?.tests?.some((d) => d.outcome === 'delivered') ? x : null;
  }, { what: 'test delivery log' });
  assert.match(g.body.tests.find((d) => d.outcome === 'delivered').answer, /^250/);
  const w = await core.request('GET', `/api/v1/alerts/channels/${webhookId}`);
  const d = w.body.tests.find((x) => x.outcome === 'delivered');
  assert.equal(d.status, 200);
  assert.equal(d.answer, 'ok, got it');
  // Point the webhook at /hook for the rest.
  r = await core.request('PATCH', `/api/v1/alerts/channels/${webhookId}`, { json: { url: hook.url('/hook') } });
  assert.equal(r.status, 200, r.text);
});

test('a container killed by the OOM killer: one notification per channel, then resolved when it runs again', async () => {
  const cid = await oomContainer('hog1');
  await waitFor(() => firingFor(cid).length >= 1 && mailsFor('hog1', 'FIRING').length >= 1,
    { timeout: 60000, what: 'OOM notifications' });
  const p = firingFor(cid)[0];
  assert.ok(signatureValid(p, SECRET), 'signature verifies with the documented algorithm');
  assert.equal(p.json.alert.kind, 'container_oom');
  assert.equal(p.json.alert.node_id, 'local');
  assert.equal(p.json.alert.node_name, 'local');
  assert.equal(p.json.alert.container_name, 'hog1');
  assert.ok(Date.parse(p.json.alert.fired_at) > Date.now() - 300000, p.json.alert.fired_at);
  const m = mailsFor('hog1', 'FIRING')[0];
  assert.match(m.data, /Node: local/);
  assert.match(m.data, /Fired at: \d{4}-\d\d-\d\dT/);
  // /metrics counts it.
  await waitFor(async () => /serverbox_alerts_firing\{severity="critical"\} [1-9]/.test((await core.request('GET', '/metrics')).text),
    { what: 'serverbox_alerts_firing' });
  // It runs again: resolved, once per channel.
  engine.docker('start', 'hog1');
  await waitFor(() => firingFor(cid, 'resolved').length >= 1 && mailsFor('hog1', 'RESOLVED').length >= 1,
    { timeout: 60000, what: 'resolved notifications' });
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(firingFor(cid).length, 1, 'one firing webhook');
  assert.equal(firingFor(cid, 'resolved').length, 1, 'one resolved webhook');
  assert.equal(mailsFor('hog1', 'FIRING').length, 1, 'one firing mail');
  assert.equal(mailsFor('hog1', 'RESOLVED').length, 1, 'one resolved mail');
  const a = (await core.request('GET', '/api/v1/alerts?state=resolved')).body.alerts.find((x) => x.container_id === cid);
  assert.equal(a.resolved_reason, 'running again');
  const one = await core.request('GET', `/api/v1/alerts/${a.id}`);
  assert.equal(one.body.deliveries.filter((d) => d.outcome === 'delivered').length, 4, one.text);
  // Every transition is an event.
  const types = eventsOf(db, 'alert.fired').filter((e) => e.data.id === a.id).length;
  assert.equal(types, 1);
  assert.equal(eventsOf(db, 'alert.resolved').filter((e) => e.data.id === a.id).length, 1);
});

test('a silence suppresses the notification; its end re-notifies while the alert fires', async () => {
  const s = await core.request('POST', '/api/v1/alerts/silences', {
    json: { matchers: { kind: 'container_oom', container_name: 'hog2' }, duration_s: 3600, comment: 'known hog' },
  });
  assert.equal(s.status, 201, s.text);
  const cid = await oomContainer('hog2');
  const alert = await waitFor(async () => (await core.request('GET', '/api/v1/alerts?state=firing')).body.alerts.find((x) => x.container_id === cid),
    { timeout: 60000, what: 'silenced alert' });
  assert.equal(alert.silenced, true);
  await new Promise((r) => setTimeout(r, 4000));
  assert.equal(firingFor(cid).length, 0, 'no webhook while silenced');
  assert.equal(mailsFor('hog2', 'FIRING').length, 0, 'no mail while silenced');
  // Acknowledging works on a silenced alert too, and is an event.
  const d = await core.request('DELETE', `/api/v1/alerts/silences/${s.body.id}`);
  assert.equal(d.status, 204, d.text);
  await waitFor(() => firingFor(cid, 'unsilenced').length === 1 && mailsFor('hog2', 'FIRING').length === 1,
    { timeout: 60000, what: 'notification after the silence' });
  const ack = await core.request('POST', `/api/v1/alerts/${alert.id}/ack`);
  assert.equal(ack.status, 200, ack.text);
  assert.equal(ack.body.state, 'acknowledged');
  assert.equal(eventsOf(db, 'alert.acknowledged').filter((e) => e.data.id === alert.id).length, 1);
  const again = await core.request('POST', `/api/v1/alerts/${alert.id}/ack`);
  assert.equal(again.status, 200);
  engine.docker('start', 'hog2');
  await waitFor(async () => (await core.request('GET', `/api/v1/alerts/${alert.id}`)).body.state === 'resolved', { timeout: 60000, what: 'resolved' });
  const late = await core.request('POST', `/api/v1/alerts/${alert.id}/ack`);
  assert.equal(late.status, 409, late.text);
});

test('a container that dies fires container_died; one that keeps restarting fires container_restart_loop, resolved when it stays up', async () => {
  let r = await core.request('POST', '/api/v1/alerts/rules', { json: { name: 'died', kind: 'container_died', channels: [webhookId] } });
  assert.equal(r.status, 201, r.text);
  const died = r.body;
  r = await core.request('POST', '/api/v1/alerts/rules', { json: { name: 'loop', kind: 'container_restart_loop', count: 3, window_s: 10, channels: [webhookId] } });
  assert.equal(r.status, 201, r.text);
  const loop = r.body;
  const c = await core.request('POST', '/api/v1/nodes/local/containers', { json: { name: 'crash1', image: 'local/busybox:1', command: ['sh', '-c', 'exit 3'] } });
  assert.equal(c.status, 201, c.text);
  const byRule = (rule, n = 'firing') => hook.posts('/hook').filter((p) => p.json?.alert?.rule_id === rule.id && p.json.notification === n);
  await waitFor(() => byRule(died).some((p) => p.json.alert.container_id === c.body.id), { timeout: 60000, what: 'died' });
  assert.match(byRule(died).find((p) => p.json.alert.container_id === c.body.id).json.alert.summary, /crash1 died with exit code 3/);
  // Dies three times (restart policy), then stays up.
  const THRICE = 'if [ -f /tmp/n3 ]; then exec sleep 100000; fi; if [ -f /tmp/n2 ]; then touch /tmp/n3; elif [ -f /tmp/n1 ]; then touch /tmp/n2; else touch /tmp/n1; fi; exit 2';
  const l = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name: 'loopy', image: 'local/busybox:1', command: ['sh', '-c', THRICE], restart_policy: { name: 'always' } },
  });
  assert.equal(l.status, 201, l.text);
  await waitFor(() => byRule(loop).some((p) => p.json.alert.container_id === l.body.id), { timeout: 60000, what: 'restart loop' });
  assert.match(byRule(loop).find((p) => p.json.alert.container_id === l.body.id).json.alert.summary, /loopy died 3 times in 10 s/);
  await waitFor(() => byRule(loop, 'resolved').some((p) => p.json.alert.container_id === l.body.id), { timeout: 60000, what: 'loop resolved' });
  assert.equal(byRule(loop).filter((p) => p.json.alert.container_id === l.body.id).length, 1, 'one loop alert');
});

test('Slack, Discord and ntfy channels: their own formats, the ntfy token as a bearer', async () => {
  const made = {};
  for (const [kind, extra] of [['slack', {}], ['discord', {}], ['ntfy', { token: 'tk_ntfy_secret_1' }]]) {
    const r = await core.request('POST', '/api/v1/alerts/channels', { json: { name: kind, kind, url: hook.url(`/${kind}`), ...extra } });
    assert.equal(r.status, 201, r.text);
    if (kind === 'ntfy') assert.equal(r.body.token, '********');
    made[kind] = r.body.id;
    const t = await core.request('POST', `/api/v1/alerts/channels/${r.body.id}/test`);
    assert.equal(t.status, 202, t.text);
  }
  await waitFor(() => ['slack', 'discord', 'ntfy'].every((k) => hook.requests.some((q) => q.url === `/${k}`)), { timeout: 30000, what: 'three tests' });
  const get = (k) => hook.requests.find((q) => q.url === `/${k}`);
  assert.match(JSON.parse(get('slack').body).text, /^\[TEST\] Serverbox test notification/);
  assert.match(JSON.parse(get('discord').body).content, /^\[TEST\]/);
  const n = get('ntfy');
  assert.equal(n.headers.title, '[TEST] Serverbox test notification');
  assert.equal(n.headers.authorization, 'Bearer tk_ntfy_secret_1');
  assert.match(n.body, /This channel works/);
  assert.equal(db.sql("SELECT count(*) FROM events WHERE body LIKE '%tk_ntfy_secret_1%'"), '0');
  for (const id of Object.values(made)) assert.equal((await core.request('DELETE', `/api/v1/alerts/channels/${id}`)).status, 204);
  assert.equal(db.sql(`SELECT count(*) FROM alert_channel_secrets WHERE channel_id = '${made.ntfy}'`), '0', 'secrets go with the channel');
});

test('a container whose health check fails fires container_unhealthy; healthy again resolves it', async () => {
  const r = await core.request('POST', '/api/v1/alerts/rules', { json: { name: 'unhealthy', kind: 'container_unhealthy', channels: [webhookId] } });
  assert.equal(r.status, 201, r.text);
  const rule = r.body;
  const id = engine.docker('run', '-d', '--name', 'sick', '--health-cmd', 'test -f /tmp/well', '--health-interval', '1s',
    '--health-retries', '1', 'local/busybox:1', 'sleep', '100000');
  const of = (n) => hook.posts('/hook').filter((p) => p.json?.alert?.rule_id === rule.id && p.json.notification === n && p.json.alert.container_id === id);
  await waitFor(() => of('firing').length >= 1, { timeout: 60000, what: 'unhealthy' });
  assert.match(of('firing')[0].json.alert.summary, /sick unhealthy/);
  engine.docker('exec', 'sick', 'sh', '-c', 'echo ok > /tmp/well');
  await waitFor(() => of('resolved').length >= 1, { timeout: 60000, what: 'healthy again' });
  assert.equal(of('resolved')[0].json.alert.resolved_reason, 'healthy again');
});
