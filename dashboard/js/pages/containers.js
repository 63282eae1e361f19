// Containers of every node: filters map onto GET /api/v1/containers; start,
// stop and restart are requests to the core (confirmed first), and the list
// shows what the engine reports afterwards. Stop and restart answer 202 with
// a job: the row's buttons stay disabled and say "stopping… 40%" while it
// runs (progress from the job), then the outcome; a failure stays on the
// page until dismissed. Logs tail live over SSE
// (follow=1); guests, whose token EventSource cannot carry, get snapshots.
// "Charts" shows a container's CPU and memory over the last hour, live
// (charts.js).
import { api, qs, isGuest } from '../api.js';
import { h, clear, errorBox, toast, fmtTime } from '../ui.js';
import { followJob, progressText } from '../jobs.js';
import { confirmDialog, containerStateBadge, reloadOnEvent, emptyState } from '../widgets.js';
import { containerCharts } from '../charts.js';

const STATES = ['', 'running', 'exited', 'paused', 'restarting', 'created', 'dead'];
const MAX_LOG_LINES = 1000;

const stateBadge = containerStateBadge;

// What an empty list means on a fresh install, and how to fill it: the
// core's own engine is listed when its socket answers; else it can be
// added as a node (admins: the form, preset to the local socket).
function emptyHelp(ctx, unavailable) {
  const local = unavailable.find((u) => u.node_id === 'local');
  const canAdd = !ctx.readOnly && ctx.can('nodes:write') && ctx.can('nodes:local_engine');
  return emptyState('containers-empty', 'No containers yet', [
    local ? `This server's own Docker engine did not answer: ${local.message}.` : null,
    'Containers appear here from every Docker engine Serverbox reaches: this server\'s own (the socket given with --docker-socket, /var/run/docker.sock by default) and those of the nodes you add.',
    canAdd
      ? 'To manage the engine of this server as a node, add a node with the Docker engine "local socket (this machine)".'
      : ctx.readOnly ? null : 'To manage the engine of this server as a node, an administrator adds a node with the Docker engine "local socket (this machine)".',
  ].filter(Boolean), canAdd ? h('a', { class: 'btn btn-primary', href: '/nodes?docker=local#add-node', 'data-nav': '', id: 'add-local-engine' }, 'Add this server\'s engine as a node') : null);
}

