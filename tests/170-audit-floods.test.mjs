// The audit chain cannot be flooded: bursts of anonymous requests, of a
// rate-limited token and of bad credentials add a small, stated number of
// events; /metrics counts every denial, and the summaries account for every
// one of them (nothing lost, nothing counted twice); a 12 KB URL leaves only a
// bounded prefix in the chain; the summary arrives when the window closes
// (2 s here, --audit-window) and at shutdown; the per-address limit for
// unauthenticated requests answers 429 with Retry-After, in Redis. Floods are
// wrk bounded in time, to 127.0.0.1 only; a trusted loopback proxy lets each
// test speak for its own client address (X-Forwarded-For).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, apiToken, adminToken, createDatabase, startCore, waitFor } from './lib/harness.mjs';

const WINDOW_S = 2;
const services = join(ROOT, 'scripts', 'services.sh');
let db, core, redisDir, redisUrl, admin;
before(async () => {
  redisDir = mkdtempSync(join(tmpdir(), 'sbx-redis-'));
  const out = execFileSync(services, ['start-redis', redisDir], { encoding: 'utf8' });
  redisUrl = out.match(/SERVERBOX_REDIS_URL='([^']+)'/)[1];
  db = createDatabase('floods');
  core = await startCore({ db, redisUrl, env: {
    SERVERBOX_TRUSTED_PROXY: 'loopback', SERVERBOX_AUDIT_WINDOW: String(WINDOW_S),
    SERVERBOX_TOKEN_RATE_LIMIT: '20', SERVERBOX_ANON_IP_LIMIT: '500' } });
  admin = await adminToken(core, db);
});
after(async () => {
  await core?.stop();
  try { execFileSync(services, ['stop-redis', redisDir]); } catch { /* already stopped */ }
  rmSync(redisDir, { recursive: true, force: true });
});

const headSeq = () => Number(db.sql('SELECT coalesce(max(seq), 0) FROM events'));
const eventsAfter = (seq, cond = 'true') =>
  JSON.parse(db.sql(`SELECT coalesce(json_agg(json_build_object('seq', seq, 'type', type, 'stream', stream, 'actor_kind', actor_kind, 'data', data, 'len', length(body)) ORDER BY seq), '[]') FROM events WHERE seq > ${seq} AND ${cond}`));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function denialCounts() {
  const text = (await core.request('GET', '/metrics')).text;
  const out = {};
  for (const m of text.matchAll(/^serverbox_denials_total\{reason="([^"]+)",family="([^"]+)"\} (\d+)$/gm)) out[`${m[1]}/${m[2]}`] = Number(m[3]);
  return out;
}
const delta = (a, b, key) => (b[key] || 0) - (a[key] || 0);

