// GitOps apps: who may do what, one deployment per app at a time, and the
// projections rebuilt from the log.
//   - a viewer reads apps and deployments but cannot create, change, deploy,
//     roll back or delete (403); an operator cannot delete (403);
//   - a label-scoped operator does not see an app on a node outside its
//     scope (the local engine here): not in the list, 404 on every route;
//   - two deploys asked back to back run one after the other (the job's
//     concurrency key), both succeed;
//   - rebuild-projections reproduces apps and app_deployments exactly.
import { test, before, after } from 'node:test';
import { writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createDatabase, createUser, login, runCore, startCore, waitFor } from './lib/harness.mjs';
import { startEngine } from './lib/stacks.mjs';
import { startGitServer, waitDeployment } from './lib/apps.mjs';

let eng, db, core, gitd, app, viewer, operator, scoped, deps = [];

before(async () => {
  eng = startEngine();
  gitd = await startGitServer();
  db = createDatabase('appsaccess');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: eng.sock } });
  viewer = (await login(core, createUser(db, { role: 'viewer' }))).token;
  operator = (await login(core, createUser(db, { role: 'operator' }))).token;
  const u = { username: `scoped${randomUUID().slice(0, 6)}`, password: `pw-${randomUUID()}`, role: 'operator' };
  const r = await core.request('POST', '/api/v1/users', { json: { ...u, node_labels: { env: 'lab' } } });
  assert.equal(r.status, 201, r.text);
  scoped = (await login(core, u)).token;
});

after(async () => {
  try { if (core) await core.stop(); } finally {
    if (process.env.SBX_APPS_LOG && core) writeFileSync(process.env.SBX_APPS_LOG, core.log() + db.sql("SELECT string_agg(seq || ' ' || type || ' ' || (body::jsonb->'data')::text, E'\\n' ORDER BY seq) FROM events WHERE type LIKE 'job.%'"));
    gitd?.stop(); eng?.stop();
  }
});

test('two deploys asked back to back run one after the other', async () => {
  const repo = gitd.repo('api');
  repo.commit({ 'Dockerfile': 'FROM local/busybox:1\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n', 'index.html': 'ok\n' });
  const c = await core.request('POST', '/api/v1/apps', { json: { name: 'api', node_id: 'local', repo_url: repo.url, port: 8080, health_timeout_s: 30 } });
  assert.equal(c.status, 201, c.text);
  app = c.body;
  const a = await core.request('POST', `/api/v1/apps/${app.id}/deploy`);
  const b = await core.request('POST', `/api/v1/apps/${app.id}/deploy`);
  assert.equal(a.status, 202, a.text);
  assert.equal(b.status, 202, b.text);
  assert.equal(a.body.job.concurrency_key ?? `app/${app.id}`, `app/${app.id}`);
  const da = await waitDeployment(core, a.body.deployment_id);
  const dbb = await waitDeployment(core, b.body.deployment_id);
  assert.equal(da.status, 'succeeded', da.log);
  assert.equal(dbb.status, 'succeeded', dbb.log);
  const startedB = dbb.steps.find((s) => s.step === 'fetch').at;
  assert.ok(new Date(startedB) >= new Date(da.finished_at), `second started ${startedB}, first finished ${da.finished_at}`);
  deps = [da, dbb];
  // the first one's container is retired after the second went live
  await waitFor(async () => eng.docker('ps', '-aq', '--filter', `label=serverbox.app=${app.id}`).split('\n').filter(Boolean).length === 1,
    { timeout: 30000, what: 'one container left' });
});

test('a viewer reads but changes nothing; an operator cannot delete', async () => {
  const as = (token) => ({ token });
  assert.equal((await core.request('GET', '/api/v1/apps', as(viewer))).body.apps.length, 1);
  assert.equal((await core.request('GET', `/api/v1/apps/${app.id}`, as(viewer))).status, 200);
  assert.equal((await core.request('GET', `/api/v1/apps/${app.id}/deployments`, as(viewer))).status, 200);
  const dep = await core.request('GET', `/api/v1/deployments/${deps[0].id}`, as(viewer));
  assert.equal(dep.status, 200);
  assert.match(dep.body.log, /==> health/);
  for (const [m, p, json] of [
    ['POST', '/api/v1/apps', { name: 'x', node_id: 'local', repo_url: 'git://127.0.0.1/x.git' }],
    ['PATCH', `/api/v1/apps/${app.id}`, { branch: 'dev' }],
    ['POST', `/api/v1/apps/${app.id}/deploy`],
    ['POST', `/api/v1/deployments/${deps[0].id}/rollback`],
    ['DELETE', `/api/v1/apps/${app.id}`],
  ]) {
    const r = await core.request(m, p, { token: viewer, json });
    assert.equal(r.status, 403, `${m} ${p}: ${r.text}`);
  }
  const d = await core.request('DELETE', `/api/v1/apps/${app.id}`, as(operator));
  assert.equal(d.status, 403, d.text);
  const ok = await core.request('PATCH', `/api/v1/apps/${app.id}`, { token: operator, json: { health_path: '/index.html' } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.health_path, '/index.html');
});

test('a label-scoped operator does not see an app outside its scope', async () => {
  const list = await core.request('GET', '/api/v1/apps', { token: scoped });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.apps, []);
  for (const [m, p] of [
    ['GET', `/api/v1/apps/${app.id}`],
    ['PATCH', `/api/v1/apps/${app.id}`],
    ['POST', `/api/v1/apps/${app.id}/deploy`],
    ['GET', `/api/v1/apps/${app.id}/deployments`],
    ['GET', `/api/v1/deployments/${deps[0].id}`],
    ['POST', `/api/v1/deployments/${deps[0].id}/rollback`],
  ]) {
    const r = await core.request(m, p, { token: scoped, json: m === 'PATCH' ? { branch: 'dev' } : undefined });
    assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
    assert.ok(!r.text.includes('api'), r.text);
  }
  const c = await core.request('POST', '/api/v1/apps', { token: scoped, json: { name: 'mine', node_id: 'local', repo_url: 'git://127.0.0.1/x.git' } });
  assert.equal(c.status, 422, c.text);
  assert.match(c.text, /node_id/);
});

test('rebuild-projections reproduces apps and app_deployments', () => {
  const dump = () => db.sql("SELECT (SELECT json_agg(a ORDER BY id) FROM apps a)::text || (SELECT json_agg(d ORDER BY id) FROM app_deployments d)::text");
  const before = dump();
  assert.ok(before.includes(deps[1].id));
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(dump(), before);
});
