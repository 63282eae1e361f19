// Docker on the local engine: a private dockerd (scripts/dockerd.sh) with an
// offline busybox image; the full container lifecycle through the API, each
// step checked with the Docker CLI against the engine itself; logs (JSON
// lines and a follow SSE stream); exec; stats; engine events turned into
// domain events and the containers projection; the engine going away (503)
// and coming back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, startCore, runCore, waitFor, ROOT } from './lib/harness.mjs';
import { requestJob } from './lib/jobs.mjs';

const DOCKERD = join(ROOT, 'scripts', 'dockerd.sh');
let dir, sock, db, core;

function docker(...args) {
  return execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}
function inspect(name) {
  return JSON.parse(docker('inspect', name))[0];
}
function startEngine() {
  const out = execFileSync(DOCKERD, ['start', dir], { encoding: 'utf8' });
  sock = out.match(/SBX_DOCKER_SOCKET=(.*)/)[1].trim();
}
function eventsOfType(type) {
  const rows = db.sql(`SELECT body FROM events WHERE type = '${type}' ORDER BY seq`);
  return rows ? rows.split('\n').map((l) => JSON.parse(l)) : [];
}

before(async () => {
  dir = mkdtempSync('/tmp/sbxd.');
  startEngine();
  db = createDatabase('docker');
  core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock } });
});

after(async () => {
  try {
    if (core) await core.stop();
  } finally {
    execFileSync(DOCKERD, ['stop', dir]);
  }
});

const LOOP = 'i=0; while true; do echo line$i; echo err$i >&2; i=$((i+1)); sleep 0.2; done';

