// Single sign-on with OpenID Connect (issue #20). Against the npm
// `oidc-provider` on loopback, in a browser: "Sign in with" the provider
// creates the user just in time with the role and node labels its groups
// map to (code flow with PKCE). Against a small fake provider that answers
// crafted ID tokens: a wrong audience, an expired token, a bad signature,
// another issuer, a wrong nonce, alg none, HS256 keyed with the public key,
// an unknown key and unmapped groups are each refused with a clear message,
// no session, and a failed auth.login event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createDatabase, createUser, runCore, startCore, tempDir, ROOT } from './lib/harness.mjs';
import { openBrowser, screenshot } from './lib/browser.mjs';
import { freePort, startFakeIdp, startProvider } from './lib/oidc.mjs';
import { step, totp } from './lib/totp.mjs';

let db, fake, fakeCore, idp, core, br;
const MAPPING = JSON.stringify({ claim: 'groups', rules: [{ match: 'sbx-admins', role: 'admin' }, { match: 'sbx-lab', role: 'viewer', node_labels: { env: 'lab' } }, { match: 'ops', role: 'operator', node_labels: { env: 'lab' } }] });

before(async () => {
  db = createDatabase('oidc');
  fake = await startFakeIdp({ port: await freePort(), clientId: 'sbx-fake' });
  fakeCore = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_OIDC_ISSUER: fake.issuer, SERVERBOX_OIDC_CLIENT_ID: 'sbx-fake', SERVERBOX_OIDC_CLIENT_SECRET: 'fake-secret', SERVERBOX_OIDC_MAPPING: MAPPING, SERVERBOX_LOGIN_IP_LIMIT: '1000' } });
  const idpPort = await freePort();
  const db2 = createDatabase('oidcreal');
  core = await startCore({ db: db2, env: {
    SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard'), SERVERBOX_OIDC_ISSUER: `http://127.0.0.1:${idpPort}`,
    SERVERBOX_OIDC_CLIENT_ID: 'serverbox', SERVERBOX_OIDC_CLIENT_SECRET: 'a-long-client-secret-for-tests',
    SERVERBOX_OIDC_SCOPES: 'openid profile email groups', SERVERBOX_OIDC_NAME: 'Local IdP', SERVERBOX_OIDC_MAPPING: MAPPING,
  } });
  core.db = db2;
  idp = await startProvider({ port: idpPort, clientId: 'serverbox', clientSecret: 'a-long-client-secret-for-tests', redirectUri: `${core.base}/api/v1/auth/oidc/callback`, accounts: { alice: { groups: ['sbx-lab', 'other'] } } });
  br = await openBrowser();
});
after(async () => {
  await br?.close();
  await core?.stop();
  await fakeCore?.stop();
  await idp?.close();
  await fake?.close();
});

const cookieOf = (res, name) => (res.headers.getSetCookie?.() || []).map((c) => c.split(';')[0]).find((c) => c.startsWith(`${name}=`));

// One sign-in through the fake provider, minting `kind` of ID token.
async function attempt(kind, { tamperState = false, noCookie = false } = {}) {
  fake.state.mint = kind;
  const start = await fetch(`${fakeCore.base}/api/v1/auth/oidc/start`, { redirect: 'manual' });
  assert.equal(start.status, 302, await start.text());
  const pending = cookieOf(start, 'sbx_oidc');
  assert.ok(pending, 'the pending state cookie');
  const authz = new URL(start.headers.get('location'));
  const back = await fetch(authz, { redirect: 'manual' });
  const cb = new URL(back.headers.get('location'));
  if (tamperState) cb.searchParams.set('state', 'x'.repeat(32));
  const res = await fetch(cb, { redirect: 'manual', headers: noCookie ? {} : { Cookie: pending } });
  assert.equal(res.status, 302);
  return { authz, location: res.headers.get('location'), session: cookieOf(res, 'sbx_session') };
}

