// Deployments: GitOps apps. The list (GET /api/v1/apps) with each app's
// current commit, status and route, and the new-app form; /deployments/<id>
// is an app's page: a deploy button, the live pipeline of the running
// deployment (steps and progress from job/<id>, the build log line by line),
// the history with one-click rollback, a deployment's details (steps,
// generated Dockerfile, stored log), and the variables (secret ones masked
// by the core). The core decides every outcome: this page only shows what
// it answers.
import { api } from '../api.js';
import { h, clear, errorBox, badge, fmtTime, confirmDialog, toast } from '../ui.js';
import { onEvent, subscribe } from '../live.js';

const STATUS_KIND = { running: 'ok', succeeded: 'ok', failed: 'err', deploying: 'accent', queued: 'neutral', created: 'neutral' };
const statusBadge = (s) => badge(s || 'created', STATUS_KIND[s] || 'neutral');
const short = (c) => (c ? c.slice(0, 12) : '—');
const route = (a) => (a.domain ? a.domain : a.route_port ? `:${a.route_port}` : '—');

export function render(root, ctx) {
  const m = location.pathname.match(/\/deployments\/([^/]+)$/);
  if (m) return renderApp(root, ctx, decodeURIComponent(m[1]));
  return renderList(root, ctx);
}

function renderList(root, ctx) {
  const canWrite = ctx.can('apps:write');
  const err = h('div');
  const tbody = h('tbody', { id: 'app-rows' });
  const formErr = h('div');
  const f = {
    name: h('input', { id: 'app-name', required: true, placeholder: 'web', autocomplete: 'off' }),
    node_id: h('input', { id: 'app-node', value: 'local', required: true }),
    repo_url: h('input', { id: 'app-repo', required: true, placeholder: 'https://git.example.com/team/web.git', autocomplete: 'off' }),
    branch: h('input', { id: 'app-branch', value: 'main' }),
    subdir: h('input', { id: 'app-subdir', placeholder: '(the repository root)' }),
    port: h('input', { id: 'app-port', type: 'number', min: 1, max: 65535, value: '80' }),
    health_path: h('input', { id: 'app-health', value: '/' }),
  };
  const form = canWrite ? h('form', { class: 'card', id: 'new-app', onsubmit: async (e) => {
    e.preventDefault();
    clear(formErr);
    const body = { name: f.name.value.trim(), node_id: f.node_id.value.trim(), repo_url: f.repo_url.value.trim(),
      branch: f.branch.value.trim() || 'main', port: Number(f.port.value), health_path: f.health_path.value.trim() || '/' };
    if (f.subdir.value.trim()) body.subdir = f.subdir.value.trim();
    try {
      const a = await api('POST', '/api/v1/apps', body);
      toast(`App ${a.name} created. Webhook secret (shown once): ${a.webhook_secret}`);
      ctx.navigate(`/deployments/${a.id}`);
    } catch (ex) { clear(formErr, errorBox(ex)); }
  } },
  h('h2', {}, 'New app'), formErr,
  h('label', {}, 'Name', f.name), h('label', {}, 'Node id ("local" is the core\'s own engine)', f.node_id),
  h('label', {}, 'Git repository URL', f.repo_url), h('label', {}, 'Branch', f.branch),
  h('label', {}, 'Subdirectory to build', f.subdir), h('label', {}, 'Port the app listens on', f.port),
  h('label', {}, 'Health check path', f.health_path),
  h('div', { class: 'row' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Create app'))) : null;

  clear(root, h('div', { class: 'row between wrap' }, h('h1', {}, 'Deployments')), err,
    h('section', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'App'), h('th', {}, 'Node'), h('th', {}, 'Status'), h('th', {}, 'Commit'),
        h('th', { class: 'hide-sm' }, 'Route'))), tbody))),
    form);

  async function load() {
    try {
      const r = await api('GET', '/api/v1/apps');
      clear(tbody, r.apps.length ? r.apps.map((a) => h('tr', { dataset: { app: a.name, status: a.status } },
        h('td', {}, h('a', { href: `/deployments/${a.id}`, 'data-nav': '', class: 'link strong' }, a.name)),
        h('td', { class: 'muted' }, a.node_id),
        h('td', { title: a.status_reason || '' }, statusBadge(a.status)),
        h('td', { class: 'mono' }, short(a.current_commit)),
        h('td', { class: 'hide-sm muted' }, route(a))))
        : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No apps yet.')));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }
  load();
  let t = null;
  const off = onEvent((e) => {
    if (typeof e.type === 'string' && e.type.startsWith('app.')) { clearTimeout(t); t = setTimeout(load, 200); }
  });
  return () => { off(); clearTimeout(t); };
}

function renderApp(root, ctx, id) {
  const canDeploy = ctx.can('apps:deploy');
  const err = h('div');
  const head = h('div', { class: 'row between wrap' });
  const info = h('dl', { class: 'kv', id: 'app-info' });
  const vars = h('tbody', { id: 'var-rows' });
  const pipeline = h('div', { id: 'pipeline', role: 'status', 'aria-live': 'polite' });
  const history = h('tbody', { id: 'deployment-rows' });
  const detail = h('div', { id: 'deployment-detail' });
  let app = null;
  let unsub = null;
  let followed = null;

  const deployBtn = canDeploy ? h('button', { class: 'btn btn-primary', id: 'deploy', onclick: () => deploy() }, 'Deploy now') : null;
  clear(root, head, err,
    h('section', { class: 'card' }, h('div', { class: 'row between wrap' }, h('h2', {}, 'App'), deployBtn), info),
    h('section', { class: 'card' }, h('h2', {}, 'Pipeline'), pipeline),
    h('section', { class: 'card' }, h('h2', {}, 'History'), h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Kind'), h('th', {}, 'Status'), h('th', {}, 'Commit'),
        h('th', { class: 'hide-sm' }, 'Step'), h('th', {}, ''))), history)), detail),
    h('section', { class: 'card' }, h('h2', {}, 'Variables'), h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Value'))), vars)));

  const kv = (k, v) => [h('dt', {}, k), h('dd', {}, v)];

  async function load() {
    try {
      app = await api('GET', `/api/v1/apps/${encodeURIComponent(id)}`);
      clear(head, h('h1', {}, app.name), h('div', { class: 'row' }, statusBadge(app.status),
        h('span', { class: 'muted small' }, `node ${app.node_id} · commit ${short(app.current_commit)}`)));
      clear(info,
        kv('Repository', `${app.repo_url} (${app.branch}${app.subdir ? `, ${app.subdir}` : ''})`),
        kv('Port / health', `${app.port} · GET ${app.health_path} within ${app.health_timeout_s} s`),
        kv('Route', route(app)),
        kv('Image', app.current_image || '—'),
        kv('Webhook', `POST ${app.webhook_path}`),
        app.status_reason ? kv('Last failure', app.status_reason) : null);
      clear(vars, Object.keys(app.variables || {}).length ? Object.entries(app.variables).map(([k, v]) =>
        h('tr', { dataset: { var: k } }, h('td', { class: 'mono' }, k), h('td', { class: 'mono value' }, v)))
        : h('tr', {}, h('td', { colspan: 2, class: 'muted' }, 'No variables.')));
      const r = await api('GET', `/api/v1/apps/${encodeURIComponent(id)}/deployments`);
      clear(history, r.deployments.length ? r.deployments.map((d) => h('tr', { dataset: { deployment: d.id, status: d.status, kind: d.kind } },
        h('td', {}, h('a', { href: '#', class: 'link', onclick: (e) => { e.preventDefault(); show(d.id); } }, fmtTime(d.created_at))),
        h('td', {}, d.kind === 'rollback' ? 'rollback' : d.trigger),
        h('td', { title: d.reason || '' }, statusBadge(d.status), d.rolled_back ? badge('rolled back', 'warn') : null),
        h('td', { class: 'mono' }, short(d.commit)),
        h('td', { class: 'hide-sm muted' }, d.step || ''),
        h('td', {}, canDeploy && d.status === 'succeeded' && d.id !== app.current_deployment
          ? h('button', { class: 'btn btn-ghost', onclick: () => rollback(d) }, 'Roll back') : null)))
        : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Not deployed yet.')));
      const active = r.deployments.find((d) => d.status === 'queued' || d.status === 'running');
      if (active && active.job_id && followed !== active.id) follow(active.id, active.job_id);
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }

  // The live pipeline of one deployment: progress and the log from job/<id>.
  function follow(depId, jobId) {
    if (unsub) unsub();
    followed = depId;
    const bar = h('progress', { max: 100, value: 0 });
    const step = h('span', { id: 'pipeline-step' }, 'queued');
    const log = h('pre', { id: 'build-log', class: 'mono small log' });
    clear(pipeline, h('div', { class: 'row' }, bar, step), log);
    unsub = subscribe([`job/${jobId}`], (m, type) => {
      const d = m.data || {};
      if (type === 'job.progress') {
        if (d.percent >= 0) bar.value = d.percent;
        step.textContent = d.step;
      } else if (type === 'job.log') {
        log.textContent += `${d.line}\n`;
        log.scrollTop = log.scrollHeight;
      }
    });
  }

  async function show(depId) {
    try {
      const d = await api('GET', `/api/v1/deployments/${encodeURIComponent(depId)}`);
      clear(detail, h('h3', {}, `Deployment ${short(d.id)} · ${d.status}`),
        d.reason ? h('p', { class: 'alert alert-error' }, d.reason) : null,
        h('ol', { class: 'steps', id: 'detail-steps' }, d.steps.map((s) => h('li', { dataset: { step: s.step } }, `${s.step} · ${fmtTime(s.at)}`))),
        d.dockerfile ? [h('h4', {}, 'Generated Dockerfile'), h('pre', { class: 'mono small', id: 'detail-dockerfile' }, d.dockerfile)] : null,
        d.log_tail?.length ? [h('h4', {}, 'Last lines'), h('pre', { class: 'mono small' }, d.log_tail.join('\n'))] : null,
        h('h4', {}, 'Log'), h('pre', { class: 'mono small log', id: 'detail-log' }, d.log || ''));
    } catch (e) { clear(detail, errorBox(e)); }
  }

  async function start(path) {
    clear(err);
    try {
      const r = await api('POST', path);
      follow(r.deployment_id, r.job.id);
      await load();
    } catch (e) { clear(err, errorBox(e)); }
  }
  const deploy = () => start(`/api/v1/apps/${encodeURIComponent(id)}/deploy`);
  async function rollback(d) {
    if (!(await confirmDialog(`Roll back to ${short(d.commit)}?`, 'Its image runs again, without a build, through the same health check.', 'Roll back', false))) return;
    await start(`/api/v1/deployments/${encodeURIComponent(d.id)}/rollback`);
  }

  load();
  let t = null;
  const off = onEvent((e) => {
    if (e.stream === `app/${id}`) { clearTimeout(t); t = setTimeout(load, 200); }
  });
  return () => { off(); clearTimeout(t); if (unsub) unsub(); };
}
