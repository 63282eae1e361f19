// Misbehaving clients: a consumer that stops reading is cut off with a final
// `resync` naming where to resume (and resuming from there loses nothing),
// the daemon's memory stays bounded meanwhile; heartbeats reach idle streams
// and find clients that hung up; ephemeral data from Redis pub/sub reaches
// the streams that asked for its topic, and only those.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { createDatabase, startCore, ROOT, env, waitFor } from './lib/harness.mjs';
import { openSse, setDefaultToken } from './lib/sse.mjs';

const run = promisify(execFile);
const LOAD = join(ROOT, 'build', 'tools', 'append-load');
const SSE_LOAD = join(ROOT, 'build', 'tools', 'sse-load');

let db;
let core;
before(async () => {
  db = createDatabase('slow');
  core = await startCore({ db, admin: true, redisUrl: env('SBX_TEST_REDIS_URL'), env: { SERVERBOX_EVENTS_HEARTBEAT_MS: '500' } });
  setDefaultToken(core.token);
});
after(async () => { if (core) await core.stop(); });

const rssKb = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const seqs = (s) => s.events.filter((e) => e.id).map((e) => Number(e.id));

test('a consumer that does not read is cut off with resync, memory stays bounded, and resuming loses nothing', async () => {
  const start = Number(db.sql('SELECT coalesce(max(seq), 0) FROM events'));
  // Tiny receive buffer; reads nothing until told, then reads to the end.
  const slow = spawn(SSE_LOAD, ['slow', String(core.port), '0'], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, SBX_TOKEN: core.token } });
  let slowOut = '';
  slow.stdout.on('data', (d) => { slowOut += d; });
  const slowDone = new Promise((r) => slow.on('exit', r));
  await waitFor(() => slowOut.includes('connected'), { what: 'the slow client' });
  await new Promise((r) => setTimeout(r, 300));
  const rssBefore = rssKb(core.proc.pid);
  const r = await run(LOAD, [db.url, '8', '500', 'flood']);
  assert.equal(JSON.parse(r.stdout).failed, 0);
  const rssAfter = rssKb(core.proc.pid);
  const head = Number(db.sql('SELECT max(seq) FROM events'));
  assert.equal(head, start + 4000);

  slow.stdin.write('go\n');
  await slowDone;
  const out = JSON.parse(slowOut.split('\n').find((l) => l.startsWith('{')));
  assert.equal(out.last_event, 'resync', JSON.stringify(out));
  assert.equal(out.ended, true, 'the server ended the stream');
  assert.equal(out.last_data.reason, 'slow_consumer');
  const resume = out.last_data.resume_after;
  assert.ok(resume >= start && resume < head, `resume_after ${resume}`);
  assert.ok(out.events < 4000, `it got ${out.events} events before the cut`);
  // A blocked client costs its socket buffers, not a copy of the backlog.
  assert.ok(rssAfter - rssBefore < 48 * 1024, `RSS grew ${rssAfter - rssBefore} KiB (ASan build)`);

  const metrics = (await core.request('GET', '/metrics')).text;
  assert.ok(Number(metrics.match(/^serverbox_events_resyncs_total (\d+)$/m)[1]) >= 1, metrics);
  assert.ok(Number(metrics.match(/^serverbox_events_published_total (\d+)$/m)[1]) >= 4000);
  // Resuming (and following any further resync, as EventSource does) gets
  // exactly the rest.
  assert.deepEqual(await collect(resume, head), Array.from({ length: head - resume }, (_, i) => resume + 1 + i));
});

// Reads from `from` to `head`, reconnecting after each resync with its id.
async function collect(from, head) {
  const got = [];
  for (let round = 0; round < 20 && from < head; round++) {
    const s = openSse(core.base, '/api/v1/events', { headers: { 'Last-Event-ID': String(from) } });
    await s.waitFor((x) => x.ended || seqs(x).includes(head), { timeout: 30000, what: `seq ${head}` });
    s.close();
    for (const e of s.events) {
      if (e.event === 'resync') from = Number(e.id);
      else if (e.id) { got.push(Number(e.id)); from = Number(e.id); }
    }
  }
  return got;
}

