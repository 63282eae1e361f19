// The Terminal page in a real browser (Chromium) against the real core and a
// real sshd with tmux: from the node page's Terminal button, type `echo hi`
// into xterm and read `hi` from xterm's buffer; close the page and open it
// again: the same tmux session with the earlier output on screen; restart
// the core: the same again (the page re-attaches by itself); a second tab;
// the recordings page replays the session in asciinema-player; a guest with
// view:recordings sees only the recordings. No CSP violation or console
// error anywhere (xterm's styles go through constructed style sheets).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createDatabase, createUser, login, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { openBrowser, screenshot, logIn } from './lib/browser.mjs';

let db, core, admin, token, br, s1, nodeId;
const tag = randomBytes(3).toString('hex');
const session = `web-${tag}`;
const coreEnv = { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_NODE_CHECK_INTERVAL: '0' };

before(async () => {
  s1 = startSshd();
  db = createDatabase('dashterm');
  core = await startCore({ db, env: coreEnv });
  admin = createUser(db, { role: 'admin' });
  token = (await login(core, admin)).token;
  const r = await core.request('POST', '/api/v1/nodes', { token, json: { name: 'box-1', host: '127.0.0.1', port: s1.port, ssh_user: 'root', private_key: s1.key } });
  assert.equal(r.status, 201, r.text);
  nodeId = r.body.id;
  br = await openBrowser();
});
after(async () => {
  try {
    await br?.close();
    for (const s of [session, `second-${tag}`]) await core?.request('POST', `/api/v1/nodes/${nodeId}/exec`, { token, json: { command: `tmux kill-session -t '=${s}' 2>/dev/null; true` } }).catch(() => {});
    await core?.stop();
  } finally {
    s1?.remove();
  }
});

// The visible text of a tab's xterm (its active buffer, as xterm holds it).
const screenText = (page, sess) => page.evaluate((key) => {
  const t = window.__sbxTerminals?.[key];
  if (!t) return '';
  const b = t.buffer.active;
  const lines = [];
  for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? '');
  return lines.join('\n');
}, `${nodeId}/${sess}`);

async function waitScreen(page, sess, re, what) {
  let last = '';
  await waitFor(async () => re.test(last = await screenText(page, sess)), { timeout: 20000, what })
    .catch((e) => { throw new Error(`${e.message}; screen: ${JSON.stringify(last.trim().slice(-500))}`); });
}

async function waitLive(page, sess, timeout = 20000) {
  try {
    await page.locator(`.term-tab[data-session="${sess}"][data-state="live"]`).waitFor({ timeout });
  } catch (e) {
    const state = await page.locator('#term-tabs').innerHTML().catch(() => '?');
    const errs = await page.locator('main').innerText().catch(() => '?');
    throw new Error(`${e.message.split('\n')[0]}; tabs: ${state}; page: ${errs.slice(0, 400)}; problems: ${JSON.stringify(br.problems)}`);
  }
}

