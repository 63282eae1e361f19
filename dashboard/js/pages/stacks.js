// Stacks: the list (GET /api/v1/stacks) with health per stack and the
// new-stack form; /stacks/<id> is a stack's page: the compose editor
// (CodeMirror 6 with the YAML language, vendor/codemirror.js; a textarea if
// it cannot load), the plan preview (POST …/plan) before a deploy, the deploy's
// live progress (topic job/<id>), services with desired / running / healthy
// and scale controls, logs per service (GET …/services/{s}/logs: the lines
// of all its containers, each prefixed by its container, refreshed),
// revisions with one-click rollback. The core decides
// every outcome: this page only shows what it answers.
import { api } from '../api.js';
import { h, clear, errorBox, badge, fmtTime, confirmDialog, toast } from '../ui.js';
import { onEvent, subscribe } from '../live.js';

export function healthBadge(health) {
  const kind = { healthy: 'ok', degraded: 'warn', down: 'err', unknown: 'neutral', empty: 'neutral' }[health] || 'neutral';
  return badge(health || 'unknown', kind);
}

function statusBadge(status) {
  const kind = { deployed: 'ok', failed: 'err', deploying: 'accent', stopped: 'warn', down: 'warn' }[status] || 'neutral';
  return badge(status || 'created', kind);
}

export function render(root, ctx) {
  const m = location.pathname.match(/\/stacks\/([^/]+)$/);
  if (m) return renderStack(root, ctx, decodeURIComponent(m[1]));
  return renderList(root, ctx);
}

const EXAMPLE = `services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "mkdir -p /w && echo hello > /w/index.html && exec httpd -f -p 8080 -h /w"]
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]
      interval: 1s
`;

function base(ctx) { return ctx.guest ? ctx.guest.base : ''; }

function renderList(root, ctx) {
  const canWrite = !ctx.readOnly && ctx.can('stacks:write');
  const err = h('div');
  const tbody = h('tbody', { id: 'stack-rows' });
  const formErr = h('div');
  const name = h('input', { id: 'stack-name', name: 'name', required: true, placeholder: 'shop', autocomplete: 'off' });
  const node = h('input', { id: 'stack-node', name: 'node_id', value: 'local', required: true });
  const compose = h('textarea', { id: 'stack-compose', rows: 14, spellcheck: 'false', class: 'mono' }, EXAMPLE);
  const form = canWrite ? h('form', { class: 'card', id: 'new-stack', onsubmit: async (e) => {
    e.preventDefault();
    clear(formErr);
    try {
      const s = await api('POST', '/api/v1/stacks', { name: name.value.trim(), node_id: node.value.trim(), compose: compose.value });
      toast(`Stack ${s.name} created`);
      ctx.navigate(`/stacks/${s.id}`);
    } catch (ex) { clear(formErr, errorBox(ex)); }
  } },
  h('h2', {}, 'New stack'), formErr,
  h('label', {}, 'Name', name), h('label', {}, 'Node id ("local" is the core\'s own engine)', node),
  h('label', {}, 'Compose file', compose),
  h('div', { class: 'row' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Create'))) : null;

  clear(root, h('div', { class: 'row between wrap' }, h('h1', {}, 'Stacks')), err,
    h('section', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Node'), h('th', {}, 'Status'), h('th', {}, 'Health'),
        h('th', { class: 'hide-sm' }, 'Revision'))), tbody))),
    form);

  async function load() {
    try {
      const r = await api('GET', '/api/v1/stacks');
      clear(tbody, r.stacks.length ? r.stacks.map((s) => h('tr', { dataset: { stack: s.name, health: s.health } },
        h('td', {}, h('a', { href: `${base(ctx)}/stacks/${s.id}`, 'data-nav': '', class: 'link strong' }, s.name)),
        h('td', { class: 'muted' }, s.node_id),
        h('td', {}, statusBadge(s.status)),
        h('td', { class: 'health-cell' }, healthBadge(s.health)),
        h('td', { class: 'hide-sm' }, `${s.deployed_revision ?? '—'} / ${s.revision}`)))
        : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No stacks yet.')));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }
  load();
  let t = null;
  const off = onEvent((e) => {
    if (typeof e.type === 'string' && (e.type.startsWith('stack.') || e.type.startsWith('container.'))) {
      clearTimeout(t);
      t = setTimeout(load, 200);
    }
  });
  return () => { off(); clearTimeout(t); };
}

function planView(plan) {
  return h('div', { id: 'plan-view' },
    h('table', { class: 'table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Service'), h('th', {}, 'Action'), h('th', {}, 'Why'))),
      h('tbody', {}, plan.services.map((s) => h('tr', { dataset: { service: s.service, action: s.action } },
        h('td', {}, s.service),
        h('td', {}, badge(s.action + (s.strategy ? ` ${s.strategy}` : ''), s.action === 'unchanged' ? 'neutral' : 'accent')),
        h('td', { class: 'muted small' }, s.note || s.reason))))),
    plan.images_to_pull?.length ? h('p', { class: 'muted small' }, `Images to pull: ${plan.images_to_pull.join(', ')}`) : null);
}

