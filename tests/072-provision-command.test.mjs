// POST /api/v1/nodes/{id}/provision-command: an inventory line and the
// ansible-playbook command with a fresh one-time enroll token. The command's
// shell quoting is checked by running it (with ansible-inventory in place of
// ansible-playbook) and reading the host's variables back; the token in it
// enrolls exactly once. Bad input changes nothing; scope and role as the
// enroll-token route.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, createUser, login, tempDir, request, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';
import { startSshd } from './lib/sshd.mjs';
import { registerNode, makeAgentKey } from './lib/collector.mjs';

let db, core, sshd, node;
const issued = () => Number(db.sql("SELECT count(*) FROM events WHERE type = 'agent.enroll_token_issued'"));
before(async () => {
  sshd = startSshd();
  db = createDatabase('prov');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
  node = await registerNode(core, sshd);
});
after(async () => {
  try { await core?.stop(); } finally { sshd?.remove(); }
});

test('the command runs as written, its inventory line carries the node, and its token enrolls once', async () => {
  const r = await core.request('POST', `/api/v1/nodes/${node}/provision-command`, { json: { core_url: 'https://sb.example.com:8443' } });
  assert.equal(r.status, 201, r.text);
  assert.match(r.body.token, /^sbe_[0-9a-f]{64}$/);
  assert.equal(r.body.core_url, 'https://sb.example.com:8443');
  const name = r.body.inventory_line.split(' ')[0];
  const dir = tempDir('sbx-prov-');
  mkdirSync(join(dir, 'ansible'));
  const cmd = r.body.command.replace('ansible-playbook -i', 'ansible-inventory --list -i').replace(/ nodes\.yml$/, '');
  assert.notEqual(cmd, r.body.command);
  const out = spawnSync('sh', ['-c', cmd], { cwd: dir, encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const inv = JSON.parse(out.stdout);
  assert.deepEqual(inv.serverbox_nodes.hosts, [name]);
  const v = inv._meta.hostvars[name];
  assert.equal(v.ansible_host, '127.0.0.1');
  assert.equal(v.ansible_port, sshd.port);
  assert.equal(v.ansible_user, 'root');
  assert.equal(v.sbx_node_id, node);
  assert.equal(v.sbx_core_url, 'https://sb.example.com:8443');
  assert.equal(v.sbx_enroll_token, r.body.token);
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE body LIKE '%${r.body.token.slice(4)}%'`), '0', 'token never in the log');

  const key = makeAgentKey();
  const e = await core.request('POST', '/api/v1/agent/enroll', { json: { token: r.body.token, public_key: key.hex } });
  assert.equal(e.status, 201, e.text);
  assert.equal(e.body.node_id, node);
  const again = await core.request('POST', '/api/v1/agent/enroll', { json: { token: r.body.token, public_key: makeAgentKey().hex } });
  assert.equal(again.status, 401);
});

test('without core_url the address the caller used is taken', async () => {
  const r = await core.request('POST', `/api/v1/nodes/${node}/provision-command`, { json: { ttl_seconds: 600 } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.core_url, core.base);
  assert.match(r.body.inventory_line, new RegExp(` sbx_core_url=${core.base} `));
  assert.ok(Date.parse(r.body.expires_at) - Date.now() <= 600000);
});

test('bad input: 400/422 naming the field, unknown node 404, nothing issued', async () => {
  const before = issued();
  const p = `/api/v1/nodes/${node}/provision-command`;
  for (const [json, field] of [
    [{ core_url: 'ftp://x.example' }, 'core_url'],
    [{ core_url: "http://x.example/'; rm -rf /" }, 'core_url'],
    [{ core_url: 'http://a b' }, 'core_url'],
    [{ core_url: 'http://x.example/' }, 'core_url'],
    [{ core_url: 'http://' }, 'core_url'],
    [{ core_url: 7 }, 'core_url'],
    [{ core_url: `http://${'a'.repeat(200)}` }, 'core_url'],
    [{ ttl_seconds: 5 }, 'ttl_seconds'],
    [{ colour: 'red' }, 'colour'],
  ]) {
    const r = await core.request('POST', p, { json });
    assert.equal(r.status, 422, `${JSON.stringify(json)}: ${r.text}`);
    assert.equal(r.body.error.field, field, r.text);
  }
  const bad = await core.request('POST', p, { body: '{"core_url": ', headers: { 'content-type': 'application/json' } });
  assert.equal(bad.status, 400, bad.text);
  assert.equal((await core.request('POST', '/api/v1/nodes/8d5e7a55-1111-4a4a-8888-000000000000/provision-command', { json: {} })).status, 404);
  assert.equal((await core.request('POST', '/api/v1/nodes/not-a-uuid/provision-command', { json: {} })).status, 404);
  assert.equal(issued(), before, 'no token issued by a refused request');
});

test('scope and role: an operator limited to env=prod gets 404 for another node; a viewer 403; anonymous 401', async () => {
  const prod = await registerNode(core, sshd, { labels: { env: 'prod' } });
  const u = createUser(db, { role: 'operator' });
  const uid = (await core.request('GET', '/api/v1/users')).body.users.find((x) => x.username === u.username).id;
  assert.equal((await core.request('PATCH', `/api/v1/users/${uid}`, { json: { node_labels: { env: 'prod' } } })).status, 200);
  const { token } = await login(core, u);
  const before = issued();
  const hidden = await core.request('POST', `/api/v1/nodes/${node}/provision-command`, { token, json: {} });
  assert.equal(hidden.status, 404, hidden.text);
  assert.equal(issued(), before);
  const ok = await core.request('POST', `/api/v1/nodes/${prod}/provision-command`, { token, json: {} });
  assert.equal(ok.status, 201, ok.text);
  const viewer = await login(core, createUser(db, { role: 'viewer' }));
  assert.equal((await core.request('POST', `/api/v1/nodes/${prod}/provision-command`, { token: viewer.token, json: {} })).status, 403);
  assert.equal((await request(core.base, 'POST', `/api/v1/nodes/${prod}/provision-command`, { json: {} })).status, 401);
  assert.equal(issued(), before + 1);
});

test('the node page: "Provision command" shows the command once, with a copy button; a viewer has no button', async () => {
  const br = await openBrowser();
  try {
    const { page } = br;
    const admin = createUser(db, { role: 'admin' });
    await logIn(page, core, admin);
    const before = issued();
    await page.goto(`${core.base}/nodes/${node}`);
    await page.locator('#node-title', { hasText: 'n-' }).waitFor();
    await page.getByRole('button', { name: 'Provision command' }).click();
    const cmd = page.locator('#node-provision-command');
    await cmd.waitFor();
    const text = await cmd.textContent();
    assert.match(text, new RegExp(`^cd ansible && printf .* sbx_node_id=${node} sbx_core_url=${core.base} sbx_enroll_token=sbe_[0-9a-f]{64}' > inventory-n-[0-9a-f]{8}\\.ini && ansible-playbook -i inventory-n-[0-9a-f]{8}\\.ini nodes\\.yml$`));
    assert.equal(issued(), before + 1);
    await page.locator('#node-provision-copy').waitFor();
    await screenshot(page, '072-provision-command');
    assert.deepEqual(br.problems, []);
    await page.context().clearCookies();
    const viewer = createUser(db, { role: 'viewer' });
    await logIn(page, core, viewer);
    await page.goto(`${core.base}/nodes/${node}`);
    await page.locator('#node-title', { hasText: 'n-' }).waitFor();
    assert.equal(await page.locator('#node-provision').count(), 0);
  } finally {
    await br.close();
  }
});