test('create, list, logs, exec, stats, stop, start, remove — each checked with the docker CLI', async () => {
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: {
      name: 'web1', image: 'local/busybox:1', command: ['sh', '-c', LOOP],
      env: { GREETING: 'hello' }, labels: { app: 'web', tier: 'front' },
      memory_bytes: 64 * 1024 * 1024, cpus: 0.5, restart_policy: { name: 'on-failure', max_retries: 2 },
      volumes: [{ source: 'webdata', target: '/data' }],
    },
  });
  assert.equal(c.status, 201, c.text);
  assert.equal(c.body.node_id, 'local');
  assert.match(c.body.id, /^[0-9a-f]{64}$/);
  const ins = inspect('web1');
  assert.equal(ins.State.Running, true);
  assert.equal(ins.Config.Labels.app, 'web');
  assert.ok(ins.Config.Env.includes('GREETING=hello'));
  assert.equal(ins.HostConfig.Memory, 64 * 1024 * 1024);
  assert.equal(ins.HostConfig.NanoCpus, 500000000);
  assert.equal(ins.HostConfig.RestartPolicy.Name, 'on-failure');
  assert.equal(ins.HostConfig.RestartPolicy.MaximumRetryCount, 2);
  assert.equal(ins.Mounts[0].Name, 'webdata');

  // the aggregated list, with filters
  const all = await core.request('GET', '/api/v1/containers');
  assert.equal(all.status, 200, all.text);
  const row = all.body.containers.find((r) => r.name === 'web1');
  assert.ok(row, all.text);
  assert.equal(row.node_id, 'local');
  assert.equal(row.node_name, 'local');
  assert.equal(row.state, 'running');
  assert.equal(row.id, c.body.id);
  assert.deepEqual(all.body.unavailable, []);
  for (const q of ['label=app%3Dweb', 'state=running', 'name=web', 'node=local']) {
    const r = await core.request('GET', `/api/v1/containers?${q}`);
    assert.ok(r.body.containers.some((x) => x.name === 'web1'), q);
  }
  for (const q of ['label=app%3Ddb', 'state=exited', 'name=nope']) {
    const r = await core.request('GET', `/api/v1/containers?${q}`);
    assert.ok(!r.body.containers.some((x) => x.name === 'web1'), q);
  }
  assert.equal((await core.request('GET', '/api/v1/containers?state=bogus')).status, 400);
  assert.equal((await core.request('GET', '/api/v1/containers?node=elsewhere')).status, 404);
  const one = await core.request('GET', '/api/v1/nodes/local/containers');
  assert.ok(one.body.containers.some((x) => x.name === 'web1'));

  // inspect
  const got = await core.request('GET', '/api/v1/nodes/local/containers/web1');
  assert.equal(got.status, 200);
  assert.equal(got.body.Id, c.body.id);
  assert.equal(got.body.node_id, 'local');

  // logs as JSON lines, both streams, in order
  await waitFor(async () => {
    const r = await core.request('GET', '/api/v1/nodes/local/containers/web1/logs?tail=all&timestamps=1');
    return r.text.split('\n').filter(Boolean).length >= 6;
  }, { what: 'log lines' });
  const logs = await core.request('GET', '/api/v1/nodes/local/containers/web1/logs?tail=all&timestamps=1');
  assert.equal(logs.status, 200);
  assert.match(logs.headers.get('content-type'), /application\/x-ndjson/);
  const lines = logs.text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const out = lines.filter((l) => l.stream === 'stdout').map((l) => l.line);
  const err = lines.filter((l) => l.stream === 'stderr').map((l) => l.line);
  assert.deepEqual(out.slice(0, 3), ['line0', 'line1', 'line2']);
  assert.deepEqual(err.slice(0, 3), ['err0', 'err1', 'err2']);
  assert.match(lines[0].ts, /^\d{4}-\d\d-\d\dT/);
  const tail = await core.request('GET', '/api/v1/nodes/local/containers/web1/logs?tail=2');
  assert.equal(tail.text.split('\n').filter(Boolean).length, 2);

  // exec: demultiplexed output and exit code
  const ex = await core.request('POST', '/api/v1/nodes/local/containers/web1/exec', {
    json: { command: ['sh', '-c', 'echo out:$GREETING; echo oops >&2; exit 3'] },
  });
  assert.equal(ex.status, 200, ex.text);
  assert.equal(ex.body.exit_code, 3);
  assert.equal(ex.body.stdout, 'out:hello\n');
  assert.equal(ex.body.stderr, 'oops\n');

  // stats, one sample
  const st = await core.request('GET', '/api/v1/nodes/local/containers/web1/stats');
  assert.equal(st.status, 200, st.text);
  assert.equal(typeof st.body.memory_bytes, 'number');
  assert.equal(typeof st.body.cpu_percent, 'number');

  // stop with a timeout: a job (202); once it succeeded the engine says it is stopped
  const stop = await requestJob(core, 'POST', '/api/v1/nodes/local/containers/web1/stop?timeout=1', {});
  assert.equal(stop.accepted.kind, 'container.stop');
  assert.equal(stop.job.state, 'succeeded', JSON.stringify(stop.job));
  assert.equal(stop.job.result.changed, true);
  assert.equal(inspect('web1').State.Running, false);
  const again = await requestJob(core, 'POST', '/api/v1/nodes/local/containers/web1/stop', {});
  assert.equal(again.job.state, 'succeeded');
  assert.equal(again.job.result.changed, false);
  // exec into a stopped container: Docker's 409 passes through
  const ex2 = await core.request('POST', '/api/v1/nodes/local/containers/web1/exec', { json: { command: ['true'] } });
  assert.equal(ex2.status, 409, ex2.text);
  assert.equal(ex2.body.error.code, 'conflict');
  assert.match(ex2.body.error.message, /not running/);

  for (const [action, running, paused] of [['start', true, false], ['pause', true, true], ['unpause', true, false],
    ['restart', true, false], ['kill', false, false]]) {
    const path = `/api/v1/nodes/local/containers/web1/${action}${action === 'restart' ? '?timeout=1' : ''}`;
    if (action === 'restart') {
      const r = await requestJob(core, 'POST', path, {});
      assert.equal(r.job.state, 'succeeded', JSON.stringify(r.job));
    } else {
      const r = await core.request('POST', path, {});
      assert.equal(r.status, 200, `${action}: ${r.text}`);
    }
    const s = inspect('web1').State;
    assert.equal(s.Running, running, action);
    assert.equal(s.Paused, paused, action);
  }
  assert.equal((await core.request('POST', '/api/v1/nodes/local/containers/web1/explode', {})).status, 404);

  // remove
  const del = await core.request('DELETE', '/api/v1/nodes/local/containers/web1?volumes=1');
  assert.equal(del.status, 204, del.text);
  assert.equal(docker('ps', '-a', '-q', '--filter', 'name=web1'), '');

  // every action is an event with its actor and outcome
  for (const t of ['create', 'exec', 'stop', 'start', 'pause', 'unpause', 'restart', 'kill', 'remove']) {
    const evs = eventsOfType(`container.${t}_requested`);
    assert.ok(evs.length >= 1, t);
    assert.equal(evs[0].data.node_id, 'local');
    assert.ok(['user', 'token', 'system', 'guest'].includes(evs[0].actor.kind));
  }
  const exs = eventsOfType('container.exec_requested');
  assert.equal(exs.find((e) => e.outcome === 'failure').data.error.includes('not running'), true);
  assert.ok(!JSON.stringify(exs).includes('GREETING'), 'exec arguments are not recorded');
  // the engine's own events, recorded by the watcher
  await waitFor(() => eventsOfType('container.destroyed').some((e) => e.data.container_id === c.body.id),
    { what: 'container.destroyed' });
  for (const t of ['created', 'started', 'died', 'paused', 'unpaused']) {
    assert.ok(eventsOfType(`container.${t}`).some((e) => e.data.container_id === c.body.id && e.actor.kind === 'system'), t);
  }
});

