// Measurements for bench/backups.bench.sh (see there). Not a *.bench.mjs:
// it needs the services that script starts.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createDatabase, startCore, runCore, tempDir, tempFile, ROOT } from '../../tests/lib/harness.mjs';

const EVENTS = Number(process.env.BENCH_BACKUP_EVENTS || 1000000);
const row = (what, v, unit, target) => console.log(`| ${what} | ${v.toFixed(1)} ${unit} | ≤ ${target} ${unit} | ${(v / target).toFixed(2)} |`);

const db = createDatabase('bbench');
const threads = 50;
execFileSync(join(ROOT, 'build', 'tools', 'append-load'), [db.url, String(threads), String(Math.ceil(EVENTS / threads)), 'bench-backup'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
const events = Number(db.sql('SELECT count(*) FROM events'));
const core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_CHECKPOINT_INTERVAL: '0' } });
const pw = 'bench-backup-password';
try {
  const repoPath = join(tempDir('sbx-bench-repo-'), 'r');
  let r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: 'bench', path: repoPath, password: pw } });
  if (r.status !== 201) throw new Error(r.text);
  r = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'cp', repository_id: r.body.id, control_plane: true } });
  if (r.status !== 201) throw new Error(r.text);
  const plan = r.body;
  const t0 = performance.now();
  r = await core.request('POST', `/api/v1/backups/plans/${plan.id}/run`);
  const id = r.body.job.id;
  let run;
  for (;;) {
    run = (await core.request('GET', `/api/v1/backups/runs/${id}`)).body;
    if (run?.status && run.status !== 'running') break;
    await new Promise((res) => setTimeout(res, 200));
  }
  if (run.status !== 'succeeded') throw new Error(JSON.stringify(run));
  const backup = (performance.now() - t0) / 1000;
  const fresh = createDatabase('brestore', { migrate: false });
  const t1 = performance.now();
  runCore(['restore', '--repository', repoPath, '--repository-password-file', tempFile('pw', pw),
    '--database-url', fresh.ownerUrl, '--data-dir', join(tempDir('sbx-bench-data-'), 'data')]);
  const restore = (performance.now() - t1) / 1000;
  const back = Number(fresh.sql('SELECT count(*) FROM events'));
  if (back < events) throw new Error(`restored ${back} of ${events} events`);
  const mb = (run.bytes / 1e6).toFixed(0);
  row(`control-plane backup, ${events.toLocaleString('en')} events (pg_dump ${mb} MB → restic, check ${process.env.SERVERBOX_BACKUP_CHECK_PERCENT || 5}%)`, backup, 's', 120);
  row(`control-plane restore, ${events.toLocaleString('en')} events (restic dump → pg_restore)`, restore, 's', 300);
} finally {
  await core.stop();
}
