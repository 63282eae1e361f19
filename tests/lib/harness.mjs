// Test harness: private databases, daemons under ASan/UBSan, and HTTP helpers.
// The services themselves (PostgreSQL, Redis) are started once per run by
// scripts/test.sh; every test file makes its own database so files can run in
// parallel without seeing each other's events.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CORE_BIN = process.env.SBX_CORE_BIN || join(ROOT, 'build', 'asan', 'serverbox-core');
const PG_BIN = '/usr/lib/postgresql/15/bin';

// Temporary directories made for a test file, removed when its process
// exits (not at a daemon's stop: a restarted daemon reuses its data dir).
const tempDirs = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
export function tempDir(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through 'make test' or scripts/test.sh`);
  return v;
}

const asRoot = process.getuid && process.getuid() === 0;

// Runs psql as the PostgreSQL superuser against the run's cluster.
export function psql(sql, { db = 'postgres', user = 'postgres', socket, port } = {}) {
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-tA', '-h', socket || env('SBX_TEST_PG_SOCKET'),
    '-p', String(port || env('SBX_TEST_PG_PORT')), '-U', user, '-d', db, '-c', sql];
  const cmd = asRoot ? 'runuser' : join(PG_BIN, 'psql');
  const full = asRoot ? ['-u', 'postgres', '--', join(PG_BIN, 'psql'), ...args] : args;
  return execFileSync(cmd, full, { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 }).trim();
}

// A fresh database owned by the schema owner, migrated. Returns its URLs.
export function createDatabase(prefix = 't', { socket, port, migrate = true } = {}) {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const s = socket || env('SBX_TEST_PG_SOCKET');
  const p = port || env('SBX_TEST_PG_PORT');
  psql(`CREATE DATABASE ${name} OWNER serverbox ENCODING 'UTF8' TEMPLATE template0`, { socket: s, port: p });
  const db = {
    name,
    url: `postgresql://serverbox_app@/${name}?host=${s}&port=${p}`,
    ownerUrl: `postgresql://serverbox@/${name}?host=${s}&port=${p}`,
    socket: s,
    port: p,
    sql: (q, user = 'postgres') => psql(q, { db: name, user, socket: s, port: p }),
  };
  if (migrate) runCore(['migrate'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  return db;
}

const SAN_ENV = {
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=86:halt_on_error=1',
  LSAN_OPTIONS: `suppressions=${join(ROOT, 'tests', 'lsan.supp')}:print_suppressions=0`,
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
};

function cleanEnv(extra) {
  const e = { ...process.env, ...SAN_ENV };
  for (const k of Object.keys(e)) if (k.startsWith('SERVERBOX_')) delete e[k];
  return { ...e, ...extra };
}

// Runs a core subcommand to completion. Returns {code, stdout, stderr}.
export function runCore(args, envExtra = {}, { check = true, input } = {}) {
  try {
    const stdout = execFileSync(CORE_BIN, args, { env: cleanEnv(envExtra), encoding: 'utf8', input,
      stdio: ['pipe', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const r = { code: e.status, stdout: e.stdout || '', stderr: e.stderr || '' };
    if (check) throw new Error(`serverbox-core ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r;
  }
}

export function assertNoSanitizerReport(text, what = 'daemon') {
  for (const marker of ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:']) {
    assert.ok(!text.includes(marker), `${what} reported a sanitizer error:\n${text.slice(text.indexOf(marker) - 200, text.indexOf(marker) + 3000)}`);
  }
}

// Starts serverbox-core serve on a free port. `db` is from createDatabase.
export async function startCore({ db, redisUrl, args = [], env: envExtra = {}, dataDir, admin = false } = {}) {
  const dir = dataDir || tempDir('sbx-core-');
  const e = {
    SERVERBOX_LISTEN: '127.0.0.1:0',
    SERVERBOX_DATA_DIR: dir,
    SERVERBOX_LOG_LEVEL: 'info',
    // Test nodes are sshds on loopback, which the default refuses
    // (tests/151-authz-findings.test.mjs checks the default itself).
    SERVERBOX_NODE_ALLOWED_NETWORKS: '127.0.0.0/8',
    ...(db ? { SERVERBOX_DATABASE_URL: db.url, SERVERBOX_MIGRATE_DATABASE_URL: db.ownerUrl } : {}),
    ...(redisUrl ? { SERVERBOX_REDIS_URL: redisUrl } : {}),
    ...envExtra,
  };
  const proc = spawn(CORE_BIN, ['serve', ...args], { env: cleanEnv(e), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    // A daemon that never says it listens is killed, not left behind.
    const t = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`daemon did not start:\n${log}`)); }, 20000);
    const check = () => {
      const m = log.match(/msg="listening".* port=(\d+)/);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    };
    proc.stderr.on('data', check);
    proc.stdout.on('data', check);
    exited.then(({ code }) => { clearTimeout(t); reject(new Error(`daemon exited ${code} at start:\n${log}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  const core = {
    proc, port, base, dataDir: dir,
    log: () => log,
    exited,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    async stop({ expectClean = true } = {}) {
      if (core.alive()) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20000);
      const r = await exited;
      clearTimeout(t);
      if (expectClean) {
        assertNoSanitizerReport(log);
        assert.equal(r.code, 0, `daemon exit status ${r.code} (${r.signal}):\n${log.slice(-4000)}`);
      }
      return r;
    },
    // With startCore({ admin: true }) requests carry an admin's bearer token
    // unless the call names its own `token` (null or undefined = anonymous).
    token: undefined,
    request: (method, path, opts = {}) =>
      request(base, method, path, 'token' in opts ? opts : { ...opts, token: core.token }),
  };
  if (admin) {
    if (!db) throw new Error('startCore({ admin: true }) needs a db');
    core.admin = createUser(db, { role: 'admin' });
    core.token = (await login(core, core.admin)).token;
  }
  return core;
}

// One HTTP request. Returns {status, headers, body (parsed JSON when it is), text}.
export async function request(base, method, path, { body, json, headers = {}, token } = {}) {
  const h = { ...headers };
  let payload = body;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
  }
  if (token) h.Authorization = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers: h, body: payload });
  const text = await res.text();
  let parsed;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

export async function waitFor(fn, { timeout = 10000, interval = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

export function tempFile(name, content, mode = 0o600) {
  const dir = tempDir('sbx-');
  const p = join(dir, name);
  writeFileSync(p, content, { mode });
  return p;
}

// ---- identity helpers (shared by every test that calls protected routes) ----
// createUser(db, {username, role, password}): makes a user with the
// `create-user` subcommand (argon2id hash, user.created event) and returns
// {username, role, password}. Defaults: a random admin with a random password.
// login(core, user): POST /api/v1/auth/login; returns the body
// ({token, csrf_token, user}) and asserts 200.
// adminToken(core, db): both at once; returns a bearer token for an admin,
// which is what most tests of other resources need:
//   const token = await adminToken(core, db);
//   await core.request('POST', '/api/v1/annotations', { token, json: {...} });
// apiToken(core, token, {role, name, expires_in}): an sbx_ API token made by
// the caller of `token`.
export function createUser(db, { username, role = 'admin', password } = {}) {
  const u = {
    username: username || `u${randomBytes(4).toString('hex')}`,
    role,
    password: password || `pw-${randomBytes(12).toString('hex')}`,
  };
  runCore(['create-user', '--username', u.username, '--role', u.role, '--password-stdin'],
    { SERVERBOX_DATABASE_URL: db.url }, { input: `${u.password}\n` });
  return u;
}

export async function login(core, user) {
  const r = await core.request('POST', '/api/v1/auth/login', { json: { username: user.username, password: user.password } });
  assert.equal(r.status, 200, `login as ${user.username}: ${r.text}`);
  return r.body;
}

export async function adminToken(core, db) {
  return (await login(core, createUser(db, { role: 'admin' }))).token;
}

export async function apiToken(core, token, { role, name = 'test', expires_in } = {}) {
  const json = { name };
  if (role) json.role = role;
  if (expires_in !== undefined) json.expires_in = expires_in;
  const r = await core.request('POST', '/api/v1/tokens', { token, json });
  assert.equal(r.status, 201, r.text);
  return r.body;
}
