// Login rate limits: the 11th bad login within a minute from one address is
// 429 with Retry-After, with Redis up and with Redis stopped (the in-process
// limiter takes over; /health/ready says Redis is degraded and stays 200).
// This file starts its own Redis so that it can stop it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, apiToken, createDatabase, createUser, login, startCore } from './lib/harness.mjs';

const services = join(ROOT, 'scripts', 'services.sh');
let db, core, redisDir, redisUrl;
before(async () => {
  redisDir = mkdtempSync(join(tmpdir(), 'sbx-redis-'));
  const out = execFileSync(services, ['start-redis', redisDir], { encoding: 'utf8' });
  redisUrl = out.match(/SERVERBOX_REDIS_URL='([^']+)'/)[1];
  db = createDatabase('rl');
  core = await startCore({ db, redisUrl, env: { SERVERBOX_TRUSTED_PROXY: 'loopback', SERVERBOX_TOKEN_RATE_LIMIT: '20' } });
});
after(async () => {
  await core?.stop();
  try { execFileSync(services, ['stop-redis', redisDir]); } catch { /* already stopped */ }
  rmSync(redisDir, { recursive: true, force: true });
});

async function badLogins(ip, n, username = 'nobody') {
  const statuses = [];
  for (let i = 0; i < n; i++) {
    const r = await core.request('POST', '/api/v1/auth/login', { json: { username, password: 'wrong-password-x' },
      headers: { 'X-Forwarded-For': ip } });
    statuses.push(r.status);
    if (r.status === 429) {
      const ra = Number(r.headers.get('retry-after'));
      assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
      assert.equal(r.body.error.code, 'rate_limited');
    }
  }
  return statuses;
}

test('the 11th bad login from one address within a minute is 429 (Redis up)', async () => {
  const ready = await core.request('GET', '/health/ready');
  assert.equal(ready.body.dependencies.redis.state, 'up');
  const s = await badLogins('198.51.100.1', 12);
  assert.deepEqual(s, [...Array(10).fill(401), 429, 429]);
  // Another address is not affected, and the count lives in Redis.
  assert.deepEqual(await badLogins('198.51.100.2', 1, 'someone'), [401]);
  const keys = execFileSync('redis-cli', ['-u', redisUrl, 'keys', 'sbx:rl:*'], { encoding: 'utf8' });
  assert.match(keys, /login:ip:198\.51\.100\.1/);
  // Even the right password is refused while the address is blocked.
  const u = createUser(db, { role: 'viewer' });
  const r = await core.request('POST', '/api/v1/auth/login', { json: { username: u.username, password: u.password }, headers: { 'X-Forwarded-For': '198.51.100.1' } });
  assert.equal(r.status, 429);
  const denied = db.sql("SELECT count(*) FROM events WHERE type = 'auth.login' AND outcome = 'denied'");
  assert.ok(Number(denied) >= 3);
});

test('per-username limit holds across addresses', async () => {
  const statuses = [];
  for (let i = 0; i < 22; i++) statuses.push(...await badLogins(`203.0.113.${i + 1}`, 1, 'target-user'));
  assert.equal(statuses.filter((s) => s === 401).length, 20);
  assert.deepEqual(statuses.slice(20), [429, 429]);
});

test('requests per credential are limited (token-rate-limit)', async () => {
  const admin = await login(core, createUser(db, { role: 'admin' }));
  const t = await apiToken(core, admin.token, { name: 'busy' });
  const statuses = await Promise.all(Array.from({ length: 120 }, () => core.request('GET', '/api/v1/me', { token: t.token }).then((r) => r.status)));
  assert.ok(statuses.includes(429), 'some requests limited');
  assert.ok(statuses.includes(200));
});

test('two daemons share the login counters through Redis, and a revocation on one reaches the other', async () => {
  const other = await startCore({ db, redisUrl, env: { SERVERBOX_TRUSTED_PROXY: 'loopback' } });
  try {
    const statuses = [];
    for (let i = 0; i < 11; i++) {
      const c = i % 2 ? other : core;
      const r = await c.request('POST', '/api/v1/auth/login', { json: { username: 'nobody-shared', password: 'wrong-password-x' }, headers: { 'X-Forwarded-For': '198.51.100.50' } });
      statuses.push(r.status);
    }
    assert.deepEqual(statuses, [...Array(10).fill(401), 429]);
    const admin = await login(core, createUser(db, { role: 'admin' }));
    const t = await apiToken(core, admin.token, { name: 'shared' });
    assert.equal((await other.request('GET', '/api/v1/me', { token: t.token })).status, 200);
    assert.equal((await core.request('DELETE', `/api/v1/tokens/${t.id}`, { token: admin.token })).status, 204);
    // The other daemon may serve its in-memory copy for a few seconds at most.
    let status;
    for (let i = 0; i < 50; i++) {
      status = (await other.request('GET', '/api/v1/me', { token: t.token })).status;
      if (status === 401) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 401);
  } finally { await other.stop(); }
});

test('with Redis stopped the limit still holds and the daemon stays healthy', async () => {
  const u = createUser(db, { role: 'operator' });
  const s = await login(core, u);
  execFileSync(services, ['stop-redis', redisDir]);
  let ready;
  for (let i = 0; i < 50; i++) {
    ready = await core.request('GET', '/health/ready');
    if (ready.body.dependencies.redis.state === 'degraded') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(ready.status, 200);
  assert.equal(ready.body.dependencies.redis.state, 'degraded');
  const st = await badLogins('192.0.2.77', 12, 'nobody-while-down');
  assert.deepEqual(st, [...Array(10).fill(401), 429, 429]);
  // Everything else works: sessions, new logins, writes.
  assert.equal((await core.request('GET', '/api/v1/me', { token: s.token })).status, 200);
  const s2 = await login(core, u);
  const a = await core.request('POST', '/api/v1/annotations', { token: s2.token, json: { message: 'redis is down' } });
  assert.equal(a.status, 201, a.text);
  const v = await core.request('GET', '/api/v1/audit/verify', { token: s2.token });
  assert.equal(v.status, 200, v.text);
  assert.equal(v.body.ok, true);
  assert.ok(core.alive());
});