// CodeMirror's look in the dashboard's dark colours.
function editorLook(cm) {
  const theme = cm.EditorView.theme({
    '&': { color: 'var(--text)', backgroundColor: 'var(--bg-1)', border: '1px solid var(--border)', borderRadius: '8px' },
    '&.cm-focused': { outline: 'none', borderColor: 'var(--accent)' },
    '.cm-scroller': { fontFamily: 'var(--mono)', fontSize: '0.85rem', lineHeight: '1.45', minHeight: '18rem', maxHeight: '36rem' },
    '.cm-content': { caretColor: 'var(--text)' },
    '.cm-cursor': { borderLeftColor: 'var(--text)' },
    '.cm-gutters': { backgroundColor: 'var(--bg-0)', color: 'var(--text-3)', border: 'none', borderRadius: '8px 0 0 8px' },
    '.cm-activeLine': { backgroundColor: 'rgba(99, 102, 241, 0.08)' },
    '.cm-activeLineGutter': { backgroundColor: 'rgba(99, 102, 241, 0.12)' },
    '&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection': { backgroundColor: 'rgba(99, 102, 241, 0.35)' },
  }, { dark: true });
  const t = cm.tags;
  const colours = cm.HighlightStyle.define([
    { tag: [t.propertyName, t.definition(t.propertyName)], color: '#93c5fd' },
    { tag: [t.string, t.special(t.string)], color: '#86efac' },
    { tag: [t.number, t.bool, t.null, t.atom], color: '#fca5a5' },
    { tag: [t.comment, t.lineComment], color: 'var(--text-3)', fontStyle: 'italic' },
    { tag: [t.keyword, t.typeName, t.labelName, t.meta], color: '#c4b5fd' },
    { tag: [t.punctuation, t.separator, t.squareBracket, t.brace], color: 'var(--text-2)' },
  ]);
  return [theme, cm.syntaxHighlighting(colours), cm.syntaxHighlighting(cm.defaultHighlightStyle, { fallback: true })];
}

// The compose editor: CodeMirror with YAML, read-only for readers. Until
// the module has loaded (and if it cannot), the text lives in a textarea.
// `value` reads and replaces the whole text. CodeMirror lives in a shadow
// root: there it styles itself with a constructed style sheet, which the
// dashboard's CSP (style-src 'self', no inline <style>) allows.
function composeEditor({ readOnly }) {
  const box = h('div', { id: 'compose-editor', class: 'compose-editor' });
  const area = h('textarea', { rows: 18, spellcheck: 'false', class: 'mono', readonly: readOnly, 'aria-label': 'Compose file' });
  box.append(area);
  let view = null;
  const editor = {
    el: box,
    get value() { return view ? view.state.doc.toString() : area.value; },
    set value(v) {
      if (view) view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: v } });
      else area.value = v;
    },
  };
  import('../../vendor/codemirror.js').then((cm) => {
    const ro = readOnly ? [cm.EditorState.readOnly.of(true), cm.EditorView.editable.of(false)] : [];
    const host = h('div', { class: 'compose-editor-host' });
    const shadow = host.attachShadow({ mode: 'open' });
    box.append(host);
    view = new cm.EditorView({
      parent: shadow,
      root: shadow,
      state: cm.EditorState.create({
        doc: area.value,
        extensions: [cm.lineNumbers(), cm.highlightActiveLineGutter(), cm.foldGutter(), cm.history(), cm.drawSelection(),
          cm.indentOnInput(), cm.bracketMatching(), cm.highlightActiveLine(), cm.yaml(), ...editorLook(cm), ...ro,
          cm.EditorView.contentAttributes.of({ 'aria-label': 'Compose file' }),
          cm.keymap.of([...cm.defaultKeymap, ...cm.historyKeymap, cm.indentWithTab])],
      }),
    });
    area.remove();
    box.dataset.ready = 'codemirror';
  }).catch(() => { box.dataset.ready = 'textarea'; });
  return editor;
}

