// SFTP private keys written for one restic call live in the data dir's
// backups-tmp/<random>/ only during that call; a daemon killed meanwhile
// leaves them, and the next start removes those older than the longest run
// (7 h) — never a fresh one another call may be using.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, utimesSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, tempDir } from './lib/harness.mjs';

test('stale SFTP key directories are removed at start, fresh ones kept', async () => {
  const data = tempDir('sbx-data-');
  const old = join(data, 'backups-tmp', 'aaaaaaaaaaaaaaaa');
  const fresh = join(data, 'backups-tmp', 'bbbbbbbbbbbbbbbb');
  for (const d of [old, fresh]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileSync(join(d, 'key'), '-----BEGIN OPENSSH PRIVATE KEY-----\nx\n', { mode: 0o600 });
    writeFileSync(join(d, 'known_hosts'), '');
  }
  const t = Date.now() / 1000 - 8 * 3600;
  utimesSync(old, t, t);
  const db = createDatabase('bstale');
  const core = await startCore({ db, dataDir: data, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  try {
    assert.ok(!existsSync(old), 'the stale directory and its key are gone');
    assert.ok(existsSync(join(fresh, 'key')), 'a fresh one is kept');
    assert.match(core.log(), /removed a stale SFTP key directory/);
  } finally { await core.stop(); }
});
