// The permission matrix, generated from the route table that
// `serverbox-core routes` prints: every route x {admin, operator, viewer,
// guest, anonymous, expired token, revoked token}. Expected: 401 for
// anonymous, expired and revoked credentials on every protected route; 403
// where the role lacks the route's permission; neither (and no 5xx) where it
// holds it. The role table below is the one in the brief (HELPER-BRIEF.md),
// written out independently of core/src/auth/rbac.c.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { adminToken, apiToken, createDatabase, createUser, login, runCore, startCore } from './lib/harness.mjs';

const PERMISSIONS = ['public', 'agent', 'authenticated', 'self:read', 'users:admin', 'tokens:manage', 'guest_links:admin',
  'audit:read', 'events:read', 'annotations:create', 'nodes:read', 'nodes:write', 'nodes:delete', 'nodes:exec',
  'nodes:check',
  'containers:read', 'containers:operate', 'containers:delete', 'logs:read', 'images:read', 'images:pull',
  'images:delete', 'volumes:read', 'volumes:write', 'volumes:delete', 'networks:read', 'networks:write',
  'networks:delete', 'metrics:read', 'deployments:read', 'jobs:read', 'jobs:cancel', 'jobs:test',
  'stacks:read', 'stacks:write', 'stacks:delete', 'terminal:node', 'terminal:container', 'recordings:replay',
  'roles:read', 'alerts:read', 'alerts:write', 'backups:read', 'backups:write', 'backups:restore',
  'apps:read', 'apps:write', 'apps:deploy', 'apps:delete'];

const GUEST_SCOPES = ['view:metrics', 'view:audit'];
const SCOPE_PERMS = { 'view:metrics': ['metrics:read', 'nodes:read'], 'view:containers': ['containers:read', 'nodes:read'],
  'view:logs': ['logs:read'], 'view:deployments': ['deployments:read'], 'view:audit': ['audit:read'],
  'view:stacks': ['stacks:read'], 'view:recordings': ['recordings:replay'] };

function allowed(role, perm) {
  if (role === 'admin') return true;
  // backups:restore overwrites a volume: admins only.
  if (role === 'operator') return !['users:admin', 'guest_links:admin', 'backups:restore'].includes(perm) && !perm.endsWith(':delete');
  if (role === 'viewer') return perm.endsWith(':read') || perm === 'authenticated';
  if (role === 'guest') return perm === 'events:read' || perm === 'self:read' || GUEST_SCOPES.some((s) => SCOPE_PERMS[s].includes(perm));
  return false;
}

let db, core, routes;
const creds = {};
before(async () => {
  db = createDatabase('matrix');
  core = await startCore({ db });
  routes = JSON.parse(runCore(['routes']).stdout);
  const admin = await adminToken(core, db);
  // Sessions for operator and viewer (logout runs last, so ending them does
  // not matter), an API token for admin.
  for (const role of ['operator', 'viewer']) creds[role] = (await login(core, createUser(db, { role }))).token;
  creds.admin = (await apiToken(core, admin, { name: 'matrix-admin' })).token;
  const g = await core.request('POST', '/api/v1/guest-links', { token: admin, json: { scopes: GUEST_SCOPES, ttl_seconds: 3600, note: 'matrix' } });
  assert.equal(g.status, 201, g.text);
  creds.guest = g.body.token;
  const expiring = await apiToken(core, admin, { name: 'expiring', expires_in: 1 });
  const revoked = await apiToken(core, admin, { name: 'revoked' });
  const d = await core.request('DELETE', `/api/v1/tokens/${revoked.id}`, { token: admin });
  assert.equal(d.status, 204, d.text);
  creds.revoked = revoked.token;
  creds.anonymous = null;
  await new Promise((r) => setTimeout(r, 1600));
  creds.expired = expiring.token;
});
after(async () => { await core?.stop(); });

// One request, reading only the status (a route may stream).
async function status(method, path, token, takesBody) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (takesBody) { headers['Content-Type'] = 'application/json'; body = '{}'; }
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), 10000);
  try {
    const res = await fetch(core.base + path, { method, headers, body, signal: ac.signal });
    await res.body?.cancel();
    return res.status;
  } finally { clearTimeout(t); }
}

function concrete(pattern) {
  return pattern.replace(/\{\*?([a-z_]+)\}/g, (_, name) => (name === 'token' ? 'sbg_nope' : randomUUID()));
}

test('every route declares a permission from the table', () => {
  assert.ok(routes.length > 5);
  for (const r of routes) assert.ok(PERMISSIONS.includes(r.permission), `${r.method} ${r.path}: unknown permission '${r.permission}'`);
});

test('health, metrics and the OpenAPI document stay public', () => {
  for (const p of ['/health/live', '/health/ready', '/metrics', '/api/v1/openapi.json'])
    assert.equal(routes.find((r) => r.path === p && r.method === 'GET')?.permission, 'public', p);
});

test('route x credential matrix', async () => {
  const failures = [];
  // Logout last: it is the one route that changes the credential itself.
  const ordered = [...routes].sort((a, b) => (a.path.endsWith('/logout') ? 1 : 0) - (b.path.endsWith('/logout') ? 1 : 0));
  for (const r of ordered) {
    if (r.permission === 'agent') continue; // the handler verifies the collector's signature
    const path = concrete(r.path);
    for (const who of ['admin', 'operator', 'viewer', 'guest', 'anonymous', 'expired', 'revoked']) {
      const s = await status(r.method, path, creds[who], r.takes_body);
      let ok;
      // Public routes that carry their own proof (a guest link's token, a
      // webhook's signature) answer 401 (or 404) without it, whoever asks.
      if (r.permission === 'public' && r.path.startsWith('/api/v1/hooks/')) ok = s === 401;
      else if (r.permission === 'public') ok = r.path.startsWith('/g/') ? s === 401 || s === 404 : s !== 401 && s !== 403 && s < 500;
      else if (['anonymous', 'expired', 'revoked'].includes(who)) ok = s === 401;
      else if (allowed(who, r.permission)) ok = s !== 401 && s !== 403 && s < 500;
      else ok = s === 403;
      if (!ok) failures.push(`${r.method} ${r.path} [${r.permission}] as ${who}: ${s}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('every denied request is in the audit log', async () => {
  const token = await adminToken(core, db);
  const r = await core.request('GET', '/api/v1/audit?type=access.denied&limit=1000', { token });
  assert.equal(r.status, 200, r.text);
  const statuses = new Set(r.body.events.map((e) => e.data.status));
  assert.ok(statuses.has(401) && statuses.has(403), JSON.stringify([...statuses]));
  for (const e of r.body.events) assert.equal(e.outcome, 'denied');
  const v = await core.request('GET', '/api/v1/audit/verify', { token });
  assert.equal(v.body.ok, true, v.text);
});

test('every route is documented in the OpenAPI description', async () => {
  const r = await core.request('GET', '/api/v1/openapi.json');
  assert.equal(r.status, 200);
  // OpenAPI has no catch-all segment: {*ref} is documented as {ref}.
  const missing = routes.filter((x) => !r.body.paths[x.path.replace(/\{\*/g, '{')]?.[x.method.toLowerCase()]).map((x) => `${x.method} ${x.path}`);
  assert.deepEqual(missing, []);
});
