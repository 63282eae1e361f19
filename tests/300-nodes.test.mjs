// Nodes over SSH against real OpenSSH servers: registration with host-key
// pinning, exec on two nodes, hostile input, wrong keys and users, RSA,
// passphrases, generated keys, host-key changes, timeouts and output caps,
// label filters, delete, rebuild, and secrets kept out of the database,
// the events and the logs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, startCore, runCore } from './lib/harness.mjs';
import { startSshd, authHeaders } from './lib/sshd.mjs';

let db, core, s1, s2;
const keysDir = mkdtempSync(join(tmpdir(), 'sbx-keys-'));

before(async () => {
  s1 = startSshd();
  s2 = startSshd();
  db = createDatabase('nodes');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: "0" } });
});
after(async () => {
  try {
    await core?.stop();
  } finally {
    s1?.remove();
    s2?.remove();
    rmSync(keysDir, { recursive: true, force: true });
  }
});

const req = (method, path, json) => core.request(method, path, { json, headers: authHeaders() });
const node = (s, extra = {}) => ({ name: `n-${Math.random().toString(16).slice(2, 10)}`, host: '127.0.0.1', port: s.port, ssh_user: 'root', private_key: s.key, ...extra });
function keygen(name, args) {
  const p = join(keysDir, name);
  execFileSync('ssh-keygen', ['-q', '-f', p, '-C', name, ...args]);
  return { key: readFileSync(p, 'utf8'), pub: readFileSync(`${p}.pub`, 'utf8').trim() };
}
const events = (type) => JSON.parse(db.sql(`SELECT coalesce(json_agg(body::json ORDER BY seq), '[]') FROM events WHERE type = '${type}'`));