test('hostile and invalid input is refused with 422 naming the field; nothing is created', async () => {
  const before = docker('ps', '-a', '-q');
  const cases = [
    [{ name: '../etc', image: 'local/busybox:1' }, 'name'],
    [{ name: 'a;rm -rf /', image: 'local/busybox:1' }, 'name'],
    [{ name: 'x'.repeat(200), image: 'local/busybox:1' }, 'name'],
    [{ name: 'ok\nforged', image: 'local/busybox:1' }, 'name'],
    [{ image: 'local/busybox:1 && id' }, 'image'],
    [{ image: '../../x' }, 'image'],
    [{}, 'image'],
    [{ image: 'local/busybox:1', command: 'sh -c id' }, 'command'],
    [{ image: 'local/busybox:1', command: ['sh', 'a\u0001b'] }, 'command'],
    [{ image: 'local/busybox:1', env: { 'A=B': 'x' } }, 'env'],
    [{ image: 'local/busybox:1', env: { A: 1 } }, 'env'],
    [{ image: 'local/busybox:1', ports: [{ container: 70000 }] }, 'ports'],
    [{ image: 'local/busybox:1', ports: [{ container: 80, protocol: 'sctp' }] }, 'ports'],
    [{ image: 'local/busybox:1', volumes: [{ source: '/etc', target: '/x' }] }, 'volumes'],
    [{ image: 'local/busybox:1', volumes: [{ source: 'v', target: 'relative' }] }, 'volumes'],
    [{ image: 'local/busybox:1', memory_bytes: 1 }, 'memory_bytes'],
    [{ image: 'local/busybox:1', cpus: -1 }, 'cpus'],
    [{ image: 'local/busybox:1', restart_policy: 'sometimes' }, 'restart_policy'],
    [{ image: 'local/busybox:1', labels: { a: 3 } }, 'labels'],
    [{ image: 'local/busybox:1', privileged: true }, 'privileged'],
  ];
  for (const [body, field] of cases) {
    const r = await core.request('POST', '/api/v1/nodes/local/containers', { json: body });
    assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error.code, 'validation_failed');
    assert.equal(r.body.error.field, field, JSON.stringify(body));
  }
  assert.equal(docker('ps', '-a', '-q'), before);
  for (const bad of ['..%2F..%2Fetc', 'a%3Bb', '%0Aevil']) {
    const r = await core.request('GET', `/api/v1/nodes/local/containers/${bad}`);
    assert.ok([404, 422].includes(r.status), `${bad}: ${r.status}`);
  }
  const exec = await core.request('POST', '/api/v1/nodes/local/containers/x/exec', { json: { command: [] } });
  assert.equal(exec.status, 422);
});

