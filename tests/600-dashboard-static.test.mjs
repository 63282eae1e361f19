// The dashboard's static serving (core/src/static, core/src/api/dashboard.c):
// content types, caching, security headers, the SPA fallback for client
// routes, JSON 404s for the API, and no way out of the directory — "..",
// percent-encoded variants, backslashes, and symlinks pointing outside.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, startCore, ROOT } from './lib/harness.mjs';

const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const SECRET = `outside-secret-${process.pid}`;
let db, core, dir;

// One request written byte for byte, so that no client normalizes the path.
function raw(port, path, method = 'GET') {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.setTimeout(10000, () => { s.destroy(); reject(new Error('timeout')); });
    s.on('connect', () => s.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => { data += d; });
    s.on('end', () => {
      const m = data.match(/^HTTP\/1\.1 (\d+)/);
      resolve({ status: m ? Number(m[1]) : 0, text: data });
    });
    s.on('error', reject);
  });
}

before(async () => {
  const base = mkdtempSync(join(tmpdir(), 'sbx-dash-'));
  dir = join(base, 'site');
  const outside = join(base, 'outside');
  mkdirSync(dir);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.txt'), SECRET);
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title><p>index page</p>');
  writeFileSync(join(dir, 'app.3f9a1c2e.js'), 'export const x = 1;\n');
  writeFileSync(join(dir, 'style.css'), 'body{}\n');
  writeFileSync(join(dir, '.hidden'), 'dotfile');
  mkdirSync(join(dir, 'img'));
  writeFileSync(join(dir, 'img', 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  symlinkSync(join(outside, 'secret.txt'), join(dir, 'leak.txt'));
  symlinkSync(outside, join(dir, 'leakdir'));
  symlinkSync('img/logo.svg', join(dir, 'inside-link.svg'));
  db = createDatabase('dashstatic');
  core = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: dir } });
});
after(async () => { await core?.stop(); });

test('index.html at / with the security headers and no-cache', async () => {
  const r = await core.request('GET', '/');
  assert.equal(r.status, 200);
  assert.match(r.text, /index page/);
  assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(r.headers.get('content-security-policy'), CSP);
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  assert.match(r.headers.get('etag'), /^"[0-9a-f]{16}"$/);
  const again = await core.request('GET', '/', { headers: { 'If-None-Match': r.headers.get('etag') } });
  assert.equal(again.status, 304);
  assert.equal(again.text, '');
  const head = await raw(core.port, '/', 'HEAD');
  assert.equal(head.status, 200);
  assert.ok(!head.text.includes('index page'));
});

test('content types by extension; hashed names are immutable', async () => {
  const js = await core.request('GET', '/app.3f9a1c2e.js');
  assert.equal(js.status, 200);
  assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  const css = await core.request('GET', '/style.css');
  assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
  assert.equal(css.headers.get('cache-control'), 'no-cache');
  const svg = await core.request('GET', '/img/logo.svg');
  assert.equal(svg.headers.get('content-type'), 'image/svg+xml');
  assert.equal((await core.request('GET', '/inside-link.svg')).status, 200, 'a symlink inside the directory is served');
});

