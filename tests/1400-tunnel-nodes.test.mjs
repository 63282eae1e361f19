// Nodes behind NAT (issue #21), with real OpenSSH on both sides: a node in
// a network namespace whose sshd listens on the namespace's own loopback
// (so the core cannot reach it) dials the core's tunnel sshd
// (scripts/tunnel-sshd.sh) with the stock `ssh -N -R`; the core registers
// it, checks it, runs commands, a terminal and lists containers through the
// tunnel. The node's key opens its own forward and nothing else (another
// port, -W, -L, a command, a shell, another account: each refused). A killed client makes
// the node offline and its restart online again; deleting the node removes
// its key line and cuts its live tunnel.
//
// Docker: the namespace shares the host's filesystem, so the node's "Docker
// socket" is a stub engine served by this test on a unix socket (/_ping and
// /containers/json): the transport is the real one (core's Docker client ->
// SSH bridge -> tunnel -> the node's sshd -> direct-streamlocal), the engine
// is not.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { ROOT, createDatabase, runCore, startCore, tempDir, waitFor } from './lib/harness.mjs';
import { openSse } from './lib/sse.mjs';

const INTERVAL = 2; // --node-check-interval, seconds
const tag = randomBytes(3).toString('hex');
const NS = `sbxt${tag}`;
const VH = `sbxh${tag}`;
const VN = `sbxn${tag}`;
const octet = 1 + (parseInt(tag, 16) % 250);
const HOST_IP = `10.253.${octet}.1`;
const NODE_IP = `10.253.${octet}.2`;
// Ten ports below the kernel's ephemeral range (so no daemon's :0 takes
// one), none listening now.
function freeRange() {
  const busy = execFileSync('ss', ['-Htan'], { encoding: 'utf8' });
  for (let i = 0; i < 100; i++) {
    const base = 30000 + Math.floor(Math.random() * 270) * 10;
    let ok = true;
    for (let p = base; p < base + 10 && ok; p++) ok = !busy.includes(`:${p} `);
    if (ok) return base;
  }
  throw new Error('no free port range');
}
const PORT_BASE = freeRange();

let db, core, tdir, tunnel, ndir, nodeSshd, dockerStub;
const clients = new Set();

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', ...opts });
const inNs = (args, opts = {}) => spawnSync('ip', ['netns', 'exec', NS, ...args], { encoding: 'utf8', timeout: 20000, ...opts });
const kv = (out) => Object.fromEntries(out.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
const req = (method, path, json) => core.request(method, path, { json });
const events = (type) => JSON.parse(db.sql(`SELECT coalesce(json_agg(body::json ORDER BY seq), '[]') FROM events WHERE type = '${type}'`));
const keyLines = () => readFileSync(tunnel.TUNNEL_AUTHORIZED_KEYS, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));

// The node's ssh options for dialing the tunnel sshd (its key, the pinned
// host key of the tunnel sshd, no agent, no config file).
const sshOpts = () => ['-F', '/dev/null', '-i', join(ndir, 'tunnel_ed25519'), '-o', 'IdentitiesOnly=yes',
  '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${join(ndir, 'known_hosts')}`,
  '-o', 'ConnectTimeout=10', '-p', tunnel.TUNNEL_PORT];
const dest = () => `${tunnel.TUNNEL_USER}@${HOST_IP}`;

