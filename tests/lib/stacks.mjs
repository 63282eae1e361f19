// Helpers for the stack tests (tests/8xx): a private dockerd with the
// offline busybox image, the docker CLI against it, and waiting for a
// stack's deploy to finish.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, waitFor } from './harness.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');

export function startEngine() {
  const dir = mkdtempSync('/tmp/sbxd.');
  const out = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' });
  const sock = out.match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  const docker = (...args) =>
    execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  return {
    dir, sock, docker,
    inspect: (name) => JSON.parse(docker('inspect', name))[0],
    // containers of a compose project: [{name, labels, state}]
    project: (name) => {
      const ids = docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${name}`);
      return ids ? ids.split('\n').map((id) => JSON.parse(docker('inspect', id))[0]) : [];
    },
    // docker-compose 1.29 on the same engine, with the stack's compose file
    compose: (project, composeText, ...args) => {
      const d = mkdtempSync('/tmp/sbxc.');
      writeFileSync(join(d, 'docker-compose.yml'), composeText);
      return execFileSync('docker-compose', ['-p', project, ...args], {
        cwd: d, encoding: 'utf8', env: { ...process.env, DOCKER_HOST: `unix://${sock}` }, stdio: ['ignore', 'pipe', 'pipe'],
      });
    },
    stop: () => execFileSync(DOCKERD, ['stop', dir]),
  };
}

// Waits until revision `rev` of a stack has a deploy outcome; returns the
// revision row ({deploy_status, deploy_reason, digests…}).
export async function waitDeploy(core, id, rev, { timeout = 90000 } = {}) {
  return waitFor(async () => {
    const r = await core.request('GET', `/api/v1/stacks/${id}/revisions`);
    const row = r.body?.revisions?.find((x) => x.revision === rev);
    return row && row.deploy_status ? row : null;
  }, { timeout, interval: 250, what: `deploy of revision ${rev}` });
}

export function eventsOf(db, type) {
  const rows = db.sql(`SELECT body FROM events WHERE type = '${type}' ORDER BY seq`);
  return rows ? rows.split('\n').map((l) => JSON.parse(l)) : [];
}
