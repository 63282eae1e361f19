// (The stacks here run with network_mode: none: no bridge is made, so the
// tests do not depend on free address pools on a shared machine.)
// Backups (issue #19) with real restic, PostgreSQL and a private engine: a
// plan backs up the control plane and a stack's volume to a local
// repository and to one over the test sshd (SFTP); `restic snapshots` with
// the password lists both. The password never appears in process
// arguments or environments (ps, /proc), logs, events or answers. Wipe
// the volume, restore it (same volume and a new one): checksums equal.
// Restore the control plane into a fresh database with `serverbox-core
// restore`: verify-audit passes, nodes and stacks are back, the key files
// too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, runCore, tempDir, tempFile, waitFor } from './lib/harness.mjs';
import { startEngine, waitDeploy, eventsOf } from './lib/stacks.mjs';
import { startSshd } from './lib/sshd.mjs';
import { awaitJob } from './lib/jobs.mjs';

let eng, db, core, sshd, node, stack;
const PW_LOCAL = `local-pw-${Math.random().toString(16).slice(2)}-Zq`;
const PW_SFTP = `sftp-pw-${Math.random().toString(16).slice(2)}-Xk`;
const repoDir = tempDir('sbx-repo-');
const sftpDir = tempDir('sbx-sftp-');
const repos = {};
const plans = {};

const COMPOSE = `version: "3.8"
services:
  app:
    image: local/busybox:1
    network_mode: none
    command: ["sh", "-c", "mkdir -p /data/sub && [ -f /data/a.txt ] || { seq 1 30000 > /data/a.txt; echo hello > /data/sub/b; echo dot > /data/.hidden; }; exec sleep 3600"]
    volumes:
      - data:/data
volumes:
  data: {}
`;

const sums = (container, dir = '/data') => eng.docker('exec', container, 'sh', '-c',
  `cd ${dir} && busybox find . -type f | busybox sort | while read f; do busybox md5sum "$f"; done`);

function restic(repo, pw, ...args) {
  const sftp = repo.startsWith('sftp:')
    ? ['-o', `sftp.command=ssh -F /dev/null -p ${sshd.port} -i ${sshd.keyPath} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1 -s sftp`]
    : [];
  return execFileSync('restic', ['-r', repo, '--no-cache', ...sftp, ...args], {
    encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/root', RESTIC_PASSWORD: pw }, stdio: ['ignore', 'pipe', 'pipe'],
  });
}

before(async () => {
  eng = startEngine();
  sshd = startSshd();
  db = createDatabase('backups');
  core = await startCore({
    db, admin: true,
    env: { SERVERBOX_DOCKER_SOCKET: eng.sock, SERVERBOX_BACKUP_HELPER_IMAGE: 'local/busybox:1', SERVERBOX_NODE_CHECK_INTERVAL: '0' },
  });
  const n = await core.request('POST', '/api/v1/nodes', {
    json: { name: 'backed-node', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, labels: { env: 'lab' } },
  });
  assert.equal(n.status, 201, n.text);
  node = n.body;
  const s = await core.request('POST', '/api/v1/stacks', { json: { name: 'vault', node_id: 'local', compose: COMPOSE } });
  assert.equal(s.status, 201, s.text);
  stack = s.body;
  const d = await core.request('POST', `/api/v1/stacks/${stack.id}/deploy`, { json: {} });
  assert.equal(d.status, 202, d.text);
  const rev = await waitDeploy(core, stack.id, 1);
  assert.equal(rev.deploy_status, 'deployed', JSON.stringify(rev));
  await waitFor(() => { try { return sums('vault_app_1').includes('./sub/b'); } catch { return false; } }, { timeout: 30000, what: 'volume content' });
});

after(async () => {
  try { await core?.stop(); } finally { eng?.stop(); sshd?.stop(); }
});

