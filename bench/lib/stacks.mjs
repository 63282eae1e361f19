// Measurements for bench/stacks.bench.sh (see there). Not a *.bench.mjs:
// it needs the services that script starts.
import { createDatabase, startCore } from '../../tests/lib/harness.mjs';

const sock = process.env.SBX_DOCKER_SOCKET;
const row = (what, v, unit, target) => console.log(`| ${what} | ${v.toFixed(2)} ${unit} | ≤ ${target} ${unit} | ${(v / target).toFixed(2)} |`);

const svc = (i, v) => `  s${i}:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; mkdir -p /w && echo ${v} > /w/index.html && httpd -f -p 8080 -h /w & wait"]
    healthcheck: {test: ["CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"], interval: 500ms, retries: 5}
${i ? `    depends_on: {s${i - 1}: {condition: service_healthy}}\n` : ''}`;
const compose = (v0) => `services:\n${[0, 1, 2, 3, 4].map((i) => svc(i, i === 4 ? v0 : 'x')).join('')}`;

async function deployed(core, id, rev) {
  for (;;) {
    const r = await core.request('GET', `/api/v1/stacks/${id}/revisions`);
    const row = r.body.revisions.find((x) => x.revision === rev);
    if (row?.deploy_status) {
      if (row.deploy_status !== 'deployed') throw new Error(`revision ${rev}: ${row.deploy_status} ${row.deploy_reason}`);
      return;
    }
    await new Promise((res) => setTimeout(res, 50));
  }
}

const db = createDatabase('sbench');
const core = await startCore({ db, admin: true, env: { SERVERBOX_DOCKER_SOCKET: sock } });
try {
  const c = await core.request('POST', '/api/v1/stacks', { json: { name: 'bench', node_id: 'local', compose: compose('a') } });
  if (c.status !== 201) throw new Error(c.text);
  const id = c.body.id;
  let t = performance.now();
  await core.request('POST', `/api/v1/stacks/${id}/deploy`, { json: {} });
  await deployed(core, id, 1);
  const deploy = (performance.now() - t) / 1000;
  await core.request('PATCH', `/api/v1/stacks/${id}`, { json: { compose: compose('b') } });
  await core.request('POST', `/api/v1/stacks/${id}/deploy`, { json: {} });
  await deployed(core, id, 2);
  t = performance.now();
  const rb = await core.request('POST', `/api/v1/stacks/${id}/rollback`, { json: { revision: 1 } });
  await deployed(core, id, rb.body.revision);
  const rollback = (performance.now() - t) / 1000;
  console.log('| what | figure | target | ratio |');
  console.log('| --- | --- | --- | --- |');
  row('stack deploy request → 5 services healthy (chained service_healthy)', deploy, 's', 30);
  row('stack rollback request → rolled-back revision healthy (1 service, start-first)', rollback, 's', 5);
} finally {
  await core.stop({ expectClean: false });
}
