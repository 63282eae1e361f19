// Container consoles against a private dockerd (scripts/dockerd.sh): a TTY
// `docker exec` (bash, else sh: busybox has only sh) on the local engine;
// `hostname` answers the container id; resize changes `stty size`; the
// console is recorded and its hash is in terminal.closed; a viewer gets
// 403; a stopped container 409.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, ROOT } from './lib/harness.mjs';
import { openSse } from './lib/sse.mjs';
import { openBrowser, logIn } from './lib/browser.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
let dir, sock, db, core;
const docker = (...args) => execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  sock = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' }).match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  db = createDatabase('console');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock, SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
});
after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    execFileSync(DOCKERD, ['stop', dir]);
  }
});

test('a console in a container: hostname, resize, recording; viewers 403; stopped 409', async () => {
  const id = docker('run', '-d', '--name', 'cons1', 'local/busybox:1', 'sleep', '3600');
  const r = await core.request('POST', '/api/v1/nodes/local/containers/cons1/console', { json: { cols: 90, rows: 20 } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.kind, 'container');
  assert.equal(r.body.container, id);
  const s = openSse(core.base, `/api/v1/terminals/${r.body.id}/output?offset=0`, { token: core.token });
  await s.ready;
  const text = () => s.events.filter((e) => e.event === 'output').map((e) => Buffer.from(JSON.parse(e.data).data, 'base64').toString('latin1')).join('');
  const send = (b) => core.request('POST', `/api/v1/terminals/${r.body.id}/input`, { body: b, headers: { 'Content-Type': 'application/octet-stream' } });
  await send('hostname\r');
  await s.waitFor(() => text().includes(id.slice(0, 12)), { what: 'the container id from hostname' });
  await send('stty size\r');
  await s.waitFor(() => /20 90/.test(text()), { what: 'stty size 20 90' });
  assert.equal((await core.request('POST', `/api/v1/terminals/${r.body.id}/resize`, { json: { cols: 132, rows: 43 } })).status, 200);
  await new Promise((res) => setTimeout(res, 300));
  await send('stty size\r');
  await s.waitFor(() => /43 132/.test(text()), { what: 'stty size after resize' });

  const viewer = (await login(core, createUser(db, { role: 'viewer' }))).token;
  assert.equal((await core.request('POST', '/api/v1/nodes/local/containers/cons1/console', { token: viewer, json: {} })).status, 403);

  const c = await core.request('DELETE', `/api/v1/terminals/${r.body.id}`);
  assert.equal(c.status, 200, c.text);
  assert.equal(c.body.container, id);
  await s.waitFor((x) => x.events.some((e) => e.event === 'end'), { what: 'end' });
  const ev = JSON.parse(db.sql(`SELECT body FROM events WHERE type = 'terminal.closed' AND data->>'terminal_id' = '${r.body.id}'`));
  const dl = await fetch(`${core.base}/api/v1/recordings/${ev.data.recording.id}`, { headers: { Authorization: `Bearer ${core.token}` } });
  const bytes = Buffer.from(await dl.arrayBuffer());
  assert.equal(createHash('sha256').update(bytes).digest('hex'), ev.data.recording.sha256);
  assert.ok(bytes.toString('utf8').includes(id.slice(0, 12)));
  const opened = JSON.parse(db.sql(`SELECT body FROM events WHERE type = 'terminal.opened' AND data->>'terminal_id' = '${r.body.id}'`));
  assert.equal(opened.data.container, id);
  assert.equal(opened.data.node_id, 'local');

  docker('stop', '-t', '0', 'cons1');
  const st = await core.request('POST', '/api/v1/nodes/local/containers/cons1/console', { json: {} });
  assert.equal(st.status, 409, st.text);
  assert.equal((await core.request('POST', '/api/v1/nodes/local/containers/nope/console', { json: {} })).status, 404);
  assert.equal((await core.request('POST', '/api/v1/nodes/local/containers/cons1/console', { json: { cols: 0 } })).status, 422);
  docker('rm', 'cons1');
});

test('the dashboard: a Console button on a running container opens xterm on its shell', async () => {
  const id = docker('run', '-d', '--name', 'cons2', 'local/busybox:1', 'sleep', '3600');
  const br = await openBrowser();
  try {
    const { page } = br;
    await logIn(page, core, createUser(db, { role: 'operator' }));
    await page.goto(`${core.base}/containers`);
    await page.locator('a[data-console="cons2"]').click({ timeout: 20000 });
    await page.waitForURL('**/terminal?node=local&container=*');
    await page.locator('.term-tab[data-state="live"]').waitFor({ timeout: 20000 });
    await page.locator('.term-pane .xterm').click();
    await page.keyboard.type('hostname');
    await page.keyboard.press('Enter');
    const screen = () => page.evaluate(() => {
      const t = Object.values(window.__sbxTerminals)[0];
      const b = t.buffer.active;
      const out = [];
      for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
      return out.join('\n');
    });
    let last = '';
    for (let i = 0; i < 100 && !(last = await screen()).includes(id.slice(0, 12)); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(last.includes(id.slice(0, 12)), last);
    assert.deepEqual(br.problems, []);
  } finally {
    await br.close();
    docker('rm', '-f', 'cons2');
  }
});
