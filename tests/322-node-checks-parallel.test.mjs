// Node health checks run concurrently (bounded): with three nodes whose
// address accepts TCP and never speaks SSH (each check hangs until the
// connect timeout, 10 s), a real node that comes back is online again
// within one check interval, and goes offline as fast when its sshd stops.
// Checked one at a time, the real node would wait behind 30 s of hung
// checks every round.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createDatabase, startCore, waitFor } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';

const INTERVAL_S = 2;
let db, core, real, doomed, hole;
const holeSockets = new Set();

before(async () => {
  real = startSshd();
  doomed = startSshd();
  db = createDatabase('checks');
  core = await startCore({ db, admin: true, env: { SERVERBOX_NODE_CHECK_INTERVAL: String(INTERVAL_S) } });
});
after(async () => {
  try {
    for (const s of holeSockets) s.destroy();
    hole?.close();
    await core?.stop();
  } finally {
    real?.remove();
    doomed?.remove();
  }
});

const register = async (name, s) => {
  const r = await core.request('POST', '/api/v1/nodes', {
    json: { name, host: '127.0.0.1', port: s.port, ssh_user: 'root', private_key: s.key },
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
};
const status = async (id) => (await core.request('GET', `/api/v1/nodes/${id}`)).body.status;

test('a real node\'s status follows its sshd within one interval while three other nodes hang', async () => {
  // Names sort the hanging nodes first: a sequential checker meets them first.
  const hung = [];
  for (const n of ['a-hole-1', 'a-hole-2', 'a-hole-3']) hung.push(await register(n, doomed));
  const node = await register('z-real', real);

  // The doomed sshd's port becomes a black hole: it accepts and never answers.
  doomed.stop();
  hole = createServer((sock) => { holeSockets.add(sock); sock.on('close', () => holeSockets.delete(sock)); sock.on('error', () => {}); });
  await new Promise((resolve, reject) => { hole.once('error', reject); hole.listen(doomed.port, '127.0.0.1', resolve); });
  // Let the checker start hanging on them.
  await waitFor(() => holeSockets.size >= 3, { what: 'checks hanging on the black hole', timeout: 3 * INTERVAL_S * 1000 });

  real.stop();
  await waitFor(async () => (await status(node.id)) === 'offline', { what: 'real node offline', timeout: 2 * INTERVAL_S * 1000 + 1500 });
  real.start();
  await waitFor(async () => (await status(node.id)) === 'online', { what: 'real node online again', timeout: 2 * INTERVAL_S * 1000 + 1500 });

  // The hanging nodes end offline too, once their checks time out.
  await waitFor(async () => {
    for (const h of hung) if ((await status(h.id)) !== 'offline') return false;
    return true;
  }, { what: 'hung nodes offline', timeout: 30000, interval: 500 });
  const last = (await core.request('GET', `/api/v1/nodes/${hung[0].id}`)).body.last_check;
  assert.equal(last.status, 'offline');
});
