// Terminal bounds and settings against a real sshd: a node without tmux is
// told so in words; the per-node limit; idle terminals are detached (the
// tmux session kept); --record-input puts "i" events in the recording; the
// recording size cap stops the recording and says so in the file and in
// the terminal.closed event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { openSse } from './lib/sse.mjs';

let db, core, s1, node, bare;
const tag = randomBytes(3).toString('hex');
const sessions = [];

before(async () => {
  s1 = startSshd();
  // A login whose PATH has every tool of /usr/bin but tmux.
  const bin = join(s1.dir, 'no-tmux-bin');
  mkdirSync(bin);
  for (const f of readdirSync('/usr/bin')) if (!f.startsWith('tmux')) symlinkSync(join('/usr/bin', f), join(bin, f));
  const kp = join(s1.dir, 'bare_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', kp]);
  appendFileSync(join(s1.dir, 'authorized_keys'), `command="export PATH=${bin}; eval \\"$SSH_ORIGINAL_COMMAND\\"" ${readFileSync(`${kp}.pub`, 'utf8')}`);
  db = createDatabase('termlim');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0', SERVERBOX_TERMINAL_IDLE_TIMEOUT: '2',
    SERVERBOX_RECORD_INPUT: '1', SERVERBOX_RECORDING_MAX_BYTES: '20000', SERVERBOX_TERMINAL_MAX_PER_NODE: '2' } });
  const mk = async (name, key) => {
    const r = await core.request('POST', '/api/v1/nodes', { json: { name, host: '127.0.0.1', port: s1.port, ssh_user: 'root', private_key: key } });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  node = await mk('n1', s1.key);
  bare = await mk('bare', readFileSync(kp, 'utf8'));
});
after(async () => {
  try {
    for (const s of sessions) await core?.request('POST', `/api/v1/nodes/${node.id}/exec`, { json: { command: `tmux kill-session -t '=${s}' 2>/dev/null; true` } }).catch(() => {});
    await core?.stop();
  } finally {
    s1?.remove();
  }
});

const req = (m, p, o = {}) => core.request(m, p, o);
const closedEvent = (id) => JSON.parse(db.sql(`SELECT coalesce(json_agg(body::json), '[]') FROM events WHERE type = 'terminal.closed' AND data->>'terminal_id' = '${id}'`))[0];
async function open(session) {
  const r = await req('POST', `/api/v1/nodes/${node.id}/terminals`, { json: { session } });
  assert.equal(r.status, 201, r.text);
  sessions.push(session);
  return r.body;
}

test('a node without tmux: the answer says so in words, nothing is left open', async () => {
  const r = await req('POST', `/api/v1/nodes/${bare.id}/terminals`, { json: { session: 'x' } });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.body.error.code, 'tmux_missing');
  assert.match(r.body.error.message, /tmux is not installed on the node/);
  assert.equal((await req('GET', '/api/v1/terminals')).body.items.length, 0);
  const ex = await req('POST', `/api/v1/nodes/${bare.id}/exec`, { json: { command: 'echo fine' } });
  assert.equal(ex.body.stdout, 'fine\n', 'the node itself works');
});

test('the per-node limit, then idle terminals are detached while tmux keeps the session', async () => {
  const a = await open(`a-${tag}`);
  const b = await open(`b-${tag}`);
  const c = await req('POST', `/api/v1/nodes/${node.id}/terminals`, { json: { session: `c-${tag}` } });
  assert.equal(c.status, 409, c.text);
  assert.match(c.body.error.message, /too many terminals/);
  // Joining an open one is not a new terminal.
  assert.equal((await req('POST', `/api/v1/nodes/${node.id}/terminals`, { json: { session: `a-${tag}` } })).status, 200);
  // A viewer keeps b alive; a (no viewer, no input) goes after 2 s.
  const sb = openSse(core.base, `/api/v1/terminals/${b.id}/output`, { token: core.token });
  await sb.ready;
  await waitFor(async () => (await req('GET', `/api/v1/terminals/${a.id}`)).status === 404, { timeout: 15000, what: 'a detached' });
  const ev = closedEvent(a.id);
  assert.equal(ev.data.reason, 'idle');
  assert.equal(ev.actor.kind, 'system');
  assert.equal((await req('GET', `/api/v1/terminals/${b.id}`)).status, 200, 'a watched terminal stays');
  const has = await req('POST', `/api/v1/nodes/${node.id}/exec`, { json: { command: `tmux has-session -t '=a-${tag}'` } });
  assert.equal(has.body.exit_code, 0, 'the tmux session is kept');
  sb.close();
  assert.equal((await req('DELETE', `/api/v1/terminals/${b.id}`)).status, 200);
  // Killing a session no terminal shows.
  assert.equal((await req('DELETE', `/api/v1/nodes/${node.id}/terminals/a-${tag}`)).status, 204);
  assert.equal((await req('DELETE', `/api/v1/nodes/${node.id}/terminals/a-${tag}`)).status, 404);
  assert.equal((await req('DELETE', `/api/v1/nodes/${node.id}/terminals/bad.name`)).status, 422);
});

test('--record-input records "i" events; the size cap stops the recording and says so', async () => {
  const t = await open(`rec-${tag}`);
  const s = openSse(core.base, `/api/v1/terminals/${t.id}/output?offset=0`, { token: core.token });
  await s.ready;
  const text = () => s.events.filter((e) => e.event === 'output').map((e) => Buffer.from(JSON.parse(e.data).data, 'base64').toString('latin1')).join('');
  await req('POST', `/api/v1/terminals/${t.id}/input`, { body: 'echo in-$((1+2))\r', headers: { 'Content-Type': 'text/plain' } });
  await s.waitFor(() => /in-3/.test(text()), { what: 'in-3' });
  await req('POST', `/api/v1/terminals/${t.id}/input`, { body: 'seq 1 100000; echo done-$((2*2))\r', headers: { 'Content-Type': 'text/plain' } });
  await s.waitFor(() => /done-4/.test(text()), { timeout: 60000, what: 'the end of seq' });
  s.close();
  const c = await req('DELETE', `/api/v1/terminals/${t.id}?kill=1`);
  assert.equal(c.status, 200, c.text);
  assert.equal(c.body.recording.truncated, true);
  assert.equal(closedEvent(t.id).data.recording.truncated, true);
  const dl = await fetch(`${core.base}/api/v1/recordings/${c.body.recording.id}`, { headers: { Authorization: `Bearer ${core.token}` } });
  const bytes = Buffer.from(await dl.arrayBuffer());
  assert.equal(createHash('sha256').update(bytes).digest('hex'), c.body.recording.sha256);
  assert.ok(bytes.length <= 20000 + 200, `capped: ${bytes.length}`);
  const lines = bytes.toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l[1] === 'i' && l[2].includes('echo in-$((1+2))')), 'input recorded');
  const last = lines[lines.length - 1];
  assert.equal(last[1], 'm');
  assert.match(last[2], /recording stopped at its size cap of 20000 bytes/);
  const list = await req('GET', '/api/v1/recordings');
  assert.equal(list.body.items.find((x) => x.id === c.body.recording.id).truncated, true);
});
