// The dashboard over HTTPS in a real browser (Chromium), the core serving
// TLS itself with a certificate made by openssl here. Chromium trusts that
// one key (--ignore-certificate-errors-spki-list), so the page is a secure
// context with no certificate warning: the login works (Secure cookie), the
// overview loads, and the live indicator says Live (SSE over TLS) and an
// event arrives over it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, createUser, startCore, waitFor, ROOT } from './lib/harness.mjs';
import { openBrowser, logIn } from './lib/browser.mjs';
import { makeCert, httpsRequest } from './lib/tls.mjs';

let db, core, admin, br, pair, base;
before(async () => {
  db = createDatabase('tlsdash');
  pair = makeCert();
  core = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'),
    SERVERBOX_TLS_CERT: pair.cert, SERVERBOX_TLS_KEY: pair.key } });
  base = `https://127.0.0.1:${core.port}`;
  admin = createUser(db, { role: 'admin' });
  br = await openBrowser({ args: [`--ignore-certificate-errors-spki-list=${pair.spkiBase64}`] });
});
after(async () => {
  await br?.close();
  await core?.stop();
});

test('log in, overview and a live event over HTTPS, as a secure context', async () => {
  const { page, problems } = br;
  const responses = [];
  page.on('response', (r) => responses.push(r));
  await logIn(page, { base }, admin);
  assert.ok(page.url().startsWith(`${base}/`), page.url());
  assert.equal(await page.evaluate(() => window.isSecureContext), true);
  const cookies = await br.context.cookies(base);
  const session = cookies.find((c) => c.httpOnly);
  assert.ok(session, `a session cookie: ${JSON.stringify(cookies)}`);
  assert.equal(session.secure, true);
  const doc = responses.find((r) => r.request().isNavigationRequest());
  assert.ok(doc, 'a document was fetched');
  assert.equal((await doc.allHeaders())['strict-transport-security'], 'max-age=31536000');
  const security = await doc.securityDetails();
  assert.ok(security && /TLS 1\.[23]/.test(security.protocol), `protocol: ${security?.protocol}`);

  await page.locator('#live-indicator[data-state="live"]', { hasText: 'Live' }).waitFor({ timeout: 30000 });
  const l = await httpsRequest(base, 'POST', '/api/v1/auth/login', { ca: pair.certPem,
    json: { username: admin.username, password: admin.password } });
  const a = await httpsRequest(base, 'POST', '/api/v1/annotations', { ca: pair.certPem, token: l.body.token,
    json: { message: 'tls in the browser' } });
  assert.equal(a.status, 201, a.text);
  const live = page.locator('#live-indicator');
  await waitFor(async () => Number(await live.getAttribute('data-last-seq')) >= a.body.seq,
    { timeout: 30000, what: 'the annotation over the stream' });
  assert.deepEqual(problems, []);
});