test('a provider\'s crafted ID tokens: each bad one refused with its reason, no session; the good one signs in', async () => {
  const cases = {
    wrongAudience: /another audience/, expired: /expired/, badSignature: /signature does not verify/,
    wrongIssuer: /another issuer/, wrongNonce: /nonce/, algNone: /signed with none; only RS256/,
    hs256WithPublicKey: /signed with HS256; only RS256/, unknownKid: /key the identity provider does not publish/,
    noRole: /no role is mapped/,
  };
  for (const [kind, why] of Object.entries(cases)) {
    const r = await attempt(kind);
    assert.match(r.location, /^\/login#sso_error=/, `${kind}: ${r.location}`);
    assert.match(decodeURIComponent(r.location.split('=')[1]), why, kind);
    assert.ok(!r.session || r.session === 'sbx_session=', `${kind}: no session`);
  }
  for (const opts of [{ tamperState: true }, { noCookie: true }]) {
    const r = await attempt('good', opts);
    assert.match(decodeURIComponent(r.location), /sso_error=.*(state|expired)/, JSON.stringify(opts));
  }
  assert.equal(db.sql("SELECT count(*) FROM users"), '0');
  const failures = Number(db.sql("SELECT count(*) FROM events WHERE type = 'auth.login' AND outcome = 'failure' AND data->>'method' = 'oidc'"));
  assert.ok(failures >= 11, String(failures));

  const ok = await attempt('good');
  assert.match(ok.location, /^\/login#sso=[0-9a-f]{64}$/);
  assert.match(ok.session, /^sbx_session=sbs_/);
  // PKCE S256 with the verifier the core kept; the client authenticated
  assert.equal(ok.authz.searchParams.get('code_challenge_method'), 'S256');
  const tr = fake.state.tokenRequests.at(-1);
  const verifier = tr.body.get('code_verifier');
  assert.ok(verifier.length >= 43);
  assert.equal(createHash('sha256').update(verifier).digest('base64url'), ok.authz.searchParams.get('code_challenge'));
  assert.equal(tr.authorization, `Basic ${Buffer.from('sbx-fake:fake-secret').toString('base64')}`);
  const me = await fetch(`${fakeCore.base}/api/v1/me`, { headers: { Cookie: ok.session } }).then((r) => r.json());
  assert.equal(me.role, 'operator');
  assert.deepEqual(me.node_labels, { env: 'lab' });
  assert.match(me.name, /^fakeuser\.[0-9a-f]{6}$/);
  // the same subject again: the same user, not a new one
  const again = await attempt('good');
  const me2 = await fetch(`${fakeCore.base}/api/v1/me`, { headers: { Cookie: again.session } }).then((r) => r.json());
  assert.equal(me2.id, me.id);
  assert.equal(db.sql("SELECT count(*) FROM users"), '1');
  const made = JSON.parse(db.sql("SELECT body FROM events WHERE type = 'user.created'"));
  assert.equal(made.data.source, 'oidc');
  assert.equal(made.data.role, 'operator');
  // with TOTP on, the provider is not enough: a code comes after it
  const csrf = again.location.split('=')[1];
  const hdr = { Cookie: again.session, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' };
  const b = await fetch(`${fakeCore.base}/api/v1/auth/totp`, { method: 'POST', headers: hdr }).then((r) => r.json());
  const used = step();
  const conf = await fetch(`${fakeCore.base}/api/v1/auth/totp/confirm`, { method: 'POST', headers: hdr, body: JSON.stringify({ code: totp(b.secret, used) }) });
  assert.equal(conf.status, 200, await conf.text());
  const third = await attempt('good');
  assert.match(third.location, /^\/login#totp=sbc_/);
  assert.ok(!third.session || third.session === 'sbx_session=');
  const second = await fetch(`${fakeCore.base}/api/v1/auth/login/totp`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ challenge: third.location.split('=')[1], code: totp(b.secret, used + 1) }) });
  assert.equal(second.status, 200, await second.text());
  // no password works for an SSO user
  const pw = await fetch(`${fakeCore.base}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: me.name, password: 'anything-at-all-123' }) });
  assert.equal(pw.status, 401);
});

test('"Sign in with" the local provider in a browser creates the user with the mapped role and labels', async () => {
  const { page, problems } = br;
  await page.goto(`${core.base}/login`);
  const sso = page.locator('#sso-login');
  await sso.waitFor();
  assert.equal(await sso.textContent(), 'Sign in with Local IdP');
  await screenshot(page, '1303-login-sso');
  await sso.click();
  await page.locator('input[name=login]').fill('alice');
  await page.locator('input[name=password]').fill('whatever');
  await page.locator('button[type=submit]').click();
  await page.locator('button:has-text("Continue")').click();
  await page.waitForURL(`${core.base}/overview`);
  const me = await page.evaluate(() => fetch('/api/v1/me').then((r) => r.json()));
  assert.equal(me.role, 'viewer');
  assert.deepEqual(me.node_labels, { env: 'lab' });
  assert.match(me.name, /^alice\.[0-9a-f]{6}$/);
  const made = JSON.parse(core.db.sql("SELECT body FROM events WHERE type = 'user.created'"));
  assert.equal(made.data.source, 'oidc');
  assert.equal(made.data.role, 'viewer');
  assert.match(await page.locator('nav.nav').textContent(), /Containers/);
  await screenshot(page, '1303-signed-in');
  const login = JSON.parse(core.db.sql("SELECT body FROM events WHERE type = 'auth.login' AND outcome = 'success' ORDER BY seq DESC LIMIT 1"));
  assert.equal(login.data.method, 'oidc');
  assert.deepEqual(problems, []);
});

test('in the browser, a refused ID token comes back to the login page with its reason', async () => {
  const { page, problems } = br;
  for (const [kind, why] of [['expired', /expired/], ['wrongAudience', /another audience/], ['badSignature', /signature does not verify/]]) {
    fake.state.mint = kind;
    await page.goto(`${fakeCore.base}/login`);
    await page.locator('#sso-login').click();
    const alert = page.locator('#sso-error');
    await alert.waitFor();
    assert.match(await alert.textContent(), why, kind);
    assert.equal(new URL(page.url()).hash, '');
  }
  await screenshot(page, '1303-sso-refused');
  assert.deepEqual(problems, []);
});

test('--password-login off: only SSO, and the break-glass user with a password', async () => {
  const d = createDatabase('oidcoff');
  const glass = createUser(d, { role: 'admin' });
  const other = createUser(d, { role: 'admin' });
  const c = await startCore({ db: d, env: { SERVERBOX_OIDC_ISSUER: fake.issuer, SERVERBOX_OIDC_CLIENT_ID: 'sbx-fake', SERVERBOX_OIDC_MAPPING: MAPPING, SERVERBOX_PASSWORD_LOGIN: 'off', SERVERBOX_BREAK_GLASS_USER: glass.username } });
  try {
    const info = await c.request('GET', '/api/v1/auth/oidc');
    assert.deepEqual(info.body, { enabled: true, password_login: false, name: 'SSO', start: '/api/v1/auth/oidc/start' });
    const refused = await c.request('POST', '/api/v1/auth/login', { json: { username: other.username, password: other.password } });
    assert.equal(refused.status, 403, refused.text);
    assert.match(refused.body.error.message, /password login is off/);
    const ok = await c.request('POST', '/api/v1/auth/login', { json: { username: glass.username, password: glass.password } });
    assert.equal(ok.status, 200, ok.text);
  } finally { await c.stop(); }
  // without a provider the option is refused at start
  const r = runCore(['serve'], { SERVERBOX_DATABASE_URL: d.url, SERVERBOX_DATA_DIR: tempDir('sbx-oidcoff-'), SERVERBOX_PASSWORD_LOGIN: 'off', SERVERBOX_LISTEN: '127.0.0.1:0' }, { check: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /needs --oidc-issuer/);
});
