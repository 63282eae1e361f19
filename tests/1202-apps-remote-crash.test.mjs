// A GitOps app on a node reached over SSH (a private dockerd behind a real
// sshd, no local engine): the build context goes through the SSH bridge
// (POST /build), the container runs there and its health gate runs inside
// it. kill -9 of the core in the middle of the build: the restarted core
// takes the job over (a second attempt), the deployment finishes cleanly,
// one container serves.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { startEngine } from './lib/stacks.mjs';
import { startGitServer, waitDeployment } from './lib/apps.mjs';

let eng, db, core, sshd, gitd, node, env;

before(async () => {
  eng = startEngine();
  sshd = startSshd();
  gitd = await startGitServer();
  db = createDatabase('appsremote');
  env = {
    SERVERBOX_DOCKER_SOCKET: join(eng.dir, 'no-local-engine.sock'),
    SERVERBOX_NODE_DOCKER_SOCKET: eng.sock,
    SERVERBOX_NODE_CHECK_INTERVAL: '0',
    SERVERBOX_JOB_LEASE_MS: '3000',
  };
  core = await startCore({ db, admin: true, env });
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name: 'far-1', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels: { env: 'prod' }, docker: 'ssh' },
  });
  assert.equal(r.status, 201, r.text);
  node = r.body;
});

after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    sshd?.remove();
    gitd?.stop();
    eng?.stop();
  }
});

test('build and run on a node over SSH; kill -9 mid-build, the restarted core finishes the deployment', async () => {
  const repo = gitd.repo('far');
  const commit = repo.commit({
    'Dockerfile': 'FROM local/busybox:1\nRUN echo building slowly && sleep 6\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
    'index.html': 'far away\n',
  }, 'far v1');
  const c = await core.request('POST', '/api/v1/apps', { json: { name: 'far', node_id: node.id, repo_url: repo.url, port: 8080, health_timeout_s: 30 } });
  assert.equal(c.status, 201, c.text);
  const app = c.body;
  const d = await core.request('POST', `/api/v1/apps/${app.id}/deploy`);
  assert.equal(d.status, 202, d.text);
  const depId = d.body.deployment_id;
  await waitFor(async () => (await core.request('GET', `/api/v1/deployments/${depId}`)).body?.log?.includes('building slowly'),
    { timeout: 120000, interval: 200, what: 'the build running' });

  core.proc.kill('SIGKILL');
  await core.stop({ expectClean: false });
  const token = core.token;
  core = await startCore({ db, dataDir: core.dataDir, env });
  core.token = token;

  const dep = await waitDeployment(core, depId, { timeout: 240000 });
  assert.equal(dep.status, 'succeeded', dep.log);
  assert.equal(dep.commit, commit);
  assert.match(dep.log, /attempt 2/);
  assert.match(dep.log, /healthy: GET \/ answered inside the container/);
  const job = await core.request('GET', `/api/v1/jobs/${dep.job_id}`);
  assert.equal(job.body.job.state, 'succeeded', job.text);
  assert.ok(job.body.job.attempt >= 2, job.text);
  // on the remote engine: one container of the app, running the image
  const ids = eng.docker('ps', '-aq', '--filter', `label=serverbox.app=${app.id}`).split('\n').filter(Boolean);
  assert.equal(ids.length, 1);
  const ctr = eng.inspect(ids[0]);
  assert.equal(ctr.State.Running, true);
  assert.equal(ctr.Config.Image, dep.image_id);
  const out = eng.docker('exec', ids[0], 'busybox', 'wget', '-q', '-O-', 'http://127.0.0.1:8080/');
  assert.equal(out.trim(), 'far away');
  assert.equal(eng.docker('images', '-q', `serverbox/far:${commit.slice(0, 12)}`).length > 0, true);
});
