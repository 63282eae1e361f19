// docker-compose.yml (production) and docker-compose.docker.yml (opt-in local
// engine) pass Debian's `docker-compose config`, and say what production
// needs: secrets from files, a one-shot migration before the core, the core
// non-root-capable (cap_drop ALL, no-new-privileges), read-only root, health
// on /health/ready, named volumes, the Docker socket only in the override.
// The Dockerfile installs the -dev package of every pkg-config name the
// Makefile builds with, and the package of every library the binary links.
// Starting the stack for real is `make test-compose` (scripts/test-compose.sh),
// not part of this test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './lib/harness.mjs';

function config(files, env = {}) {
  const args = files.flatMap((f) => ['-f', join(ROOT, f)]);
  const r = spawnSync('docker-compose', [...args, 'config'], { encoding: 'utf8', env: { ...process.env, ...env }, cwd: tempDir('sbx-compose-') });
  if (r.status !== 0) return { code: r.status, err: r.stderr };
  const y = spawnSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], { input: r.stdout, encoding: 'utf8' });
  assert.equal(y.status, 0, y.stderr);
  return { code: 0, cfg: JSON.parse(y.stdout) };
}
const secrets = tempDir('sbx-secrets-');

test('docker-compose.yml: valid, secrets from files, migrate once before a read-only core with a readiness check', () => {
  const { code, cfg, err } = config(['docker-compose.yml'], { SERVERBOX_SECRETS_DIR: secrets });
  assert.equal(code, 0, err);
  assert.deepEqual(Object.keys(cfg.services).sort(), ['core', 'migrate', 'postgres', 'redis']);
  assert.equal(cfg.secrets.postgres_password.file, join(secrets, 'postgres_password'));
  assert.equal(cfg.secrets.serverbox_app_password.file, join(secrets, 'serverbox_app_password'));
  const text = JSON.stringify(cfg);
  assert.doesNotMatch(text, /PASSWORD"?:\s*"[^/]/, 'no password value in the configuration');
  assert.doesNotMatch(text, /docker\.sock/, 'no Docker socket without the override');
  const core = cfg.services.core;
  assert.equal(core.read_only, true);
  assert.deepEqual(core.cap_drop, ['ALL']);
  assert.ok(core.security_opt.includes('no-new-privileges:true'));
  assert.ok(core.healthcheck.test.join(' ').includes('/health/ready'));
  assert.equal(core.depends_on.migrate.condition, 'service_completed_successfully');
  assert.deepEqual(core.volumes.map((v) => v.source || v.split(':')[0]), ['coredata']);
  assert.ok(core.ports.every((p) => String(p.host_ip ?? p).startsWith('127.0.0.1')), 'published on loopback only by default');
  assert.equal(cfg.services.migrate.restart, undefined, 'migrate is one-shot');
  assert.deepEqual(cfg.services.migrate.command, ['migrate']);
  assert.equal(cfg.services.migrate.read_only, true);
  assert.deepEqual(Object.keys(cfg.volumes).sort(), ['coredata', 'pgdata']);
  assert.equal(cfg.services.postgres.environment.POSTGRES_PASSWORD_FILE, '/run/secrets/postgres_password');
  // The image runs as the serverbox user, through the entrypoint that reads the secrets.
  const df = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  assert.match(df, /^USER serverbox$/m);
  assert.match(df, /^ENTRYPOINT \["\/usr\/local\/bin\/serverbox-entrypoint"\]$/m);
  for (const s of ['scripts/docker-entrypoint.sh', 'scripts/compose-init-db.sh', 'scripts/test-compose.sh']) {
    const n = spawnSync('sh', ['-n', join(ROOT, s)], { encoding: 'utf8' });
    assert.equal(n.status, 0, `${s}: ${n.stderr}`);
  }
});

test('docker-compose.docker.yml adds the socket and the docker group, and refuses to guess the group', () => {
  const { code, cfg, err } = config(['docker-compose.yml', 'docker-compose.docker.yml'], { SERVERBOX_SECRETS_DIR: secrets, DOCKER_GID: '107' });
  assert.equal(code, 0, err);
  const core = cfg.services.core;
  assert.ok(JSON.stringify(core.volumes).includes('/var/run/docker.sock'));
  assert.deepEqual(core.group_add.map(String), ['107']);
  assert.equal(core.environment.SERVERBOX_DOCKER_SOCKET, '/var/run/docker.sock');
  assert.equal(core.read_only, true, 'the override keeps the base hardening');
  const env = { ...process.env, SERVERBOX_SECRETS_DIR: secrets };
  delete env.DOCKER_GID;
  const bad = config(['docker-compose.yml', 'docker-compose.docker.yml'], env);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /set DOCKER_GID/);
});

// The package (dpkg -S) that owns a file, through symlinks.
function owner(path) {
  const real = spawnSync('readlink', ['-f', path], { encoding: 'utf8' }).stdout.trim();
  const r = spawnSync('dpkg', ['-S', real], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split(':')[0] : null;
}

test('the Dockerfile builds with every library the Makefile names and runs with every one the binary links', () => {
  const docker = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const [build, run] = docker.split(/^FROM .*$/m).slice(1);
  assert.ok(build && run, 'a build stage and a runtime stage');
  const words = (stage) => new Set(stage.split(/[\s\\]+/));
  const pkgs = readFileSync(join(ROOT, 'Makefile'), 'utf8').match(/^PKGS\s*:=\s*(.*)$/m)[1].trim().split(/\s+/);
  for (const p of pkgs) {
    const dir = spawnSync('pkg-config', ['--variable=pcfiledir', p], { encoding: 'utf8' }).stdout.trim();
    const dev = owner(join(dir, `${p}.pc`));
    assert.ok(dev, `${p}.pc belongs to a package`);
    assert.ok(words(build).has(dev), `the build stage installs ${dev} (for pkg-config ${p})`);
  }
  const bin = join(ROOT, 'build', 'serverbox-core');
  const needed = spawnSync('objdump', ['-p', bin], { encoding: 'utf8' }).stdout.match(/NEEDED\s+(\S+)/g).map((l) => l.split(/\s+/)[1]);
  const ldd = spawnSync('ldd', [bin], { encoding: 'utf8' }).stdout;
  for (const lib of needed.filter((l) => !/^(libc|libm|libpthread|libdl|ld-linux)/.test(l))) {
    const path = ldd.match(new RegExp(`^\\s*${lib.replace(/[.+]/g, '\\$&')} => (\\S+)`, 'm'))?.[1];
    assert.ok(path, `ldd resolves ${lib}`);
    const pkg = owner(path);
    assert.ok(pkg, `${lib} belongs to a package`);
    assert.ok(words(run).has(pkg), `the runtime stage installs ${pkg} (for ${lib})`);
  }
});