test('two nodes with their own host keys: register, pin, exec on each', async () => {
  const a = await req('POST', '/api/v1/nodes', node(s1, { name: 'alpha', labels: { env: 'prod', role: 'web' } }));
  assert.equal(a.status, 201, a.text);
  assert.equal(a.body.host_key_fingerprint, s1.fingerprint, 'seen key pinned');
  assert.equal(a.body.status, 'online');
  assert.equal(a.body.docker, 'ssh');
  assert.ok(!('private_key' in a.body) && !a.text.includes('PRIVATE KEY'), 'key never returned');
  const b = await req('POST', '/api/v1/nodes', node(s2, { name: 'beta', host_key_fingerprint: s2.fingerprint, docker: 'local', labels: { env: 'staging' } }));
  assert.equal(b.status, 201, b.text);
  assert.equal(b.body.docker, 'local');
  assert.notEqual(s1.fingerprint, s2.fingerprint);

  for (const [n, s] of [[a.body, s1], [b.body, s2]]) {
    const r = await req('POST', `/api/v1/nodes/${n.id}/exec`, { command: 'echo "$SSH_CONNECTION"; echo err >&2; exit 3' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.exit_code, 3);
    assert.match(r.body.stdout, new RegExp(` ${s.port}\\n$`), 'ran on the right sshd');
    assert.equal(r.body.stderr, 'err\n');
    assert.equal(r.body.truncated, false);
    assert.equal(typeof r.body.duration_ms, 'number');
  }
  const reg = events('node.registered').filter((e) => e.outcome === 'success');
  const ea = reg.find((e) => e.data.id === a.body.id);
  assert.equal(ea.data.host_key_fingerprint, s1.fingerprint);
  assert.equal(ea.data.fingerprint_source, 'seen_at_registration');
  assert.equal(reg.find((e) => e.data.id === b.body.id).data.fingerprint_source, 'given');
  const execs = events('node.exec');
  assert.ok(execs.some((e) => e.data.command.startsWith('echo "$SSH_CONNECTION"') && e.data.exit_code === 3));

  const g = await req('GET', `/api/v1/nodes/${a.body.id}`);
  assert.equal(g.status, 200);
  assert.ok(g.body.pool.open >= 1 && g.body.pool.misses >= 1, JSON.stringify(g.body.pool));

  // label filters and listing
  const l1 = await req('GET', '/api/v1/nodes?label=env=prod');
  assert.deepEqual(l1.body.items.map((n) => n.name), ['alpha']);
  const l2 = await req('GET', '/api/v1/nodes?label=env=staging');
  assert.deepEqual(l2.body.items.map((n) => n.name), ['beta']);
  const l3 = await req('GET', '/api/v1/nodes?label=env=prod,role=db');
  assert.deepEqual(l3.body.items, []);
  const all = await req('GET', '/api/v1/nodes');
  assert.ok(all.body.items.length >= 2);
  assert.ok(!all.text.includes('PRIVATE KEY'));
});

test('hostile and invalid input is refused with 422 naming the field; duplicates 409', async () => {
  const cases = [
    [{ name: '../etc' }, 'name'], [{ name: 'a b' }, 'name'], [{ name: 'x'.repeat(64) }, 'name'], [{ name: 'a;rm -rf /' }, 'name'],
    [{ host: 'h;id' }, 'host'], [{ host: '-oProxyCommand=x' }, 'host'], [{ host: 'a b' }, 'host'],
    [{ ssh_user: 'root x' }, 'ssh_user'], [{ ssh_user: '-l' }, 'ssh_user'], [{ ssh_user: 'a\nb' }, 'ssh_user'],
    [{ port: 0 }, 'port'], [{ port: 70000 }, 'port'], [{ port: '22' }, 'port'],
    [{ host_key_fingerprint: 'MD5:aa' }, 'host_key_fingerprint'], [{ docker: 'tcp' }, 'docker'],
    [{ labels: { 'a b': 'x' } }, 'labels'], [{ labels: { a: 1 } }, 'labels'], [{ labels: { a: 'x\ny' } }, 'labels'],
    [{ private_key: '' }, 'private_key'], [{ private_key: undefined }, 'private_key'],
    [{ generate_key: true }, 'generate_key'], [{ surprise: 1 }, 'surprise'],
  ];
  for (const [patch, field] of cases) {
    const body = { ...node(s1), ...patch };
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    const r = await req('POST', '/api/v1/nodes', body);
    assert.equal(r.status, 422, `${JSON.stringify(patch)}: ${r.text}`);
    assert.equal(r.body.error.field, field, `${JSON.stringify(patch)}: ${r.text}`);
  }
  const dup = await req('POST', '/api/v1/nodes', node(s1, { name: 'alpha' }));
  assert.equal(dup.status, 409, dup.text);
  for (const id of ['nope', '00000000-0000-4000-8000-000000000000', '..%2f..%2fetc']) {
    assert.equal((await req('GET', `/api/v1/nodes/${id}`)).status, 404);
    assert.equal((await req('POST', `/api/v1/nodes/${id}/exec`, { command: 'true' })).status, 404);
  }
  const n = (await req('GET', '/api/v1/nodes?label=env=prod')).body.items[0];
  for (const body of [{ command: '' }, { command: 5 }, { command: 'true', timeout_seconds: 0 }, { command: 'true', timeout_seconds: 'x' }, { command: 'a\u0000b' }, { cmd: 'true' }]) {
    const r = await req('POST', `/api/v1/nodes/${n.id}/exec`, body);
    assert.ok([400, 422].includes(r.status), `${JSON.stringify(body)}: ${r.text}`);
  }
  assert.equal((await core.request('GET', '/health/live')).status, 200);
});

test('wrong pinned fingerprint at registration is refused and recorded', async () => {
  const r = await req('POST', '/api/v1/nodes', node(s1, { name: 'pinned-wrong', host_key_fingerprint: s2.fingerprint }));
  assert.equal(r.status, 422, r.text);
  assert.match(r.body.error.message, /host key mismatch/);
  assert.ok(r.body.error.message.includes(s1.fingerprint), 'names the key presented');
  assert.equal(db.sql("SELECT count(*) FROM nodes WHERE name = 'pinned-wrong'"), '0');
  assert.ok(events('node.registered').some((e) => e.outcome === 'failure' && e.data.name === 'pinned-wrong'));
});

test('a changed host key later: refused, node marked, event recorded, nothing executed', async () => {
  const s3 = startSshd();
  try {
    const r = await req('POST', '/api/v1/nodes', node(s3, { name: 'rekeyed' }));
    assert.equal(r.status, 201, r.text);
    const ok = await req('POST', `/api/v1/nodes/${r.body.id}/exec`, { command: 'true' });
    assert.equal(ok.status, 200, ok.text);
    // The server gets a new host key on the same port (the pool's session is dropped with it).
    s3.stop();
    rmSync(join(s3.dir, 'host_ed25519'));
    rmSync(join(s3.dir, 'host_ed25519.pub'));
    const s3b = s3.start();
    assert.notEqual(s3b.fingerprint, s3.fingerprint);
    const marker = join(s3.dir, 'must-not-exist');
    const x = await req('POST', `/api/v1/nodes/${r.body.id}/exec`, { command: `touch ${marker}` });
    assert.equal(x.status, 502, x.text);
    assert.equal(x.body.error.code, 'hostkey_mismatch');
    assert.ok(x.body.error.message.includes(s3b.fingerprint));
    assert.ok(!existsSync(marker), 'the command must not run');
    const g = await req('GET', `/api/v1/nodes/${r.body.id}`);
    assert.equal(g.body.status, 'hostkey_mismatch');
    const ev = events('node.hostkey_mismatch').filter((e) => e.data.id === r.body.id);
    assert.equal(ev.length, 1);
    assert.equal(ev[0].data.presented, s3b.fingerprint);
    assert.equal(ev[0].data.pinned, s3.fingerprint);
    // Again: still refused, no second event (recorded on change only).
    assert.equal((await req('POST', `/api/v1/nodes/${r.body.id}/exec`, { command: `touch ${marker}` })).status, 502);
    assert.equal(events('node.hostkey_mismatch').filter((e) => e.data.id === r.body.id).length, 1);
    const c = await req('POST', `/api/v1/nodes/${r.body.id}/check`);
    assert.equal(c.body.status, 'hostkey_mismatch');
    // The operator accepts the new key: PATCH re-pins and the node works again.
    const p = await req('PATCH', `/api/v1/nodes/${r.body.id}`, { host_key_fingerprint: s3b.fingerprint });
    assert.equal(p.status, 200, p.text);
    assert.equal((await req('POST', `/api/v1/nodes/${r.body.id}/exec`, { command: 'true' })).status, 200);
    assert.ok(!existsSync(marker));
  } finally {
    s3.remove();
  }
});

test('wrong private key, wrong user, unreachable port: clear 502s naming the cause', async () => {
  const other = keygen('other', ['-t', 'ed25519', '-N', '']);
  const k = await req('POST', '/api/v1/nodes', node(s1, { name: 'wrongkey', private_key: other.key }));
  assert.equal(k.status, 502, k.text);
  assert.equal(k.body.error.code, 'ssh_auth_failed');
  assert.match(k.body.error.message, /refused the key for user 'root'/);
  const u = await req('POST', '/api/v1/nodes', node(s1, { name: 'wronguser', ssh_user: 'nosuchuser' }));
  assert.equal(u.status, 502, u.text);
  assert.equal(u.body.error.code, 'ssh_auth_failed');
  assert.match(u.body.error.message, /nosuchuser/);
  const c = await req('POST', '/api/v1/nodes', node(s1, { name: 'closedport', port: 1 }));
  assert.equal(c.status, 502, c.text);
  assert.equal(c.body.error.code, 'ssh_unreachable');
  const g = await req('POST', '/api/v1/nodes', node(s1, { name: 'garbage', private_key: 'not a key' }));
  assert.equal(g.status, 422, g.text);
  assert.equal(g.body.error.field, 'private_key');
  assert.equal((await core.request('GET', '/health/live')).status, 200);
});

test('ECDSA PEM and passphrase-protected keys work; RSA gets a 422 that says why', async () => {
  const ec = keygen('ecdsa', ['-t', 'ecdsa', '-b', '256', '-m', 'PEM', '-N', '']);
  const ed = keygen('edpass', ['-t', 'ed25519', '-N', 'correct horse battery']);
  const rsa = keygen('rsa', ['-t', 'rsa', '-b', '2048', '-N', '']);
  appendFileSync(join(s2.dir, 'authorized_keys'), `${ec.pub}\n${ed.pub}\n${rsa.pub}\n`);

  const e = await req('POST', '/api/v1/nodes', node(s2, { name: 'ecdsa-node', private_key: ec.key }));
  assert.equal(e.status, 201, e.text);
  assert.match(e.body.key_type, /^ecdsa/);
  assert.equal((await req('POST', `/api/v1/nodes/${e.body.id}/exec`, { command: 'true' })).body.exit_code, 0);

  const bad = await req('POST', '/api/v1/nodes', node(s2, { name: 'edpass-bad', private_key: ed.key, passphrase: 'wrong' }));
  assert.equal(bad.status, 422, bad.text);
  assert.equal(bad.body.error.field, 'private_key');
  assert.match(bad.body.error.message, /passphrase/);
  const p = await req('POST', '/api/v1/nodes', node(s2, { name: 'edpass', private_key: ed.key, passphrase: 'correct horse battery' }));
  assert.equal(p.status, 201, p.text);
  assert.equal(p.body.key_type, 'ssh-ed25519');
  const x = await req('POST', `/api/v1/nodes/${p.body.id}/exec`, { command: 'echo pass-ok' });
  assert.equal(x.body.stdout, 'pass-ok\n');

  const r = await req('POST', '/api/v1/nodes', node(s2, { name: 'rsa-node', private_key: rsa.key }));
  if (r.status === 201) {
    // This libssh2 build managed RSA with SHA-2: then it must really work.
    assert.equal((await req('POST', `/api/v1/nodes/${r.body.id}/exec`, { command: 'true' })).status, 200);
  } else {
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.error.field, 'private_key');
    assert.match(r.body.error.message, /ssh-rsa \(SHA-1\).*ed25519/);
  }
});

