// ansible/: nodes.yml (roles docker, node, collector) run for real over SSH
// against the test sshd on loopback, in test mode: sbx_prefix puts every file
// under a temp dir and sbx_test_mode skips package installs, user creation
// and service-manager tasks, so this machine's /etc, sshd and firewall are
// never touched. The play fetches a one-time token from the core's API,
// enrolls the installed collector; a second run changes nothing (and so does
// a --check --diff run); the installed collector, started here from its
// installed path and config (no systemd here), reports to the core.
// hardening.yml is syntax-checked and linted, and its sshd and nftables
// templates are rendered by Ansible and checked with `sshd -T` and `nft -c`
// (check only: this machine's sshd and ruleset are not touched); the play
// itself is not run (it would change the host).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, spawn, execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir, createDatabase, startCore, waitFor, apiToken, createUser } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';
import { registerNode } from './lib/collector.mjs';
import { makeCert, httpsRequest } from './lib/tls.mjs';

const ANSIBLE = join(ROOT, 'ansible');
let db, core, sshd, node, prefix, inventory, extraVars, apiTok;

// This machine's own paths and users the roles would change outside test
// mode: the test asserts none of them appears or changes.
const HOST_PATHS = ['/usr/local/bin/serverbox-collector', '/etc/serverbox-collector.conf', '/var/lib/serverbox-collector',
  '/etc/systemd/system/serverbox-collector.service', '/etc/docker/daemon.json', '/etc/systemd/system/docker.socket.d', '/home/serverbox'];
function hostState() {
  const users = spawnSync('getent', ['passwd', 'serverbox', 'serverbox-collector'], { encoding: 'utf8' }).stdout;
  const group = spawnSync('getent', ['group', 'docker'], { encoding: 'utf8' }).stdout;
  return JSON.stringify({ paths: HOST_PATHS.map((p) => existsSync(p) && statSync(p).mtimeMs), users, group });
}
let hostBefore;

function ansibleEnv(extra = {}) {
  const tmp = tempDir('sbx-ansible-tmp-');
  const e = { ...process.env, ANSIBLE_CONFIG: join(ANSIBLE, 'ansible.cfg'), ANSIBLE_LOCAL_TEMP: tmp,
    ANSIBLE_REMOTE_TEMP: tmp, ANSIBLE_HOME: tmp, ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0', ...extra };
  for (const k of Object.keys(e)) if (k.startsWith('SERVERBOX_')) delete e[k];
  return { ...e, ...extra };
}

function playbook(args, env = {}) {
  const r = spawnSync('ansible-playbook', ['-i', inventory, '-e', `@${extraVars}`, ...args], { cwd: ANSIBLE, env: ansibleEnv(env), encoding: 'utf8', timeout: 300000 });
  const recap = r.stdout.match(/node1\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/);
  return { code: r.status, out: r.stdout + r.stderr, ok: recap && Number(recap[1]), changed: recap && Number(recap[2]), failed: recap && Number(recap[4]) };
}

before(async () => {
  sshd = startSshd();
  db = createDatabase('ansible');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
  node = await registerNode(core, sshd);
  apiTok = (await apiToken(core, core.token, { name: 'ansible' })).token;
  prefix = tempDir('sbx-node-root-');
  const dir = tempDir('sbx-inventory-');
  inventory = join(dir, 'inventory.ini');
  writeFileSync(inventory, [
    '[serverbox_nodes]',
    `node1 ansible_host=127.0.0.1 ansible_port=${sshd.port} ansible_user=root ansible_ssh_private_key_file=${sshd.keyPath} sbx_node_id=${node}`,
    '[serverbox_nodes:vars]',
    "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
    'ansible_python_interpreter=/usr/bin/python3',
    '',
  ].join('\n'));
  // Extra vars: the highest precedence, real booleans.
  extraVars = join(dir, 'test-vars.json');
  writeFileSync(extraVars, JSON.stringify({ sbx_test_mode: true, sbx_prefix: prefix, sbx_core_url: core.base,
    sbx_core_ssh_public_key: sshd.pub, collector_interval: 1 }));
  hostBefore = hostState();
});
after(async () => {
  try { await core?.stop(); } finally { sshd?.remove(); }
  assert.equal(hostState(), hostBefore, "this machine's own paths and users are untouched");
});

test('test mode without a prefix is refused before any change', () => {
  const r = playbook(['nodes.yml', '-e', 'sbx_prefix=']);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /sbx_test_mode needs sbx_prefix/);
  assert.equal(r.changed, 0, r.out);
  assert.equal(hostState(), hostBefore);
});