test('client routes get index.html; unknown paths and /api/ get JSON 404s', async () => {
  for (const p of ['/login', '/overview', '/audit', '/nodes/4f0c/metrics', '/guest-links']) {
    const r = await core.request('GET', p);
    assert.equal(r.status, 200, p);
    assert.match(r.text, /index page/, p);
    assert.equal(r.headers.get('content-security-policy'), CSP, p);
  }
  for (const p of ['/api/v1/nope', '/api/', '/api', '/nope.js', '/etc/passwd', '/img/nope.svg']) {
    const r = await core.request('GET', p);
    assert.equal(r.status, 404, p);
    assert.equal(r.body?.error?.code, 'not_found', p);
  }
  // The guest link is the API's JSON for clients, the app for browsers.
  const api = await core.request('GET', '/g/sbg_nope');
  assert.equal(api.status, 401);
  assert.equal(api.body.error.code, 'unauthenticated');
  const page = await core.request('GET', '/g/sbg_nope', { headers: { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  assert.equal(page.status, 200);
  assert.match(page.text, /index page/);
  assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
  // A guest sub-page: the app for browsers, 404 otherwise; the secret never
  // reaches the log.
  const secret = 'sbg_secretpart0123456789';
  const sub = await core.request('GET', `/g/${secret}/audit`, { headers: { Accept: 'text/html' } });
  assert.equal(sub.status, 200);
  assert.match(sub.text, /index page/);
  const subApi = await core.request('GET', `/g/${secret}/audit`);
  assert.equal(subApi.status, 404);
  await core.request('GET', `/g/${secret}`, { headers: { Accept: 'text/html' } });
  assert.ok(!core.log().includes('secretpart'), 'a guest token reached the log');
  assert.match(core.log(), /path=\/g\/\{token\}\/\{\*page\}/);
});

test('no path leaves the directory: dot segments, encodings, backslashes, symlinks', async () => {
  const attempts = ['/../outside/secret.txt', '/..%2foutside%2fsecret.txt', '/%2e%2e/outside/secret.txt',
    '/%2E%2E%2Foutside%2Fsecret.txt', '/img/../../outside/secret.txt', '/img/%2e%2e/%2e%2e/outside/secret.txt',
    '/nodes/..%2f..%2foutside%2fsecret.txt', '/..%5coutside%5csecret.txt', '/leak.txt', '/leakdir/secret.txt',
    '/.hidden', '/img/./logo.svg', '//etc/passwd', '/img%2f..%2f..%2fetc%2fpasswd', '/../../../../etc/passwd'];
  for (const p of attempts) {
    const r = await raw(core.port, p);
    assert.ok([400, 404].includes(r.status), `${p}: ${r.status}`);
    assert.ok(!r.text.includes(SECRET), `${p} leaked the file outside`);
    assert.ok(!r.text.includes('root:'), `${p} leaked /etc/passwd`);
    assert.ok(!r.text.includes('dotfile'), `${p} served a dot-file`);
  }
  assert.match(core.log(), /dashboard file skipped: it resolves outside the dashboard directory.*leak\.txt/);
  assert.equal((await core.request('GET', '/health/live')).status, 200);
});

test('the catch-all never turns an unknown route into a 405', async () => {
  for (const [m, p] of [['POST', '/api/v1/nope'], ['DELETE', '/api/v1/nope/1'], ['POST', '/overview']]) {
    const r = await core.request(m, p, { body: 'x' });
    assert.equal(r.status, 404, `${m} ${p}`);
    assert.equal(r.body.error.code, 'not_found');
  }
  // Real routes still answer 405 with their methods.
  const r = await core.request('DELETE', '/health/live');
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'GET');
});

test('without a dashboard directory the API still serves and / is a 404', async () => {
  const other = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(dir, 'missing') } });
  try {
    const r = await other.request('GET', '/');
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'not_found');
    assert.equal((await other.request('GET', '/health/live')).status, 200);
    assert.match(other.log(), /no dashboard served/);
  } finally {
    await other.stop();
  }
});

test('the real dashboard is served with module scripts and styles', async () => {
  const real = await startCore({ db, env: { SERVERBOX_DASHBOARD_DIR: join(ROOT, 'dashboard') } });
  try {
    const r = await real.request('GET', '/');
    assert.equal(r.status, 200);
    assert.match(r.text, /<script type="module" src="\/js\/app.js">/);
    for (const [p, ct] of [['/js/app.js', 'text/javascript; charset=utf-8'], ['/css/app.css', 'text/css; charset=utf-8'], ['/favicon.svg', 'image/svg+xml']]) {
      const f = await real.request('GET', p);
      assert.equal(f.status, 200, p);
      assert.equal(f.headers.get('content-type'), ct, p);
    }
  } finally {
    await real.stop();
  }
});