test('unknown container → 404 with Docker\'s message; unknown node → 404', async () => {
  for (const [m, p] of [['GET', ''], ['POST', '/stop'], ['DELETE', ''], ['GET', '/logs'], ['GET', '/stats']]) {
    const r = await core.request(m, `/api/v1/nodes/local/containers/doesnotexist${p}`, m === 'POST' ? { json: {} } : {});
    assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
    assert.equal(r.body.error.code, 'not_found');
    assert.match(r.body.error.message, /No such container/i);
  }
  const r = await core.request('GET', '/api/v1/nodes/nowhere/containers/x');
  assert.equal(r.status, 404);
  // a failed mutation is an event too
  assert.ok(eventsOfType('container.stop_requested').some((e) => e.outcome === 'failure'));
});

async function openSse(path) {
  const ctrl = new AbortController();
  const res = await fetch(core.base + path, { signal: ctrl.signal, headers: { Authorization: `Bearer ${core.token}` } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const events = [];
  let ended = false;
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = {};
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) ev.data = JSON.parse(line.slice(6));
          }
          if (ev.event) events.push(ev);
        }
      }
    } catch { /* aborted */ }
    ended = true;
  })();
  return { events, close: () => ctrl.abort(), ended: () => ended };
}

test('follow=1: an SSE client receives lines written after it connected, in order, then the end', async () => {
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name: 'follow1', image: 'local/busybox:1', command: ['sh', '-c', 'sleep 1; for i in $(seq 1 20); do echo n$i; sleep 0.05; done; echo bye >&2'] },
  });
  assert.equal(c.status, 201, c.text);
  const s = await openSse('/api/v1/nodes/local/containers/follow1/logs?follow=1');
  await waitFor(() => s.events.some((e) => e.event === 'end'), { timeout: 15000, what: 'end of stream' });
  const got = s.events.filter((e) => e.event === 'log');
  assert.deepEqual(got.filter((e) => e.data.stream === 'stdout').map((e) => e.data.line),
    Array.from({ length: 20 }, (_, i) => `n${i + 1}`));
  assert.deepEqual(got.filter((e) => e.data.stream === 'stderr').map((e) => e.data.line), ['bye']);
  await waitFor(() => s.ended(), { what: 'stream closed' });

  // a TTY container's raw stream, and a client that leaves early
  const t = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name: 'follow2', image: 'local/busybox:1', command: ['sh', '-c', 'while true; do echo tick; sleep 0.1; done'] },
  });
  assert.equal(t.status, 201);
  const s2 = await openSse('/api/v1/nodes/local/containers/follow2/logs?follow=1&tail=0');
  await waitFor(() => s2.events.filter((e) => e.event === 'log').length >= 3, { what: 'ticks' });
  s2.close();
  await core.request('DELETE', '/api/v1/nodes/local/containers/follow2?force=1');
  await core.request('DELETE', '/api/v1/nodes/local/containers/follow1?force=1');
});

test('follow with a slow reader: the engine is paused, not buffered without bound, and no line is lost', async () => {
  const N = 100000;
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name: 'flood', image: 'local/busybox:1', command: ['sh', '-c', `sleep 1; seq 1 ${N}; sleep 1000`] },
  });
  assert.equal(c.status, 201, c.text);
  const res = await fetch(`${core.base}/api/v1/nodes/local/containers/flood/logs?follow=1&tail=0`, { headers: { Authorization: `Bearer ${core.token}` } });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let next = 1;
  const started = Date.now();
  while (next <= N && Date.now() - started < 60000) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      if (!block.startsWith('event: log') || !data) continue;
      assert.equal(JSON.parse(data.slice(6)).line, String(next));
      next++;
    }
    // read slowly at first, so the queue fills and the transfer pauses
    if (next < 20000) await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(next, N + 1);
  await reader.cancel();
  await core.request('DELETE', '/api/v1/nodes/local/containers/flood?force=1');
});

