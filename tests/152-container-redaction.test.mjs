// Finding 4 of issue #13: readers (a viewer, a guest with view:containers)
// see a container's environment names without their values, and labels that
// look like secrets without theirs; operators and admins see them in clear.
// The engine's events recorded in the log never hold secret-looking labels.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, createUser, login, waitFor, ROOT } from './lib/harness.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
let dir, sock, db, core;

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  const out = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' });
  sock = out.match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
  db = createDatabase('redact');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock } });
});
after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    execFileSync(DOCKERD, ['stop', dir]);
  }
});

test('env values and secret-looking labels are redacted for callers without containers:operate', async () => {
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: {
      name: 'db1', image: 'local/busybox:1', command: ['sleep', '600'],
      env: { DB_PASSWORD: 'hunter2-very-secret', GREETING: 'hello-plain', DATABASE_URL: 'postgres://u:pw-in-url@h/db' },
      labels: { app: 'db', 'com.example.api_token': 'tok-label-secret' },
    },
  });
  assert.equal(c.status, 201, c.text);
  const path = `/api/v1/nodes/local/containers/${c.body.id}`;
  const secrets = ['hunter2-very-secret', 'hello-plain', 'pw-in-url', 'tok-label-secret'];

  const viewer = (await login(core, createUser(db, { role: 'viewer' }))).token;
  const operator = (await login(core, createUser(db, { role: 'operator' }))).token;
  const g = await core.request('POST', '/api/v1/guest-links', { json: { scopes: ['view:containers'], ttl_seconds: 600 } });
  assert.equal(g.status, 201, g.text);

  for (const [who, token] of [['viewer', viewer], ['guest', g.body.token]]) {
    const r = await core.request('GET', path, { token });
    assert.equal(r.status, 200, r.text);
    for (const s of secrets) assert.ok(!r.text.includes(s), `${who} must not read ${s}`);
    const env = r.body.Config.Env;
    assert.ok(env.includes('DB_PASSWORD=<redacted>'), `${who}: names kept: ${env}`);
    assert.ok(env.includes('GREETING=<redacted>'));
    assert.equal(r.body.Config.Labels.app, 'db', 'plain labels kept');
    assert.equal(r.body.Config.Labels['com.example.api_token'], '<redacted>');
    const l = await core.request('GET', '/api/v1/containers', { token });
    assert.equal(l.status, 200, l.text);
    assert.ok(l.text.includes(c.body.id));
    for (const s of secrets) assert.ok(!l.text.includes(s), `${who}'s list must not show ${s}`);
  }
  for (const [who, token] of [['operator', operator], ['admin', core.token]]) {
    const r = await core.request('GET', path, { token });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.Config.Env.includes('DB_PASSWORD=hunter2-very-secret'), `${who} sees the value`);
    assert.equal(r.body.Config.Labels['com.example.api_token'], 'tok-label-secret');
  }
  // The engine's container.created/started events: recorded without the label's value.
  await waitFor(() => db.sql("SELECT count(*) FROM events WHERE type = 'container.started'") !== '0', { what: 'container.started recorded' });
  const log = db.sql("SELECT string_agg(body, E'\\n') FROM events WHERE type LIKE 'container.%'");
  assert.ok(log.includes('com.example.api_token'), 'the label is named');
  assert.ok(!log.includes('tok-label-secret'), 'never held');
  const rm = await core.request('DELETE', `${path}?force=1`);
  assert.equal(rm.status, 204, rm.text);
});
