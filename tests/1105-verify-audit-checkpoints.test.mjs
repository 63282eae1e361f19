// `serverbox-core verify-audit --checkpoints DIR` (issue #19) with the real
// CLI, PostgreSQL and restic: the chain is checked against signed checkpoints
// kept elsewhere (one as a backup repository keeps it, dumped with restic,
// one as GET /api/v1/audit/checkpoint answers it). A history rewritten by the
// schema owner (an event's body edited and every hash after it recomputed)
// verifies on its own, but not against the checkpoints; a checkpoint whose
// signature does not verify, or that another key signed, is refused. The
// restore test of a backup made before the rewrite fails too: the restored
// chain verifies, but not against the live one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, runCore, tempDir, waitFor } from './lib/harness.mjs';
import { eventsOf } from './lib/stacks.mjs';
import { awaitJob } from './lib/jobs.mjs';

let db, core, dataDir, plan;
const PW = `cp-pw-${Math.random().toString(16).slice(2)}`;
const repoDir = join(tempDir('sbx-repo-'), 'r');
const dir = tempDir('sbx-checkpoints-');
const cps = [];

const verify = (args = []) => runCore(['verify-audit', ...args], { SERVERBOX_DATABASE_URL: db.ownerUrl }, { check: false });

before(async () => {
  db = createDatabase('cpverify');
  core = await startCore({ db, admin: true });
  const r = await core.request('POST', '/api/v1/backups/repositories', { json: { name: 'offbox', path: repoDir, password: PW } });
  assert.equal(r.status, 201, r.text);
  // Checkpoint 1, kept in the repository; then more history and checkpoint 2.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 5; i++) {
      assert.equal((await core.request('POST', '/api/v1/annotations', { json: { message: `round ${round} note ${i}` } })).status, 201);
    }
    const cp = await core.request('GET', '/api/v1/audit/checkpoint');
    assert.equal(cp.status, 200, cp.text);
    cps.push(cp.body);
    await waitFor(() => eventsOf(db, 'backup.checkpoint_written').some((e) => e.data.seq === cp.body.seq),
      { timeout: 60000, interval: 250, what: 'the checkpoint in the repository' });
  }
  // A backup of the control plane as it is now (for the restore test below).
  const p = await core.request('POST', '/api/v1/backups/plans', { json: { name: 'cp', repository_id: r.body.id, control_plane: true } });
  assert.equal(p.status, 201, p.text);
  plan = p.body;
  const run = await core.request('POST', `/api/v1/backups/plans/${plan.id}/run`);
  assert.equal((await awaitJob(core, run.body.job, { timeout: 120000 })).state, 'succeeded');
  dataDir = core.dataDir;
  await core.stop();
  core = null;
  // One file from the repository (as an operator would fetch it offline), one as the API answered it.
  const dumped = execFileSync('restic', ['-r', repoDir, '--no-cache', 'dump', '--tag', 'part:checkpoint', '--path', `/checkpoint-${cps[0].seq}.json`, 'latest', `/checkpoint-${cps[0].seq}.json`], {
    encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/root', RESTIC_PASSWORD: PW },
  });
  assert.equal(JSON.parse(dumped).seq, cps[0].seq);
  writeFileSync(join(dir, `checkpoint-${cps[0].seq}.json`), dumped);
  writeFileSync(join(dir, `checkpoint-${cps[1].seq}.json`), JSON.stringify(cps[1]));
});

after(async () => { await core?.stop(); });

test('the chain matches its checkpoints', () => {
  const v = verify(['--checkpoints', dir]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /chain ok/);
  assert.match(v.stdout, /2 of 2 checkpoints match the chain/);
  assert.match(v.stdout, new RegExp(`checkpoint-${cps[0].seq}\\.json: ok`));
});

