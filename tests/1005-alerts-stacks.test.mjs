// Stack alerts (issue #18) against a real engine: an update whose new
// container never becomes healthy is rolled back → "stack deploy failed"
// and "stack rolled back" notify once each, naming the stack's node and the
// reason; the next good deploy resolves both. (network_mode none: the
// stack needs no bridge network, whose address pools other engines on a
// shared test machine may have used up.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startEngine, waitDeploy } from './lib/stacks.mjs';
import { startHttpReceiver } from './lib/receivers.mjs';

let eng, db, core, hook, failedRule, rolledRule, stackId;

const compose = (version, healthy = true) => `version: "3.8"
services:
  web:
    image: local/busybox:1
    network_mode: none
    command: ["sh", "-c", "mkdir -p /w && echo v${version} > /w/index.html && exec httpd -f -p 8080 -h /w"]
    healthcheck:
      test: ${healthy ? '["CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]' : '["CMD", "false"]'}
      interval: 500ms
      timeout: 2s
      retries: 2
    x-serverbox:
      health_timeout: ${healthy ? '30s' : '4s'}
`;
const notes = (rule, n) => hook.posts('/hook').filter((p) => p.json?.alert?.rule_id === rule.id && p.json.notification === n);

before(async () => {
  eng = startEngine();
  hook = await startHttpReceiver();
  db = createDatabase('alertsstacks');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_ALERTS_INTERVAL: '1', SERVERBOX_ALERTS_ALLOW_LOOPBACK: '1', SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  const c = await core.request('POST', '/api/v1/alerts/channels', { json: { name: 'hook', kind: 'webhook', url: hook.url('/hook'), secret: 'stacks-secret-0123456789' } });
  assert.equal(c.status, 201, c.text);
  let r = await core.request('POST', '/api/v1/alerts/rules', { json: { name: 'deploy failed', kind: 'stack_deploy_failed' } });
  assert.equal(r.status, 201, r.text);
  failedRule = r.body;
  r = await core.request('POST', '/api/v1/alerts/rules', { json: { name: 'rolled back', kind: 'stack_rolled_back', severity: 'critical' } });
  assert.equal(r.status, 201, r.text);
  rolledRule = r.body;
});

after(async () => {
  try {
    await core?.stop();
  } finally {
    await hook?.stop();
    eng?.stop();
  }
});

async function deploy(rev) {
  const d = await core.request('POST', `/api/v1/stacks/${stackId}/deploy`, { json: {} });
  assert.equal(d.status, 202, d.text);
  return waitDeploy(core, stackId, rev);
}

test('a rolled-back update notifies "deploy failed" and "rolled back" once each; the next good deploy resolves them', async () => {
  const c = await core.request('POST', '/api/v1/stacks', { json: { name: 'shop', node_id: 'local', compose: compose(1) } });
  assert.equal(c.status, 201, c.text);
  stackId = c.body.id;
  const r1 = await deploy(1);
  assert.equal(r1.deploy_status, 'deployed', JSON.stringify(r1));
  const p = await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: compose(2, false) } });
  assert.equal(p.status, 200, p.text);
  assert.equal((await deploy(2)).deploy_status, 'rolled_back');
  await waitFor(() => notes(failedRule, 'firing').length >= 1 && notes(rolledRule, 'firing').length >= 1, { timeout: 60000, what: 'stack alerts' });
  const a = notes(rolledRule, 'firing')[0].json.alert;
  assert.equal(a.target, `stack/${stackId}`);
  assert.equal(a.node_id, 'local');
  assert.match(a.summary, /deploy rolled back: .*not healthy within 4 s/);
  const p3 = await core.request('PATCH', `/api/v1/stacks/${stackId}`, { json: { compose: compose(3) } });
  assert.equal(p3.status, 200, p3.text);
  assert.equal((await deploy(3)).deploy_status, 'deployed');
  await waitFor(() => notes(failedRule, 'resolved').length >= 1 && notes(rolledRule, 'resolved').length >= 1, { timeout: 60000, what: 'resolved' });
  await new Promise((r) => setTimeout(r, 2000));
  for (const rule of [failedRule, rolledRule]) {
    assert.equal(notes(rule, 'firing').length, 1);
    assert.equal(notes(rule, 'resolved').length, 1);
  }
  assert.equal(notes(rolledRule, 'resolved')[0].json.alert.resolved_reason, 'deployed');
});
