// Terminals through the core (issue #16): keystroke-to-echo latency, i.e.
// POST /api/v1/terminals/{id}/input of one key until its echo arrives on
// the output stream (core → SSH → tmux → bash's echo → tmux → SSH → core →
// SSE), p50 and p99 over TERMINAL_BENCH_KEYS keys (300); and the daemon's
// RSS with TERMINAL_BENCH_N terminals open (100) on one node. The optimised
// build, a private PostgreSQL and a private sshd with tmux, all on loopback.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SERVICES = join(ROOT, 'scripts', 'services.sh');
const run = mkdtempSync(join(tmpdir(), 'sbx-bench-term-'));
chmodSync(run, 0o755);
const KEYS = Number(process.env.TERMINAL_BENCH_KEYS || 300);
const N = Number(process.env.TERMINAL_BENCH_N || 100);

function services(cmd) {
  const out = execFileSync(SERVICES, [cmd, join(run, 'services')], { encoding: 'utf8' });
  const vars = {};
  for (const line of out.split('\n')) {
    const m = line.match(/^(\w+)='(.*)'$/);
    if (m) vars[m[1]] = m[2];
  }
  return vars;
}
const rssKb = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const pct = (a, p) => a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))];

const rows = [];
const row = (what, figure, target, ratio) => rows.push(`| ${what} | ${figure} | ${target} | ${ratio} |`);
let core, sshd, sshd2;
const tag = Math.random().toString(16).slice(2, 8);
const sessions = [];
try {
  const pg = services('start-pg');
  process.env.SBX_TEST_PG_SOCKET = pg.SERVERBOX_PG_SOCKET;
  process.env.SBX_TEST_PG_PORT = pg.SERVERBOX_PG_PORT;
  process.env.SBX_CORE_BIN = join(ROOT, 'build', 'serverbox-core');
  const h = await import('../tests/lib/harness.mjs');
  const { startSshd } = await import('../tests/lib/sshd.mjs');
  sshd = startSshd();
  sshd2 = startSshd(); // the test sshd allows 64 channels per connection: 100 terminals on two nodes
  const db = h.createDatabase('bench_term');
  core = await h.startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_TOKEN_RATE_LIMIT: '0',
    SERVERBOX_TERMINAL_MAX_PER_NODE: '60' } });
  const auth = { Authorization: `Bearer ${core.token}` };
  const n = await core.request('POST', '/api/v1/nodes', { json: { name: 'bench', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key } });
  const nodeId = n.body.id;
  const n2 = await core.request('POST', '/api/v1/nodes', { json: { name: 'bench2', host: '127.0.0.1', port: sshd2.port, ssh_user: 'root', private_key: sshd2.key } });
  const open = async (s, node = nodeId) => {
    const r = await core.request('POST', `/api/v1/nodes/${node}/terminals`, { json: { session: s, cols: 120, rows: 40 } });
    if (r.status !== 201) throw new Error(r.text);
    sessions.push(s);
    return r.body;
  };

  // Latency: one stream, one key at a time.
  const t = await open(`lat-${tag}`);
  const ac = new AbortController();
  const res = await fetch(`${core.base}/api/v1/terminals/${t.id}/output?offset=0`, { headers: auth, signal: ac.signal });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let pending = '';
  let text = '';
  let waiter = null;
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += dec.decode(value, { stream: true });
        let i;
        while ((i = pending.indexOf('\n\n')) >= 0) {
          const block = pending.slice(0, i);
          pending = pending.slice(i + 2);
          const m = block.match(/^data: (.*)$/m);
          if (m && block.includes('event: output')) text += Buffer.from(JSON.parse(m[1]).data, 'base64').toString('latin1');
        }
        if (waiter) waiter();
      }
    } catch { /* aborted */ }
  })();
  const until = (pred, ms = 5000) => new Promise((resolve, reject) => {
    const to = setTimeout(() => { waiter = null; reject(new Error('timeout')); }, ms);
    const check = () => { if (pred()) { clearTimeout(to); waiter = null; resolve(); } };
    waiter = check;
    check();
  });
  const send = (s) => fetch(`${core.base}/api/v1/terminals/${t.id}/input`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: s });
  await send('clear\r');
  await new Promise((r) => setTimeout(r, 1000));
  const lat = [];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let k = 0; k < KEYS; k++) {
    if (k % 40 === 39) { await send('\x15'); await new Promise((r) => setTimeout(r, 50)); } // clear the line now and then
    const ch = letters[k % 26];
    const from = text.length;
    const t0 = performance.now();
    await send(ch);
    await until(() => text.indexOf(ch, from) >= 0);
    lat.push(performance.now() - t0);
  }
  ac.abort();
  lat.sort((a, b) => a - b);
  row('terminal keystroke-to-echo p50', `${pct(lat, 50).toFixed(2)} ms`, '<= 5 ms', (5 / pct(lat, 50)).toFixed(2));
  row('terminal keystroke-to-echo p99', `${pct(lat, 99).toFixed(2)} ms`, '<= 20 ms', (20 / pct(lat, 99)).toFixed(2));

  // Memory: N terminals open.
  const before = rssKb(core.proc.pid);
  const t1 = performance.now();
  for (let i = 1; i < N; i++) await open(`m${i}-${tag}`, i % 2 ? n2.body.id : nodeId);
  const openMs = (performance.now() - t1) / Math.max(1, N - 1);
  await new Promise((r) => setTimeout(r, 1000));
  const after = rssKb(core.proc.pid);
  row(`terminal ${N} open: daemon RSS`, `${after} KiB (+${after - before} KiB)`, '-', '-');
  row('terminal RSS per terminal', `${((after - before) / Math.max(1, N - 1)).toFixed(1)} KiB`, '-', '-');
  row('terminal open (sequential)', `${openMs.toFixed(1)} ms`, '-', '-');
} catch (e) {
  row('terminal bench', `failed: ${e.message.split('\n')[0]}`, '', '');
} finally {
  try {
    if (core && sessions.length) {
      const list = await core.request('GET', '/api/v1/terminals');
      for (const x of list.body?.items || []) await core.request('DELETE', `/api/v1/terminals/${x.id}?kill=1`);
    }
    await core?.stop({ expectClean: false });
  } catch { /* best effort */ }
  sshd?.remove();
  sshd2?.remove();
  try { execFileSync(SERVICES, ['stop-all', join(run, 'services')]); } catch { /* gone */ }
}
for (const r of rows) console.log(r);
