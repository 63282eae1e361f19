// Helpers for the collector tests (5NN): a registered node without the nodes
// module (a node.registered event appended to the chain by hand, exactly as
// the core would), the collector binary, signed batches made in JS.
import { createHash, generateKeyPairSync, sign, randomUUID } from 'node:crypto';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

export const COLLECTOR_BIN = process.env.SBX_COLLECTOR_BIN || join(ROOT, 'build', 'asan', 'serverbox-collector');

function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

// Appends one event to the log the way the core's appender does (the core
// re-reads the head when another writer appended). Run with no core writing.
export function appendEventBySql(db, { stream, type, data }) {
  const head = db.sql("SELECT coalesce(max(seq), 0) || ' ' || coalesce((SELECT encode(hash, 'hex') FROM events ORDER BY seq DESC LIMIT 1), '') FROM events");
  const [seqText, hashHex] = head.split(' ');
  const seq = Number(seqText) + 1;
  const prev = hashHex ? Buffer.from(hashHex, 'hex') : Buffer.alloc(32);
  const occurred = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  const body = canonical({ actor: { id: null, ip: null, kind: 'system', name: 'test' }, data, occurred_at: occurred, outcome: 'success', seq, stream, type });
  const hash = createHash('sha256').update(prev).update(Buffer.from(body, 'utf8')).digest('hex');
  const b64 = Buffer.from(body, 'utf8').toString('base64');
  db.sql(`INSERT INTO events (seq, stream, type, body, actor_kind, outcome, occurred_at, prev_hash, hash) VALUES (${seq}, '${stream}', '${type}', convert_from(decode('${b64}', 'base64'), 'UTF8'), 'system', 'success', '${occurred}', decode('${prev.toString('hex')}', 'hex'), decode('${hash}', 'hex'))`);
  return seq;
}

export function registerNode(db) {
  const id = randomUUID();
  appendEventBySql(db, { stream: `node/${id}`, type: 'node.registered', data: { id, name: `n-${id.slice(0, 8)}` } });
  return id;
}

export function collectorDir() {
  return mkdtempSync(join(tmpdir(), 'sbx-coll-'));
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