test('generate_key: the core makes an ed25519 key, returns the line to install, and uses it', async () => {
  const r = await req('POST', '/api/v1/nodes', { name: 'generated', host: '127.0.0.1', port: s2.port, ssh_user: 'root', generate_key: true, labels: { gen: 'yes' } });
  assert.equal(r.status, 201, r.text);
  assert.match(r.body.public_key, /^ssh-ed25519 [A-Za-z0-9+/]+ serverbox@generated$/);
  assert.equal(r.body.status, 'offline');
  assert.equal(r.body.host_key_fingerprint, s2.fingerprint, 'host key learned without logging in');
  // ssh-keygen accepts our private key format: it derives the same public key.
  const cred = db.sql(`SELECT private_key FROM node_credentials WHERE node_id = '${r.body.id}'`);
  assert.match(cred, /^sb1:/);
  const before = await req('POST', `/api/v1/nodes/${r.body.id}/check`);
  assert.equal(before.body.status, 'offline');
  appendFileSync(join(s2.dir, 'authorized_keys'), `${r.body.public_key}\n`);
  const c = await req('POST', `/api/v1/nodes/${r.body.id}/check`);
  assert.equal(c.status, 200, c.text);
  assert.equal(c.body.status, 'online', c.text);
  assert.match(c.body.uname, /Linux/);
  assert.match(c.body.uptime, /load average/);
  assert.equal((await req('GET', `/api/v1/nodes/${r.body.id}`)).body.status, 'online');
  const ev = events('node.online').filter((e) => e.data.id === r.body.id);
  assert.equal(ev.length, 1);
  await req('POST', `/api/v1/nodes/${r.body.id}/check`);
  assert.equal(events('node.online').filter((e) => e.data.id === r.body.id).length, 1, 'events only on change');
  const x = await req('POST', `/api/v1/nodes/${r.body.id}/exec`, { command: 'id -un' });
  assert.equal(x.body.stdout, 'root\n');
});

