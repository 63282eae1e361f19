// Private OpenSSH servers for tests (scripts/sshd.sh) and the auth headers
// the node tests send.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

const SCRIPT = join(ROOT, 'scripts', 'sshd.sh');

// Starts an sshd in a fresh temp dir (or restarts the one in `dir`, same
// port and host key). Returns {dir, port, key (client private key text),
// keyPath, pub, fingerprint, stop(), start(), sh(cmd)}.
export function startSshd(dir) {
  const d = dir || mkdtempSync(join(tmpdir(), 'sbx-sshd-'));
  const out = execFileSync(SCRIPT, ['start', d], { encoding: 'utf8' });
  const v = Object.fromEntries(out.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
  const s = {
    dir: d,
    port: Number(v.SSHD_PORT),
    keyPath: v.SSHD_KEY,
    key: readFileSync(v.SSHD_KEY, 'utf8'),
    pub: readFileSync(v.SSHD_PUB, 'utf8').trim(),
    fingerprint: v.SSHD_FP,
    stop: () => execFileSync(SCRIPT, ['stop', d]),
    start: () => startSshd(d),
    remove: () => { execFileSync(SCRIPT, ['stop', d]); rmSync(d, { recursive: true, force: true }); },
  };
  return s;
}

// Established TCP connections to a local port (the server side of sshd).
export function establishedTo(port) {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim()).length;
}

// Auth headers for requests; a no-op until the auth guard is merged.
export function authHeaders() {
  return {};
}