async function wrk(path, { seconds = 3, connections = 16, headers = {} } = {}) {
  const args = ['-t2', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(core.base + path);
  const { stdout } = await promisify(execFile)('wrk', args, { encoding: 'utf8', timeout: (seconds + 20) * 1000 });
  const m = stdout.match(/(\d+) requests in/);
  assert.ok(m, stdout);
  return Number(m[1]);
}

// Waits until every window that the burst opened has closed (a follow-on
// window included) and its summary is in the log.
const settle = () => sleep(2 * WINDOW_S * 1000 + 1500);

test('a burst of anonymous requests adds a handful of events; /metrics counts every one', async () => {
  const ip = '198.51.100.10';
  const m0 = await denialCounts();
  const seq0 = headSeq();
  const sent = await wrk('/api/v1/nodes', { headers: { 'X-Forwarded-For': ip } });
  assert.ok(sent > 1000, `only ${sent} requests in 3 s`);
  await settle();
  const m1 = await denialCounts();
  const counted = delta(m0, m1, 'no_credential/nodes') + delta(m0, m1, 'address_limited/nodes');
  // wrk counts the answers it read; the daemon may have answered up to one
  // request per connection more as wrk stopped.
  assert.ok(counted >= sent && counted <= sent + 16, `metrics counted ${counted}, wrk sent ${sent}`);
  assert.ok(delta(m0, m1, 'address_limited/nodes') > 0, 'the address limit (500 a minute) was reached');
  const evs = eventsAfter(seq0);
  // Stated bound: no anonymous denial one by one; per reason one summary per
  // window: 2 reasons x at most 3 windows in 3 s + the follow-on.
  assert.equal(evs.filter((e) => e.type === 'access.denied').length, 0, JSON.stringify(evs.slice(0, 3)));
  assert.ok(evs.length <= 8, `${evs.length} events for ${sent} denials`);
  const summaries = evs.filter((e) => e.type === 'access.denied_summary');
  assert.ok(summaries.length >= 2);
  for (const s of summaries) {
    assert.equal(s.stream, 'access');
    assert.equal(s.data.source, ip);
    assert.equal(s.data.recorded, 0);
    assert.ok(Date.parse(s.data.first_at) <= Date.parse(s.data.last_at));
    assert.deepEqual(s.data.routes, ['/api/v1/nodes']);
    assert.equal(s.data.sample.route, '/api/v1/nodes');
  }
  // Every denial is accounted for by exactly one summary.
  assert.equal(summaries.reduce((n, s) => n + s.data.count, 0), counted);
  const v = await core.request('GET', '/api/v1/audit/verify', { token: admin });
  assert.equal(v.body.ok, true, v.text);
});

test('a rate-limited token produces at most one event per window', async () => {
  const t = await apiToken(core, admin, { name: 'flooder', role: 'viewer' });
  const m0 = await denialCounts();
  const seq0 = headSeq();
  const sent = await wrk('/api/v1/nodes', { headers: { Authorization: `Bearer ${t.token}`, 'X-Forwarded-For': '198.51.100.11' } });
  await settle();
  const m1 = await denialCounts();
  const limited = delta(m0, m1, 'rate_limited/nodes');
  assert.ok(limited > sent / 2, `${limited} of ${sent} limited`);
  const mine = eventsAfter(seq0, `data->>'reason' = 'rate limited' OR (type = 'access.denied_summary' AND data->>'source' = 'token:${t.id}')`);
  // The first one by one, then one summary per window (3 s of flood: the
  // windows at 0-2 s and 2-4 s).
  assert.ok(mine.length >= 2 && mine.length <= 4, JSON.stringify(mine.map((e) => e.type)));
  assert.equal(mine.filter((e) => e.type === 'access.denied').length, 1);
  const accounted = mine.reduce((n, e) => n + (e.type === 'access.denied' ? 1 : e.data.count - e.data.recorded), 0);
  assert.equal(accounted, limited);
});

test('bad credentials: the first three one by one, then summaries', async () => {
  const seq0 = headSeq();
  const statuses = [];
  for (let i = 0; i < 40; i++) {
    const r = await core.request('GET', i % 2 ? '/api/v1/users' : '/api/v1/nodes', { token: `sbx_forged${i}`, headers: { 'X-Forwarded-For': '198.51.100.12' } });
    statuses.push(r.status);
  }
  assert.deepEqual([...new Set(statuses)], [401]);
  await settle();
  const evs = eventsAfter(seq0, "stream = 'access'");
  const one = evs.filter((e) => e.type === 'access.denied');
  const sums = evs.filter((e) => e.type === 'access.denied_summary');
  assert.equal(one.length, 3);
  for (const e of one) assert.equal(e.data.reason, 'invalid credential');
  assert.equal(sums.length, 1);
  assert.equal(sums[0].data.count, 40);
  assert.equal(sums[0].data.recorded, 3);
  assert.deepEqual(sums[0].data.routes.sort(), ['/api/v1/nodes', '/api/v1/users']);
  // No forged token is ever written to the chain.
  assert.ok(!db.sql(`SELECT string_agg(body, '') FROM events WHERE seq > ${seq0}`).includes('sbx_forged'));
});

test('a 12 KB URL leaves at most a 128-byte escaped prefix in the chain', async () => {
  const seq0 = headSeq();
  const long = `/api/v1/nodes/${'A'.repeat(6000)}%22%0a${'B'.repeat(6000)}`;
  const r = await core.request('GET', long, { token: 'sbx_forged-long', headers: { 'X-Forwarded-For': '198.51.100.13' } });
  assert.equal(r.status, 401, r.text);
  const anon = await core.request('GET', long, { token: null, headers: { 'X-Forwarded-For': '198.51.100.13' } });
  assert.equal(anon.status, 401);
  await settle();
  const evs = eventsAfter(seq0);
  const one = evs.find((e) => e.type === 'access.denied');
  assert.ok(one, JSON.stringify(evs));
  assert.ok(one.data.path.length <= 128, one.data.path);
  assert.equal(one.data.path_truncated, true);
  assert.ok(one.data.path.startsWith('/api/v1/nodes/AAAA'));
  assert.equal(one.data.route, '/api/v1/nodes/{id}');
  const sum = evs.find((e) => e.type === 'access.denied_summary' && e.data.reason === 'no credential');
  assert.ok(sum.data.sample.path.length <= 128);
  for (const e of evs) assert.ok(e.len < 2048, `an event of ${e.len} bytes`);
});

test('the summary arrives when the window closes, not before', async () => {
  const ip = '198.51.100.14';
  const seq0 = headSeq();
  for (let i = 0; i < 5; i++) assert.equal((await core.request('GET', '/api/v1/audit', { token: null, headers: { 'X-Forwarded-For': ip } })).status, 401);
  const t0 = Date.now();
  const mine = () => eventsAfter(seq0, `type = 'access.denied_summary' AND data->>'source' = '${ip}'`);
  assert.equal(mine().length, 0);
  await waitFor(() => mine().length === 1, { timeout: WINDOW_S * 1000 + 3000, what: 'the summary' });
  assert.ok(Date.now() - t0 >= WINDOW_S * 1000 - 500, 'not before the window closed');
  const s = mine()[0];
  assert.equal(s.data.count, 5);
  assert.equal(s.data.reason, 'no credential');
  assert.equal(s.data.family, '*');
  assert.equal(s.data.window_seconds, WINDOW_S);
});

test('the per-address limit answers 429 with Retry-After before any other work; counters in Redis', async () => {
  const ip = '198.51.100.15';
  const t = await apiToken(core, admin, { name: 'neighbour', role: 'viewer' });
  const anon = async () => {
    const r = await core.request('GET', '/api/v1/nodes', { token: null, headers: { 'X-Forwarded-For': ip } });
    if (r.status === 429) {
      const ra = Number(r.headers.get('retry-after'));
      assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
      assert.equal(r.body.error.code, 'rate_limited');
    }
    return r.status;
  };
  const statuses = [];
  for (let i = 0; i < 499; i++) statuses.push(await anon());
  // A credential the daemon holds in memory (used just now) keeps working
  // from a blocked address; a forged one is refused without being looked up.
  assert.equal((await core.request('GET', '/api/v1/nodes', { token: t.token, headers: { 'X-Forwarded-For': ip } })).status, 200);
  for (let i = 0; i < 6; i++) statuses.push(await anon());
  assert.deepEqual(statuses.slice(0, 500), Array(500).fill(401));
  assert.deepEqual(statuses.slice(500), Array(5).fill(429));
  assert.equal((await core.request('GET', '/api/v1/nodes', { token: t.token, headers: { 'X-Forwarded-For': ip } })).status, 200);
  assert.equal((await core.request('GET', '/api/v1/nodes', { token: 'sbx_forged-blocked', headers: { 'X-Forwarded-For': ip } })).status, 429);
  // Other addresses are not affected.
  assert.equal((await core.request('GET', '/api/v1/nodes', { token: null, headers: { 'X-Forwarded-For': '198.51.100.16' } })).status, 401);
  const keys = execFileSync('redis-cli', ['-u', redisUrl, 'keys', 'sbx:rl:anon:*'], { encoding: 'utf8' });
  assert.match(keys, /anon:198\.51\.100\.15/);
});

test('open windows are flushed to the chain at shutdown', async () => {
  const other = await startCore({ db, env: { SERVERBOX_TRUSTED_PROXY: 'loopback', SERVERBOX_AUDIT_WINDOW: '60' } });
  const seq0 = headSeq();
  for (let i = 0; i < 7; i++) await other.request('GET', '/api/v1/tokens', { token: null, headers: { 'X-Forwarded-For': '198.51.100.17' } });
  // Nothing about this address yet (the first daemon may append its own events meanwhile).
  assert.deepEqual(eventsAfter(seq0).filter((e) => JSON.stringify(e.data).includes('198.51.100.17')), []);
  await other.stop();
  // The first daemon shares the database and may close a window of an
  // earlier test's address meanwhile: count this address's summaries.
  const evs = eventsAfter(seq0, "type = 'access.denied_summary'").filter((e) => JSON.stringify(e.data).includes('198.51.100.17'));
  assert.equal(evs.length, 1, JSON.stringify(eventsAfter(seq0)));
  assert.equal(evs[0].data.count, 7);
});