test('timeout kills the remote process group; output is capped', async () => {
  const n = (await req('GET', '/api/v1/nodes?label=env=prod')).body.items[0];
  const tag = `sbx${Date.now()}`;
  const t = await req('POST', `/api/v1/nodes/${n.id}/exec`, { command: `echo started; sh -c 'sleep 4${tag.slice(-3)}' & sleep 4${tag.slice(-3)}`, timeout_seconds: 1 });
  assert.equal(t.status, 200, t.text);
  assert.equal(t.body.timed_out, true);
  assert.equal(t.body.exit_code, null);
  assert.equal(t.body.stdout, 'started\n');
  await new Promise((r) => setTimeout(r, 1500));
  let left = '';
  try { left = execFileSync('pgrep', ['-f', `[s]leep 4${tag.slice(-3)}`], { encoding: 'utf8' }).trim(); } catch { /* none */ }
  assert.equal(left, '', 'the command and its children are gone');
  const ev = events('node.exec').find((e) => e.data.command.includes(`sleep 4${tag.slice(-3)}`));
  assert.equal(ev.outcome, 'failure');
  assert.equal(ev.data.timed_out, true);

  const big = await req('POST', `/api/v1/nodes/${n.id}/exec`, { command: 'head -c 3000000 /dev/zero | tr "\\0" a; printf "\\377\\376" >&2' });
  assert.equal(big.status, 200, big.text);
  assert.equal(big.body.truncated, true);
  assert.equal(big.body.stdout.length, 1 << 20);
  assert.equal(big.body.exit_code, 0);
  assert.equal(big.body.stderr, '\ufffd\ufffd', 'invalid UTF-8 replaced');
});

