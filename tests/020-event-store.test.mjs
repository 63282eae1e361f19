// The event log: gapless concurrent appends from threads and from a second
// process, the hash chain, tamper detection, append-only grants, migrations
// and projection rebuild.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { createDatabase, runCore, ROOT, startCore } from './lib/harness.mjs';

const run = promisify(execFile);
const LOAD = join(ROOT, 'build', 'tools', 'append-load');

// Compact JSON with keys sorted at every level (what the contract calls canonical).
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

let db;
before(() => { db = createDatabase('events'); });

test('8 threads x 1000 appends plus a second process: seqs 1..N, every hash verifies', async () => {
  const [a, b] = await Promise.all([
    run(LOAD, [db.url, '8', '1000', 'threads']),
    run(LOAD, [db.url, '4', '500', 'second']),
  ]);
  assert.equal(JSON.parse(a.stdout).failed, 0);
  assert.equal(JSON.parse(b.stdout).failed, 0);
  const n = 8 * 1000 + 4 * 500;
  assert.equal(db.sql('SELECT count(*) FROM events'), String(n));
  assert.equal(db.sql('SELECT min(seq) || \',\' || max(seq) FROM events'), `1,${n}`);

  // Verify the chain here with nothing but SHA-256, independently of the C code.
  let prev = Buffer.alloc(32);
  let seen = 0;
  for (const line of db.sql("SELECT seq || ' ' || encode(prev_hash, 'hex') || ' ' || encode(hash, 'hex') || ' ' || replace(encode(convert_to(body, 'UTF8'), 'base64'), E'\\n', '') FROM events ORDER BY seq").split('\n')) {
    const [seq, prevHex, hashHex, b64] = line.split(' ');
    const body = Buffer.from(b64, 'base64');
    assert.equal(prevHex, prev.toString('hex'), `prev_hash of ${seq}`);
    const h = createHash('sha256').update(prev).update(body).digest();
    assert.equal(hashHex, h.toString('hex'), `hash of ${seq}`);
    const parsed = JSON.parse(body.toString('utf8'));
    assert.equal(parsed.seq, Number(seq));
    // The body is exactly the canonical form: compact, keys sorted at every level.
    assert.equal(canonical(parsed), body.toString('utf8'), `body of ${seq} is canonical`);
    for (const k of ['seq', 'stream', 'type', 'data', 'actor', 'outcome', 'occurred_at']) assert.ok(k in parsed, k);
    assert.match(parsed.occurred_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    prev = h;
    seen++;
  }
  assert.equal(seen, n);
  const v = runCore(['verify-audit'], { SERVERBOX_DATABASE_URL: db.url });
  assert.match(v.stdout, new RegExp(`chain ok: ${n} events`));
});

test('the daemon role cannot change history; the trigger refuses even the owner', () => {
  for (const sql of ['UPDATE events SET type = \'x\' WHERE seq = 1', 'DELETE FROM events WHERE seq = 1', 'TRUNCATE events']) {
    assert.throws(() => db.sql(sql, 'serverbox_app'), /permission denied|append-only/, sql);
    assert.throws(() => db.sql(sql, 'serverbox'), /append-only/, sql);
  }
  assert.throws(() => db.sql('ALTER TABLE events DISABLE TRIGGER ALL', 'serverbox_app'), /must be owner/);
});

test('tampering with one body is found by verify-audit, which names the seq', () => {
  const t = createDatabase('tamper');
  runCore(['migrate'], { SERVERBOX_DATABASE_URL: t.ownerUrl });
  return run(LOAD, [t.url, '2', '50']).then(() => {
    t.sql('ALTER TABLE events DISABLE TRIGGER events_no_update_delete');
    t.sql(`UPDATE events SET body = regexp_replace(body, '"i":[0-9]+', '"i":999') WHERE seq = 37`);
    assert.match(t.sql('SELECT body FROM events WHERE seq = 37'), /"i":999/);
    t.sql('ALTER TABLE events ENABLE TRIGGER events_no_update_delete');
    const r = runCore(['verify-audit'], { SERVERBOX_DATABASE_URL: t.url }, { check: false });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /chain broken at seq 37/);
  });
});

test('migrate is idempotent, refuses a changed migration, and serve refuses an unmigrated or newer schema', async () => {
  const m = createDatabase('mig', { migrate: false });
  // serve against an empty database: refused with a clear message
  await assert.rejects(startCore({ db: m }), /refusing to serve: database schema is unmigrated/);
  runCore(['migrate'], { SERVERBOX_DATABASE_URL: m.ownerUrl });
  const again = runCore(['migrate'], { SERVERBOX_DATABASE_URL: m.ownerUrl });
  assert.equal(again.code, 0);
  assert.equal(m.sql('SELECT count(*) FROM schema_migrations'), m.sql('SELECT count(*) FROM schema_migrations'));
  m.sql("UPDATE schema_migrations SET checksum = 'deadbeef' WHERE name = '0001_events.sql'");
  const changed = runCore(['migrate'], { SERVERBOX_DATABASE_URL: m.ownerUrl }, { check: false });
  assert.equal(changed.code, 1);
  assert.match(changed.stderr, /0001_events\.sql' was changed after it was applied/);
  await assert.rejects(startCore({ db: m }), /database schema is changed/);
  m.sql(`UPDATE schema_migrations SET checksum = (SELECT checksum FROM schema_migrations WHERE name = '0001_events.sql') WHERE false`);
  m.sql("INSERT INTO schema_migrations (name, checksum) VALUES ('9999_future.sql', 'x')");
  await assert.rejects(startCore({ db: m }), /database schema is/);
});

test('two migrators at once: both succeed, each migration applied once', async () => {
  const m = createDatabase('race', { migrate: false });
  const bin = join(ROOT, 'build', 'asan', 'serverbox-core');
  const envs = { ...process.env, SERVERBOX_DATABASE_URL: m.ownerUrl, ASAN_OPTIONS: 'detect_leaks=1' };
  await Promise.all([run(bin, ['migrate'], { env: envs }), run(bin, ['migrate'], { env: envs })]);
  const applied = Number(m.sql('SELECT count(*) FROM schema_migrations'));
  assert.ok(applied >= 1);
  assert.equal(m.sql('SELECT count(DISTINCT name) FROM schema_migrations'), String(applied));
});

test('rebuild-projections reproduces the projections exactly', async () => {
  const p = createDatabase('proj');
  await run(LOAD, [p.url, '4', '300', 'proj']);
  const snapshot = () => p.sql("SELECT md5(string_agg(s::text, ',' ORDER BY stream)) FROM streams s");
  const beforeRebuild = snapshot();
  assert.equal(p.sql('SELECT sum(event_count) FROM streams'), '1200');
  p.sql("UPDATE streams SET event_count = 0");
  const r = runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: p.ownerUrl });
  assert.match(r.stdout, /rebuilt from 1200 events/);
  assert.equal(snapshot(), beforeRebuild);
});
