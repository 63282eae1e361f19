// Node terminals against a real sshd with tmux: open, type, read the output
// stream; resume from an offset without loss or duplication; the ring's
// gap; re-attach after a core restart (same tmux session, earlier output on
// screen); hostile input (escape sequences, invalid UTF-8, a 1 MiB paste);
// viewer 403, label scope 404; recordings (asciicast v2) whose SHA-256 is
// in the terminal.closed event; a guest with view:recordings; kill.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createDatabase, startCore, createUser, login, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { openSse } from './lib/sse.mjs';

let db, core, s1, s2, admin, prodNode, stagingNode;
const tag = randomBytes(3).toString('hex');
const opened = []; // [nodeId, session] to kill at the end
// A small ring (16 KiB) so that a test can run past it.
const coreEnv = { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_TERMINAL_RING_BYTES: '16384' };

before(async () => {
  s1 = startSshd();
  s2 = startSshd();
  db = createDatabase('term');
  core = await startCore({ db, admin: true, env: coreEnv });
  admin = core.token;
  const mk = async (s, name, labels) => {
    const r = await core.request('POST', '/api/v1/nodes', { json: { name, host: '127.0.0.1', port: s.port, ssh_user: 'root', private_key: s.key, labels } });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  prodNode = await mk(s1, 'prod-1', { env: 'prod' });
  stagingNode = await mk(s2, 'staging-1', { env: 'staging' });
});

after(async () => {
  try {
    for (const [n, s] of opened) {
      await core?.request('POST', `/api/v1/nodes/${n}/exec`, { token: admin, json: { command: `tmux kill-session -t '=${s}' 2>/dev/null; true` } }).catch(() => {});
    }
    await core?.stop();
  } finally {
    s1?.remove();
    s2?.remove();
  }
});

const req = (method, path, opts = {}) => core.request(method, path, { token: admin, ...opts });
const events = (type) => JSON.parse(db.sql(`SELECT coalesce(json_agg(body::json ORDER BY seq), '[]') FROM events WHERE type = '${type}'`));

async function openTerm(node, session, extra = {}) {
  const r = await req('POST', `/api/v1/nodes/${node.id}/terminals`, { json: { session, cols: 100, rows: 30, ...extra } });
  assert.ok(r.status === 201 || r.status === 200, r.text);
  opened.push([node.id, session]);
  return r.body;
}

// An output stream that decodes the chunks into one Buffer, checking that
// each chunk starts where the previous one ended.
function output(id, offset, token = admin) {
  const q = offset === undefined ? '' : `?offset=${offset}`;
  const s = openSse(core.base, `/api/v1/terminals/${id}/output${q}`, { token });
  s.bytes = () => {
    const parts = [];
    let at;
    for (const e of s.events.filter((x) => x.event === 'output')) {
      const d = JSON.parse(e.data);
      if (at !== undefined) assert.equal(d.offset, at, 'chunks are contiguous');
      const b = Buffer.from(d.data, 'base64');
      assert.equal(Number(e.id), d.offset + b.length, 'id is the offset after the chunk');
      at = d.offset + b.length;
      parts.push(b);
    }
    return Buffer.concat(parts);
  };
  s.first = () => {
    const e = s.events.find((x) => x.event === 'output');
    return e ? JSON.parse(e.data).offset : undefined;
  };
  s.end = () => {
    const o = s.events.filter((x) => x.event === 'output').pop();
    return o ? Number(o.id) : offset || 0;
  };
  s.until = (re, what) => s.waitFor(() => re.test(s.bytes().toString('latin1')), { timeout: 20000, what: what || String(re) })
    .catch((e) => { throw new Error(`${e.message}; output ends ${JSON.stringify(s.bytes().toString('latin1').slice(-600))}`); });
  return s;
}

const send = (id, data, headers = { 'Content-Type': 'application/octet-stream' }) =>
  req('POST', `/api/v1/terminals/${id}/input`, { body: data, headers });

test('open a node terminal, type, read the echo; the pool counts the channel', async () => {
  const session = `ops-${tag}`;
  const t = await openTerm(prodNode, session);
  assert.match(t.id, /^[0-9a-f-]{36}$/);
  assert.equal(t.session, session);
  assert.equal(t.joined, false);
  const out = output(t.id, 0);
  await out.ready;
  assert.equal(out.status, 200);
  const r = await send(t.id, 'echo hi-$((6*7))\r');
  assert.equal(r.status, 200, r.text);
  await out.until(/hi-42/);
  const n = await req('GET', `/api/v1/nodes/${prodNode.id}`);
  assert.ok(n.body.pool.channels >= 1, JSON.stringify(n.body.pool));

  const ev = events('terminal.opened').find((e) => e.data.terminal_id === t.id);
  assert.ok(ev, 'terminal.opened recorded');
  assert.equal(ev.data.session, session);
  assert.equal(ev.data.node_id, prodNode.id);
  assert.equal(ev.actor.name, core.admin.username);

  // Opening the same session again joins the open terminal.
  const again = await req('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { json: { session } });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.id, t.id);
  assert.equal(again.body.joined, true);
  const list = await req('GET', '/api/v1/terminals');
  assert.ok(list.body.items.some((x) => x.id === t.id && x.viewers >= 1));

  // Reconnect from an offset: nothing lost, nothing twice.
  const cut = out.end();
  out.close();
  await send(t.id, 'echo second-$((1+1))\r');
  const resumed = output(t.id, cut);
  await resumed.until(/second-2/);
  assert.equal(resumed.first(), cut, 'the resumed stream starts at the offset asked for');
  const full = output(t.id, 0);
  await full.until(/second-2/);
  const all = full.bytes();
  assert.equal(all.subarray(0, cut).toString('latin1'), out.bytes().subarray(0, cut).toString('latin1'));
  const rb = resumed.bytes();
  assert.ok(all.length >= cut + rb.length || all.subarray(cut).toString('latin1').startsWith(rb.toString('latin1')) || rb.toString('latin1').startsWith(all.subarray(cut).toString('latin1')));
  assert.equal(Buffer.compare(all.subarray(cut, cut + Math.min(rb.length, all.length - cut)), rb.subarray(0, Math.min(rb.length, all.length - cut))), 0, 'the same bytes at the same offsets');
  resumed.close();
  full.close();

  // Resize.
  const rs = await req('POST', `/api/v1/terminals/${t.id}/resize`, { json: { cols: 120, rows: 40 } });
  assert.equal(rs.status, 200, rs.text);
  const size = output(t.id, out.end());
  await send(t.id, 'stty size\r');
  await size.until(/39 120/); // tmux's status line takes a row
  size.close();
  assert.equal((await req('POST', `/api/v1/terminals/${t.id}/resize`, { json: { cols: 1, rows: 40 } })).status, 422);
  assert.equal((await req('POST', `/api/v1/terminals/${t.id}/resize`, { json: { cols: 80, rows: 24, x: 1 } })).status, 422);
});

test('session names are tmux-safe; bad bodies change nothing', async () => {
  const before = events('terminal.opened').length;
  for (const session of ['', 'a b', '../x', 'x;rm -rf /', 'a:b', 'a.b', "x'y", 'é', 'x'.repeat(33), '$(id)']) {
    const r = await req('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { json: { session } });
    assert.equal(r.status, 422, `${JSON.stringify(session)}: ${r.text}`);
    assert.equal(r.body.error.field ?? 'session', 'session');
  }
  assert.equal((await req('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { json: { session: 7 } })).status, 422);
  assert.equal((await req('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { json: { session: 'ok', cols: 5000 } })).status, 422);
  assert.equal((await req('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { json: { session: 'ok', shell: 'x' } })).status, 422);
  assert.equal((await req('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { body: '{"session":', headers: { 'Content-Type': 'application/json' } })).status, 400);
  assert.equal((await req('POST', '/api/v1/nodes/00000000-0000-4000-8000-000000000000/terminals', { json: { session: 'ok' } })).status, 404);
  assert.equal((await req('GET', '/api/v1/terminals/00000000-0000-4000-8000-000000000000/output')).status, 404);
  assert.equal(events('terminal.opened').length, before);
});

test('hostile input: escape sequences, invalid UTF-8, NUL, a 1 MiB paste; the stream and the daemon live on', async () => {
  const t = await openTerm(prodNode, `hostile-${tag}`);
  const out = output(t.id, 0);
  await out.ready;
  await send(t.id, Buffer.from('\x1b[31m\x1b]0;evil\x07\x1bP+q\x1b\\\xff\xfe\xc3\x28\x00\x1b[6n\x1b[?1049h\x9b\x1b[2J', 'latin1'));
  await new Promise((r) => setTimeout(r, 400));
  await send(t.id, '\x03');
  await new Promise((r) => setTimeout(r, 400));
  await send(t.id, '\x03');
  await new Promise((r) => setTimeout(r, 200));
  // JSON base64 input, too
  const j = await req('POST', `/api/v1/terminals/${t.id}/input`, { json: { data: Buffer.from('echo alive-$((2+3))\r').toString('base64') } });
  assert.equal(j.status, 200, j.text);
  await out.until(/alive-5/);
  assert.equal((await req('POST', `/api/v1/terminals/${t.id}/input`, { json: { data: '!!!not base64' } })).status, 422);
  assert.equal((await req('POST', `/api/v1/terminals/${t.id}/input`, { json: { bytes: 'eA==' } })).status, 422);

  // 1 MiB in one request: lines of 64 bytes into cat, counted on the node.
  const file = `/tmp/sbx-paste-${tag}`;
  await send(t.id, `stty -echo; cat > ${file}; stty echo\r`);
  await new Promise((r) => setTimeout(r, 300));
  const line = `${'0123456789abcdef'.repeat(3)}${'x'.repeat(15)}\n`;
  const paste = Buffer.from(line.repeat(16384));
  assert.equal(paste.length, 1 << 20);
  const p = await send(t.id, paste);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.accepted, 1 << 20);
  await send(t.id, '\x04');
  await send(t.id, `echo size-$(wc -c < ${file})\r`);
  await out.until(/size-1048576/, 'the whole paste on the node');
  await send(t.id, `rm -f ${file}\r`);
  // Output beyond the ring: a stream from 0 first learns where it starts.
  await send(t.id, 'seq 1 100000\r');
  let info;
  await waitFor(async () => (info = (await req('GET', `/api/v1/terminals/${t.id}`)).body).start_offset > 0, { timeout: 60000, what: 'the ring to wrap' })
    .catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(info)}; output ends ${JSON.stringify(out.bytes().toString('latin1').slice(-400))}`); });
  assert.ok(info.end_offset - info.start_offset <= 16384);
  const late = output(t.id, 0);
  await late.waitFor((s) => s.events.some((e) => e.event === 'output'), { what: 'output after the gap' });
  const gap = late.events.find((e) => e.event === 'gap');
  assert.ok(gap, 'a gap event');
  const g = JSON.parse(gap.data);
  assert.equal(g.requested, 0);
  assert.ok(g.offset > 0);
  assert.ok(late.first() >= g.offset);
  late.close();
  await send(t.id, 'clear; echo still-$((4*4))\r');
  await out.until(/still-16/);
  out.close();
  assert.ok(core.alive());
  assert.equal((await core.request('GET', '/health/live')).status, 200);
  const d = await req('DELETE', `/api/v1/terminals/${t.id}?kill=1`);
  assert.equal(d.status, 200, d.text);
  assert.equal(d.body.killed, true);
  const has = await req('POST', `/api/v1/nodes/${prodNode.id}/exec`, { json: { command: `tmux has-session -t '=hostile-${tag}'` } });
  assert.notEqual(has.body.exit_code, 0, 'the tmux session is gone');
});

test('viewers and guests cannot open terminals; a label-scoped user only reaches nodes in scope', async () => {
  const t = await openTerm(prodNode, `scope-${tag}`);
  const viewer = (await login(core, createUser(db, { role: 'viewer' }))).token;
  let r = await core.request('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { token: viewer, json: { session: 'v' } });
  assert.equal(r.status, 403, r.text);
  assert.equal((await core.request('GET', `/api/v1/terminals/${t.id}/output`, { token: viewer })).status, 403);
  assert.equal((await core.request('POST', `/api/v1/terminals/${t.id}/input`, { token: viewer, body: 'id\r' })).status, 403);
  assert.equal((await core.request('GET', '/api/v1/recordings', { token: viewer })).status, 403);
  const g = await req('POST', '/api/v1/guest-links', { json: { scopes: ['view:metrics', 'view:containers', 'view:logs', 'view:audit'], ttl_seconds: 600 } });
  assert.equal(g.status, 201, g.text);
  assert.equal((await core.request('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { token: g.body.token, json: { session: 'g' } })).status, 403);

  const pw = `pw-${randomBytes(8).toString('hex')}`;
  const u = await req('POST', '/api/v1/users', { json: { username: `scoped${tag}`, password: pw, role: 'operator', node_labels: { env: 'staging' } } });
  assert.equal(u.status, 201, u.text);
  const scoped = (await login(core, { username: `scoped${tag}`, password: pw })).token;
  r = await core.request('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { token: scoped, json: { session: 'x' } });
  assert.equal(r.status, 404, r.text);
  for (const [m, p] of [['GET', `/api/v1/terminals/${t.id}`], ['GET', `/api/v1/terminals/${t.id}/output`], ['POST', `/api/v1/terminals/${t.id}/resize`], ['DELETE', `/api/v1/terminals/${t.id}`]]) {
    const x = await core.request(m, p, { token: scoped, ...(m === 'POST' ? { json: { cols: 80, rows: 24 } } : {}) });
    assert.equal(x.status, 404, `${m} ${p}: ${x.text}`);
  }
  assert.equal((await core.request('POST', `/api/v1/terminals/${t.id}/input`, { token: scoped, body: 'id\r' })).status, 404);
  assert.ok(!(await core.request('GET', '/api/v1/terminals', { token: scoped })).body.items.some((x) => x.id === t.id));
  // In scope: works.
  const st = await core.request('POST', `/api/v1/nodes/${stagingNode.id}/terminals`, { token: scoped, json: { session: `st-${tag}` } });
  assert.equal(st.status, 201, st.text);
  opened.push([stagingNode.id, `st-${tag}`]);
  assert.equal((await core.request('DELETE', `/api/v1/terminals/${st.body.id}`, { token: scoped })).status, 200);
  const recs = await core.request('GET', '/api/v1/recordings', { token: scoped });
  assert.equal(recs.status, 200);
  assert.ok(recs.body.items.length >= 1 && recs.body.items.every((x) => x.node_id === stagingNode.id), JSON.stringify(recs.body));
  assert.equal((await req('DELETE', `/api/v1/terminals/${t.id}`)).status, 200);
});

test('restart the core: re-attach to the same tmux session with its screen', async () => {
  const session = `keep-${tag}`;
  const t = await openTerm(prodNode, session);
  const out = output(t.id, 0);
  await send(t.id, 'clear; echo before-$((5*5))\r');
  await out.until(/before-25/);
  out.close();
  await core.stop();
  const closed = events('terminal.closed').find((e) => e.data.terminal_id === t.id);
  assert.ok(closed, 'terminal.closed recorded at shutdown');
  assert.equal(closed.data.reason, 'shutdown');
  assert.equal(closed.actor.kind, 'system');
  const token = core.token;
  const adminUser = core.admin;
  core = await startCore({ db, dataDir: core.dataDir, env: coreEnv });
  core.token = token;
  core.admin = adminUser;
  const t2 = await openTerm(prodNode, session);
  assert.notEqual(t2.id, t.id);
  assert.equal(t2.joined, false);
  const again = output(t2.id, 0);
  await again.until(/before-25/, 'the earlier output redrawn by tmux');
  await send(t2.id, 'echo after-$((6*6))\r');
  await again.until(/after-36/);
  again.close();
  assert.equal((await req('DELETE', `/api/v1/terminals/${t2.id}?kill=1`)).status, 200);
});

test('recordings: asciicast v2 whose SHA-256 is in terminal.closed; a guest with view:recordings replays and nothing else', async () => {
  const t = await openTerm(prodNode, `rec-${tag}`);
  const out = output(t.id, 0);
  await send(t.id, 'echo recorded-$((7*7)) ünïcödé\r');
  await out.until(/recorded-49/);
  await new Promise((r) => setTimeout(r, 300));
  const c = await req('DELETE', `/api/v1/terminals/${t.id}?kill=1`);
  assert.equal(c.status, 200, c.text);
  await out.waitFor((s) => s.events.some((e) => e.event === 'end'), { what: 'end event' });
  const ev = events('terminal.closed').find((e) => e.data.terminal_id === t.id);
  assert.ok(ev);
  assert.equal(ev.actor.name, core.admin.username);
  assert.equal(ev.data.session, `rec-${tag}`);
  assert.equal(ev.data.node_id, prodNode.id);
  assert.equal(ev.data.reason, 'killed');
  assert.match(ev.data.recording.sha256, /^[0-9a-f]{64}$/);
  assert.equal(c.body.recording.sha256, ev.data.recording.sha256);

  const dl = await fetch(`${core.base}/api/v1/recordings/${ev.data.recording.id}`, { headers: { Authorization: `Bearer ${admin}` } });
  assert.equal(dl.status, 200);
  assert.match(dl.headers.get('content-type'), /application\/x-asciicast/);
  const bytes = Buffer.from(await dl.arrayBuffer());
  assert.equal(createHash('sha256').update(bytes).digest('hex'), ev.data.recording.sha256, 'the chain vouches for the file');
  assert.equal(bytes.length, ev.data.recording.bytes);
  const lines = bytes.toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines[0].version, 2);
  assert.equal(lines[0].width, 100);
  const replay = lines.slice(1).filter((l) => l[1] === 'o').map((l) => l[2]).join('');
  assert.equal(Buffer.from(replay, 'utf8').toString('latin1'), out.bytes().toString('latin1'), 'the recording replays the output byte for byte');
  assert.match(replay, /ünïcödé/);
  const times = lines.slice(1).map((l) => l[0]);
  assert.deepEqual(times, [...times].sort((a, b) => a - b));
  const verify = await req('GET', '/api/v1/audit/verify');
  assert.equal(verify.status, 200, verify.text);

  const list = await req('GET', '/api/v1/recordings');
  const item = list.body.items.find((x) => x.id === ev.data.recording.id);
  assert.ok(item, JSON.stringify(list.body));
  assert.equal(item.sha256, ev.data.recording.sha256);
  assert.equal(item.available, true);
  assert.equal(item.closed_seq, Number(db.sql(`SELECT seq FROM events WHERE type = 'terminal.closed' AND data->>'terminal_id' = '${t.id}'`)));

  // The auditor.
  const g = await req('POST', '/api/v1/guest-links', { json: { scopes: ['view:recordings'], ttl_seconds: 600, note: 'auditor' } });
  assert.equal(g.status, 201, g.text);
  const guest = g.body.token;
  const gl = await core.request('GET', '/api/v1/recordings', { token: guest });
  assert.equal(gl.status, 200, gl.text);
  assert.ok(gl.body.items.some((x) => x.id === ev.data.recording.id));
  const gd = await core.request('GET', `/api/v1/recordings/${ev.data.recording.id}`, { token: guest });
  assert.equal(gd.status, 200);
  assert.equal(createHash('sha256').update(gd.text).digest('hex'), ev.data.recording.sha256);
  for (const [m, p] of [['GET', '/api/v1/nodes'], ['GET', `/api/v1/nodes/${prodNode.id}`], ['GET', '/api/v1/terminals'], ['GET', '/api/v1/containers'],
    ['GET', '/api/v1/audit'], ['GET', '/api/v1/events'], ['GET', '/api/v1/events/history'], ['GET', `/api/v1/nodes/${prodNode.id}/metrics`], ['GET', '/api/v1/users']]) {
    const x = await core.request(m, p, { token: guest });
    assert.ok(x.status === 403 || x.status === 404, `${m} ${p}: ${x.status}`);
  }
  // A guest reads its own grant (self:read), which names this scope alone.
  const me = await core.request('GET', '/api/v1/me', { token: guest });
  assert.equal(me.status, 200, me.text);
  assert.deepEqual(me.body.scopes, ['view:recordings']);
  const x = await core.request('POST', `/api/v1/nodes/${prodNode.id}/terminals`, { token: guest, json: { session: 'g' } });
  assert.equal(x.status, 403);
  assert.equal((await core.request('GET', '/api/v1/recordings/00000000-0000-4000-8000-000000000000', { token: guest })).status, 404);
  assert.equal((await req('POST', '/api/v1/guest-links', { json: { scopes: ['view:terminals'], ttl_seconds: 60 } })).status, 422);
});
