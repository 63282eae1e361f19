// Helpers for the GitOps app tests (tests/12xx): a bare git repository
// served by `git daemon` on loopback (the real git protocol), a work tree to
// commit and push from, a private Caddy with its admin API on loopback, and
// waiting for a deployment to finish.
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { tempDir, waitFor } from './harness.mjs';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

// `count` consecutive free ports (checked one by one; good enough on loopback).
export async function freeRange(count) {
  for (let tries = 0; tries < 50; tries++) {
    // Below the kernel's ephemeral ports (32768-60999): an outgoing connection
    // of a test running beside this one must not take a route port meanwhile.
    const base = 20000 + Math.floor(Math.random() * (12000 - count));
    let ok = true;
    for (let p = base; p < base + count && ok; p++) {
      ok = await new Promise((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(false));
        s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
      });
    }
    if (ok) return base;
  }
  throw new Error('no free port range');
}

const git = (cwd, ...args) =>
  execFileSync('git', ['-c', 'user.name=Serverbox Test', '-c', 'user.email=test@serverbox.invalid',
    '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

// A git daemon serving DIR/<name>.git on 127.0.0.1, and a work tree per repo.
export async function startGitServer() {
  const dir = tempDir('sbx-git-');
  const port = await freePort();
  const proc = spawn('git', ['daemon', '--reuseaddr', '--export-all', `--base-path=${dir}`, '--listen=127.0.0.1',
    `--port=${port}`, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`git daemon exited: ${log}`);
    return new Promise((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
  }, { timeout: 30000, what: 'git daemon listening' });
  return {
    dir, port, log: () => log,
    repo(name) {
      const bare = join(dir, `${name}.git`);
      git(dir, 'init', '-q', '--bare', bare);
      const work = tempDir(`sbx-work-${name}-`);
      git(work, 'init', '-q', '-b', 'main');
      git(work, 'remote', 'add', 'origin', bare);
      return {
        url: `git://127.0.0.1:${port}/${name}.git`,
        work,
        // Writes files ({path: content|null to delete}), commits, pushes; returns the commit.
        commit(files, message = 'change', branch = 'main') {
          for (const [p, c] of Object.entries(files)) {
            const full = join(work, p);
            if (c === null) rmSync(full, { force: true });
            else { mkdirSync(join(full, '..'), { recursive: true }); writeFileSync(full, c); }
          }
          git(work, 'add', '-A');
          git(work, 'commit', '-q', '-m', message);
          git(work, 'push', '-q', 'origin', `HEAD:refs/heads/${branch}`);
          return git(work, 'rev-parse', 'HEAD');
        },
      };
    },
    stop() { proc.kill('SIGTERM'); },
  };
}

// A private Caddy: admin API on loopback, nothing persisted.
export async function startCaddy() {
  const dir = tempDir('sbx-caddy-');
  const adminPort = await freePort();
  const cfg = join(dir, 'caddy.json');
  writeFileSync(cfg, JSON.stringify({ admin: { listen: `127.0.0.1:${adminPort}`, config: { persist: false } } }));
  const proc = spawn('caddy', ['run', '--config', cfg], {
    env: { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitFor(async () => (await fetch(`${admin}/config/`).catch(() => null))?.ok, { timeout: 20000, what: 'caddy admin API' });
  return {
    admin, log: () => log,
    config: async () => (await fetch(`${admin}/config/`)).json(),
    stop: async () => {
      await fetch(`${admin}/stop`, { method: 'POST' }).catch(() => {});
      await new Promise((r) => { if (proc.exitCode !== null) r(); else { proc.on('exit', r); setTimeout(() => { proc.kill('SIGKILL'); r(); }, 5000); } });
    },
  };
}

export function githubSignature(secret, body) {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

// Waits until a deployment has finished; returns it (with its log).
export async function waitDeployment(core, id, { timeout = 180000 } = {}) {
  return waitFor(async () => {
    const r = await core.request('GET', `/api/v1/deployments/${id}`);
    return r.body && ['succeeded', 'failed'].includes(r.body.status) ? r.body : null;
  }, { timeout, interval: 300, what: `deployment ${id}` });
}

// Pollers still running (a test that failed midway): stopped by stopPollers.
const pollers = new Set();
export async function stopPollers() { await Promise.all([...pollers].map((p) => p.stop())); }

// GETs a URL over and over until stop() is called; counts answers.
export function poller(url) {
  const seen = { ok: 0, failed: 0, bodies: new Set(), errors: [] };
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(10000) });
        const t = (await r.text()).trim();
        if (r.ok) { seen.ok++; seen.bodies.add(t); } else { seen.failed++; seen.errors.push(`${r.status} ${t.slice(0, 80)}`); }
      } catch (e) { seen.failed++; seen.errors.push(String(e.cause?.code || e.message)); }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const p = { seen, stop: async () => { running = false; pollers.delete(p); await loop; return seen; } };
  pollers.add(p);
  return p;
}