test('repositories: local and SFTP are initialized; the password is sealed, masked, in no event', async () => {
  let r = await core.request('POST', '/api/v1/backups/repositories', {
    json: { name: 'here', kind: 'local', path: join(repoDir, 'r'), password: PW_LOCAL },
  });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.password, '********');
  assert.ok(!r.text.includes(PW_LOCAL));
  repos.local = r.body;
  assert.ok(existsSync(join(repoDir, 'r', 'config')), 'restic init made the repository');
  r = await core.request('POST', '/api/v1/backups/repositories', {
    json: { name: 'offsite', kind: 'sftp', host: '127.0.0.1', port: sshd.port, user: 'root', private_key: sshd.key, path: join(sftpDir, 'r'), password: PW_SFTP },
  });
  assert.equal(r.status, 201, r.text);
  assert.ok(!r.text.includes(PW_SFTP) && !r.text.includes('PRIVATE KEY'));
  repos.sftp = r.body;
  assert.ok(existsSync(join(sftpDir, 'r', 'config')), 'restic init over SFTP made the repository');
  // The same path again with another password does not open.
  r = await core.request('POST', '/api/v1/backups/repositories', {
    json: { name: 'again', kind: 'local', path: join(repoDir, 'r'), password: 'another-password' },
  });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.code, 'validation_failed');
  const l = await core.request('GET', '/api/v1/backups/repositories');
  assert.equal(l.status, 200);
  assert.equal(l.body.repositories.length, 2);
  assert.ok(!l.text.includes(PW_LOCAL) && !l.text.includes(PW_SFTP));
  const sealed = db.sql('SELECT sealed_password FROM backup_repository_secrets');
  assert.ok(sealed.startsWith('sb1:') && !sealed.includes(PW_LOCAL));
});