async function typeIn(page, sess, text) {
  await page.locator(`.term-pane[data-session="${sess}"] .xterm`).click();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

test('type echo hi into xterm and read hi from its buffer; the page comes back to the same session', async () => {
  const { page } = br;
  await logIn(page, core, admin);
  await page.goto(`${core.base}/nodes/${nodeId}`);
  await page.locator('#node-terminal').click({ timeout: 15000 }).catch(async (e) => {
    throw new Error(`${e.message.split('\n')[0]}; page: ${(await page.locator('body').innerText()).slice(0, 600)}; problems: ${JSON.stringify(br.problems)}`);
  });
  await page.waitForURL('**/terminal?node=*');
  await page.locator('#t-session').fill(session);
  await page.getByRole('button', { name: 'Open' }).click();
  await waitLive(page, session, 20000);
  await typeIn(page, session, 'echo hi');
  await waitScreen(page, session, /^hi$/m, 'hi in the buffer');
  await typeIn(page, session, 'echo marker-$((6*7))');
  await waitScreen(page, session, /^marker-42$/m, 'marker-42');
  await screenshot(page, '910-terminal');

  // Close the page, open it again: the tab comes back on the same session.
  const ctx = page.context();
  await page.close();
  const p2 = await ctx.newPage();
  br.page = p2;
  await p2.goto(`${core.base}/terminal`);
  await waitLive(p2, session, 20000);
  await waitScreen(p2, session, /^marker-42$/m, 'the earlier output after reopening');
  const list = await core.request('GET', '/api/v1/terminals', { token });
  assert.equal(list.body.items.filter((t) => t.session === session).length, 1, 'the same terminal, joined');
  assert.deepEqual(br.problems, []);
});

test('restart the core: the page re-attaches to the same tmux session with its screen', async () => {
  const page = br.page;
  const before = await page.locator(`.term-tab[data-session="${session}"]`).getAttribute('data-terminal');
  await core.stop();
  await page.locator(`.term-tab[data-session="${session}"]:not([data-state="live"])`).waitFor({ timeout: 20000 });
  // Same address: the open page keeps talking to it.
  core = await startCore({ db, dataDir: core.dataDir, env: { ...coreEnv, SERVERBOX_LISTEN: `127.0.0.1:${core.port}` } });
  await waitLive(page, session, 30000);
  const after = await page.locator(`.term-tab[data-session="${session}"]`).getAttribute('data-terminal');
  assert.notEqual(after, before, 'a new terminal on the core');
  await waitScreen(page, session, /^marker-42$/m, 'tmux redraws the earlier output');
  await typeIn(page, session, 'echo after-$((5*5))');
  await waitScreen(page, session, /^after-25$/m, 'after-25');

  // A second tab.
  await page.locator('#t-session').fill(`second-${tag}`);
  await page.getByRole('button', { name: 'Open' }).click();
  await waitLive(page, `second-${tag}`);
  await typeIn(page, `second-${tag}`, 'echo two-$((1+1))');
  await waitScreen(page, `second-${tag}`, /^two-2$/m, 'two-2');
  assert.equal(await page.locator('.term-tab').count(), 2);
  // Detach the second tab: its terminal closes on the core, tmux keeps the session.
  await page.locator(`.term-tab[data-session="second-${tag}"] button`).click();
  await waitFor(async () => !(await core.request('GET', '/api/v1/terminals', { token })).body.items.some((t) => t.session === `second-${tag}`), { what: 'the second terminal detached' });
  const has = await core.request('POST', `/api/v1/nodes/${nodeId}/exec`, { token, json: { command: `tmux has-session -t '=second-${tag}'` } });
  assert.equal(has.body.exit_code, 0, 'tmux kept the session');
  assert.deepEqual(br.problems, []);
});

test('recordings: replay in asciinema-player; a view:recordings guest sees only that', async () => {
  const page = br.page;
  await page.getByRole('navigation').getByRole('link', { name: 'Recordings' }).click();
  await page.waitForURL('**/recordings');
  const rows = page.locator('#recording-rows tr[data-id]');
  await rows.first().waitFor();
  assert.ok(await rows.count() >= 2, 'the detached terminals are recorded');
  await rows.first().getByRole('button', { name: 'Replay' }).click();
  await page.locator('#player-box .ap-player, #player-box .ap-wrapper').first().waitFor({ timeout: 15000 });
  await screenshot(page, '910-recording');

  const g = await core.request('POST', '/api/v1/guest-links', { token, json: { scopes: ['view:recordings'], ttl_seconds: 600, note: 'auditor' } });
  assert.equal(g.status, 201, g.text);
  const gp = await page.context().newPage();
  await gp.goto(`${core.base}${g.body.url}/recordings`);
  await gp.locator('#recording-rows tr[data-id]').first().waitFor({ timeout: 15000 }).catch(async (e) => {
    throw new Error(`${e.message.split('\n')[0]}; url ${gp.url()}; page: ${(await gp.locator('body').innerText()).slice(0, 600)}; problems: ${JSON.stringify(br.problems)}`);
  });
  const nav = await gp.getByRole('navigation').textContent();
  assert.match(nav, /Recordings/);
  assert.doesNotMatch(nav, /Nodes|Terminal|Audit|Containers/);
  await gp.locator('#recording-rows tr[data-id]').first().getByRole('button', { name: 'Replay' }).click();
  await gp.locator('#player-box .ap-player, #player-box .ap-wrapper').first().waitFor({ timeout: 15000 });
  await gp.close();
  assert.deepEqual(br.problems, []);
});
