// Helpers for the collector tests (5NN): nodes registered against a real
// sshd, the collector binary, signed batches made in JS.
import { createHash, generateKeyPairSync, sign, randomUUID } from 'node:crypto';
import { spawn, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, tempDir } from './harness.mjs';

export const COLLECTOR_BIN = process.env.SBX_COLLECTOR_BIN || join(ROOT, 'build', 'asan', 'serverbox-collector');

// Registers a node through the API against a real sshd (tests/lib/sshd.mjs);
// returns its id. Give the core SERVERBOX_NODE_CHECK_INTERVAL=0 so SSH
// health checks do not add node.online/offline events of their own.
export async function registerNode(core, sshd, extra = {}) {
  const name = `n-${randomUUID().slice(0, 8)}`;
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key, ...extra },
  });
  if (r.status !== 201) throw new Error(`register node: ${r.status} ${r.text}`);
  return r.body.id;
}

export function collectorDir() {
  return tempDir('sbx-coll-');
}

const SAN_ENV = {
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=86:halt_on_error=1',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
};

function cleanEnv(extra = {}) {
  const e = { ...process.env, ...SAN_ENV };
  for (const k of Object.keys(e)) if (k.startsWith('SERVERBOX_')) delete e[k];
  return { ...e, ...extra };
}

export function runCollector(args, env = {}) {
  try {
    const stdout = execFileSync(COLLECTOR_BIN, args, { env: cleanEnv(env), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    return { code: e.status, stdout: e.stdout || '', stderr: e.stderr || '' };
  }
}

export function startCollector(args, env = {}) {
  const proc = spawn(COLLECTOR_BIN, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc, log: () => log, exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

// A keypair the tests sign with, as a collector would.
export function makeAgentKey() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return { publicKey, privateKey, hex: raw.toString('hex'), fingerprint: createHash('sha256').update(raw).digest('hex') };
}

export function signedBatch(key, obj) {
  const body = typeof obj === 'string' ? obj : JSON.stringify(obj);
  const sig = sign(null, Buffer.from(body), key.privateKey).toString('hex');
  return { body, headers: { 'Content-Type': 'application/json', 'X-Serverbox-Key': key.fingerprint, 'X-Serverbox-Signature': sig } };
}

export function sample(ts = Date.now(), extra = {}) {
  return { ts, cpu: { total: 12.5, cores: [10, 15] }, mem: { total: 1000, used: 400, available: 600 }, swap: { total: 0, used: 0 },
    load1: 0.5, load5: 0.4, load15: 0.3, uptime: 100, procs: 42, disk_total: { total: 5000, used: 2000 },
    io_total: { read_bps: 1, write_bps: 2 }, net_total: { rx_bps: 3, tx_bps: 4 }, ...extra };
}
