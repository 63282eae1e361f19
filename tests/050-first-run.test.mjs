// The first run on a fresh machine, in the small: the Makefile must not
// depend on what pkg-config finds when it is read (deps installs the
// libraries afterwards), a service that fails to start stops `make run` with
// its own error, and PostgreSQL (which runs as the postgres user when we are
// root) works from a clone that user cannot enter, such as /root/serverbox.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const sh = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: 120000, ...opts });

test('make run and make bench build in a sub-make after deps, whatever pkg-config knew when the Makefile was read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-nopkg-'));
  try {
    // A pkg-config that finds nothing, as on a machine before bootstrap.
    writeFileSync(join(dir, 'pkg-config'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(dir, 'pkg-config'), 0o755);
    const env = { ...process.env, PATH: `${dir}:${process.env.PATH}` };
    for (const target of ['run', 'bench']) {
      const r = sh('make', ['-n', target], { env });
      assert.equal(r.status, 0, `make -n ${target}: ${r.stderr}`);
      const lines = r.stdout.split('\n');
      const boot = lines.findIndex((l) => l.includes('scripts/bootstrap.sh'));
      const sub = lines.findIndex((l) => /make.* all/.test(l));
      assert.ok(boot >= 0, `${target} runs deps first`);
      assert.ok(sub > boot, `${target} builds in a sub-make after deps:\n${r.stdout.slice(0, 2000)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a PostgreSQL that cannot start stops run.sh with its own error', () => {
  const runDir = mkdtempSync(join(tmpdir(), 'sbx-badpg-'));
  try {
    chmodSync(runDir, 0o755);
    // A data directory that claims to be a cluster and is not one.
    const pg = join(runDir, 'services', 'pgdata');
    mkdirSync(pg, { recursive: true });
    writeFileSync(join(pg, 'PG_VERSION'), '15\n');
    const env = { ...process.env, SERVERBOX_RUN_DIR: runDir };
    delete env.SERVERBOX_DATABASE_URL;
    const r = sh('scripts/run.sh', [], { env });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /PostgreSQL did not start/);
    assert.match(r.stderr, /run: PostgreSQL could not be started/);
    assert.doesNotMatch(r.stdout, /PostgreSQL 15 running/);
  } finally {
    sh('scripts/services.sh', ['stop-all', join(runDir, 'services')]);
    rmSync(runDir, { recursive: true, force: true });
  }
});

test('as root, PostgreSQL works from a directory the postgres user cannot enter', { skip: process.getuid() !== 0 && 'needs root' }, () => {
  const home = mkdtempSync(join(tmpdir(), 'sbx-roothome-'));
  chmodSync(home, 0o700); // like /root
  const services = join(home, 'serverbox', 'run', 'services');
  try {
    const r = sh('scripts/services.sh', ['start-pg', services]);
    assert.equal(r.status, 0, r.stderr);
    const vars = Object.fromEntries([...r.stdout.matchAll(/^(\w+)='([^']*)'$/gm)].map((m) => [m[1], m[2]]));
    assert.match(vars.SERVERBOX_PG_DIR, /^\/var\/lib\/serverbox-run\//);
    assert.ok(existsSync(join(vars.SERVERBOX_PG_DIR, 'pgdata', 'PG_VERSION')));
    const q = sh('/usr/lib/postgresql/15/bin/psql', ['-X', '-tAc', 'SELECT 1', vars.SERVERBOX_MIGRATE_DATABASE_URL]);
    assert.equal(q.stdout.trim(), '1', q.stderr);
  } finally {
    const s = sh('scripts/services.sh', ['stop-pg', services]);
    assert.equal(s.status, 0, s.stderr);
    // The relocated cluster belongs to this test: remove it.
    const out = sh('bash', ['-c', `printf '%s' "$(cd '${services}' && pwd)" | sha256sum | cut -c1-16`]);
    rmSync(join('/var/lib/serverbox-run', out.stdout.trim()), { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
});
