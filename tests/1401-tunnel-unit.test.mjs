// The node side of a tunnel, packaging/systemd/serverbox-tunnel.service:
// `systemd-analyze verify` is clean, its `systemd-analyze security
// --offline=yes` exposure stays at the figure reached when it was hardened,
// and it holds what issue #21 asks of it (ssh -N -R on 127.0.0.1 with
// ExitOnForwardFailure, keepalives, a pinned host key, Restart=always). PID 1
// here is not systemd, so the unit is not started; its ExecStart line is run
// for real by tests/1400 (the restarted client).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './lib/harness.mjs';

const FILE = join(ROOT, 'packaging', 'systemd', 'serverbox-tunnel.service');
const MAX = 1.1;
const dir = tempDir('sbx-tunnel-unit-');
const text = readFileSync(FILE, 'utf8');
const lines = text.split('\n');

function exposure(unitText) {
  const p = join(dir, 'serverbox-tunnel.service');
  writeFileSync(p, unitText);
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', p], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = r.stdout.match(/Overall exposure level for \S+: ([0-9.]+)/);
  assert.ok(m, r.stdout);
  return Number(m[1]);
}

test('systemd-analyze verify is clean', () => {
  const r = spawnSync('systemd-analyze', ['verify', FILE], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', 'no warnings');
});

test(`hardened, exposure <= ${MAX}`, () => {
  for (const d of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'PrivateDevices=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6', 'RestrictNamespaces=yes', 'MemoryDenyWriteExecute=yes',
    'CapabilityBoundingSet=', 'SystemCallFilter=@system-service', 'User=serverbox-tunnel'])
    assert.ok(lines.includes(d), `has ${d}`);
  const score = exposure(text);
  assert.ok(score <= MAX, `exposure ${score} > ${MAX}`);
  const bare = exposure(lines.filter((l) => !/^(Protect|Private|Restrict|NoNew|Capability|SystemCall|Memory|Lock|User=|Group=)/.test(l)).join('\n'));
  assert.ok(bare > 5, `unhardened copy scores ${bare}`);
});

test('the stock client holds exactly the one forward, and comes back', () => {
  const exec = lines.find((l) => l.startsWith('ExecStart='));
  const argv = exec.slice('ExecStart='.length).split(' ');
  assert.equal(argv[0], '/usr/bin/ssh');
  assert.ok(argv.includes('-N'), 'no command, no shell');
  const i = argv.indexOf('-R');
  assert.equal(argv[i + 1], '127.0.0.1:${TUNNEL_PORT}:localhost:22');
  assert.equal(argv.filter((a) => a === '-R' || a === '-L' || a === '-D').length, 1, 'one forward');
  for (const o of ['ExitOnForwardFailure=yes', 'ServerAliveInterval=15', 'StrictHostKeyChecking=yes', 'BatchMode=yes', 'IdentitiesOnly=yes'])
    assert.ok(argv.includes(o), `-o ${o}`);
  assert.ok(argv.includes('-F') && argv[argv.indexOf('-F') + 1] === '/dev/null', 'no ssh_config');
  assert.ok(lines.includes('Restart=always'));
  assert.ok(lines.includes('StartLimitIntervalSec=0'), 'never gives up');
  assert.ok(lines.some((l) => /^RestartSec=\d+$/.test(l)));
});