test('a docker stop done outside Serverbox appears as container.died; the projection follows', async () => {
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name: 'outside1', image: 'local/busybox:1', command: ['sleep', '1000'], labels: { team: 'x' } },
  });
  assert.equal(c.status, 201);
  await waitFor(() => db.sql(`SELECT state FROM containers WHERE container_id = '${c.body.id}'`) === 'running',
    { what: 'projection says running' });
  docker('stop', '-t', '0', 'outside1');
  const died = await waitFor(() => eventsOfType('container.died').find((e) => e.data.container_id === c.body.id),
    { what: 'container.died' });
  assert.equal(died.actor.kind, 'system');
  assert.equal(died.stream, `container/local/${c.body.id}`);
  assert.equal(typeof died.data.exit_code, 'number');
  assert.equal(died.data.name, 'outside1');
  const row = db.sql(`SELECT name || '|' || image || '|' || state || '|' || (labels->>'team') FROM containers WHERE container_id = '${c.body.id}'`);
  assert.equal(row, 'outside1|local/busybox:1|exited|x');

  // rebuild-projections reproduces the table exactly
  const snap = () => db.sql('SELECT node_id, container_id, name, image, state, labels, exit_code, health, updated_seq FROM containers ORDER BY 1, 2');
  const beforeRebuild = snap();
  runCore(['rebuild-projections'], { SERVERBOX_DATABASE_URL: db.ownerUrl });
  assert.equal(snap(), beforeRebuild);
  docker('rm', '-f', 'outside1');
});