test('ansible-lint --offline is clean; every playbook passes --syntax-check', () => {
  const lint = spawnSync('ansible-lint', ['--offline', '-p'], { cwd: ANSIBLE, env: ansibleEnv(), encoding: 'utf8', timeout: 300000 });
  assert.equal(lint.status, 0, lint.stdout + lint.stderr);
  for (const pb of ['hardening.yml', 'nodes.yml', 'site.yml']) {
    const r = spawnSync('ansible-playbook', ['-i', join(ANSIBLE, 'inventory.example.ini'), '--syntax-check', pb],
      { cwd: ANSIBLE, env: ansibleEnv(), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  }
});

function render(template, vars) {
  const dir = tempDir('sbx-render-');
  const dest = join(dir, 'out');
  const r = spawnSync('ansible', ['localhost', '-c', 'local', '-i', 'localhost,', '-m', 'template', '-a', `src=${join(ANSIBLE, 'templates', template)} dest=${dest}`,
    '-e', JSON.stringify(vars)], { cwd: ANSIBLE, env: ansibleEnv(), encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return dest;
}

test('hardening.yml templates: sshd accepts the drop-in (keys only, modern algorithms); nft -c accepts the ruleset', () => {
  const hk = join(tempDir('sbx-hk-'), 'hk');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hk]);
  // sshd -T spells prohibit-password by its older name.
  for (const [byKey, root] of [[false, 'no'], [true, 'without-password']]) {
    const conf = render('sshd-serverbox.conf.j2', { sbx_root_login_by_key: byKey });
    const t = spawnSync('/usr/sbin/sshd', ['-T', '-f', conf, '-o', `HostKey=${hk}`], { encoding: 'utf8' });
    assert.equal(t.status, 0, t.stderr);
    const eff = Object.fromEntries(t.stdout.trim().split('\n').map((l) => l.split(/ (.*)/s).slice(0, 2)));
    assert.equal(eff.passwordauthentication, 'no');
    assert.equal(eff.kbdinteractiveauthentication, 'no');
    assert.equal(eff.permitrootlogin, root);
    assert.equal(eff.ciphers, 'chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com');
    assert.doesNotMatch(eff.kexalgorithms, /sha1|group14|nistp/);
    assert.doesNotMatch(eff.macs, /sha1|md5|umac-64/);
  }
  const nft = render('nftables.conf.j2', { sbx_ssh_port: 2222, sbx_app_ports: [80, 443, 8443] });
  const text = readFileSync(nft, 'utf8');
  assert.match(text, /policy drop;/);
  assert.match(text, /tcp dport 2222 ct state new limit rate/);
  assert.deepEqual([...text.matchAll(/^\s+tcp dport (\d+) accept$/gm)].map((m) => m[1]), ['80', '443', '8443']);
  const c = spawnSync('nft', ['-c', '-f', nft], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stderr);
  // The check can fail: a port nft cannot take is refused.
  const bad = spawnSync('nft', ['-c', '-f', render('nftables.conf.j2', { sbx_ssh_port: 22, sbx_app_ports: [70000] })], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
});

test('without a node id the collector role stops with its own message, and installs nothing', () => {
  const r = playbook(['nodes.yml', '-e', 'sbx_node_id=', '-e', `sbx_prefix=${prefix}/refused`]);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /set sbx_core_url and sbx_node_id/);
  assert.ok(!existsSync(join(prefix, 'refused', 'usr/local/bin/serverbox-collector')));
  assert.equal(hostState(), hostBefore);
});

test('nodes.yml installs and enrolls the collector; the second run changes nothing; it reports to the core', async () => {
  const first = playbook(['nodes.yml'], { SERVERBOX_API_TOKEN: apiTok });
  assert.equal(first.code, 0, first.out);
  assert.ok(first.changed > 0, first.out);
  assert.doesNotMatch(first.out, /sbe_[0-9a-f]{64}/, 'the enroll token is never printed');
  assert.equal(hostState(), hostBefore, 'test mode wrote under the prefix only');

  const bin = join(prefix, 'usr/local/bin/serverbox-collector');
  assert.equal(statSync(bin).mode & 0o777, 0o755);
  assert.deepEqual(readFileSync(bin), readFileSync(join(ROOT, 'build/serverbox-collector')));
  assert.equal(readFileSync(join(prefix, 'etc/systemd/system/serverbox-collector.service'), 'utf8'),
    readFileSync(join(ROOT, 'collector/serverbox-collector.service'), 'utf8'));
  const state = join(prefix, 'var/lib/serverbox-collector');
  assert.equal(statSync(state).mode & 0o777, 0o700);
  assert.equal(statSync(join(state, 'key')).mode & 0o777, 0o600);
  const fp = readFileSync(join(state, 'identity'), 'utf8').match(/fingerprint=([0-9a-f]{64})/)[1];
  assert.equal(db.sql(`SELECT node_id FROM agent_keys WHERE fingerprint = '${fp}'`), node);
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE type = 'agent.enroll_token_issued' AND stream = 'node/${node}'`), '1');
  assert.equal(readFileSync(join(prefix, 'home/serverbox/.ssh/authorized_keys'), 'utf8'), `${sshd.pub}\n`);
  assert.equal(statSync(join(prefix, 'home/serverbox/.ssh/authorized_keys')).mode & 0o777, 0o600);
  assert.ok(JSON.parse(readFileSync(join(prefix, 'etc/docker/daemon.json'), 'utf8'))['live-restore']);

  const second = playbook(['nodes.yml'], { SERVERBOX_API_TOKEN: apiTok });
  assert.equal(second.code, 0, second.out);
  assert.equal(second.changed, 0, second.out);
  const check = playbook(['nodes.yml', '--check', '--diff'], { SERVERBOX_API_TOKEN: apiTok });
  assert.equal(check.code, 0, check.out);
  assert.equal(check.changed, 0, check.out);
  assert.equal(db.sql(`SELECT count(*) FROM events WHERE type = 'agent.enroll_token_issued' AND stream = 'node/${node}'`), '1', 'enrolled once');

  // No systemd here: start the installed collector as its unit would.
  const conf = join(prefix, 'etc/serverbox-collector.conf');
  const c = spawn(bin, ['run', '--config', conf, '--docker-socket', ''], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
  let log = '';
  c.stdout.on('data', (d) => { log += d; });
  c.stderr.on('data', (d) => { log += d; });
  try {
    await waitFor(async () => {
      const q = await core.request('GET', `/api/v1/nodes/${node}/metrics?from=${Date.now() - 600000}&step=1`);
      return q.status === 200 && q.body.points.length >= 2;
    }, { timeout: 30000, what: `metrics through the API (collector log: ${log})` });
    const n = await core.request('GET', `/api/v1/nodes/${node}`);
    assert.equal(n.body.agent_status, 'online', n.text);
  } finally {
    c.kill('SIGTERM');
    await new Promise((r) => c.on('exit', r));
  }
});

test('an https core: a wrong collector_core_pin enrolls nothing; the right one is written and enrolls over TLS', async () => {
  const pair = makeCert();
  const tdb = createDatabase('ansibletls');
  const tcore = await startCore({ db: tdb, env: { SERVERBOX_NODE_CHECK_INTERVAL: '0',
    SERVERBOX_TLS_CERT: pair.cert, SERVERBOX_TLS_KEY: pair.key } });
  try {
    const base = `https://127.0.0.1:${tcore.port}`;
    const admin = createUser(tdb, { role: 'admin' });
    const l = await httpsRequest(base, 'POST', '/api/v1/auth/login', { ca: pair.certPem,
      json: { username: admin.username, password: admin.password } });
    assert.equal(l.status, 200, l.text);
    const api = (m, p, json) => httpsRequest(base, m, p, { ca: pair.certPem, token: l.body.token, json });
    const tnode = await registerNode({ request: (m, p, o = {}) => api(m, p, o.json) }, sshd);
    // The token is given (Ansible's uri module would not trust the self-signed core).
    const t = await api('POST', `/api/v1/nodes/${tnode}/enroll-token`, {});
    assert.equal(t.status, 201, t.text);
    const tprefix = tempDir('sbx-node-root-tls-');
    const vars = ['-e', `sbx_prefix=${tprefix}`, '-e', `sbx_core_url=${base}`, '-e', `sbx_node_id=${tnode}`,
      '-e', `sbx_enroll_token=${t.body.token}`];
    const keys = () => tdb.sql(`SELECT count(*) FROM agent_keys WHERE node_id = '${tnode}'`);

    const malformed = playbook(['nodes.yml', ...vars, '-e', 'collector_core_pin=not-a-hash']);
    assert.notEqual(malformed.code, 0);
    assert.match(malformed.out, /collector_core_pin must be the 64 hex digits/);

    const wrong = playbook(['nodes.yml', ...vars, '-e', `collector_core_pin=${'ab'.repeat(32)}`]);
    assert.notEqual(wrong.code, 0, 'enrolling through a core whose key is not the pinned one fails');
    assert.doesNotMatch(wrong.out, /sbe_[0-9a-f]{64}/, 'the enroll token is never printed');
    assert.equal(keys(), '0');

    const right = playbook(['nodes.yml', ...vars, '-e', `collector_core_pin=${pair.spkiSha256}`]);
    assert.equal(right.code, 0, right.out);
    assert.match(readFileSync(join(tprefix, 'etc/serverbox-collector.conf'), 'utf8'),
      new RegExp(`^core-pin = ${pair.spkiSha256}$`, 'm'));
    assert.equal(keys(), '1', 'enrolled over TLS with the pinned key');
  } finally {
    await tcore.stop();
  }
});
