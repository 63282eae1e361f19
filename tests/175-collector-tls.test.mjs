// The collector over TLS (BearSSL, linked statically) to a core serving
// HTTPS itself: enrollment and batches with --core-ca (the core's own
// self-signed certificate, or a CA that signed it) and with --core-pin (the
// SPKI SHA-256 the core logs); a wrong CA, a wrong pin and a certificate for
// another address are refused (nothing enrolled or stored, batches kept in
// the spool and delivered once the right certificate is back); the shipped
// static binary stays under 2 MiB of RSS while sending over TLS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor, createUser, ROOT } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { registerNode, collectorDir, runCollector, startCollector } from './lib/collector.mjs';
import { makeCert, makeSignedCert, replaceCert, httpsRequest } from './lib/tls.mjs';

let db, core, sshd, pair, base, adminToken, apiCa, coreCaFile;
before(async () => {
  sshd = startSshd();
  db = createDatabase('colltls');
  pair = makeCert();
  core = await startCore({ db, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0',
    SERVERBOX_TLS_CERT: pair.cert, SERVERBOX_TLS_KEY: pair.key } });
  base = `https://127.0.0.1:${core.port}`;
  apiCa = pair.certPem;
  coreCaFile = pair.cert;
  const admin = createUser(db, { role: 'admin' });
  const l = await httpsRequest(base, 'POST', '/api/v1/auth/login', { ca: pair.certPem,
    json: { username: admin.username, password: admin.password } });
  assert.equal(l.status, 200, l.text);
  adminToken = l.body.token;
});
after(async () => {
  try { await core?.stop(); } finally { sshd?.remove(); }
});

// The harness's core.request speaks plain http: these go over TLS.
const api = (method, path, json) => httpsRequest(base, method, path, { ca: apiCa, token: adminToken, json });

async function newNode() {
  const plain = { request: (m, p, o = {}) => api(m, p, o.json) };
  return registerNode(plain, sshd);
}

async function enrollToken(node) {
  const r = await api('POST', `/api/v1/nodes/${node}/enroll-token`, {});
  assert.equal(r.status, 201, r.text);
  return r.body.token;
}

const rawRows = (node) => Number(db.sql(`SELECT count(*) FROM metrics_raw WHERE node_id = '${node}'`));
const collectorArgs = (dir, extra = []) => ['run', '--state-dir', dir, '--interval', '1', '--docker-socket', '',
  '--backoff-max', '1', '--timeout', '10', ...extra];

test('the core logs the public key hash a collector pins', () => {
  assert.match(core.log(), new RegExp(`msg="TLS certificate loaded".*spki_sha256=${pair.spkiSha256}`));
});