export function render(root, ctx) {
  const canOperate = !ctx.readOnly && ctx.can('containers:operate');
  const canConsole = !ctx.readOnly && ctx.can('terminal:container');
  const canLogs = ctx.can('logs:read');
  const canMetrics = ctx.can('metrics:read');
  const chartSlot = h('div', { id: 'chart-slot' });
  let charts = null;
  const openCharts = (c, name) => {
    charts?.close();
    charts = containerCharts({ nodeId: c.node_id, containerId: c.id, name, nodeName: c.node_name });
    clear(chartSlot, charts.el);
    charts.el.scrollIntoView({ block: 'nearest' });
  };
  const f = {
    name: h('input', { id: 'c-name', name: 'name', placeholder: 'part of the name' }),
    state: h('select', { id: 'c-state', name: 'state' }, STATES.map((s) => h('option', { value: s }, s || 'any'))),
    label: h('input', { id: 'c-label', name: 'label', placeholder: 'key or key=value' }),
    node: h('input', { id: 'c-node', name: 'node', placeholder: 'node id' }),
  };
  const err = h('div');
  const failures = h('div', { id: 'job-failures' });
  const unavailable = h('div');
  const count = h('p', { class: 'muted small', id: 'container-count' }, '\u00a0');
  const empty = h('div');
  const tbody = h('tbody', { id: 'container-rows' });
  const logPanel = h('section', { class: 'card logs', id: 'log-panel', hidden: true });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter containers' },
    ...Object.entries({ Name: f.name, State: f.state, Label: f.label, Node: f.node }).map(([l, i]) => h('div', { class: 'field' }, h('label', { for: i.id }, l), i)),
    h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Apply'), h('button', { class: 'btn btn-ghost', type: 'reset' }, 'Clear')));
  clear(root, h('h1', {}, 'Containers'), err, failures, unavailable,
    h('section', { class: 'card' }, form),
    h('section', { class: 'card' }, count, empty, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Node'), h('th', {}, 'Name'), h('th', {}, 'Image'), h('th', {}, 'State'), h('th', {}, 'Status'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
      tbody))),
    chartSlot, logPanel);

  let stopLogs = null;
  // Jobs running for a container, by node/container id: {action, progress}.
  const pending = new Map();
  const VERB = { stop: 'stopping', restart: 'restarting' };

  function showFailure(name, action, job) {
    const msg = job.error?.message || job.state;
    const box = h('div', { class: 'alert alert-error job-failure', role: 'alert' },
      h('span', {}, `${name}: ${action} ${job.state === 'cancelled' ? 'was cancelled' : 'failed'}: ${msg}`), ' ',
      h('button', { class: 'btn btn-small', onclick: () => box.remove() }, 'Dismiss'));
    failures.append(box);
  }

  async function runJob(c, name, action, job) {
    const key = `${c.node_id}/${c.id}`;
    pending.set(key, { action, progress: { state: job.state } });
    load();
    try {
      const end = await followJob(job, (p) => {
        const cur = pending.get(key);
        if (!cur) return;
        cur.progress = p;
        const el = tbody.querySelector(`tr[data-key="${CSS.escape(key)}"] .job-progress`);
        if (el) el.textContent = progressText(VERB[action], p);
      });
      if (end.state === 'succeeded') toast(`${name}: ${action} done`);
      else showFailure(name, action, end);
    } catch (e) {
      clear(err, errorBox(e));
    } finally {
      pending.delete(key);
      load();
    }
  }

  // One load at a time; an event during a load makes one more (widgets.js).
  const { reload: load, off } = reloadOnEvent(async () => {
    const params = Object.fromEntries(Object.entries(f).map(([k, el]) => [k, el.value.trim()]));
    try {
      const r = await api('GET', `/api/v1/containers${qs(params)}`);
      const rows = r.containers || [];
      count.textContent = `${rows.length} container${rows.length === 1 ? '' : 's'}`;
      clear(tbody, rows.map(row));
      const filtered = Object.values(params).some(Boolean);
      clear(empty, rows.length || filtered ? null : emptyHelp(ctx, r.unavailable || []));
      clear(unavailable, (r.unavailable || []).map((u) => h('div', { class: 'alert alert-error', role: 'alert' }, `${u.node_name || u.node_id}: ${u.message}`)));
      clear(err);
    } catch (e) {
      clear(err, errorBox(e));
    }
  }, 'container.', { delay: 0 });

  function row(c) {
    const name = c.name || c.id.slice(0, 12);
    const act = (action, label, danger) => h('button', { class: `btn btn-small${danger ? ' btn-danger' : ''}`, onclick: async () => {
      if (!(await confirmDialog(`${label} ${name}?`, `The container on ${c.node_name || c.node_id} will be asked to ${action}.`, label, danger))) return;
      let r;
      try {
        r = await api('POST', `/api/v1/nodes/${encodeURIComponent(c.node_id)}/containers/${encodeURIComponent(c.id)}/${action}`);
      } catch (e) { clear(err, errorBox(e)); load(); return; }
      if (r && r.job) { runJob(c, name, action, r.job); return; }
      toast(`${name}: ${action} requested`);
      load();
    } }, label);
    const running = c.state === 'running';
    const job = pending.get(`${c.node_id}/${c.id}`);
    if (job) {
      return h('tr', { dataset: { name, state: c.state, key: `${c.node_id}/${c.id}` } },
        h('td', {}, c.node_name || c.node_id),
        h('td', {}, name),
        h('td', { class: 'ellipsis', title: c.image }, h('code', {}, c.image)),
        h('td', {}, stateBadge(c.state)),
        h('td', { class: 'nowrap muted' }, c.status || ''),
        h('td', { class: 'actions' },
          h('button', { class: 'btn btn-small', disabled: true, 'aria-busy': 'true' },
            h('span', { class: 'job-progress' }, progressText(VERB[job.action], job.progress)))));
    }
    return h('tr', { dataset: { name, state: c.state, key: `${c.node_id}/${c.id}` } },
      h('td', {}, c.node_name || c.node_id),
      h('td', {}, name),
      h('td', { class: 'ellipsis', title: c.image }, h('code', {}, c.image)),
      h('td', {}, stateBadge(c.state)),
      h('td', { class: 'nowrap muted' }, c.status || ''),
      h('td', { class: 'actions' },
        canLogs ? h('button', { class: 'btn btn-small', onclick: () => openLogs(c, name) }, 'Logs') : null,
        canMetrics ? h('button', { class: 'btn btn-small', 'data-charts': name, onclick: () => openCharts(c, name) }, 'Charts') : null,
        canConsole && running ? h('a', { class: 'btn btn-small', 'data-nav': '', 'data-console': name,
          href: `/terminal?node=${encodeURIComponent(c.node_id)}&container=${encodeURIComponent(c.id)}&name=${encodeURIComponent(name)}` }, 'Console') : null,
        canOperate && !running ? act('start', 'Start', false) : null,
        canOperate && running ? act('restart', 'Restart', true) : null,
        canOperate && running ? act('stop', 'Stop', true) : null));
  }

  function openLogs(c, name) {
    if (stopLogs) stopLogs();
    const pre = h('pre', { class: 'log', id: 'log-lines', tabindex: '0', 'aria-label': `Logs of ${name}` });
    const state = h('span', { class: 'muted small', id: 'log-state' }, 'connecting…');
    logPanel.hidden = false;
    clear(logPanel, h('div', { class: 'row between' }, h('h2', {}, `Logs · ${name}`), h('div', { class: 'row' }, state,
      h('button', { class: 'btn btn-small', onclick: () => { if (stopLogs) stopLogs(); logPanel.hidden = true; } }, 'Close'))), pre);
    const append = (o) => {
      const line = h('span', { class: o.stream === 'stderr' ? 'stderr' : '' }, `${o.line}\n`);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(line);
      while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    };
    const base = `/api/v1/nodes/${encodeURIComponent(c.node_id)}/containers/${encodeURIComponent(c.id)}/logs`;
    if (isGuest()) {
      // Snapshots: the last lines, refreshed.
      const snap = async () => {
        try {
          const res = await api('GET', `${base}?tail=200`, undefined, { raw: true, accept: 'application/x-ndjson' });
          const text = await res.text();
          pre.replaceChildren();
          for (const l of text.split('\n')) if (l) { try { append(JSON.parse(l)); } catch { /* partial */ } }
          state.textContent = `updated ${fmtTime(new Date().toISOString())}`;
        } catch (e) { state.textContent = e.message; }
      };
      snap();
      const t = setInterval(snap, 3000);
      stopLogs = () => { clearInterval(t); stopLogs = null; };
      return;
    }
    const es = new EventSource(`${base}?follow=1&tail=200`);
    es.addEventListener('open', () => { state.textContent = 'live'; });
    es.addEventListener('log', (e) => { try { append(JSON.parse(e.data)); } catch { /* ignore */ } });
    es.addEventListener('end', (e) => {
      let reason = 'ended';
      try { reason = JSON.parse(e.data).reason || reason; } catch { /* keep */ }
      state.textContent = `stream ended: ${reason.replace(/_/g, ' ')}`;
      es.close();
    });
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) state.textContent = 'the log stream was refused';
      else state.textContent = 'reconnecting…';
    });
    stopLogs = () => { es.close(); stopLogs = null; };
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  form.addEventListener('reset', () => setTimeout(load, 0));
  // The engine's events (container.*) refresh the list at once when the
  // live stream runs.
  load();
  const timer = setInterval(load, 4000);
  return () => { clearInterval(timer); off(); if (stopLogs) stopLogs(); charts?.close(); };
}