// Runs the command the core gave for the node (its tunnel_command), with
// the options above inserted after `ssh`, inside the namespace.
function startClient(command) {
  const words = command.split(' ');
  assert.equal(words[0], 'ssh');
  const proc = spawn('ip', ['netns', 'exec', NS, 'ssh', ...sshOpts(), '-o', 'ServerAliveInterval=2', ...words.slice(1)],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const c = { proc, exited, stderr: () => stderr, alive: () => proc.exitCode === null && proc.signalCode === null };
  clients.add(c);
  exited.then(() => clients.delete(c));
  return c;
}

// The ExecStart of packaging/systemd/serverbox-tunnel.service, with this
// node's key, known_hosts and tunnel.env values, run inside the namespace.
function startUnitClient() {
  const unit = readFileSync(join(ROOT, 'packaging', 'systemd', 'serverbox-tunnel.service'), 'utf8');
  const vars = { TUNNEL_PORT: String(nat.tunnel_port), CORE_PORT: tunnel.TUNNEL_PORT, CORE_USER: tunnel.TUNNEL_USER, CORE_HOST: HOST_IP };
  const argv = unit.split('\n').find((l) => l.startsWith('ExecStart=')).slice('ExecStart='.length)
    .replaceAll('/var/lib/serverbox-tunnel/id_ed25519', join(ndir, 'tunnel_ed25519'))
    .replaceAll('/etc/serverbox/tunnel_known_hosts', join(ndir, 'known_hosts'))
    .replace(/\$\{(\w+)\}/g, (_, k) => vars[k]).split(' ');
  const proc = spawn('ip', ['netns', 'exec', NS, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const c = { proc, exited, stderr: () => stderr, alive: () => proc.exitCode === null && proc.signalCode === null };
  clients.add(c);
  exited.then(() => clients.delete(c));
  return c;
}

// One ssh attempt from the node with its tunnel key; {code, stdout, stderr}.
function attempt(args) {
  const r = inNs(['ssh', ...sshOpts(), ...args], { timeout: 20000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const listening = (port) => sh('ss', ['-Htln', `( sport = :${port} )`]).includes(`127.0.0.1:${port}`);

before(async () => {
  // The namespace: a veth pair, the node at NODE_IP, the core's host at HOST_IP.
  sh('ip', ['netns', 'add', NS]);
  sh('ip', ['link', 'add', VH, 'type', 'veth', 'peer', 'name', VN]);
  sh('ip', ['link', 'set', VN, 'netns', NS]);
  sh('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', VH]);
  sh('ip', ['link', 'set', VH, 'up']);
  sh('ip', ['netns', 'exec', NS, 'ip', 'addr', 'add', `${NODE_IP}/30`, 'dev', VN]);
  sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', VN, 'up']);
  sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);

  // The core's tunnel sshd, on the host side of the veth.
  tdir = tempDir('sbx-tunnel-');
  tunnel = kv(sh(join(ROOT, 'scripts', 'tunnel-sshd.sh'), ['start', tdir], { env: { ...process.env, TUNNEL_LISTEN: HOST_IP } }));

  // The node: its own sshd on 127.0.0.1:22 of the namespace, its tunnel key,
  // and the tunnel sshd's host key pinned.
  ndir = tempDir('sbx-natnode-');
  nodeSshd = kv(sh('ip', ['netns', 'exec', NS, join(ROOT, 'scripts', 'sshd.sh'), 'start', ndir, '22']));
  // The node's tmux server of its own: the filesystem (and /tmp/tmux-0) is
  // shared with the host, whose tmux server would run the terminal's shell
  // outside the namespace.
  sh('mkdir', ['-m', '700', join(ndir, 'tmux')]);
  const cfgBefore = readFileSync(join(ndir, 'sshd_config'), 'utf8');
  writeFileSync(join(ndir, 'sshd_config'), `${cfgBefore}SetEnv TMUX_TMPDIR=${join(ndir, 'tmux')}\n`);
  const pid = readFileSync(join(ndir, 'sshd.pid'), 'utf8').trim();
  sh('kill', ['-HUP', pid]);
  await waitFor(() => inNs(['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/22 && head -c 4 <&3']).stdout === 'SSH-',
    { timeout: 10000, what: 'the node sshd after its reload' });
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'root@nat-node', '-f', join(ndir, 'tunnel_ed25519')]);

  // The stub engine the node's sshd forwards the Docker socket to.
  const sock = join(ndir, 'docker.sock');
  dockerStub = createServer((rq, rs) => {
    rs.setHeader('Content-Type', 'application/json');
    const url = rq.url.replace(/^\/v\d+\.\d+/, '');
    if (url === '/_ping') { rs.setHeader('Content-Type', 'text/plain'); rs.end('OK'); return; }
    if (url === '/version') { rs.end(JSON.stringify({ ApiVersion: '1.41', MinAPIVersion: '1.12', Version: 'stub' })); return; }
    if (url.startsWith('/containers/json')) {
      rs.end(JSON.stringify([{ Id: 'c0ffee'.repeat(10) + 'abcd', Names: ['/behind-nat'], Image: 'busybox', ImageID: 'sha256:1',
        Command: 'sleep', Created: 1700000000, State: 'running', Status: 'Up 1 minute', Labels: {}, Ports: [], Mounts: [] }]));
      return;
    }
    rs.statusCode = 404;
    rs.end(JSON.stringify({ message: `stub engine: no ${rq.url}` }));
  });
  await new Promise((resolve) => dockerStub.listen(sock, resolve));
  chmodSync(sock, 0o666);

  db = createDatabase('tunnels');
  core = await startCore({
    db, admin: true, env: {
      SERVERBOX_NODE_CHECK_INTERVAL: String(INTERVAL),
      // Only the namespace's subnet: the tunnel nodes' 127.0.0.1 is the core's
      // own forward, not under this policy.
      SERVERBOX_NODE_ALLOWED_NETWORKS: `${HOST_IP.replace(/\.1$/, '.0')}/30`,
      SERVERBOX_TUNNEL_AUTHORIZED_KEYS: tunnel.TUNNEL_AUTHORIZED_KEYS,
      SERVERBOX_TUNNEL_PORT_RANGE: `${PORT_BASE}-${PORT_BASE + 9}`,
      SERVERBOX_TUNNEL_ENDPOINT: `${HOST_IP}:${tunnel.TUNNEL_PORT}`,
      SERVERBOX_TUNNEL_USER: tunnel.TUNNEL_USER,
      SERVERBOX_TUNNEL_HOST_KEY: join(tdir, 'host_ed25519.pub'),
      SERVERBOX_NODE_DOCKER_SOCKET: sock,
    },
  });
});

after(async () => {
  for (const c of clients) c.proc.kill('SIGKILL');
  try {
    await core?.stop();
  } finally {
    dockerStub?.close();
    if (ndir) spawnSync(join(ROOT, 'scripts', 'sshd.sh'), ['stop', ndir]);
    if (tdir) spawnSync(join(ROOT, 'scripts', 'tunnel-sshd.sh'), ['stop', tdir]);
    spawnSync('ip', ['link', 'del', VH]);
    spawnSync('ip', ['netns', 'del', NS]);
  }
});

const tunnelPub = () => readFileSync(join(ndir, 'tunnel_ed25519.pub'), 'utf8').trim();
const tunnelNode = (extra = {}) => ({ name: `nat-${randomBytes(3).toString('hex')}`, connection: 'tunnel', ssh_user: 'root',
  private_key: readFileSync(nodeSshd.SSHD_KEY, 'utf8'), host_key_fingerprint: nodeSshd.SSHD_FP, tunnel_public_key: tunnelPub(), ...extra });
let nat, other, client;

test('the node is not reachable directly: its sshd listens inside its namespace only', async () => {
  const r = await req('POST', '/api/v1/nodes', { name: 'direct-try', host: NODE_IP, port: 22, ssh_user: 'root',
    private_key: readFileSync(nodeSshd.SSHD_KEY, 'utf8') });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.body.error.code, 'ssh_unreachable');
});

test('bad tunnel registrations are refused with the field named, nothing written', async () => {
  const rsa = sh('sh', ['-c', `ssh-keygen -q -t rsa -b 2048 -N '' -f ${ndir}/rsa && cat ${ndir}/rsa.pub`]).trim();
  const cases = [
    [{ tunnel_public_key: undefined }, 'tunnel_public_key'],
    [{ tunnel_public_key: rsa }, 'tunnel_public_key'],
    [{ tunnel_public_key: `command="/bin/sh" ${tunnelPub()}` }, 'tunnel_public_key'],
    [{ tunnel_public_key: `${tunnelPub()}\nrestrict,permitlisten="*:22" ${tunnelPub()}` }, 'tunnel_public_key'],
    [{ tunnel_public_key: 42 }, 'tunnel_public_key'],
    [{ host: '10.0.0.9' }, 'host'],
    [{ port: 2222 }, 'port'],
    [{ host_key_fingerprint: undefined }, 'host_key_fingerprint'],
    [{ docker: 'local' }, 'docker'],
    [{ connection: 'carrier-pigeon' }, 'connection'],
  ];
  for (const [extra, field] of cases) {
    const body = tunnelNode(extra);
    for (const k of Object.keys(extra)) if (extra[k] === undefined) delete body[k];
    const r = await req('POST', '/api/v1/nodes', body);
    assert.equal(r.status, 422, `${JSON.stringify(extra)}: ${r.text}`);
    assert.equal(r.body.error.field, field, r.text);
  }
  const d = await req('POST', '/api/v1/nodes', { name: 'direct-with-key', host: NODE_IP, ssh_user: 'root',
    private_key: 'x', tunnel_public_key: tunnelPub() });
  assert.equal(d.status, 422);
  assert.equal(d.body.error.field, 'tunnel_public_key');
  assert.deepEqual(keyLines(), []);
  assert.equal((await req('GET', '/api/v1/nodes')).body.items.length, 0);
});

test('registered through the tunnel: key line, port, then online with exec and containers through it', async () => {
  const r = await req('POST', '/api/v1/nodes', tunnelNode({ name: 'nat-box', labels: { site: 'home' } }));
  assert.equal(r.status, 201, r.text);
  nat = r.body;
  assert.equal(nat.connection, 'tunnel');
  assert.ok(nat.tunnel_port >= PORT_BASE && nat.tunnel_port <= PORT_BASE + 9, String(nat.tunnel_port));
  assert.equal(nat.host, '127.0.0.1');
  assert.equal(nat.port, nat.tunnel_port);
  assert.equal(nat.status, 'offline');
  assert.equal(nat.host_key_fingerprint, nodeSshd.SSHD_FP);
  assert.equal(nat.tunnel_command,
    `ssh -N -R 127.0.0.1:${nat.tunnel_port}:localhost:22 -o ExitOnForwardFailure=yes -o ServerAliveInterval=15 ` +
    `-o ServerAliveCountMax=3 -p ${tunnel.TUNNEL_PORT} ${tunnel.TUNNEL_USER}@${HOST_IP}`);
  // The node pins the tunnel sshd's host key with the line the core answers.
  assert.equal(nat.tunnel_known_hosts, `[${HOST_IP}]:${tunnel.TUNNEL_PORT} ${tunnel.TUNNEL_KNOWN_HOST}`);
  writeFileSync(join(ndir, 'known_hosts'), `${nat.tunnel_known_hosts}\n`);
  const key = tunnelPub().split(' ').slice(0, 2).join(' ');
  assert.deepEqual(keyLines(), [
    `restrict,port-forwarding,permitlisten="127.0.0.1:${nat.tunnel_port}",command="/bin/false" ${key} sbx-node-${nat.id}`]);

  // The same key for a second node: refused (sshd would use the first line).
  const dup = await req('POST', '/api/v1/nodes', tunnelNode());
  assert.equal(dup.status, 409, dup.text);
  // A second tunnel node with a key of its own gets the next port.
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(ndir, 'other_ed25519')]);
  // (with a login key the core makes, whose public half the node would install)
  const ob = tunnelNode({ tunnel_public_key: readFileSync(join(ndir, 'other_ed25519.pub'), 'utf8').trim(), generate_key: true });
  delete ob.private_key;
  const o = await req('POST', '/api/v1/nodes', ob);
  assert.equal(o.status, 201, o.text);
  other = o.body;
  assert.match(other.public_key, /^ssh-ed25519 /);
  assert.equal(other.status, 'offline');
  assert.notEqual(other.tunnel_port, nat.tunnel_port);
  assert.equal(keyLines().length, 2);

  client = startClient(nat.tunnel_command);
  const up = await waitFor(async () => {
    const g = await req('GET', `/api/v1/nodes/${nat.id}`);
    return g.body.status === 'online' && g.body.tunnel_status === 'up' && g.body;
  }, { timeout: 60000, what: `the tunnel node online (client: ${client.stderr()})` });
  assert.ok(up.tunnel_connected_since, 'connected since');
  assert.equal(up.tunnel_reconnects, 0);
  assert.ok(events('node.tunnel_up').some((e) => e.data.id === nat.id && e.data.port === nat.tunnel_port));

  // exec runs in the node's namespace, through 127.0.0.1:<tunnel port>.
  const nsInode = sh('ip', ['netns', 'exec', NS, 'readlink', '/proc/self/ns/net']).trim();
  assert.notEqual(nsInode, sh('readlink', ['/proc/self/ns/net']).trim());
  const x = await req('POST', `/api/v1/nodes/${nat.id}/exec`, { command: 'readlink /proc/self/ns/net; echo "$SSH_CONNECTION"; ip -o -4 addr show' });
  assert.equal(x.status, 200, x.text);
  assert.equal(x.body.exit_code, 0, x.text);
  const [inode, conn] = x.body.stdout.split('\n');
  assert.equal(inode, nsInode, 'ran in the node\'s namespace');
  assert.match(conn, / 22$/, 'reached the node\'s own sshd on port 22');
  assert.ok(x.body.stdout.includes(NODE_IP));

  // A terminal (tmux in a PTY channel of a pooled session) through the tunnel.
  const term = await req('POST', `/api/v1/nodes/${nat.id}/terminals`, { session: `nat-${tag}`, cols: 100, rows: 30 });
  assert.ok(term.status === 201 || term.status === 200, term.text);
  const out = openSse(core.base, `/api/v1/terminals/${term.body.id}/output?offset=0`, { token: core.token });
  try {
    await out.ready;
    assert.equal(out.status, 200);
    const typed = await core.request('POST', `/api/v1/terminals/${term.body.id}/input`,
      { body: 'echo "ns=$(readlink /proc/self/ns/net)"\r', headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(typed.status, 200, typed.text);
    const screen = () => Buffer.concat(out.events.filter((e) => e.event === 'output')
      .map((e) => Buffer.from(JSON.parse(e.data).data, 'base64'))).toString('latin1');
    await waitFor(() => screen().includes(`ns=${nsInode}`), { timeout: 20000, what: 'the terminal\'s output' });
  } finally {
    out.close();
  }
  const killed = await req('DELETE', `/api/v1/terminals/${term.body.id}?kill=1`);
  assert.ok(killed.status < 300, killed.text);

  // Containers: the core's Docker client over the SSH bridge through the tunnel.
  const c = await waitFor(async () => {
    const l = await req('GET', `/api/v1/nodes/${nat.id}/containers`);
    return l.status === 200 && l;
  }, { timeout: 30000, what: 'the container list' });
  assert.ok(c.text.includes('behind-nat'), c.text);
  // The list has the tunnel's state; a guest sees the state, not how to reach it.
  const list = await req('GET', '/api/v1/nodes');
  const row = list.body.items.find((n) => n.id === nat.id);
  assert.equal(row.connection, 'tunnel');
  assert.equal(row.tunnel_status, 'up');
  assert.equal(row.tunnel_port, nat.tunnel_port);
  const gl = await req('POST', '/api/v1/guest-links', { scopes: ['view:metrics'], ttl_seconds: 600 });
  assert.equal(gl.status, 201, gl.text);
  const guestList = await core.request('GET', '/api/v1/nodes', { token: gl.body.token });
  assert.equal(guestList.status, 200, guestList.text);
  const grow = guestList.body.items.find((n) => n.id === nat.id);
  assert.equal(grow.connection, 'tunnel');
  assert.equal(grow.tunnel_status, 'up');
  for (const k of ['tunnel_port', 'tunnel_public_key', 'host', 'port']) assert.ok(!(k in grow), `guests do not see ${k}`);
  const guestOne = await core.request('GET', `/api/v1/nodes/${nat.id}`, { token: gl.body.token });
  assert.equal(guestOne.status, 200, guestOne.text);
  for (const k of ['tunnel_port', 'tunnel_command', 'tunnel_known_hosts']) assert.ok(!(k in guestOne.body), `guests do not see ${k}`);
});

test('the node\'s key opens its own forward and nothing else', async () => {
  assert.ok(client.alive(), client.stderr());
  // -R to another port (another tunnel node's, and an unassigned one).
  for (const port of [other.tunnel_port, PORT_BASE + 9]) {
    const r = attempt(['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${port}:localhost:22`, dest()]);
    assert.equal(r.code, 255, r.stderr);
    assert.match(r.stderr, /remote port forwarding failed/);
    assert.ok(!listening(port), `nothing listens on ${port}`);
  }
  // -R on every address of the core's host, its own port.
  const all = attempt(['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `0.0.0.0:${PORT_BASE + 8}:localhost:22`, dest()]);
  assert.equal(all.code, 255, all.stderr);
  assert.match(all.stderr, /remote port forwarding failed/);
  // -R to a unix socket on the core's host.
  const unixSock = join(tdir, `fwd-${tag}.sock`);
  const ux = attempt(['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${unixSock}:localhost:22`, dest()]);
  assert.equal(ux.code, 255, ux.stderr);
  assert.match(ux.stderr, /forwarding failed/);
  assert.ok(!sh('ls', [tdir]).includes(`fwd-${tag}.sock`), 'no socket made');
  // -W (a direct-tcpip channel, what -L and -D open) to the core's services.
  for (const target of [`127.0.0.1:${nat.tunnel_port}`, `127.0.0.1:${core.port}`, `${HOST_IP}:${tunnel.TUNNEL_PORT}`]) {
    const r = attempt(['-W', target, dest()]);
    assert.equal(r.code, 255, `${target}: ${r.stderr}`);
    assert.match(r.stderr, /administratively prohibited|open failed/, target);
    assert.ok(!r.stdout.includes('SSH-2.0'), target);
  }
  // -L: the local listener opens, every connection through it is refused.
  const lport = 40000 + (parseInt(tag, 16) % 1000);
  const l = spawn('ip', ['netns', 'exec', NS, 'ssh', ...sshOpts(), '-N', '-L', `127.0.0.1:${lport}:127.0.0.1:${core.port}`, dest()], { stdio: ['ignore', 'ignore', 'pipe'] });
  let lerr = '';
  l.stderr.on('data', (d) => { lerr += d; });
  try {
    const got = await waitFor(() => {
      const r = inNs(['bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${lport} && printf 'GET /health/live HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3; echo "rc=$?"`]);
      return r.stdout.includes('rc=') && !r.stderr.includes('Connection refused') && r;
    }, { timeout: 20000, what: 'the -L listener' });
    assert.ok(!got.stdout.includes('HTTP/'), `no answer through -L: ${got.stdout}`);
    await waitFor(() => /open failed|administratively prohibited/.test(lerr), { timeout: 10000, what: `the -L refusal (${lerr})` });
  } finally {
    l.kill('SIGKILL');
  }
  // A command, a shell, a PTY.
  const cmd = attempt([dest(), 'echo pwned; id']);
  assert.notEqual(cmd.code, 0);
  assert.ok(!cmd.stdout.includes('pwned') && !cmd.stdout.includes('uid='), cmd.stdout);
  const shell = attempt(['-tt', dest()]);
  assert.notEqual(shell.code, 0);
  assert.ok(!shell.stdout.includes('$') && !shell.stdout.includes('#'), shell.stdout);
  // Another account on the tunnel sshd.
  const root = attempt(['-N', '-R', `127.0.0.1:${nat.tunnel_port + 1}:localhost:22`, `root@${HOST_IP}`]);
  assert.equal(root.code, 255);
  assert.match(root.stderr, /Permission denied/);
  // Through all that, the tunnel itself stayed up.
  assert.ok(client.alive(), client.stderr());
  const x = await req('POST', `/api/v1/nodes/${nat.id}/exec`, { command: 'true' });
  assert.equal(x.status, 200, x.text);
});

test('a killed client makes the node offline; a restarted one online again', async () => {
  const t0 = Date.now();
  client.proc.kill('SIGKILL');
  await client.exited;
  const down = await waitFor(async () => {
    const g = await req('GET', `/api/v1/nodes/${nat.id}`);
    return g.body.status === 'offline' && g.body.tunnel_status === 'down' && g.body;
  }, { timeout: 60000, interval: 100, what: 'the node offline' });
  const offlineMs = Date.now() - t0;
  console.log(`# offline ${offlineMs} ms after the kill (check interval ${INTERVAL * 1000} ms)`);
  assert.equal(down.tunnel_connected_since, null);
  assert.ok(events('node.tunnel_down').some((e) => e.data.id === nat.id));
  // Work for the node fails clearly meanwhile.
  const x = await req('POST', `/api/v1/nodes/${nat.id}/exec`, { command: 'true' });
  assert.equal(x.status, 502, x.text);
  assert.equal(x.body.error.code, 'ssh_unreachable');

  // Back with the exact command line of the node's systemd unit
  // (packaging/systemd/serverbox-tunnel.service), its paths and settings
  // put in.
  const t1 = Date.now();
  client = startUnitClient();
  const up = await waitFor(async () => {
    const g = await req('GET', `/api/v1/nodes/${nat.id}`);
    return g.body.status === 'online' && g.body.tunnel_status === 'up' && g.body;
  }, { timeout: 60000, interval: 100, what: `the node online again (${client.stderr()})` });
  console.log(`# online ${Date.now() - t1} ms after the restart`);
  assert.equal(up.tunnel_reconnects, 1);
  const y = await req('POST', `/api/v1/nodes/${nat.id}/exec`, { command: 'echo back' });
  assert.equal(y.status, 200, y.text);
  assert.equal(y.body.stdout, 'back\n');
});

test('a tunnel node\'s connection is fixed; rebuild-projections reproduces the tunnel columns', async () => {
  for (const [body, field] of [[{ host: '10.9.9.9' }, 'host'], [{ port: 22 }, 'port'], [{ connection: 'direct' }, 'connection'],
    [{ tunnel_public_key: tunnelPub() }, 'tunnel_public_key'], [{ docker: 'local' }, 'docker']]) {
    const r = await req('PATCH', `/api/v1/nodes/${nat.id}`, body);
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.error.field, field);
  }
  const p = await req('PATCH', `/api/v1/nodes/${nat.id}`, { labels: { site: 'office' } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.tunnel_port, nat.tunnel_port);
  assert.equal(keyLines().length, 2);
  const snapshot = () => db.sql("SELECT string_agg(n::text, '|' ORDER BY id) FROM nodes n");
  const before = snapshot();
  assert.match(before, /tunnel/);
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(snapshot(), before);
});

test('deleting the node removes its key line and cuts its live tunnel', async () => {
  assert.ok(client.alive() && listening(nat.tunnel_port));
  const t0 = Date.now();
  const d = await req('DELETE', `/api/v1/nodes/${nat.id}`);
  assert.equal(d.status, 204, d.text);
  assert.ok(!keyLines().some((l) => l.endsWith(`sbx-node-${nat.id}`)), 'key line gone');
  assert.equal(keyLines().length, 1, 'the other node\'s line stays');
  const r = await Promise.race([client.exited, new Promise((resolve) => setTimeout(() => resolve(null), 30000))]);
  assert.ok(r, 'the client was cut');
  console.log(`# tunnel cut ${Date.now() - t0} ms after the delete`);
  assert.ok(!listening(nat.tunnel_port), 'the forward is gone');
  assert.match(core.log(), new RegExp(`tunnel no node owns cut.* port=${nat.tunnel_port} processes=1`));
  // It cannot come back.
  const again = attempt(['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${nat.tunnel_port}:localhost:22`, dest()]);
  assert.equal(again.code, 255);
  assert.match(again.stderr, /Permission denied/);
});
