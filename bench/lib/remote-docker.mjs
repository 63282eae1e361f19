// Measurements for bench/remote-docker.bench.sh (see there). Not a
// *.bench.mjs: it needs the services that script starts.
import { execFileSync } from 'node:child_process';
import { createDatabase, startCore } from '../../tests/lib/harness.mjs';
import { startSshd } from '../../tests/lib/sshd.mjs';

const sock = process.env.SBX_DOCKER_SOCKET;
const N = 300;
const docker = (...a) => execFileSync('docker', ['-H', `unix://${sock}`, ...a], { encoding: 'utf8' }).trim();
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };
const row = (what, v, unit, target) => console.log(`| ${what} | ${v.toFixed(2)} ${unit} | ≤ ${target} ${unit} | ${(v / target).toFixed(2)} |`);

const sshd = startSshd();
const db = createDatabase('rdbench');
const core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock, SERVERBOX_NODE_DOCKER_SOCKET: sock, SERVERBOX_NODE_CHECK_INTERVAL: '0' } });
try {
  const reg = await core.request('POST', '/api/v1/nodes', { json: { name: 'remote', host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key } });
  if (reg.status !== 201) throw new Error(reg.text);
  const id = reg.body.id;
  for (let i = 0; i < 20; i++) docker('run', '-d', '--name', `r${i}`, 'local/busybox:1', 'sleep', '100000');
  const measure = async (path) => {
    const lat = [];
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const r = await core.request('GET', path);
      lat.push(performance.now() - t);
      if (r.body.containers.length !== 20) throw new Error(`expected 20 containers, got ${r.text.slice(0, 200)}`);
    }
    return lat;
  };
  let t = performance.now();
  const first = await core.request('GET', `/api/v1/nodes/${id}/containers`);
  const cold = performance.now() - t;
  if (first.status !== 200) throw new Error(first.text);
  for (let i = 0; i < 20; i++) await core.request('GET', '/api/v1/nodes/local/containers');
  const local = await measure('/api/v1/nodes/local/containers');
  const remote = await measure(`/api/v1/nodes/${id}/containers`);
  console.log('| what | figure | target | ratio |');
  console.log('| --- | --- | --- | --- |');
  row(`one node's containers (20), local engine, p50 (${N} requests)`, pct(local, 50), 'ms', 50);
  row(`one node's containers (20), same engine over the SSH bridge, p50 (${N} requests)`, pct(remote, 50), 'ms', 50);
  row(`one node's containers (20), local engine, p99`, pct(local, 99), 'ms', 200);
  row(`one node's containers (20), over the SSH bridge, p99`, pct(remote, 99), 'ms', 200);
  row('first request to a node (SSH connect, auth, channel, version negotiation)', cold, 'ms', 1000);
} finally {
  await core.stop({ expectClean: false });
  sshd.remove();
}
