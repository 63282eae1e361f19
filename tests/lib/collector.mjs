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

// Appends one event to the log the way the core's appender does: under the
// appender's advisory lock, onto the current head (the core notices the head
// moved and re-reads it), so it is safe while a core is running.
const APPEND_LOCK = BigInt('0x5342584150504e44').toString();
export function appendEventBySql(db, { stream, type, data }) {
  const occurred = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  const body = canonical({ actor: { id: null, ip: null, kind: 'system', name: 'test' }, data, occurred_at: occurred, outcome: 'success', seq: '__SEQ__', stream, type })
    .replace('"__SEQ__"', '__SEQ__');
  const b64 = Buffer.from(body, 'utf8').toString('base64');
  const out = db.sql(`BEGIN;
SELECT pg_advisory_xact_lock(${APPEND_LOCK});
WITH h AS (SELECT coalesce((SELECT seq FROM events ORDER BY seq DESC LIMIT 1), 0) + 1 AS seq,
                  coalesce((SELECT hash FROM events ORDER BY seq DESC LIMIT 1), '\\x${'00'.repeat(32)}'::bytea) AS prev),
     b AS (SELECT h.seq, h.prev, replace(convert_from(decode('${b64}', 'base64'), 'UTF8'), '__SEQ__', h.seq::text) AS body FROM h)
INSERT INTO events (seq, stream, type, body, actor_kind, outcome, occurred_at, prev_hash, hash)
SELECT b.seq, '${stream}', '${type}', b.body, 'system', 'success', '${occurred}', b.prev, sha256(b.prev || convert_to(b.body, 'UTF8')) FROM b
RETURNING seq;
COMMIT;`);
  return Number(out.split('\n').filter((l) => /^\d+$/.test(l)).pop());
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
