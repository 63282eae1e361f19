// The node page's tools: run a command on the node over SSH (its output and
// exit code, as the core answers them), edit the node's labels, and enroll
// a collector (the one-time token and the exact command, from the core,
// copyable). Each is shown only with its permission; every check and every
// error message is the core's.
import { api } from '../api.js';
import { h, clear, errorBox, fmtTime, copyText, toast } from '../ui.js';
import { badge } from '../widgets.js';

const TIMEOUTS = [[10, '10 s'], [60, '1 min'], [300, '5 min'], [1800, '30 min']];

// cards(ctx, id, {labels: () => current labels, onChanged}) → [section…]
export function nodeTools(ctx, id, { labels, onChanged }) {
  const out = [];
  if (ctx.readOnly) return out;
  if (ctx.can('nodes:exec')) out.push(execCard(id));
  if (ctx.can('nodes:write')) out.push(labelsCard(id, labels, onChanged), enrollCard(id));
  return out;
}

function execCard(id) {
  const err = h('div');
  const cmd = h('textarea', { id: 'exec-command', rows: 2, required: true, spellcheck: 'false', autocomplete: 'off', placeholder: 'uptime; df -h /' });
  const tmo = h('select', { id: 'exec-timeout' }, TIMEOUTS.map(([v, l]) => h('option', { value: v, selected: v === 60 }, l)));
  const run = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Run');
  const result = h('div', { id: 'exec-result', 'aria-live': 'polite' });
  const form = h('form', { class: 'inline-form', id: 'exec-form' },
    h('div', { class: 'field grow' }, h('label', { for: 'exec-command' }, 'Command (run by the node\'s SSH user, with sh)'), cmd),
    h('div', { class: 'field' }, h('label', { for: 'exec-timeout' }, 'Time limit'), tmo),
    h('div', { class: 'filter-actions' }, run));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    run.disabled = true;
    run.textContent = 'Running…';
    clear(err);
    clear(result, h('p', { class: 'muted small' }, 'Running on the node…'));
    try {
      const r = await api('POST', `/api/v1/nodes/${encodeURIComponent(id)}/exec`, { command: cmd.value, timeout_seconds: Number(tmo.value) });
      const code = r.exit_code;
      const verdict = r.timed_out ? badge('timed out', 'err')
        : code === null || code === undefined ? badge(r.signal ? `killed by ${r.signal}` : 'no exit code', 'err')
          : badge(`exit code ${code}`, code === 0 ? 'ok' : 'err');
      clear(result,
        h('p', { class: 'row wrap', id: 'exec-status', dataset: { exitCode: code ?? '' } }, verdict,
          h('span', { class: 'muted small' }, `${r.duration_ms} ms${r.truncated ? ' · output cut at the core\'s limit' : ''}`)),
        h('h3', { class: 'small muted' }, 'Output'), h('pre', { class: 'job-log', id: 'exec-stdout' }, r.stdout || ''),
        r.stderr ? [h('h3', { class: 'small muted' }, 'Errors (stderr)'), h('pre', { class: 'job-log err', id: 'exec-stderr' }, r.stderr)] : null);
    } catch (e2) {
      clear(result);
      clear(err, errorBox(e2));
    } finally { run.disabled = false; run.textContent = 'Run'; }
  });
  return h('section', { class: 'card', id: 'node-exec', 'aria-labelledby': 'exec-title' },
    h('h2', { id: 'exec-title' }, 'Run a command'),
    h('p', { class: 'muted small' }, 'Recorded in the audit log (node.exec) with its exit code.'), err, form, result);
}

function labelsCard(id, labels, onChanged) {
  const err = h('div');
  const rows = h('div', { id: 'labels-rows', class: 'stack' });
  const addRow = (k = '', v = '') => {
    const key = h('input', { class: 'label-key', 'aria-label': 'Label name', value: k, placeholder: 'env', autocomplete: 'off', spellcheck: 'false' });
    const val = h('input', { class: 'label-value', 'aria-label': 'Label value', value: v, placeholder: 'production', autocomplete: 'off', spellcheck: 'false' });
    const row = h('div', { class: 'row label-row' }, key, h('span', { 'aria-hidden': 'true' }, '='), val,
      h('button', { class: 'btn btn-small btn-ghost', type: 'button', 'aria-label': `Remove label ${k}`.trim(), onclick: () => row.remove() }, '✕'));
    rows.append(row);
    return row;
  };
  const reset = () => { clear(rows); for (const [k, v] of Object.entries(labels() || {})) addRow(k, v); };
  const save = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Save labels');
  const form = h('form', { id: 'labels-form' }, rows,
    h('div', { class: 'row wrap' }, h('button', { class: 'btn', type: 'button', id: 'labels-add', onclick: () => addRow().querySelector('input').focus() }, 'Add a label'), save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const next = {};
    for (const r of rows.querySelectorAll('.label-row')) {
      const k = r.querySelector('.label-key').value.trim();
      if (k || r.querySelector('.label-value').value) next[k] = r.querySelector('.label-value').value;
    }
    save.disabled = true;
    try {
      await api('PATCH', `/api/v1/nodes/${encodeURIComponent(id)}`, { labels: next });
      clear(err);
      toast('Labels saved');
      await onChanged();
      reset();
    } catch (e2) { clear(err, errorBox(e2)); } finally { save.disabled = false; }
  });
  const card = h('section', { class: 'card', id: 'node-labels', 'aria-labelledby': 'labels-title' },
    h('h2', { id: 'labels-title' }, 'Labels'),
    h('p', { class: 'muted small' }, 'Labels select nodes: users, tokens and guest links limited to labels see only the nodes that carry them all.'),
    err, form);
  card.reset = reset;
  return card;
}

function enrollCard(id) {
  const err = h('div');
  const outBox = h('div', { id: 'enroll-out' });
  const btn = h('button', { class: 'btn', type: 'button', id: 'enroll-collector' }, 'Enroll a collector');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const r = await api('POST', `/api/v1/nodes/${encodeURIComponent(id)}/enroll-token`, { core_url: location.origin });
      const copyCmd = h('button', { class: 'btn btn-small', type: 'button', id: 'enroll-copy-command', onclick: () => copyText(r.command, copyCmd) }, 'Copy');
      const copyTok = h('button', { class: 'btn btn-small', type: 'button', id: 'enroll-copy-token', onclick: () => copyText(r.token, copyTok) }, 'Copy');
      clear(outBox, h('div', { class: 'alert alert-ok' },
        h('p', {}, 'Run this on the node (as root, with ', h('code', {}, 'serverbox-collector'), ' installed), then start ', h('code', {}, 'serverbox-collector.service'), '. The token works once, until ', fmtTime(r.expires_at), ', and is not shown again.'),
        h('div', { class: 'row' }, h('code', { class: 'secret', id: 'enroll-command' }, r.command), copyCmd),
        h('p', { class: 'small' }, 'The token alone: '),
        h('div', { class: 'row' }, h('code', { class: 'secret', id: 'enroll-token' }, r.token), copyTok)));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); } finally { btn.disabled = false; }
  });
  return h('section', { class: 'card', id: 'node-enroll', 'aria-labelledby': 'enroll-title' },
    h('h2', { id: 'enroll-title' }, 'Collector'),
    h('p', { class: 'muted small' }, 'The collector sends this node\'s CPU, memory, disk, network and container figures. Enrolling makes a one-time token (event agent.enroll_token_issued, digest only).'),
    err, btn, outBox);
}
