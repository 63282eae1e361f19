// Singleton duties under a lease (core/src/jobs/README.md): with two and
// with three daemons on one database, node health checks, metric roll-ups,
// audit checkpoints and remote Docker event following each run on exactly
// one daemon: one node.offline per transition, checkpoints signed by one
// daemon only; kill -9 of a duty's holder moves the duty to another daemon
// within seconds, and the work goes on there, still once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, startCore, createUser, login, waitFor, env } from './lib/harness.mjs';
import { startSshd } from './lib/sshd.mjs';

const LEASE = 1500;
const DUTIES = ['node-checks', 'metrics-rollup', 'audit-checkpoint', 'node-docker-events', 'job-prune', 'alerts-eval', 'backup-schedule'];
const all = [];
const sshds = [];
after(async () => {
  for (const d of all) if (d.alive()) await d.stop({ expectClean: false });
  for (const s of sshds) s.remove();
});

const start = async (db) => {
  const d = await startCore({ db, redisUrl: env('SBX_TEST_REDIS_URL'),
    env: { SERVERBOX_NODE_CHECK_INTERVAL: '1', SERVERBOX_CHECKPOINT_INTERVAL: '1' },
    args: ['--job-lease-ms', String(LEASE)] });
  d.daemonId = d.log().match(/msg="jobs started" daemon=([0-9a-f-]{36})/)[1];
  all.push(d);
  return d;
};
const held = async (d) => {
  const r = await d.request('GET', '/metrics');
  const out = {};
  for (const m of r.text.matchAll(/^serverbox_duty_held\{duty="([^"]+)"\} (\d)$/gm)) out[m[1]] = m[2] === '1';
  return out;
};
// Each duty held by exactly one of the live daemons (the same answer twice
// in a row, so a lease in transit is not counted); returns duty -> daemon.
const holders = async (daemons) => waitFor(async () => {
  const seen = [];
  for (let round = 0; round < 2; round++) {
    const h = await Promise.all(daemons.map(held));
    const map = {};
    for (const duty of DUTIES) {
      const who = daemons.filter((_, i) => h[i][duty]);
      if (who.length !== 1) return null;
      map[duty] = who[0];
    }
    seen.push(map);
    await new Promise((r) => setTimeout(r, 300));
  }
  return DUTIES.every((x) => seen[0][x] === seen[1][x]) ? seen[0] : null;
}, { timeout: 10000, what: 'every duty held by exactly one daemon', interval: 200 });

const count = (db, nodeId, type) => Number(db.sql(`SELECT count(*) FROM events WHERE stream = 'node/${nodeId}' AND type = '${type}'`));
const checkpointKeys = (db, since) =>
  db.sql(`SELECT coalesce(string_agg(DISTINCT encode(public_key, 'hex'), ','), '') FROM checkpoints WHERE signed_at > '${since}'`)
    .split(',').filter(Boolean);
const churn = async (d, token, ms) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await d.request('POST', '/api/v1/annotations', { token, json: { message: `tick ${Date.now()}` } });
    assert.equal(r.status, 201, r.text);
    await new Promise((res) => setTimeout(res, 250));
  }
};

for (const n of [2, 3]) {
  test(`${n} daemons on one database: each duty runs once, and moves after kill -9 of its holder`, async () => {
    const db = createDatabase(`duties${n}`);
    const daemons = [];
    for (let i = 0; i < n; i++) daemons.push(await start(db));
    const token = (await login(daemons[0], createUser(db, { role: 'admin' }))).token;
    const sshd = startSshd();
    sshds.push(sshd);
    const h1 = await holders(daemons);
    assert.equal(db.sql('SELECT count(*) FROM job_duties'), String(DUTIES.length));
    for (const duty of DUTIES)
      assert.equal(db.sql(`SELECT holder FROM job_duties WHERE name = '${duty}'`), h1[duty].daemonId, duty);

    // a node, checked every second by whoever holds node-checks
    const r = await daemons[0].request('POST', '/api/v1/nodes', { token,
      json: { name: `n${n}`, host: '127.0.0.1', port: sshd.port, ssh_user: 'root', private_key: sshd.key } });
    assert.equal(r.status, 201, r.text);
    const node = r.body;
    const status = () => db.sql(`SELECT status FROM nodes WHERE id = '${node.id}'`);
    sshd.stop();
    await waitFor(() => status() === 'offline', { timeout: 15000, what: 'the node offline' });
    // several more rounds on every daemon: still one node.offline
    const t0 = db.sql('SELECT now()');
    await churn(daemons[0], token, 4000);
    assert.equal(count(db, node.id, 'node.offline'), 1, 'one node.offline for one transition');
    const keys = checkpointKeys(db, t0);
    assert.equal(keys.length, 1, `checkpoints signed by ${keys.length} daemons`);
    assert.ok(Number(db.sql(`SELECT count(*) FROM checkpoints WHERE signed_at > '${t0}'`)) >= 2, 'checkpoints were made');
    const started = sshd.start();
    await waitFor(() => status() === 'online', { timeout: 15000, what: 'the node online again' });
    assert.equal(count(db, node.id, 'node.online'), 1);

    // kill -9 the holder of the node checks (and whatever else it held)
    const victim = h1['node-checks'];
    victim.proc.kill('SIGKILL');
    await victim.exited;
    const rest = daemons.filter((d) => d !== victim);
    const tKill = Date.now();
    const h2 = await holders(rest);
    const moved = Date.now() - tKill;
    assert.ok(moved < 15000, `the duties moved in ${moved} ms`);
    for (const duty of DUTIES) assert.notEqual(h2[duty], victim);
    assert.equal(db.sql("SELECT holder FROM job_duties WHERE name = 'node-checks'"), h2['node-checks'].daemonId);

    // the work goes on, once: another transition, one more node.offline
    started.stop();
    await waitFor(() => status() === 'offline', { timeout: 15000, what: 'the node offline after the takeover' });
    const t1 = db.sql('SELECT now()');
    await churn(rest[0], token, 4000);
    assert.equal(count(db, node.id, 'node.offline'), 2, 'one node.offline per transition after the takeover too');
    const keys2 = checkpointKeys(db, t1);
    assert.equal(keys2.length, 1, `checkpoints after the takeover signed by ${keys2.length} daemons`);
    for (const d of rest) await d.stop();
  });
}
