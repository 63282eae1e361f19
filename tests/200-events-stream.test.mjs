// Live events over SSE: resume with Last-Event-ID (exactly the missed events,
// in order, then live ones), across a daemon restart, topics, the history
// pages, and two daemons on one database.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { createDatabase, startCore, ROOT, env } from './lib/harness.mjs';
import { openSse, setDefaultToken } from './lib/sse.mjs';

const run = promisify(execFile);
const LOAD = join(ROOT, 'build', 'tools', 'append-load');

let db;
let core;
before(async () => {
  db = createDatabase('sse');
  core = await startCore({ db, admin: true, redisUrl: env('SBX_TEST_REDIS_URL') });
  setDefaultToken(core.token);
});
after(async () => { if (core) await core.stop(); });

const annotate = async (c, message) => {
  const r = await c.request('POST', '/api/v1/annotations', { json: { message } });
  assert.equal(r.status, 201, r.text);
  return r.body.seq;
};

const seqs = (s) => s.events.filter((e) => e.id).map((e) => Number(e.id));

test('a stream gets live events with id = seq, event = type, data = the log body', async () => {
  const s = openSse(core.base, '/api/v1/events');
  await s.ready;
  assert.equal(s.status, 200);
  assert.match(s.headers.get('content-type'), /text\/event-stream/);
  const seq = await annotate(core, 'hello stream');
  await s.waitFor((x) => x.events.some((e) => Number(e.id) === seq), { what: `seq ${seq}` });
  const ev = s.events.find((e) => Number(e.id) === seq);
  assert.equal(ev.event, 'annotation.created');
  assert.equal(ev.data, db.sql(`SELECT body FROM events WHERE seq = ${seq}`));
  s.close();
});

test('resume: 500 events appended while disconnected arrive exactly once, in order, then live ones', async () => {
  const s = openSse(core.base, '/api/v1/events');
  await s.ready;
  const first = await annotate(core, 'before disconnect');
  await s.waitFor((x) => seqs(x).includes(first));
  const lastSeen = Math.max(...seqs(s));
  s.close();

  // 500 events from another process on the same database.
  const r = await run(LOAD, [db.url, '5', '100', 'resume']);
  assert.equal(JSON.parse(r.stdout).failed, 0);
  const head = Number(db.sql('SELECT max(seq) FROM events'));
  assert.equal(head, lastSeen + 500);

  const s2 = openSse(core.base, '/api/v1/events', { headers: { 'Last-Event-ID': String(lastSeen) } });
  await s2.ready;
  await s2.waitCount(500);
  assert.deepEqual(seqs(s2).slice(0, 500), Array.from({ length: 500 }, (_, i) => lastSeen + 1 + i));
  const live = await annotate(core, 'after reconnect');
  assert.equal(live, head + 1);
  await s2.waitCount(501);
  assert.deepEqual(seqs(s2), Array.from({ length: 501 }, (_, i) => lastSeen + 1 + i), 'no gap, no duplicate at the switch');
  s2.close();

  // The query parameter works as the header does.
  const s3 = openSse(core.base, `/api/v1/events?last_event_id=${head - 2}`);
  await s3.waitCount(3);
  assert.deepEqual(seqs(s3), [head - 1, head, head + 1]);
  s3.close();
});

test('resume while events are being appended: no gap and no duplicate at the switch', async () => {
  const start = Number(db.sql('SELECT max(seq) FROM events'));
  const load = run(LOAD, [db.url, '4', '300', 'racing']);
  await new Promise((r) => setTimeout(r, 100));
  const s = openSse(core.base, '/api/v1/events', { headers: { 'Last-Event-ID': String(start) } });
  await load;
  const end = Number(db.sql('SELECT max(seq) FROM events'));
  await s.waitCount(end - start, { timeout: 30000 });
  assert.deepEqual(seqs(s), Array.from({ length: end - start }, (_, i) => start + 1 + i));
  s.close();
});

test('resume across a daemon restart', async () => {
  const lastSeen = Number(db.sql('SELECT max(seq) FROM events'));
  const token = core.token; // sessions live in the database: it outlives the daemon
  await core.stop();
  await run(LOAD, [db.url, '2', '100', 'restart']);
  core = await startCore({ db, redisUrl: env('SBX_TEST_REDIS_URL') });
  core.token = token;
  await run(LOAD, [db.url, '1', '50', 'restart2']);
  const s = openSse(core.base, '/api/v1/events', { headers: { 'Last-Event-ID': String(lastSeen) } });
  await s.waitCount(250);
  const live = await annotate(core, 'after restart');
  await s.waitCount(251);
  assert.deepEqual(seqs(s), Array.from({ length: 251 }, (_, i) => lastSeen + 1 + i));
  assert.equal(seqs(s)[250], live);
  s.close();
});