test('a checkpoint whose signature does not verify is refused; an empty directory is an error', () => {
  const bad = tempDir('sbx-badcp-');
  const forged = { ...cps[1], hash: '00'.repeat(32) };
  writeFileSync(join(bad, 'forged.json'), JSON.stringify(forged));
  let v = verify(['--checkpoints', bad]);
  assert.equal(v.code, 1, v.stdout);
  assert.match(v.stdout, /forged\.json: BAD: the signature does not verify/);
  // Pinned: the right key passes, another one does not.
  assert.equal(verify(['--checkpoints', dir, '--checkpoint-public-key', cps[0].public_key]).code, 0);
  v = verify(['--checkpoints', dir, '--checkpoint-public-key', Buffer.alloc(32, 7).toString('base64')]);
  assert.equal(v.code, 1, v.stdout);
  assert.match(v.stdout, /signed by another key than --checkpoint-public-key/);
  v = verify(['--checkpoints', tempDir('sbx-emptycp-')]);
  assert.equal(v.code, 2);
  assert.match(v.stderr, /no checkpoint/);
});

test('a history rewritten by the owner, hashes recomputed, verifies alone but not against the checkpoints', () => {
  // Edit an event before the first checkpoint, as the schema owner, and
  // recompute prev_hash and hash of every event from it on.
  const target = Number(db.sql("SELECT min(seq) FROM events WHERE type = 'annotation.created'"));
  assert.ok(target > 0 && target < cps[0].seq);
  const before = db.sql(`SELECT body FROM events WHERE seq = ${target}`);
  assert.match(before, /round 0 note 0/);
  db.sql(`BEGIN;
    ALTER TABLE events DISABLE TRIGGER events_no_update_delete;
    UPDATE events SET body = replace(body, 'round 0 note 0', 'nothing happened') WHERE seq = ${target};
    DO $$
    DECLARE r record; p bytea;
    BEGIN
      SELECT hash INTO p FROM events WHERE seq = ${target} - 1;
      FOR r IN SELECT seq, body FROM events WHERE seq >= ${target} ORDER BY seq LOOP
        UPDATE events SET prev_hash = p, hash = sha256(p || convert_to(r.body, 'UTF8')) WHERE seq = r.seq;
        p := sha256(p || convert_to(r.body, 'UTF8'));
      END LOOP;
    END $$;
    ALTER TABLE events ENABLE TRIGGER events_no_update_delete;
    COMMIT;`, 'serverbox');
  assert.match(db.sql(`SELECT body FROM events WHERE seq = ${target}`), /nothing happened/);
  // The chain alone re-verifies: that is the attack.
  const alone = verify();
  assert.equal(alone.code, 0, alone.stdout + alone.stderr);
  assert.match(alone.stdout, /chain ok/);
  // Against the checkpoints kept elsewhere it does not.
  const v = verify(['--checkpoints', dir]);
  assert.equal(v.code, 1, v.stdout);
  assert.match(v.stdout, new RegExp(`checkpoint-${cps[0].seq}\\.json: MISMATCH at seq ${cps[0].seq}`));
  assert.match(v.stdout, /history before it was rewritten/);
  assert.match(v.stdout, /0 of 2 checkpoints match the chain/);
  assert.ok(readFileSync(join(dir, `checkpoint-${cps[0].seq}.json`), 'utf8').includes(cps[0].hash));
});

test('after the rewrite, a restore test of an earlier backup fails: its chain is not the live one', async () => {
  const role = `sbx_scratch_${Math.random().toString(16).slice(2, 8)}`;
  db.sql(`CREATE ROLE ${role} LOGIN CREATEDB`);
  core = await startCore({ db, admin: true, dataDir, env: { SERVERBOX_BACKUP_SCRATCH_DATABASE_URL: `postgresql://${role}@/postgres?host=${db.socket}&port=${db.port}` } });
  const r = await core.request('POST', `/api/v1/backups/plans/${plan.id}/restore-test`);
  assert.equal(r.status, 202, r.text);
  const job = await awaitJob(core, r.body.job, { timeout: 120000 });
  assert.equal(job.state, 'failed', JSON.stringify(job));
  const ev = eventsOf(db, 'backup.restore_test_failed').find((e) => e.data.id === r.body.job.id);
  assert.match(ev.data.reason, /differs from the live chain's: one of them was rewritten/);
  assert.equal(ev.data.snapshots[0].part, 'database');
  assert.equal(db.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'serverbox_restore_test_%'"), '0');
});