test('--core-ca with the core\'s own certificate: enroll and batches over TLS', async () => {
  const node = await newNode();
  const dir = collectorDir();
  const e = runCollector(['enroll', '--core', base, '--core-ca', pair.cert, '--token', await enrollToken(node), '--state-dir', dir]);
  assert.equal(e.code, 0, e.stderr + e.stdout);
  assert.match(readFileSync(join(dir, 'identity'), 'utf8'), /core=https:\/\//);
  const c = startCollector(collectorArgs(dir, ['--core-ca', pair.cert]));
  try {
    await waitFor(() => rawRows(node) >= 2, { timeout: 60000, what: 'batches over TLS' });
  } finally {
    await c.stop();
  }
  assert.doesNotMatch(c.log(), /ERROR: AddressSanitizer|LeakSanitizer|runtime error/);
});

test('a wrong CA, a wrong pin, a malformed pin: refused, nothing enrolled', async () => {
  const node = await newNode();
  const other = makeCert({ name: 'other' });
  const token = await enrollToken(node);
  const dir = collectorDir();
  const wrongCa = runCollector(['enroll', '--core', base, '--core-ca', other.cert, '--token', token, '--state-dir', dir]);
  assert.notEqual(wrongCa.code, 0);
  assert.match(wrongCa.stderr, /core certificate refused: not issued by a trusted certificate/);
  const wrongPin = runCollector(['enroll', '--core', base, '--core-pin', other.spkiSha256, '--token', token, '--state-dir', dir]);
  assert.notEqual(wrongPin.code, 0);
  assert.match(wrongPin.stderr, /core certificate refused: its public key is not the one --core-pin names/);
  const badPin = runCollector(['enroll', '--core', base, '--core-pin', 'abc', '--token', token, '--state-dir', dir]);
  assert.equal(badPin.code, 2);
  assert.match(badPin.stderr, /--core-pin must be the 64 hex digits/);
  // No CA at all: the system bundle does not know a self-signed test certificate.
  const system = runCollector(['enroll', '--core', base, '--token', token, '--state-dir', dir]);
  assert.notEqual(system.code, 0);
  assert.match(system.stderr, /not issued by a trusted certificate/);
  assert.equal(db.sql(`SELECT count(*) FROM agent_keys WHERE node_id = '${node}'`), '0');
  assert.ok(!existsSync(join(dir, 'identity')));
  // The token was never presented, so it still enrolls over a trusted connection.
  const ok = runCollector(['enroll', '--core', base, '--core-pin', `sha256/${pair.spkiSha256}`, '--token', token, '--state-dir', dir]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('--core-pin: batches flow; a collector pinned to another key keeps its batches until the pin is right', async () => {
  const node = await newNode();
  const dir = collectorDir();
  const e = runCollector(['enroll', '--core', base, '--core-pin', pair.spkiSha256, '--token', await enrollToken(node), '--state-dir', dir]);
  assert.equal(e.code, 0, e.stderr);
  const other = makeCert({ name: 'other' });
  const wrong = startCollector(collectorArgs(dir, ['--core-pin', other.spkiSha256]));
  try {
    await waitFor(() => /core not trusted; batch kept.*its public key is not the one --core-pin names/.test(wrong.log()),
      { timeout: 30000, what: 'the refusal in the log' });
    await waitFor(() => readFileSync(join(dir, 'seq'), 'utf8').trim() !== '', { timeout: 10000 });
  } finally {
    await wrong.stop();
  }
  assert.equal(rawRows(node), 0, 'nothing reached the core');
  const right = startCollector(collectorArgs(dir, ['--core-pin', pair.spkiSha256]));
  try {
    // The spooled batches arrive too.
    await waitFor(() => rawRows(node) >= 3, { timeout: 60000, what: 'the spool drained over TLS' });
  } finally {
    await right.stop();
  }
});

test('a CA-signed certificate: verified by --core-ca CA; one for another address is refused, the pin still holds', async () => {
  const ca = makeCert({ name: 'ca', cn: 'Test CA', san: 'DNS:ca.invalid' });
  const good = makeSignedCert(ca, { name: 'good', san: 'IP:127.0.0.1' });
  const elsewhere = makeSignedCert(ca, { name: 'elsewhere', san: 'IP:127.0.0.2,DNS:localhost' });
  const node = await newNode();
  const dir = collectorDir();
  const token = await enrollToken(node);

  replaceCert(pair, elsewhere);
  core.proc.kill('SIGHUP');
  await waitFor(() => core.log().includes(`sha256=${elsewhere.fingerprint}`), { timeout: 20000, what: 'reload' });
  const refused = runCollector(['enroll', '--core', base, '--core-ca', ca.cert, '--token', token, '--state-dir', dir]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /core certificate refused: it is not issued for the address 127\.0\.0\.1/);

  replaceCert(pair, good);
  core.proc.kill('SIGHUP');
  await waitFor(() => core.log().includes(`sha256=${good.fingerprint}`), { timeout: 20000, what: 'reload' });
  const ok = runCollector(['enroll', '--core', base, '--core-ca', ca.cert, '--token', token, '--state-dir', dir]);
  assert.equal(ok.code, 0, ok.stderr);
  // An RSA key this time, pinned.
  const c = startCollector(collectorArgs(dir, ['--core-pin', good.spkiSha256]));
  try {
    await waitFor(() => rawRows(node) >= 1, { timeout: 60000, what: 'a batch to the RSA certificate' });
  } finally {
    await c.stop();
  }
  // What later tests trust: the CA that signed the certificate now served.
  apiCa = ca.certPem;
  coreCaFile = ca.cert;
});

test('the shipped static collector sends over TLS in under 2 MiB of RSS', async (t) => {
  const ship = join(ROOT, 'build', 'serverbox-collector');
  if (!existsSync(ship)) return t.skip('no build/serverbox-collector');
  const node = await newNode();
  const dir = collectorDir();
  const ca = coreCaFile;

  const e = runCollector(['enroll', '--core', base, '--core-ca', ca, '--token', await enrollToken(node), '--state-dir', dir]);
  assert.equal(e.code, 0, e.stderr);
  const proc = spawn(ship, collectorArgs(dir, ['--core-ca', ca]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  try {
    await waitFor(() => rawRows(node) >= 4, { timeout: 60000, what: 'batches from the static collector' });
    const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
    const rssKb = Number(status.match(/VmRSS:\s+(\d+) kB/)[1]);
    const hwmKb = Number(status.match(/VmHWM:\s+(\d+) kB/)[1]);
    t.diagnostic(`collector over TLS: VmRSS ${rssKb} kB, VmHWM ${hwmKb} kB`);
    assert.ok(hwmKb <= 2048, `peak RSS ${hwmKb} kB exceeds 2 MiB\n${log}`);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.on('exit', r));
  }
});
