// The command line: --help lists every option with its variable and default,
// version, unknown options and commands are refused, configuration
// precedence (flag over environment over default) as the contract says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCore, startCore, createDatabase } from './lib/harness.mjs';

test('--help lists every option with its environment variable', () => {
  const r = runCore(['--help']);
  const flags = [...r.stdout.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]);
  assert.ok(flags.includes('listen') && flags.includes('database-url') && flags.includes('trusted-proxy'));
  for (const f of flags) {
    const env = `SERVERBOX_${f.toUpperCase().replace(/-/g, '_')}`;
    assert.ok(r.stdout.includes(`env ${env}`), `--${f} documents ${env}`);
  }
  assert.match(r.stdout, /default 127\.0\.0\.1:8080/);
  for (const cmd of ['serve', 'migrate', 'verify-audit', 'rebuild-projections', 'version']) assert.match(r.stdout, new RegExp(`  ${cmd} `));
});

test('version, unknown option and unknown command', () => {
  assert.match(runCore(['version']).stdout, /^serverbox-core \S+/);
  const bad = runCore(['--colour', 'red'], {}, { check: false });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown option '--colour'/);
  const cmd = runCore(['explode'], {}, { check: false });
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /unknown command 'explode'/);
  const noUrl = runCore(['migrate'], {}, { check: false });
  assert.notEqual(noUrl.code, 0);
  assert.match(noUrl.stderr, /no database URL/);
});

test('a flag beats the environment', async () => {
  const db = createDatabase('cli');
  // The environment says port 1 (privileged, would fail); the flag says 0.
  const core = await startCore({ db, env: { SERVERBOX_LISTEN: '127.0.0.1:1' }, args: ['--listen', '127.0.0.1:0'] });
  assert.notEqual(core.port, 1);
  assert.equal((await core.request('GET', '/health/live')).status, 200);
  await core.stop();
});

test('the served OpenAPI document names every route of the route table', async () => {
  const db = createDatabase('openapi');
  const core = await startCore({ db });
  const r = await core.request('GET', '/api/v1/openapi.json');
  await core.stop();
  assert.equal(r.status, 200);
  assert.equal(r.body.openapi, '3.1.0');
  const routes = JSON.parse(runCore(['routes']).stdout);
  assert.ok(routes.length > 0);
  // OpenAPI has no catch-all segment: a route's {*rest} is documented as {rest}.
  const doc = (p) => p.replace(/\{\*/g, '{');
  for (const route of routes) {
    const path = r.body.paths[doc(route.path)];
    assert.ok(path, `docs/openapi.yaml lacks ${route.path}`);
    assert.ok(path[route.method.toLowerCase()], `docs/openapi.yaml lacks ${route.method} ${route.path}`);
  }
  // and nothing documented that does not exist
  for (const [p, ops] of Object.entries(r.body.paths)) {
    for (const m of Object.keys(ops)) {
      if (['parameters', 'summary', 'description'].includes(m)) continue;
      assert.ok(routes.some((x) => doc(x.path) === p && x.method.toLowerCase() === m), `documented but not routed: ${m.toUpperCase()} ${p}`);
    }
  }
});
