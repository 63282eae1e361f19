// Guest links: read-only scopes, bounded TTL, 403 outside the scopes, 401
// after expiry and after revocation, and every guest request in the audit log
// (the first of a window as guest.request, the rest in the link's
// guest.requests_summary when the window closes; a 1 s window here).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { adminToken, createDatabase, startCore, waitFor } from './lib/harness.mjs';

let db, core, admin;
before(async () => {
  db = createDatabase('guest');
  core = await startCore({ db, env: { SERVERBOX_AUDIT_WINDOW: '1' } });
  admin = await adminToken(core, db);
});
after(async () => { await core?.stop(); });

const create = (json) => core.request('POST', '/api/v1/guest-links', { token: admin, json });

test('scopes and TTL are validated', async () => {
  for (const [json, field] of [
    [{ scopes: [], ttl_seconds: 60 }, 'scopes'],
    [{ scopes: ['write:everything'], ttl_seconds: 60 }, 'scopes'],
    [{ scopes: ['view:audit'], ttl_seconds: 8 * 86400 }, 'ttl_seconds'],
    [{ scopes: ['view:audit'], ttl_seconds: 0 }, 'ttl_seconds'],
    [{ scopes: ['view:audit'], ttl_seconds: 60, note: 'a\nb' }, 'note'],
    [{ scopes: ['view:audit'], ttl_seconds: 60, extra: 1 }, 'extra'],
  ]) {
    const r = await create(json);
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.error.field, field);
  }
});

test('a guest link works within its scopes, is 403 outside them, and every request is audited', async () => {
  const r = await create({ scopes: ['view:audit'], ttl_seconds: 3600, note: 'auditor ana' });
  assert.equal(r.status, 201, r.text);
  assert.match(r.body.token, /^sbg_/);
  assert.equal(r.body.url, `/g/${r.body.token}`);
  assert.ok(Date.parse(r.body.expires_at) > Date.now());
  const token = r.body.token;
  const landing = await core.request('GET', r.body.url);
  assert.equal(landing.status, 200, landing.text);
  assert.deepEqual(landing.body.scopes, ['view:audit']);
  const inScope = await core.request('GET', '/api/v1/audit?limit=5', { token });
  assert.equal(inScope.status, 200, inScope.text);
  assert.equal((await core.request('GET', '/api/v1/audit/verify', { token })).status, 200);
  assert.equal((await core.request('POST', '/api/v1/annotations', { token, json: { message: 'x' } })).status, 403);
  assert.equal((await core.request('GET', '/api/v1/users', { token })).status, 403);
  // A guest may read its own grant (its page polls it), and that is not audited.
  const me = await core.request('GET', '/api/v1/me', { token });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.kind, 'guest');
  assert.deepEqual(me.body.scopes, ['view:audit']);
  const guestEvents = () => JSON.parse(db.sql(`SELECT json_agg(json_build_object('type', type, 'outcome', outcome, 'kind', actor_kind, 'data', data) ORDER BY seq) FROM events WHERE stream = 'guest_link/${r.body.id}'`));
  let evs;
  await waitFor(() => (evs = guestEvents()).some((e) => e.type === 'guest.requests_summary'), { what: 'the guest requests summary' });
  const requests = evs.filter((e) => e.type === 'guest.request');
  const summaries = evs.filter((e) => e.type === 'guest.requests_summary');
  const denied = evs.filter((e) => e.type === 'access.denied');
  assert.equal(requests.length, 1, JSON.stringify(evs)); // the landing, one by one
  assert.equal(summaries.length, 1, JSON.stringify(evs));
  assert.equal(summaries[0].data.count, 3); // landing, audit, verify: every one counted
  assert.equal(summaries[0].data.recorded, 1);
  assert.deepEqual(summaries[0].data.routes.sort(), ['/api/v1/audit', '/api/v1/audit/verify', '/g/{token}']);
  assert.equal(denied.length, 2); // annotations and users: two route families
  for (const e of denied) assert.equal(e.data.status, 403);
  for (const e of [...requests, ...summaries, ...denied]) assert.equal(e.kind, 'guest');
  // The link's token is never logged: the request log shows the pattern.
  assert.ok(!core.log().includes(token));
  assert.match(core.log(), /path=\/g\/\{token\}/);
  assert.ok(!db.sql('SELECT string_agg(body, \'\') FROM events').includes(token));
});

test('a guest link stops working when it expires', async () => {
  const r = await create({ scopes: ['view:metrics', 'view:audit'], ttl_seconds: 1 });
  assert.equal((await core.request('GET', '/api/v1/audit?limit=1', { token: r.body.token })).status, 200);
  await new Promise((res) => setTimeout(res, 1300));
  assert.equal((await core.request('GET', '/api/v1/audit?limit=1', { token: r.body.token })).status, 401);
  assert.equal((await core.request('GET', r.body.url)).status, 401);
});

test('a revoked guest link stops working at once; links are listed without tokens', async () => {
  const r = await create({ scopes: ['view:audit'], ttl_seconds: 3600, note: 'to revoke' });
  const token = r.body.token;
  assert.equal((await core.request('GET', '/api/v1/audit?limit=1', { token })).status, 200);
  const list = await core.request('GET', '/api/v1/guest-links', { token: admin });
  assert.ok(list.body.guest_links.some((g) => g.id === r.body.id && g.note === 'to revoke'));
  assert.ok(!list.text.includes(token));
  assert.equal((await core.request('DELETE', `/api/v1/guest-links/${r.body.id}`, { token: admin })).status, 204);
  assert.equal((await core.request('GET', '/api/v1/audit?limit=1', { token })).status, 401);
  assert.equal((await core.request('DELETE', `/api/v1/guest-links/${r.body.id}`, { token: admin })).status, 404);
  const v = await core.request('GET', '/api/v1/audit/verify', { token: admin });
  assert.equal(v.body.ok, true);
});