test('PATCH and DELETE; rebuild-projections reproduces the nodes table', async () => {
  const r = await req('POST', '/api/v1/nodes', node(s1, { name: 'temp', labels: { t: '1' } }));
  assert.equal(r.status, 201, r.text);
  const p = await req('PATCH', `/api/v1/nodes/${r.body.id}`, { name: 'temp2', labels: { t: '2' } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.name, 'temp2');
  assert.deepEqual(p.body.labels, { t: '2' });
  assert.equal((await req('PATCH', `/api/v1/nodes/${r.body.id}`, { name: 'alpha' })).status, 409);
  const bad = await req('PATCH', `/api/v1/nodes/${r.body.id}`, { port: 1 });
  assert.equal(bad.status, 502, 'connection changes are verified');
  assert.equal((await req('GET', `/api/v1/nodes/${r.body.id}`)).body.port, s1.port);

  const snapshot = () => db.sql("SELECT md5(string_agg(n::text, '|' ORDER BY id)) FROM nodes n");
  const before = snapshot();
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(snapshot(), before);

  const d = await req('DELETE', `/api/v1/nodes/${r.body.id}`);
  assert.equal(d.status, 204, d.text);
  assert.equal((await req('GET', `/api/v1/nodes/${r.body.id}`)).status, 404);
  assert.equal(db.sql(`SELECT count(*) FROM node_credentials WHERE node_id = '${r.body.id}'`), '0');
  assert.equal(events('node.deleted').filter((e) => e.data.id === r.body.id).length, 1);
  assert.equal(events('node.updated').filter((e) => e.data.id === r.body.id && e.outcome === 'success').length, 1);
});

test('private keys and passphrases never appear in clear in the database, events or logs', async () => {
  const dump = execFileSync('runuser', ['-u', 'postgres', '--', '/usr/lib/postgresql/15/bin/pg_dump', '-h', db.socket, '-p', String(db.port), '-d', db.name], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.ok(dump.includes('node_credentials'), 'dump has the table');
  const secrets = [s1.key, s2.key, readFileSync(join(keysDir, 'edpass'), 'utf8'), readFileSync(join(keysDir, 'ecdsa'), 'utf8')];
  const haystacks = { dump, log: core.log(), events: db.sql('SELECT string_agg(body, E\'\\n\') FROM events') };
  for (const [what, text] of Object.entries(haystacks)) {
    assert.ok(!text.includes('PRIVATE KEY'), `${what} holds a key header`);
    for (const k of secrets) {
      for (const line of k.split('\n').filter((l) => l.length > 40)) assert.ok(!text.includes(line), `${what} holds key material`);
    }
    assert.ok(!text.includes('correct horse battery'), `${what} holds a passphrase`);
  }
});
