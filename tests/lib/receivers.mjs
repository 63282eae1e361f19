// Real notification receivers for the alert tests (tests/10xx): an HTTP
// receiver (node:http) that records each request and can go down and come
// back on the same port, and an SMTP server (aiosmtpd, STARTTLS required
// with a certificate made here) that records each message.
import { createServer } from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir, waitFor } from './harness.mjs';

// An HTTP receiver on 127.0.0.1: .requests [{method, url, headers, body, at}],
// .status (what it answers), .down() / .up() (same port).
export async function startHttpReceiver() {
  const r = { requests: [], status: 200, port: 0, sockets: new Set() };
  const handler = (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      r.requests.push({ method: req.method, url: req.url, headers: req.headers, body, at: Date.now() });
      res.writeHead(r.status, { 'Content-Type': 'text/plain' });
      res.end(r.status < 300 ? 'ok, got it' : 'receiver says no');
    });
  };
  const listen = () => new Promise((resolve, reject) => {
    r.server = createServer(handler);
    r.server.on('connection', (s) => { r.sockets.add(s); s.on('close', () => r.sockets.delete(s)); });
    r.server.once('error', reject);
    r.server.listen(r.port, '127.0.0.1', () => { r.port = r.server.address().port; resolve(); });
  });
  await listen();
  r.url = (path = '/hook') => `http://127.0.0.1:${r.port}${path}`;
  r.down = () => new Promise((resolve) => {
    for (const s of r.sockets) s.destroy();
    r.server.close(() => resolve());
  });
  r.up = listen;
  r.stop = r.down;
  // The JSON bodies of the requests to a path.
  r.posts = (path) => r.requests.filter((q) => !path || q.url === path).map((q) => ({ ...q, json: safeJson(q.body) }));
  return r;
}

function safeJson(t) {
  try { return JSON.parse(t); } catch { return undefined; }
}

// Verifies a webhook delivery as docs/alerts.md says a receiver should.
export function signatureValid(req, secret) {
  const ts = req.headers['x-serverbox-timestamp'];
  const sig = req.headers['x-serverbox-signature'];
  if (!ts || !sig) return false;
  const want = 'sha256=' + createHmac('sha256', secret).update(`${ts}.${req.body}`).digest('hex');
  return sig === want;
}

// A self-signed certificate for 127.0.0.1 (it is its own CA).
export function makeCert() {
  const d = tempDir('sbx-cert-');
  const cert = join(d, 'cert.pem'), key = join(d, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

// aiosmtpd on a free port, STARTTLS required. .messages() reads what it got.
export async function startSmtp({ cert, key }, { user, password } = {}) {
  const d = tempDir('sbx-smtp-');
  const out = join(d, 'mail.jsonl');
  const port = await freePort();
  const proc = spawn('/usr/bin/python3', [join(ROOT, 'tests', 'lib', 'smtp-receiver.py'), String(port), cert, key, out, ...(user ? [user, password] : [])],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (b) => { log += b; });
  proc.stderr.on('data', (b) => { log += b; });
  await waitFor(() => log.includes('READY'), { timeout: 30000, what: `aiosmtpd to start: ${log}` });
  return {
    port, proc,
    url: `smtp://127.0.0.1:${port}`,
    log: () => log,
    messages: () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []),
    stop: () => { proc.kill('SIGTERM'); },
  };
}

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise((r) => s.close(r));
  return p;
}