test('events another process appends reach a live stream, the last one too, with nothing after it', async () => {
  // The follower's catch-up queries can take in the NOTIFY of a commit they
  // did not see; that announcement must still be acted on without a later one.
  for (let round = 0; round < 3; round++) {
    const from = Number(db.sql('SELECT max(seq) FROM events'));
    const s = openSse(core.base, `/api/v1/events?last_event_id=${from}`);
    await s.ready;
    await run(LOAD, [db.url, '4', '150', `burst${round}`]);
    const to = Number(db.sql('SELECT max(seq) FROM events'));
    await s.waitFor((x) => seqs(x).at(-1) === to, { timeout: 5000, what: `seq ${to} (round ${round})` });
    assert.deepEqual(seqs(s), Array.from({ length: to - from }, (_, i) => from + 1 + i));
    s.close();
  }
});

test('topics filter by family, type and stream prefix; bad topics are 400', async () => {
  const from = Number(db.sql('SELECT max(seq) FROM events'));
  const ann = openSse(core.base, `/api/v1/events?topics=annotations&last_event_id=${from}`);
  const typ = openSse(core.base, `/api/v1/events?topics=test.appended&last_event_id=${from}`);
  const pre = openSse(core.base, `/api/v1/events?topics=topics/0&last_event_id=${from}`);
  await Promise.all([ann.ready, typ.ready, pre.ready]);
  await run(LOAD, [db.url, '2', '5', 'topics']);
  const a = await annotate(core, 'only this one');
  await ann.waitFor((x) => seqs(x).includes(a));
  await typ.waitCount(10);
  await pre.waitCount(5);
  assert.deepEqual(ann.events.map((e) => e.event), ['annotation.created']);
  assert.ok(typ.events.every((e) => e.event === 'test.appended'));
  assert.ok(pre.events.every((e) => JSON.parse(e.data).stream === 'topics/0'));
  for (const s of [ann, typ, pre]) s.close();
  for (const bad of ['a,,b', '..%2F', 'x%0Ay', 'a'.repeat(200)]) {
    const r = await core.request('GET', `/api/v1/events?topics=${bad}`);
    assert.equal(r.status, 400, bad);
  }
  const r = await core.request('GET', '/api/v1/events', { headers: { 'Last-Event-ID': 'abc' } });
  assert.equal(r.status, 400);
});

test('history pages the log as JSON for CI jobs', async () => {
  const head = Number(db.sql('SELECT max(seq) FROM events'));
  let afterSeq = 0;
  const got = [];
  for (;;) {
    const r = await core.request('GET', `/api/v1/events/history?after=${afterSeq}&limit=400`);
    assert.equal(r.status, 200, r.text);
    got.push(...r.body.events.map((e) => e.seq));
    if (r.body.events.length === 0) break;
    assert.ok(r.body.next_after > afterSeq);
    afterSeq = r.body.next_after;
  }
  assert.deepEqual(got, Array.from({ length: head }, (_, i) => i + 1));
  const one = await core.request('GET', `/api/v1/events/history?after=${head - 1}&limit=1`);
  assert.equal(JSON.stringify(one.body.events[0]), JSON.stringify(JSON.parse(db.sql(`SELECT body FROM events WHERE seq = ${head}`))));
  const ann = await core.request('GET', '/api/v1/events/history?topics=annotations&limit=1000');
  assert.ok(ann.body.events.length > 0 && ann.body.events.every((e) => e.type === 'annotation.created'));
  for (const q of ['after=-1', 'limit=0', 'limit=5000', 'after=x']) {
    const r = await core.request('GET', `/api/v1/events/history?${q}`);
    assert.equal(r.status, 400, q);
  }
});

test('two daemons on one database: an event made through A reaches a subscriber of B within 1 s', async () => {
  const b = await startCore({ db, admin: true, redisUrl: env('SBX_TEST_REDIS_URL') });
  try {
    const s = openSse(b.base, '/api/v1/events');
    await s.ready;
    const lat = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const seq = await annotate(core, `through A ${i}`);
      await s.waitFor((x) => seqs(x).includes(seq), { timeout: 1000, what: `seq ${seq} on B within 1 s` });
      lat.push(Date.now() - t0);
    }
    // and the other way round, interleaved with local appends on B
    const sa = openSse(core.base, '/api/v1/events');
    await sa.ready;
    const x = await annotate(b, 'through B');
    const y = await annotate(core, 'through A');
    await sa.waitFor((st) => seqs(st).includes(x) && seqs(st).includes(y), { timeout: 1000 });
    assert.deepEqual(seqs(sa), [...seqs(sa)].sort((p, q) => p - q));
    sa.close();
    s.close();
  } finally {
    await b.stop();
  }
});

test('stopping the daemon ends open streams with event: closed, and it exits cleanly', async () => {
  const idle = openSse(core.base, '/api/v1/events?topics=nothing.ever');
  const busy = openSse(core.base, '/api/v1/events');
  await Promise.all([idle.ready, busy.ready]);
  await annotate(core, 'last words');
  await busy.waitCount(1);
  await core.stop(); // asserts exit status 0 and no sanitizer report
  core = null;
  for (const s of [idle, busy]) {
    await s.waitFor((x) => x.ended, { what: 'the end of the stream' });
    const last = s.events[s.events.length - 1];
    assert.equal(last.event, 'closed');
    assert.equal(JSON.parse(last.data).reason, 'shutdown');
  }
});