test('a replay larger than the bound ends with resync at the last replayed seq; following it reaches the head', async () => {
  const head = Number(db.sql('SELECT max(seq) FROM events'));
  let from = 0;
  let total = 0;
  for (let round = 0; round < 10 && from < head; round++) {
    const s = openSse(core.base, `/api/v1/events?last_event_id=${from}`);
    await s.waitFor((x) => x.ended || seqs(x).includes(head), { timeout: 30000, what: 'replay' });
    const got = seqs(s);
    const replayed = s.events.filter((e) => e.event !== 'resync').map((e) => Number(e.id));
    assert.deepEqual(replayed, Array.from({ length: replayed.length }, (_, i) => from + 1 + i));
    total += replayed.length;
    const last = s.events[s.events.length - 1];
    if (last.event === 'resync') {
      assert.equal(JSON.parse(last.data).reason, 'replay_limit');
      assert.equal(Number(last.id), replayed[replayed.length - 1]);
      from = Number(last.id);
    } else {
      from = got[got.length - 1];
    }
    s.close();
  }
  assert.equal(from, head);
  assert.equal(total, head);
});

test('heartbeats reach idle streams; clients that hung up are found and closed', async () => {
  const s = openSse(core.base, '/api/v1/events?topics=nothing.ever');
  await s.waitFor((x) => x.heartbeats >= 2, { timeout: 5000, what: 'two heartbeats' });
  s.close();
  const before = (core.log().match(/path=\/api\/v1\/events status=200[^\n]*aborted=1/g) || []).length;
  const socks = [];
  for (let i = 0; i < 20; i++) {
    const c = connect(core.port, '127.0.0.1');
    c.write(`GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${core.token}\r\n\r\n`);
    c.on('error', () => {});
    socks.push(c);
  }
  await new Promise((r) => setTimeout(r, 500));
  await waitFor(async () => {
    const m = (await core.request('GET', '/metrics')).text.match(/^serverbox_events_streams (\d+)$/m);
    return Number(m[1]) >= 20;
  }, { what: '20 streams in /metrics' });
  for (const c of socks) c.destroy();
  await waitFor(() => (core.log().match(/path=\/api\/v1\/events status=200[^\n]*aborted=1/g) || []).length >= before + 20,
    { timeout: 10000, what: 'the daemon to notice 20 hung-up streams' });
});

test('ephemeral data from Redis pub/sub reaches only streams that name its topic, without an id', async () => {
  const n1 = openSse(core.base, '/api/v1/events?topics=metrics/node/n1');
  const all = openSse(core.base, '/api/v1/events');
  const fam = openSse(core.base, '/api/v1/events?topics=metrics');
  await Promise.all([n1.ready, all.ready, fam.ready]);
  const url = new URL(env('SBX_TEST_REDIS_URL'));
  const publish = (topic, cpu) => execFileSync('redis-cli', ['-h', url.hostname, '-p', url.port, 'PUBLISH',
    'serverbox:ephemeral', JSON.stringify({ origin: 'another-daemon', topic, type: 'metrics.sample', data: { cpu } })]);
  publish('metrics/node/n2', 0.2);
  // The subscriber connects in the background: publish until it is there.
  await waitFor(() => { publish('metrics/node/n1', 0.5); return n1.events.length > 0; }, { timeout: 10000, interval: 200, what: 'ephemeral data' });
  const ev = n1.events[0];
  assert.equal(ev.event, 'metrics.sample');
  assert.equal(ev.id, undefined);
  const d = JSON.parse(ev.data);
  assert.equal(d.topic, 'metrics/node/n1');
  assert.equal(d.data.cpu, 0.5);
  assert.ok(n1.events.every((e) => JSON.parse(e.data).topic === 'metrics/node/n1'));
  await fam.waitFor((x) => x.events.some((e) => JSON.parse(e.data).topic === 'metrics/node/n2'));
  // our own echo (origin = this daemon) is not delivered twice: only foreign origins count here
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(all.events.length, 0, 'a stream without topics gets no ephemeral data');
  for (const s of [n1, all, fam]) s.close();
});
