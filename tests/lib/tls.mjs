// TLS helpers for the tests (17N, 5NN): certificates made by openssl, HTTPS
// requests and SSE streams that trust exactly the certificate given.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { tempDir } from './harness.mjs';

// A self-signed P-256 certificate for 127.0.0.1 (or `cn`), written to
// dir/name.crt and dir/name.key. Returns {cert, key, certPem, spkiSha256
// (hex), spkiBase64 (Chromium's --ignore-certificate-errors-spki-list),
// fingerprint (SHA-256 of the DER, hex)}.
export function makeCert({ dir = tempDir('sbx-tls-'), name = 'server', cn = '127.0.0.1', days = 2,
  san = 'IP:127.0.0.1,DNS:localhost' } = {}) {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', String(days), '-subj', `/CN=${cn}`,
    '-addext', `subjectAltName=${san}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  return describeCert(cert, key);
}

// A leaf signed by `ca` (a makeCert result used as a CA), RSA 2048 so both
// key types are exercised: {cert, key, ...} as makeCert.
export function makeSignedCert(ca, { dir = tempDir('sbx-tls-'), name = 'leaf', san = 'IP:127.0.0.1' } = {}) {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  const q = { stdio: ['ignore', 'ignore', 'pipe'] };
  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], q);
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
    '-out', cert, '-days', '2', '-extfile', ext], q);
  return describeCert(cert, key);
}

export function describeCert(cert, key) {
  const certPem = readFileSync(cert, 'utf8');
  const x = new X509Certificate(certPem);
  const spki = x.publicKey.export({ type: 'spki', format: 'der' });
  return {
    cert, key, certPem,
    spkiSha256: createHash('sha256').update(spki).digest('hex'),
    spkiBase64: createHash('sha256').update(spki).digest('base64'),
    fingerprint: x.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
}

// Copies a certificate pair over the files another pair lives in (a renewal).
export function replaceCert(target, source) {
  writeFileSync(target.cert, readFileSync(source.cert));
  writeFileSync(target.key, readFileSync(source.key), { mode: 0o600 });
}

// One HTTPS request trusting `ca` (PEM) only. Resolves {status, headers,
// body (parsed JSON when it is), text, peer (the server's certificate)}.
export function httpsRequest(base, method, path, { ca, json, headers = {}, token, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let payload;
    if (json !== undefined) {
      payload = JSON.stringify(json);
      h['Content-Type'] = 'application/json';
    }
    if (token) h.Authorization = `Bearer ${token}`;
    const req = https.request(base + path, { method, headers: h, ca, agent, timeout: 30000 }, (res) => {
      const peer = res.socket.getPeerCertificate();
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let body;
        try { body = text ? JSON.parse(text) : undefined; } catch { body = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body, text, peer });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timed out')));
    if (payload) req.write(payload);
    req.end();
  });
}

// An SSE stream over HTTPS: {events, ready (resolves with the status),
// waitFor(pred), close()}.
export function httpsSse(base, path, { ca, token, headers = {} } = {}) {
  const s = { events: [], status: 0, waiters: [] };
  const h = { Accept: 'text/event-stream', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  const notify = () => { for (const w of s.waiters.slice()) w(); };
  s.ready = new Promise((resolve, reject) => {
    s.req = https.get(base + path, { headers: h, ca, agent: false }, (res) => {
      s.status = res.statusCode;
      s.headers = res.headers;
      resolve(res.statusCode);
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        pending += d;
        let i;
        while ((i = pending.indexOf('\n\n')) >= 0) {
          const block = pending.slice(0, i);
          pending = pending.slice(i + 2);
          const msg = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const c = line.indexOf(':');
            msg[line.slice(0, c)] = line.slice(c + 1).replace(/^ /, '');
          }
          if (Object.keys(msg).length) s.events.push(msg);
        }
        notify();
      });
    });
    s.req.on('error', (e) => { if (!s.closed) reject(e); });
  });
  s.waitFor = (pred, { timeout = 20000, what = 'event' } = {}) => new Promise((resolve, reject) => {
    const check = () => {
      if (pred(s)) { clearTimeout(t); s.waiters = s.waiters.filter((w) => w !== check); resolve(s); }
    };
    const t = setTimeout(() => { s.waiters = s.waiters.filter((w) => w !== check); reject(new Error(`timed out waiting for ${what}`)); }, timeout);
    s.waiters.push(check);
    check();
  });
  s.close = () => { s.closed = true; s.req.destroy(); };
  return s;
}
