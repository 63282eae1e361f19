// An open event stream ends when its credential stops working: logout, a
// user disabled or deleted, a password reset (sessions only), a token or
// guest link revoked, a guest link expiring. Each stream ends promptly with
// `event: closed`, a reconnect with the same credential is 401, and the
// streams of other credentials stay open.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, createUser, login, apiToken, waitFor } from './lib/harness.mjs';
import { openSse } from './lib/sse.mjs';

let db, core;
const PROMPT = 3000; // ms: the close is immediate; this only bounds the wait

before(async () => {
  db = createDatabase('credloss');
  core = await startCore({ db, admin: true });
});
after(async () => { await core?.stop(); });

const stream = async (token) => {
  const s = openSse(core.base, '/api/v1/events', { token });
  await s.ready;
  assert.equal(s.status, 200, s.errorBody);
  return s;
};
const endsRevoked = async (s, reason = 'revoked') => {
  await s.waitFor((x) => x.ended, { timeout: PROMPT, what: 'the end of the stream' });
  const last = s.events[s.events.length - 1];
  assert.equal(last?.event, 'closed', JSON.stringify(s.events));
  assert.equal(JSON.parse(last.data).reason, reason);
};
const refused = async (token) => {
  const s = openSse(core.base, '/api/v1/events', { token });
  await s.ready;
  assert.equal(s.status, 401, `reconnect with the lost credential: ${s.status}`);
};
// Proves a stream is still live: an event made now reaches it.
const stillOpen = async (...streams) => {
  const r = await core.request('POST', '/api/v1/annotations', { json: { message: `alive ${Math.random()}` } });
  assert.equal(r.status, 201, r.text);
  for (const s of streams) {
    await s.waitFor((x) => x.events.some((e) => Number(e.id) === r.body.seq), { what: `seq ${r.body.seq}` });
    assert.equal(s.ended, false);
  }
};

test('logout ends the streams of that session only', async () => {
  const u = createUser(db, { role: 'viewer' });
  const a = await login(core, u);
  const b = await login(core, u);
  const sa = await stream(a.token);
  const sb = await stream(b.token);
  const out = await core.request('POST', '/api/v1/auth/logout', { token: a.token });
  assert.equal(out.status, 204, out.text);
  await endsRevoked(sa);
  await refused(a.token);
  await stillOpen(sb);
  sb.close();
});

test('disabling a user ends the streams of its sessions and tokens; another user is untouched', async () => {
  const u = createUser(db, { role: 'operator' });
  const session = await login(core, u);
  const tok = await apiToken(core, session.token, { role: 'viewer', name: 'dis' });
  const other = await login(core, createUser(db, { role: 'viewer' }));
  const s1 = await stream(session.token);
  const s2 = await stream(tok.token);
  const so = await stream(other.token);
  const id = session.user.id;
  const r = await core.request('PATCH', `/api/v1/users/${id}`, { json: { disabled: true } });
  assert.equal(r.status, 200, r.text);
  await endsRevoked(s1);
  await endsRevoked(s2);
  await refused(session.token);
  await refused(tok.token);
  await stillOpen(so);
  so.close();
});

test('deleting a user ends its streams', async () => {
  const u = createUser(db, { role: 'viewer' });
  const session = await login(core, u);
  const s = await stream(session.token);
  const r = await core.request('DELETE', `/api/v1/users/${session.user.id}`);
  assert.equal(r.status, 204, r.text);
  await endsRevoked(s);
  await refused(session.token);
});

test('a password reset by an admin ends the user\'s session streams, not its token streams', async () => {
  const u = createUser(db, { role: 'operator' });
  const session = await login(core, u);
  const tok = await apiToken(core, session.token, { name: 'keeps' });
  const ss = await stream(session.token);
  const st = await stream(tok.token);
  const r = await core.request('PATCH', `/api/v1/users/${session.user.id}`, { json: { password: 'a-brand-new-password-1' } });
  assert.equal(r.status, 200, r.text);
  await endsRevoked(ss);
  await refused(session.token);
  await stillOpen(st);
  st.close();
});

test('revoking a token ends its streams; the owner\'s other token and session stay', async () => {
  const u = createUser(db, { role: 'operator' });
  const session = await login(core, u);
  const t1 = await apiToken(core, session.token, { name: 'one' });
  const t2 = await apiToken(core, session.token, { name: 'two' });
  const s1 = await stream(t1.token);
  const s2 = await stream(t2.token);
  const ss = await stream(session.token);
  const r = await core.request('DELETE', `/api/v1/tokens/${t1.id}`, { token: session.token });
  assert.equal(r.status, 204, r.text);
  await endsRevoked(s1);
  await refused(t1.token);
  await stillOpen(s2, ss);
  s2.close();
  ss.close();
});

const guestLink = async (json) => {
  const r = await core.request('POST', '/api/v1/guest-links', { json: { scopes: ['view:audit'], ttl_seconds: 600, ...json } });
  assert.equal(r.status, 201, r.text);
  return r.body;
};

test('revoking a guest link ends its streams; another link stays', async () => {
  const g1 = await guestLink({ note: 'revoke me' });
  const g2 = await guestLink({ note: 'keep me' });
  const s1 = await stream(g1.token);
  const s2 = await stream(g2.token);
  const r = await core.request('DELETE', `/api/v1/guest-links/${g1.id}`);
  assert.equal(r.status, 204, r.text);
  await endsRevoked(s1);
  await refused(g1.token);
  await stillOpen(s2);
  s2.close();
});

test('a guest link\'s stream ends when the link expires', async () => {
  const g = await guestLink({ ttl_seconds: 2, note: 'short' });
  const s = await stream(g.token);
  await s.waitFor((x) => x.ended, { timeout: 2000 + PROMPT, what: 'the end of the stream at expiry' });
  const last = s.events[s.events.length - 1];
  assert.equal(last?.event, 'closed');
  assert.equal(JSON.parse(last.data).reason, 'expired');
  await refused(g.token);
});

test('two daemons on one database: a revocation through one ends the streams held by the other', async () => {
  const b = await startCore({ db });
  try {
    const u = createUser(db, { role: 'operator' });
    const session = await login(core, u);
    const tok = await apiToken(core, session.token, { role: 'viewer', name: 'roams' });
    const onB = (token) => openSse(b.base, '/api/v1/events', { token });
    const st = onB(tok.token);
    const ss = onB(session.token);
    await st.ready;
    await ss.ready;
    assert.equal(st.status, 200, st.errorBody);
    const r = await core.request('DELETE', `/api/v1/tokens/${tok.id}`, { token: session.token });
    assert.equal(r.status, 204, r.text);
    await endsRevoked(st);
    // A reconnect to B while B may still hold the token in its short cache
    // is either refused or ended at once; soon it is refused.
    const again = onB(tok.token);
    await again.ready;
    if (again.status === 200) await endsRevoked(again);
    else assert.equal(again.status, 401);
    await waitFor(async () => {
      const x = onB(tok.token);
      await x.ready;
      x.close();
      return x.status === 401;
    }, { what: 'B refuses the revoked token', timeout: 8000, interval: 250 });
    // Disabling the user through A ends its session stream on B.
    const d = await core.request('PATCH', `/api/v1/users/${session.user.id}`, { json: { disabled: true } });
    assert.equal(d.status, 200, d.text);
    await endsRevoked(ss);
  } finally {
    await b.stop();
  }
});
