// A GitOps app fetched over ssh (a real sshd on loopback, git-upload-pack
// on the other side) with a deploy key the core generates: the public half
// is answered, the private half is sealed and never in an answer or an
// event; once authorized on the host it deploys and the git host's key is pinned at that first fetch (as
// ssh-keygen -l prints it); a different pin refuses the fetch before any
// authentication; an RSA key is refused up front with the reason.
import { test, before, after } from 'node:test';
import { writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, tempDir } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { startEngine } from './lib/stacks.mjs';
import { waitDeployment } from './lib/apps.mjs';

let eng, db, core, sshd, url, app;

const git = (cwd, ...args) => execFileSync('git', ['-c', 'user.name=T', '-c', 'user.email=t@t.invalid', ...args], { cwd, encoding: 'utf8' }).trim();

before(async () => {
  eng = startEngine();
  sshd = startSshd();
  db = createDatabase('appsssh');
  // An empty HOME: libgit2 reads ~/.ssh/known_hosts on every ssh connection
  // (and leaks what it parsed, tests/lsan.supp); the core pins keys itself.
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: eng.sock, HOME: tempDir('sbx-home-') } });
  const dir = tempDir('sbx-sshgit-');
  const bare = join(dir, 'svc.git');
  git(dir, 'init', '-q', '--bare', bare);
  const work = tempDir('sbx-sshwork-');
  git(work, 'init', '-q', '-b', 'main');
  execFileSync('sh', ['-c', `printf 'FROM local/busybox:1\\nCOPY index.html /www/index.html\\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\\n' > Dockerfile && echo over-ssh > index.html`], { cwd: work });
  git(work, 'add', '-A');
  git(work, 'commit', '-q', '-m', 'v1');
  git(work, 'push', '-q', bare, 'HEAD:refs/heads/main');
  url = `ssh://root@127.0.0.1:${sshd.port}${bare}`;
});

after(async () => {
  try { if (core) await core.stop(); } finally {
    if (process.env.SBX_APPS_LOG && core) writeFileSync(process.env.SBX_APPS_LOG, core.log());
    sshd?.remove(); eng?.stop();
  }
});

test('an RSA deploy key is refused with the reason; a deploy key is only for ssh URLs', async () => {
  const d = tempDir('sbx-rsa-');
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', join(d, 'k')]);
  const r = await core.request('POST', '/api/v1/apps', { json: { name: 'rsa', node_id: 'local', repo_url: url, deploy_key: readFileSync(join(d, 'k'), 'utf8') } });
  assert.equal(r.status, 422, r.text);
  assert.match(r.text, /RSA keys cannot log in/);
  const g = await core.request('POST', '/api/v1/apps', { json: { name: 'plain', node_id: 'local', repo_url: 'git://127.0.0.1/x.git', deploy_key: 'x' } });
  assert.equal(g.status, 422, g.text);
  assert.match(g.text, /deploy_key/);
  const h = await core.request('POST', '/api/v1/apps', { json: { name: 'hk', node_id: 'local', repo_url: url, git_host_key: 'SHA256:short' } });
  assert.equal(h.status, 422, h.text);
  assert.match(h.text, /git_host_key/);
});

test('a generated deploy key: authorized on the host, deployed, the host key pinned', async () => {
  const c = await core.request('POST', '/api/v1/apps', { json: { name: 'svc', node_id: 'local', repo_url: url, port: 8080, health_timeout_s: 30 } });
  assert.equal(c.status, 201, c.text);
  app = c.body;
  assert.match(app.deploy_key_public, /^ssh-ed25519 AAAA\S+ serverbox-app-svc$/);
  assert.equal(app.git_host_key, null);
  assert.ok(!JSON.stringify(app).includes('PRIVATE KEY'));

  // (A key the host refuses fails the fetch, "the git host refused the
  // deploy key"; not exercised here: libssh2 1.10 leaks ~60 bytes on a
  // refused public key, which the leak check at exit would report.)
  appendFileSync(join(sshd.dir, 'authorized_keys'), `${app.deploy_key_public}\n`);
  const ok = await waitDeployment(core, (await core.request('POST', `/api/v1/apps/${app.id}/deploy`)).body.deployment_id);
  assert.equal(ok.status, 'succeeded', ok.log);
  assert.match(ok.log, /pinned the git host's key SHA256:/);
  const a = await core.request('GET', `/api/v1/apps/${app.id}`);
  assert.equal(a.body.git_host_key, sshd.fingerprint);
  assert.equal(eng.docker('exec', ok.container_id, 'busybox', 'wget', '-q', '-O-', 'http://127.0.0.1:8080/'), 'over-ssh');
  const all = db.sql("SELECT string_agg(body, '') FROM events");
  assert.ok(!all.includes('PRIVATE KEY'), 'no private key in events');
});

test('a different pinned host key refuses the fetch', async () => {
  const wrong = `SHA256:${'A'.repeat(43)}`;
  const p = await core.request('PATCH', `/api/v1/apps/${app.id}`, { json: { git_host_key: wrong } });
  assert.equal(p.status, 200, p.text);
  const d = await waitDeployment(core, (await core.request('POST', `/api/v1/apps/${app.id}/deploy`)).body.deployment_id);
  assert.equal(d.status, 'failed', d.log);
  assert.match(d.reason, /key changed: pinned SHA256:A+, offered SHA256:/);
  assert.ok(d.reason.includes(sshd.fingerprint), d.reason);
  // the app still runs its last good deployment
  const a = await core.request('GET', `/api/v1/apps/${app.id}`);
  assert.equal(a.body.status, 'running');
});