function renderStack(root, ctx, id) {
  const canWrite = !ctx.readOnly && ctx.can('stacks:write');
  const err = h('div');
  const head = h('div', { class: 'row between wrap' });
  const services = h('tbody', { id: 'service-rows' });
  const editor = composeEditor({ readOnly: !canWrite });
  const planBox = h('div', { id: 'plan-box' });
  const progress = h('div', { id: 'deploy-progress', role: 'status', 'aria-live': 'polite' });
  const revisions = h('tbody', { id: 'revision-rows' });
  const canLogs = ctx.can('logs:read');
  const logPanel = h('section', { class: 'card logs', id: 'service-logs', hidden: true });
  let stack = null;
  let unsub = null;
  let stopLogs = null;

  const actions = canWrite ? h('div', { class: 'row wrap' },
    h('button', { class: 'btn', id: 'save-compose', onclick: () => save() }, 'Save as new revision'),
    h('button', { class: 'btn', id: 'preview-plan', onclick: () => preview() }, 'Preview plan'),
    h('button', { class: 'btn btn-primary', id: 'deploy', onclick: () => deploy() }, 'Deploy')) : null;

  clear(root, head, err,
    h('section', { class: 'card' }, h('h2', {}, 'Services'), h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Service'), h('th', {}, 'Desired'), h('th', {}, 'Running'), h('th', {}, 'Healthy'), canWrite && h('th', {}, 'Scale'), canLogs && h('th', {}, ''))),
      services))),
    logPanel,
    h('section', { class: 'card' }, h('h2', {}, 'Compose'), editor.el, actions, planBox, progress),
    h('section', { class: 'card' }, h('h2', {}, 'Revisions'), h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Revision'), h('th', {}, 'Deploy'), h('th', { class: 'hide-sm' }, 'Created'), h('th', {}, ''))),
      revisions))));

  async function load({ keepEditor = false } = {}) {
    try {
      stack = await api('GET', `/api/v1/stacks/${encodeURIComponent(id)}`);
      clear(head, h('h1', {}, stack.name), h('div', { class: 'row' }, statusBadge(stack.status), healthBadge(stack.health),
        h('span', { class: 'muted small' }, `node ${stack.node_id} · revision ${stack.revision}, deployed ${stack.deployed_revision ?? '—'}`)));
      if (!keepEditor) editor.value = stack.compose || '';
      clear(services, Object.entries(stack.services || {}).map(([name, s]) => {
        const n = h('input', { type: 'number', min: 0, max: 20, value: String(s.desired), class: 'narrow', 'aria-label': `replicas of ${name}` });
        return h('tr', { dataset: { service: name } }, h('td', {}, name,
          s.route ? h('div', { class: 'muted small route' }, `→ ${s.route.host} (port ${s.route.port})`) : null),
          h('td', { class: 'desired' }, String(s.desired)), h('td', { class: 'running' }, String(s.running)),
          h('td', { class: 'healthy' }, String(s.healthy)),
          canWrite && h('td', {}, n, h('button', { class: 'btn btn-ghost', onclick: () => scale(name, Number(n.value)) }, 'Scale')),
          canLogs && h('td', {}, h('button', { class: 'btn btn-ghost', 'aria-label': `logs of ${name}`, onclick: () => showLogs(name) }, 'Logs')));
      }));
      const rv = await api('GET', `/api/v1/stacks/${encodeURIComponent(id)}/revisions`);
      clear(revisions, rv.revisions.map((r) => h('tr', { dataset: { revision: String(r.revision), status: r.deploy_status || '' } },
        h('td', {}, `#${r.revision}${r.rollback_of ? ` (rollback of #${r.rollback_of})` : ''}`),
        h('td', { title: r.deploy_reason || '' }, r.deploy_status ? badge(r.deploy_status, r.deploy_status === 'deployed' ? 'ok' : 'err') : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'hide-sm muted' }, fmtTime(r.created_at)),
        h('td', {}, canWrite && r.digests && r.revision !== stack.deployed_revision
          ? h('button', { class: 'btn btn-ghost', onclick: () => rollback(r.revision) }, 'Roll back') : null))));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }

  async function save() {
    clear(err);
    try {
      await api('PATCH', `/api/v1/stacks/${encodeURIComponent(id)}`, { compose: editor.value });
      toast('Saved as a new revision');
      await load();
    } catch (e) { clear(err, errorBox(e)); }
  }

  async function preview() {
    clear(err);
    try {
      const body = editor.value !== stack?.compose ? { compose: editor.value } : {};
      const r = await api('POST', `/api/v1/stacks/${encodeURIComponent(id)}/plan`, body);
      clear(planBox, h('h3', {}, 'Plan'), planView(r.plan));
    } catch (e) { clear(err, errorBox(e)); }
  }

  function follow(job) {
    if (unsub) unsub();
    clear(progress, h('p', { class: 'muted' }, `Job ${job.id}: queued`));
    const bar = h('progress', { max: 100, value: 0 });
    const step = h('span', { id: 'deploy-step' }, 'queued');
    const log = h('pre', { id: 'deploy-log', class: 'mono small' });
    clear(progress, h('div', { class: 'row' }, bar, step), log);
    unsub = subscribe(`job/${job.id}`, (m) => {
      const d = m.data || {};
      if (m.type === 'job.progress') {
        if (d.percent >= 0) bar.value = d.percent;
        step.textContent = d.step;
      } else if (m.type === 'job.log') {
        log.textContent += `${d.line}\n`;
      }
    });
  }

  async function deploy() {
    clear(err);
    try {
      if (editor.value !== stack?.compose) await api('PATCH', `/api/v1/stacks/${encodeURIComponent(id)}`, { compose: editor.value });
      const r = await api('POST', `/api/v1/stacks/${encodeURIComponent(id)}/deploy`, {});
      follow(r.job);
      await load({ keepEditor: true });
    } catch (e) { clear(err, errorBox(e)); }
  }

  async function rollback(rev) {
    if (!(await confirmDialog(`Roll back to revision ${rev}?`, 'Its compose file, variables and images are applied again as a new revision.', 'Roll back', false))) return;
    try {
      const r = await api('POST', `/api/v1/stacks/${encodeURIComponent(id)}/rollback`, { revision: rev });
      follow(r.job);
      await load();
    } catch (e) { clear(err, errorBox(e)); }
  }

  // The last lines of every container of the service, merged by the core
  // and prefixed here by the container that wrote them; refreshed.
  function showLogs(service) {
    if (stopLogs) stopLogs();
    const pre = h('pre', { class: 'log mono', id: 'service-log-lines' });
    const state = h('span', { class: 'muted small', id: 'service-log-state' }, 'loading…');
    logPanel.hidden = false;
    clear(logPanel, h('div', { class: 'row between' }, h('h2', {}, `Logs · ${service}`), h('div', { class: 'row' }, state,
      h('button', { class: 'btn btn-small', onclick: () => { if (stopLogs) stopLogs(); logPanel.hidden = true; } }, 'Close'))), pre);
    const path = `/api/v1/stacks/${encodeURIComponent(id)}/services/${encodeURIComponent(service)}/logs?tail=300`;
    const snap = async () => {
      try {
        const res = await api('GET', path, undefined, { raw: true, accept: 'application/x-ndjson' });
        const text = await res.text();
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.replaceChildren(...text.split('\n').filter(Boolean).map((l) => {
          let o;
          try { o = JSON.parse(l); } catch { return null; }
          return h('span', { class: o.stream === 'stderr' ? 'stderr' : '', dataset: { container: o.container } }, `${o.container} | ${o.line}\n`);
        }).filter(Boolean));
        if (atEnd) pre.scrollTop = pre.scrollHeight;
        const names = res.headers.get('X-Containers');
        state.textContent = `${names ? names.split(',').length : 0} container(s) · updated ${fmtTime(new Date().toISOString())}`;
      } catch (e) { state.textContent = e.message; }
    };
    snap();
    const t = setInterval(snap, 3000);
    stopLogs = () => { clearInterval(t); stopLogs = null; };
  }

  async function scale(service, replicas) {
    try {
      const r = await api('POST', `/api/v1/stacks/${encodeURIComponent(id)}/services/${encodeURIComponent(service)}/scale`, { replicas });
      follow(r.job);
    } catch (e) { clear(err, errorBox(e)); }
  }

  load();
  let t = null;
  const off = onEvent((e) => {
    if (typeof e.type !== 'string') return;
    if (e.stream === `stack/${id}` || e.type.startsWith('container.')) {
      clearTimeout(t);
      t = setTimeout(() => load({ keepEditor: true }), 250);
    }
  });
  return () => { off(); clearTimeout(t); if (unsub) unsub(); if (stopLogs) stopLogs(); };
}
