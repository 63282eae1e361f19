// HTTPS served by the core itself (--tls-cert/--tls-key, libmicrohttpd with
// GnuTLS): the API, the session cookie (Secure), an SSE stream and the
// dashboard's files over TLS with a certificate made by openssl here; HSTS on
// every answer; plain HTTP to the TLS port gets no answer; SIGHUP reloads the
// pair (new handshakes see the new certificate, a bad file keeps the old
// one); a mismatched pair refuses to start; plain HTTP beyond loopback is
// warned about.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createDatabase, startCore, createUser, waitFor, runCore, tempDir } from './lib/harness.mjs';
import { makeCert, replaceCert, httpsRequest, httpsSse } from './lib/tls.mjs';
import { writeFileSync } from 'node:fs';

let db, core, pair, base, token;
before(async () => {
  db = createDatabase('tls');
  pair = makeCert();
  core = await startCore({ db, env: { SERVERBOX_TLS_CERT: pair.cert, SERVERBOX_TLS_KEY: pair.key } });
  base = `https://127.0.0.1:${core.port}`;
});
after(async () => { await core?.stop(); });

const get = (path, opts = {}) => httpsRequest(base, 'GET', path, { ca: pair.certPem, token, ...opts });

test('the daemon says it serves https and names the certificate it loaded', () => {
  assert.match(core.log(), /msg="listening".*url=https:\/\//);
  assert.match(core.log(), new RegExp(`msg="TLS certificate loaded".*sha256=${pair.fingerprint}`));
  assert.doesNotMatch(core.log(), /serving plain HTTP/);
});

test('API over HTTPS: health, login with a Secure cookie, an authenticated read, HSTS everywhere', async () => {
  const h = await get('/health/live');
  assert.equal(h.status, 200, h.text);
  assert.equal(h.headers['strict-transport-security'], 'max-age=31536000');
  assert.equal(h.peer.fingerprint256.replace(/:/g, '').toLowerCase(), pair.fingerprint);

  const user = createUser(db, { role: 'admin' });
  const l = await httpsRequest(base, 'POST', '/api/v1/auth/login', { ca: pair.certPem,
    json: { username: user.username, password: user.password } });
  assert.equal(l.status, 200, l.text);
  assert.match(String(l.headers['set-cookie']), /; Secure/);
  token = l.body.token;
  const nodes = await get('/api/v1/nodes');
  assert.equal(nodes.status, 200, nodes.text);
  assert.equal(nodes.headers['strict-transport-security'], 'max-age=31536000');
  // Errors carry it too.
  const denied = await get('/api/v1/nodes', { token: undefined });
  assert.equal(denied.status, 401);
  assert.equal(denied.headers['strict-transport-security'], 'max-age=31536000');
});

test('a client that does not trust the certificate cannot talk to the core', async () => {
  await assert.rejects(httpsRequest(base, 'GET', '/health/live', {}), /self[- ]signed|unable to verify|certificate/i);
});

test('SSE over HTTPS: a live event arrives on the stream', async () => {
  const s = httpsSse(base, '/api/v1/events', { ca: pair.certPem, token });
  assert.equal(await s.ready, 200);
  assert.match(s.headers['content-type'], /text\/event-stream/);
  assert.equal(s.headers['strict-transport-security'], 'max-age=31536000');
  const a = await httpsRequest(base, 'POST', '/api/v1/annotations', { ca: pair.certPem, token, json: { message: 'over tls' } });
  assert.equal(a.status, 201, a.text);
  await s.waitFor((x) => x.events.some((e) => Number(e.id) === a.body.seq), { what: `seq ${a.body.seq}` });
  assert.equal(s.events.find((e) => Number(e.id) === a.body.seq).event, 'annotation.created');
  s.close();
});

test('the dashboard is served over HTTPS', async () => {
  const page = await get('/login', { token: undefined });
  assert.equal(page.status, 200);
  assert.match(page.text, /<html/i);
  assert.equal(page.headers['strict-transport-security'], 'max-age=31536000');
});

test('plain HTTP to the TLS port is not answered as HTTP', async () => {
  const data = await new Promise((resolve) => {
    const s = net.connect(core.port, '127.0.0.1');
    let d = '';
    const t = setTimeout(() => { s.destroy(); resolve(d); }, 5000);
    s.on('data', (x) => { d += x.toString('latin1'); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(t); resolve(d); });
    s.on('connect', () => s.write('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
  });
  assert.doesNotMatch(data, /^HTTP\/1\.1 200/);
});

test('SIGHUP reloads the pair: new handshakes get the new certificate; a broken file keeps the old one', async () => {
  // A keep-alive connection made before the reload.
  const old = await get('/health/live');
  assert.equal(old.peer.fingerprint256.replace(/:/g, '').toLowerCase(), pair.fingerprint);

  const renewed = makeCert({ name: 'renewed' });
  assert.notEqual(renewed.fingerprint, pair.fingerprint);
  replaceCert(pair, renewed);
  core.proc.kill('SIGHUP');
  await waitFor(() => new RegExp(`msg="TLS certificate reloaded".*sha256=${renewed.fingerprint}`).test(core.log()),
    { timeout: 20000, what: 'the reload log line' });
  // Trusting only the new certificate works, the old one no longer does.
  const fresh = await httpsRequest(base, 'GET', '/health/live', { ca: renewed.certPem });
  assert.equal(fresh.status, 200);
  assert.equal(fresh.peer.fingerprint256.replace(/:/g, '').toLowerCase(), renewed.fingerprint);
  await assert.rejects(httpsRequest(base, 'GET', '/health/live', { ca: pair.certPem })); // the old PEM, kept in memory

  // A half-written renewal (garbage key): logged, the current pair stays.
  writeFileSync(pair.key, 'not a key\n');
  core.proc.kill('SIGHUP');
  await waitFor(() => /TLS certificate not reloaded; the previous one is still served/.test(core.log()),
    { timeout: 20000, what: 'the failed reload log line' });
  const still = await httpsRequest(base, 'GET', '/health/live', { ca: renewed.certPem });
  assert.equal(still.status, 200);
  assert.equal(still.peer.fingerprint256.replace(/:/g, '').toLowerCase(), renewed.fingerprint);
  assert.ok(core.alive());
});

test('a certificate with the wrong key, or only one of the two options, refuses to start', () => {
  const a = makeCert({ name: 'a' });
  const b = makeCert({ name: 'b' });
  const r = runCore(['serve'], { SERVERBOX_DATABASE_URL: db.url, SERVERBOX_LISTEN: '127.0.0.1:0', SERVERBOX_DATA_DIR: tempDir('sbx-tls-data-'),
    SERVERBOX_TLS_CERT: a.cert, SERVERBOX_TLS_KEY: b.key }, { check: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /not a usable pair/);
  const r2 = runCore(['serve'], { SERVERBOX_DATABASE_URL: db.url, SERVERBOX_LISTEN: '127.0.0.1:0', SERVERBOX_DATA_DIR: tempDir('sbx-tls-data-'),
    SERVERBOX_TLS_CERT: a.cert }, { check: false });
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /--tls-cert and --tls-key go together/);
});

test('plain HTTP on a non-loopback address is warned about; on loopback it is not', async () => {
  const open = await startCore({ db, env: { SERVERBOX_LISTEN: '0.0.0.0:0' } });
  try {
    assert.match(open.log(), /serving plain HTTP beyond loopback/);
  } finally {
    await open.stop();
  }
});
