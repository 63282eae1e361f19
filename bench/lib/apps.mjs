// Measurements for bench/apps.bench.sh (see there). Not a *.bench.mjs: it
// needs the services that script starts.
import { createDatabase, startCore } from '../../tests/lib/harness.mjs';
import { githubSignature, startGitServer } from '../../tests/lib/apps.mjs';

const sock = process.env.SBX_DOCKER_SOCKET;
const row = (what, v, unit, target) => console.log(`| ${what} | ${v.toFixed(2)} ${unit} | ≤ ${target} ${unit} | ${(v / target).toFixed(2)} |`);
const SECRET = 'bench-webhook-secret-0123456789';
const DOCKERFILE = 'FROM local/busybox:1\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n';

async function finished(core, id) {
  for (;;) {
    const r = await core.request('GET', `/api/v1/deployments/${id}`);
    if (r.body?.status === 'succeeded') return r.body;
    if (r.body?.status === 'failed') throw new Error(`deployment ${id}: ${r.body.reason}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

const gitd = await startGitServer();
const db = createDatabase('abench');
const core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock } });
try {
  const repo = gitd.repo('bench');
  const c = await core.request('POST', '/api/v1/apps', {
    json: { name: 'bench', node_id: 'local', repo_url: repo.url, port: 8080, health_timeout_s: 60, webhook_secret: SECRET },
  });
  if (c.status !== 201) throw new Error(c.text);
  const push = async (n) => {
    const after = repo.commit({ 'Dockerfile': DOCKERFILE, 'index.html': `v${n}\n` }, `v${n}`);
    const body = JSON.stringify({ ref: 'refs/heads/main', after });
    const t = performance.now();
    const r = await core.request('POST', `/api/v1/hooks/git/${c.body.id}`, {
      token: null, body, headers: { 'Content-Type': 'application/json', 'X-GitHub-Event': 'push', 'X-Hub-Signature-256': githubSignature(SECRET, body) },
    });
    if (r.status !== 202) throw new Error(r.text);
    const d = await finished(core, r.body.deployment_id);
    return { d, s: (performance.now() - t) / 1000 };
  };
  const first = await push(1);
  const second = await push(2);
  const t = performance.now();
  const rb = await core.request('POST', `/api/v1/deployments/${first.d.id}/rollback`);
  await finished(core, rb.body.deployment_id);
  const rollback = (performance.now() - t) / 1000;
  console.log('| what | figure | target | ratio |');
  console.log('| --- | --- | --- | --- |');
  row('app webhook → built and healthy (busybox app, first build)', first.s, 's', 30);
  row('app webhook → built and healthy (next commit, warm cache)', second.s, 's', 15);
  row('app rollback request → first image healthy again (no build)', rollback, 's', 5);
} finally {
  await core.stop({ expectClean: false });
  gitd.stop();
}
