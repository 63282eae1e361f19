// HTTP hygiene at the edge, over raw sockets: a request with both
// Content-Length and Transfer-Encoding is refused (400) and its connection
// closed before any handler runs (a smuggled second request is never
// answered); --public-host names the Host values served (others 421); a
// malformed Content-Length gets a 400 and a closed connection; a client that
// sends its headers a byte at a time is cut off at --header-timeout; the
// per-address connection limit refuses extra connections.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createDatabase, startCore } from './lib/harness.mjs';

let db, core;
before(async () => {
  db = createDatabase('hygiene');
  core = await startCore({ db, env: {
    SERVERBOX_PUBLIC_HOST: '127.0.0.1,sbx.example:8443,[::1]', SERVERBOX_HEADER_TIMEOUT: '2',
    SERVERBOX_PER_IP_CONNECTION_LIMIT: '20' } });
});
after(async () => { await core?.stop(); });

// Sends raw bytes, reads until the server closes (or `ms` passes).
function raw(chunks, { ms = 4000, gapMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(core.port, '127.0.0.1');
    let data = '';
    let closed = false;
    const t0 = Date.now();
    const timer = setTimeout(() => { s.destroy(); resolve({ data, closed, ms: Date.now() - t0 }); }, ms);
    s.on('data', (d) => { data += d; });
    s.on('error', () => {});
    s.on('close', () => { closed = true; clearTimeout(timer); resolve({ data, closed, ms: Date.now() - t0 }); });
    s.on('connect', async () => {
      for (const c of [].concat(chunks)) {
        if (s.destroyed) break;
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    s.on('timeout', reject);
  });
}
const statusLines = (data) => data.match(/^HTTP\/1\.[01] \d{3}/gm) || [];

test('Content-Length with Transfer-Encoding: 400, connection closed, the smuggled request unanswered', async () => {
  const r = await raw('POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
    + 'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  assert.ok(r.closed, 'the connection was closed');
  assert.deepEqual(statusLines(r.data), ['HTTP/1.1 400'], r.data);
  assert.match(r.data, /"code":"bad_request"/);
  assert.match(r.data, /Content-Length and Transfer-Encoding/);
  assert.match(r.data, /Connection: close/i);
});

test('a Host not named by --public-host gets 421; named ones (any port unless given) are served', async () => {
  const get = async (host) => {
    const r = await raw(`GET /health/live HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    return statusLines(r.data)[0];
  };
  assert.equal(await get('evil.example'), 'HTTP/1.1 421');
  assert.equal(await get('evil.example:8080'), 'HTTP/1.1 421');
  assert.equal(await get('sbx.example'), 'HTTP/1.1 421'); // named with a port: only that port
  assert.equal(await get('sbx.example:8443'), 'HTTP/1.1 200');
  assert.equal(await get(`127.0.0.1:${core.port}`), 'HTTP/1.1 200');
  assert.equal(await get('[::1]:9'), 'HTTP/1.1 200');
  const r = await raw('GET /api/v1/nodes HTTP/1.1\r\nHost: rebind.example\r\n\r\n');
  assert.match(r.data, /"code":"misdirected_request"/);
  assert.ok(r.closed);
  // Not even a denial reaches the chain: the request was refused before routing.
  assert.equal(db.sql("SELECT count(*) FROM events WHERE type LIKE 'access.denied%'"), '0');
  // HTTP/1.0 without a Host is not for us either.
  const old = await raw('GET /health/live HTTP/1.0\r\n\r\n');
  assert.deepEqual(statusLines(old.data), ['HTTP/1.1 421']);
});

test('a malformed Content-Length gets a 400 and the connection closed', async () => {
  for (const cl of ['abc', '1x', '-1']) {
    const r = await raw(`POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${cl}\r\n\r\n{}GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    assert.ok(r.closed, `closed after Content-Length: ${cl}`);
    const lines = statusLines(r.data);
    assert.ok(lines.length >= 1 && lines.every((l) => l === 'HTTP/1.1 400'), `${cl}: ${r.data}`);
    assert.ok(!/"status":"live"/.test(r.data), 'the pipelined request was not answered');
  }
});

test('headers sent a byte at a time are cut off at the header deadline', async () => {
  const head = 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(40) + '\r\n\r\n';
  const r = await raw(head.split(''), { gapMs: 250, ms: 15000 });
  assert.ok(r.closed, 'the server closed the connection');
  assert.ok(r.ms < 4500, `cut after ${r.ms} ms (deadline 2 s)`);
  assert.equal(statusLines(r.data).length, 0);
  // An idle keep-alive connection is closed after the same deadline, and a
  // prompt one is served normally.
  const idle = await raw('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { ms: 8000 });
  assert.ok(idle.closed && idle.ms >= 1500 && idle.ms < 4500, `idle closed after ${idle.ms} ms`);
  assert.deepEqual(statusLines(idle.data), ['HTTP/1.1 200']);
  const m = (await core.request('GET', '/metrics')).text.match(/^serverbox_http_header_timeouts_total (\d+)$/m);
  assert.ok(Number(m[1]) >= 2);
});

test('the per-address connection limit refuses extra connections', async () => {
  const socks = [];
  const open = () => new Promise((resolve) => {
    const s = net.connect(core.port, '127.0.0.1');
    s.on('error', () => {});
    s.on('connect', () => resolve(s));
  });
  for (let i = 0; i < 20; i++) socks.push(await open());
  // The 21st is closed at once, without an answer.
  const r = await raw('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { ms: 3000 });
  assert.ok(r.closed);
  assert.equal(statusLines(r.data).length, 0, r.data);
  for (const s of socks) s.destroy();
  await new Promise((res) => setTimeout(res, 300));
  const ok = await raw('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statusLines(ok.data), ['HTTP/1.1 200']);
});
