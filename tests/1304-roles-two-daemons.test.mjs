// Custom roles and 2FA policies across daemons (issue #20): two daemons on
// one database and one Redis. A role edited on one reaches a credential
// cached on the other within the short cache lifetime, and ends that
// credential's event stream there (the role.updated event names the
// holders); requiring 2FA for the role does the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createDatabase, login, startCore, waitFor } from './lib/harness.mjs';
import { openSse } from './lib/sse.mjs';

let db, a, b;
before(async () => {
  db = createDatabase('roles2');
  const redisUrl = process.env.SBX_TEST_REDIS_URL;
  a = await startCore({ db, redisUrl, admin: true });
  b = await startCore({ db, redisUrl });
});
after(async () => {
  await b?.stop();
  await a?.stop();
});

test('a role edited on one daemon takes effect on the other; its holders\' streams there end', async () => {
  let r = await a.request('POST', '/api/v1/roles', { json: { name: 'watcher', permissions: ['jobs:read', 'events:read', 'audit:read'] } });
  assert.equal(r.status, 201, r.text);
  const u = { username: `w${randomUUID().slice(0, 8)}`, password: `pw-${randomUUID()}`, role: 'watcher' };
  assert.equal((await a.request('POST', '/api/v1/users', { json: u })).status, 201);
  const { token } = await login(a, u);
  assert.equal((await b.request('GET', '/api/v1/jobs', { token })).status, 200);
  const s = openSse(b.base, '/api/v1/events', { token });
  await s.ready;
  assert.equal(s.status, 200, s.errorBody);

  r = await a.request('PATCH', '/api/v1/roles/watcher', { json: { permissions: ['audit:read'] } });
  assert.equal(r.status, 200, r.text);
  await waitFor(async () => (await b.request('GET', '/api/v1/jobs', { token })).status === 403, { timeout: 15000, what: 'the edit on the other daemon' });
  await waitFor(() => s.ended, { timeout: 15000, what: 'the stream on the other daemon to end' });
  s.close();
  assert.equal((await b.request('GET', '/api/v1/events/history', { token })).status, 403);
  assert.equal((await b.request('GET', '/api/v1/audit', { token })).status, 200);

  // requiring 2FA for the role: the session may only enroll, there too
  r = await a.request('PUT', '/api/v1/roles/watcher/policy', { json: { require_totp: true } });
  assert.equal(r.status, 200, r.text);
  await waitFor(async () => (await b.request('GET', '/api/v1/audit', { token })).status === 403, { timeout: 15000, what: 'the policy on the other daemon' });
  const me = await b.request('GET', '/api/v1/me', { token });
  assert.equal(me.body.totp_setup_required, true);
  assert.equal((await b.request('GET', '/api/v1/auth/totp', { token })).status, 200);
});
