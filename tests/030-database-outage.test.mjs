// PostgreSQL goes away while the daemon serves: liveness stays, readiness
// and database-backed calls turn 503 JSON, and everything recovers by itself
// when the database returns — same process, no restart.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor, ROOT } from './lib/harness.mjs';

const SERVICES = join(ROOT, 'scripts', 'services.sh');
const dir = mkdtempSync(join(tmpdir(), 'sbx-outage-'));
execFileSync('chmod', ['755', dir]);

function pg(cmd) {
  const out = execFileSync(SERVICES, [cmd, dir], { encoding: 'utf8' });
  return Object.fromEntries(out.split('\n').filter(Boolean).map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1).replace(/^'|'$/g, '')];
  }));
}

let core;
after(async () => {
  await core?.stop();
  pg('stop-pg');
});

test('database down: live 200, ready 503 naming it, API 503 JSON; back: all recover in-process', async () => {
  const env = pg('start-pg');
  const db = createDatabase('outage', { socket: env.SERVERBOX_PG_SOCKET, port: env.SERVERBOX_PG_PORT });
  core = await startCore({ db, admin: true });
  const pid = core.proc.pid;
  assert.equal((await core.request('GET', '/health/ready')).status, 200);

  pg('stop-pg');
  const t0 = Date.now();
  const down = await waitFor(async () => {
    const r = await core.request('GET', '/health/ready');
    return r.status === 503 ? r : null;
  }, { timeout: 5000, interval: 100, what: 'ready to turn 503' });
  assert.ok(Date.now() - t0 <= 5000);
  assert.equal(down.body.status, 'not_ready');
  assert.equal(down.body.dependencies.database.state, 'down');
  assert.equal((await core.request('GET', '/health/live')).status, 200);

  const write = await core.request('POST', '/api/v1/annotations', { json: { message: 'during outage' } });
  // An authenticated write needs the database: 503 JSON, never a crash or a hang.
  assert.equal(write.status, 503, write.text);
  assert.equal(typeof write.body.error.message, 'string');

  pg('start-pg');
  const t1 = Date.now();
  await waitFor(async () => (await core.request('GET', '/health/ready')).status === 200,
    { timeout: 10000, interval: 100, what: 'ready to return to 200' });
  assert.ok(Date.now() - t1 <= 10000);
  assert.equal(core.proc.pid, pid);
  assert.ok(core.alive());
  // the write path works again through the same pool
  const again = await waitFor(async () => {
    const r = await core.request('POST', '/api/v1/annotations', { json: { message: 'after outage' } });
    return r.status !== 503 ? r : null;
  }, { timeout: 10000, what: 'writes to recover' });
  assert.equal(again.status, 201, again.text);
});