test('images, volumes and networks: list, create, remove, prune — checked with the docker CLI', async () => {
  const imgs = await core.request('GET', '/api/v1/nodes/local/images');
  assert.equal(imgs.status, 200, imgs.text);
  assert.ok(imgs.body.images.some((i) => (i.RepoTags || []).includes('local/busybox:1')));

  docker('tag', 'local/busybox:1', 'local/busybox:gone');
  const rmi = await core.request('DELETE', '/api/v1/nodes/local/images/local/busybox:gone');
  assert.equal(rmi.status, 200, rmi.text);
  assert.ok(!docker('images', '--format', '{{.Repository}}:{{.Tag}}').split('\n').includes('local/busybox:gone'));
  assert.equal((await core.request('DELETE', '/api/v1/nodes/local/images/local/busybox:never')).status, 404);
  const prune = await core.request('POST', '/api/v1/nodes/local/images/prune', {});
  assert.equal(prune.status, 200, prune.text);
  const badPull = await core.request('POST', '/api/v1/nodes/local/images/pull', { json: { image: '../x' } });
  assert.equal(badPull.status, 422);
  assert.equal(badPull.body.error.field, 'image');

  // pulls: there is no registry here, so a pull from a closed loopback port
  // fails; the engine's message passes through, as JSON or as the SSE end
  const pull = await requestJob(core, 'POST', '/api/v1/nodes/local/images/pull', { json: { image: '127.0.0.1:9/nothing', tag: '1' } });
  assert.equal(pull.accepted.kind, 'image.pull');
  assert.equal(pull.job.state, 'failed', JSON.stringify(pull.job));
  assert.equal(pull.job.attempt, 1, 'an upstream refusal is not retried');
  assert.match(pull.job.error.code, /^upstream/);
  assert.match(pull.job.error.message, /127\.0\.0\.1:9/);
  const res = await fetch(`${core.base}/api/v1/nodes/local/images/pull`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', Authorization: `Bearer ${core.token}` },
    body: JSON.stringify({ image: '127.0.0.1:9/nothing', tag: '2' }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  const sse = await res.text();
  const end = sse.split('\n\n').find((b) => b.startsWith('event: end'));
  assert.ok(end, sse);
  const endData = JSON.parse(end.split('\n').find((l) => l.startsWith('data: ')).slice(6));
  assert.equal(endData.reason, 'failed');
  assert.match(endData.message, /127\.0\.0\.1:9/);
  const pulls = eventsOfType('image.pull_requested');
  assert.equal(pulls.length, 2);
  assert.ok(pulls.every((e) => e.outcome === 'failure' && e.data.image.startsWith('127.0.0.1:9/nothing:')));

  const v = await core.request('POST', '/api/v1/nodes/local/volumes', { json: { name: 'vol1', labels: { k: 'v' } } });
  assert.equal(v.status, 201, v.text);
  assert.equal(JSON.parse(docker('volume', 'inspect', 'vol1'))[0].Labels.k, 'v');
  const vl = await core.request('GET', '/api/v1/nodes/local/volumes');
  assert.ok(vl.body.volumes.some((x) => x.Name === 'vol1'));
  assert.equal((await core.request('POST', '/api/v1/nodes/local/volumes', { json: { name: '../../etc' } })).status, 422);
  assert.equal((await core.request('DELETE', '/api/v1/nodes/local/volumes/vol1')).status, 204);
  assert.ok(!docker('volume', 'ls', '-q').split('\n').includes('vol1'));
  assert.equal((await core.request('DELETE', '/api/v1/nodes/local/volumes/vol1')).status, 404);
  docker('volume', 'create', 'orphan');
  const vp = await core.request('POST', '/api/v1/nodes/local/volumes/prune', {});
  assert.equal(vp.status, 200, vp.text);

  const n = await core.request('POST', '/api/v1/nodes/local/networks', { json: { name: 'net1', internal: true } });
  assert.equal(n.status, 201, n.text);
  assert.equal(JSON.parse(docker('network', 'inspect', 'net1'))[0].Internal, true);
  const nl = await core.request('GET', '/api/v1/nodes/local/networks');
  assert.ok(nl.body.networks.some((x) => x.Name === 'net1'));
  assert.equal((await core.request('POST', '/api/v1/nodes/local/networks', { json: { name: 'net1' } })).status, 409);
  assert.equal((await core.request('POST', '/api/v1/nodes/local/networks', { json: { name: 'x', driver: 'host;id' } })).status, 422);
  assert.equal((await core.request('DELETE', '/api/v1/nodes/local/networks/net1')).status, 204);
  assert.ok(!docker('network', 'ls', '--format', '{{.Name}}').split('\n').includes('net1'));
  const np = await core.request('POST', '/api/v1/nodes/local/networks/prune', {});
  assert.equal(np.status, 200, np.text);

  for (const t of ['image.remove_requested', 'image.prune_requested', 'volume.create_requested', 'volume.remove_requested',
    'volume.prune_requested', 'network.create_requested', 'network.remove_requested', 'network.prune_requested']) {
    assert.ok(eventsOfType(t).length >= 1, t);
  }
  assert.ok(eventsOfType('network.create_requested').some((e) => e.outcome === 'failure'));
});

test('engine stopped → 503 JSON; requests and the events stream recover when it returns', async () => {
  const pid = execFileSync('cat', [join(dir, 'docker.pid')], { encoding: 'utf8' }).trim();
  process.kill(Number(pid), 'SIGTERM');
  await waitFor(() => { try { process.kill(Number(pid), 0); return false; } catch { return true; } },
    { timeout: 20000, what: 'dockerd gone' });
  const r = await core.request('GET', '/api/v1/nodes/local/containers/anything');
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error.code, 'unavailable');
  assert.match(r.body.error.message, /unreachable/);
  const list = await core.request('GET', '/api/v1/containers');
  assert.equal(list.status, 200);
  assert.equal(list.body.unavailable[0].node_id, 'local');
  assert.equal(core.alive(), true);

  startEngine();
  await waitFor(async () => (await core.request('GET', '/api/v1/containers')).body.unavailable.length === 0,
    { what: 'engine back' });
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name: 'after1', image: 'local/busybox:1', command: ['sleep', '1000'] },
  });
  assert.equal(c.status, 201, c.text);
  // the watcher reconnected: the new container's start is recorded, as the
  // engine's event or, when it started before the stream was back, by the
  // reconciliation that follows every reconnect
  await waitFor(() => eventsOfType('container.started').some((e) => e.data.container_id === c.body.id) ||
    eventsOfType('container.observed').some((e) => e.data.container_id === c.body.id && e.data.state === 'running'),
    { timeout: 15000, what: 'started after reconnect' }).catch((e) => { throw new Error(`${e.message}\n${core.log().slice(-3000)}`); });
  docker('rm', '-f', 'after1');
});

test('a follow stream still open at shutdown ends with event: end and the daemon exits cleanly', async () => {
  const c = await core.request('POST', '/api/v1/nodes/local/containers', {
    json: { name: 'atexit', image: 'local/busybox:1', command: ['sh', '-c', 'while true; do echo t; sleep 0.2; done'] },
  });
  assert.equal(c.status, 201, c.text);
  const s = await openSse('/api/v1/nodes/local/containers/atexit/logs?follow=1');
  await waitFor(() => s.events.some((e) => e.event === 'log'), { what: 'first line' });
  await core.stop();
  await waitFor(() => s.ended(), { what: 'stream closed' });
  const end = s.events.find((e) => e.event === 'end');
  assert.equal(end?.data.reason, 'shutdown');
  docker('rm', '-f', 'atexit');
});