test('plans: the control plane and the stack volume, to both repositories', async () => {
  for (const [k, repo] of Object.entries(repos)) {
    const r = await core.request('POST', '/api/v1/backups/plans', {
      json: { name: `all-${k}`, repository_id: repo.id, control_plane: true, stack_id: stack.id, schedule: '0 3 * * *', retention: { daily: 7, weekly: 4 } },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.node_id, 'local');
    assert.ok(r.body.next_run && r.body.next_run.includes('T03:00:00'), r.text);
    plans[k] = r.body;
  }
});

test('runs: snapshots of the database, the key files and the volume; the password is never in ps or /proc', async () => {
  for (const k of ['local', 'sftp']) {
    const pw = k === 'local' ? PW_LOCAL : PW_SFTP;
    const r = await core.request('POST', `/api/v1/backups/plans/${plans[k].id}/run`);
    assert.equal(r.status, 202, r.text);
    // While it runs: every process's arguments and environment.
    let sawRestic = false;
    const leaks = [];
    const watch = (async () => {
      for (let i = 0; i < 400; i++) {
        const ps = execFileSync('ps', ['-eo', 'pid,args', 'e', '-ww'], { encoding: 'utf8' });
        if (ps.includes('restic')) sawRestic = true;
        if (ps.includes(pw)) leaks.push('ps');
        for (const pid of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
          try {
            const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
            if (!cmd.startsWith('restic')) continue;
            if (cmd.includes(pw)) leaks.push(`cmdline ${pid}`);
            if (readFileSync(`/proc/${pid}/environ`, 'utf8').includes(pw)) leaks.push(`environ ${pid}`);
          } catch { /* gone */ }
        }
        const j = await core.request('GET', `/api/v1/jobs/${r.body.job.id}`);
        if (['succeeded', 'failed'].includes(j.body.job.state)) break;
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    const job = await awaitJob(core, r.body.job, { timeout: 180000 });
    await watch;
    assert.equal(job.state, 'succeeded', JSON.stringify(job));
    assert.ok(sawRestic, 'restic was seen running');
    assert.deepEqual(leaks, []);
    const runs = await core.request('GET', `/api/v1/backups/runs?plan_id=${plans[k].id}`);
    assert.equal(runs.status, 200);
    const run = runs.body.runs[0];
    assert.equal(run.id, r.body.job.id);
    assert.equal(run.status, 'succeeded');
    assert.equal(run.checked, true);
    assert.deepEqual(run.snapshots.map((s) => s.part).sort(), ['database', 'keys', 'volume:data']);
    assert.ok(run.bytes > 100000, `bytes ${run.bytes}`);
    assert.ok(run.duration_ms >= 0);
    const ev = eventsOf(db, 'backup.run_succeeded').find((e) => e.data.id === run.id);
    assert.ok(ev && ev.data.snapshots.length === 3 && ev.data.bytes === run.bytes && ev.data.duration_ms >= 0);
    const plan = await core.request('GET', `/api/v1/backups/plans/${plans[k].id}`);
    assert.equal(plan.body.last_status, 'succeeded');
    assert.equal(plan.body.last_bytes, run.bytes);
  }
  // restic itself, with the password, lists both repositories' snapshots.
  // (Checkpoint snapshots may be there too: the daemon's periodic one.)
  const noCp = (l) => l.filter((x) => !(x.tags || []).includes('part:checkpoint') && x.part !== 'checkpoint');
  const local = noCp(JSON.parse(restic(join(repoDir, 'r'), PW_LOCAL, 'snapshots', '--json')));
  assert.equal(local.length, 3);
  const remote = noCp(JSON.parse(restic(`sftp:root@127.0.0.1:${join(sftpDir, 'r')}`, PW_SFTP, 'snapshots', '--json')));
  assert.equal(remote.length, 3);
  assert.ok(remote.some((s) => s.paths[0] === '/serverbox.dump'));
  // The API lists them with their parts.
  const snaps = await core.request('GET', `/api/v1/backups/repositories/${repos.local.id}/snapshots`);
  assert.equal(snaps.status, 200, snaps.text);
  assert.deepEqual(noCp(snaps.body.snapshots).map((s) => s.part).sort(), ['database', 'keys', 'volume:data']);
  const vol = snaps.body.snapshots.find((s) => s.part === 'volume:data');
  assert.equal(vol.volume, 'vault_data');
  assert.equal(vol.node_id, 'local');
});

test('the password is in no log line, event or answer', async () => {
  const all = db.sql("SELECT string_agg(body, E'\\n') FROM events");
  for (const pw of [PW_LOCAL, PW_SFTP]) {
    assert.ok(!all.includes(pw), 'events');
    assert.ok(!core.log().includes(pw), 'log');
  }
  assert.ok(!all.includes('PRIVATE KEY-----\n'), 'no key in events');
});

test('volume: wiped, restored from the snapshot (same volume, and a new one): checksums equal', async () => {
  const before = sums('vault_app_1');
  assert.ok(before.includes('./a.txt') && before.includes('./.hidden'));
  eng.docker('exec', 'vault_app_1', 'sh', '-c', 'rm -rf /data/* /data/.hidden; echo junk > /data/junk');
  assert.notEqual(sums('vault_app_1'), before);
  const snaps = await core.request('GET', `/api/v1/backups/repositories/${repos.sftp.id}/snapshots`);
  const vol = snaps.body.snapshots.find((s) => s.part === 'volume:data');
  let r = await core.request('POST', '/api/v1/backups/restore', { json: { repository_id: repos.sftp.id, snapshot_id: vol.id } });
  assert.equal(r.status, 202, r.text);
  let job = await awaitJob(core, r.body.job, { timeout: 120000 });
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  assert.equal(sums('vault_app_1'), before, 'same files, same contents, junk gone');
  // Into a new volume, from the local repository's snapshot (by its short id).
  const lsnaps = await core.request('GET', `/api/v1/backups/repositories/${repos.local.id}/snapshots`);
  const lvol = lsnaps.body.snapshots.find((s) => s.part === 'volume:data');
  r = await core.request('POST', '/api/v1/backups/restore', { json: { repository_id: repos.local.id, snapshot_id: lvol.short_id, volume: 'vault_copy' } });
  assert.equal(r.status, 202, r.text);
  job = await awaitJob(core, r.body.job, { timeout: 120000 });
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  const copy = eng.docker('run', '--rm', '-v', 'vault_copy:/copy', 'local/busybox:1', 'sh', '-c',
    'cd /copy && busybox find . -type f | busybox sort | while read f; do busybox md5sum "$f"; done');
  assert.equal(copy, before);
  assert.ok(eventsOf(db, 'backup.restored').length === 2);
  // No helper container is left behind.
  assert.equal(eng.docker('ps', '-aq', '--filter', 'label=serverbox.backup'), '');
});

test('checkpoints off the box: each new signed checkpoint is written to every repository', async () => {
  await core.request('POST', '/api/v1/annotations', { json: { message: 'before a checkpoint' } });
  const cp = await core.request('GET', '/api/v1/audit/checkpoint');
  assert.equal(cp.status, 200, cp.text);
  const written = await waitFor(() => {
    const evs = eventsOf(db, 'backup.checkpoint_written').filter((e) => e.data.seq === cp.body.seq);
    return evs.length === 2 ? evs : null;
  }, { timeout: 60000, interval: 250, what: 'the checkpoint in both repositories' });
  assert.deepEqual(written.map((e) => e.data.id).sort(), [repos.local.id, repos.sftp.id].sort());
  const dumped = restic(join(repoDir, 'r'), PW_LOCAL, 'dump', '--tag', 'part:checkpoint', 'latest', `/checkpoint-${cp.body.seq}.json`);
  assert.deepEqual(JSON.parse(dumped), cp.body);
  const snaps = await core.request('GET', `/api/v1/backups/repositories/${repos.sftp.id}/snapshots`);
  assert.ok(snaps.body.snapshots.some((s) => s.part === 'checkpoint' && s.seq === String(cp.body.seq)));
});

test('control plane: restored into a fresh database, verify-audit passes, nodes and stacks are back', async () => {
  const fresh = createDatabase('restored', { migrate: false });
  const dataDir = join(tempDir('sbx-restored-'), 'data');
  const pwFile = tempFile('pw', `${PW_LOCAL}\n`);
  const out = runCore(['restore', '--repository', join(repoDir, 'r'), '--repository-password-file', pwFile,
    '--database-url', fresh.ownerUrl, '--data-dir', dataDir]);
  assert.match(out.stdout, /restored the database from snapshot/);
  const v = runCore(['verify-audit'], { SERVERBOX_DATABASE_URL: fresh.ownerUrl });
  assert.match(v.stdout, /chain ok/);
  assert.equal(fresh.sql(`SELECT name FROM nodes WHERE id = '${node.id}'`), 'backed-node');
  assert.equal(fresh.sql(`SELECT name FROM stacks WHERE id = '${stack.id}'`), 'vault');
  assert.equal(readFileSync(join(dataDir, 'master.key'), 'utf8'), readFileSync(join(core.dataDir, 'master.key'), 'utf8'));
  assert.ok(existsSync(join(dataDir, 'audit-signing.key')));
  // A second restore refuses to overwrite the key files and changes nothing.
  const again = runCore(['restore', '--repository', join(repoDir, 'r'), '--repository-password-file', pwFile,
    '--database-url', fresh.ownerUrl, '--data-dir', dataDir], {}, { check: false });
  assert.notEqual(again.code, 0);
  // A daemon on the restored database and data dir opens the node's sealed key.
  const c2 = await startCore({ db: { url: fresh.url.replace('serverbox_app', 'serverbox_app'), ownerUrl: fresh.ownerUrl }, dataDir, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_DOCKER_SOCKET: eng.sock } });
  try {
    const t = await (async () => {
      const { createUser, login } = await import('./lib/harness.mjs');
      return (await login(c2, createUser(fresh, { role: 'admin' }))).token;
    })();
    const chk = await c2.request('POST', `/api/v1/nodes/${node.id}/check`, { token: t });
    assert.equal(chk.status, 200, chk.text);
    const st = await c2.request('GET', `/api/v1/stacks/${stack.id}`, { token: t });
    assert.equal(st.status, 200, st.text);
  } finally { await c2.stop(); }
});
