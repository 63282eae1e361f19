// The audit log: filters map one-to-one onto GET /api/v1/audit parameters;
// the chain badge shows what GET /api/v1/audit/verify recomputed on the
// server (the dashboard never judges the chain itself).
import { api, qs } from '../api.js';
import { h, clear, errorBox, fmtTime, outcomeBadge, badge } from '../ui.js';

const SHOWN = 500;

export function render(root, ctx) {
  const f = {
    type: h('input', { id: 'f-type', name: 'type', placeholder: 'auth. or user.created' }),
    actor: h('input', { id: 'f-actor', name: 'actor', placeholder: 'name or id' }),
    stream: h('input', { id: 'f-stream', name: 'stream', placeholder: 'user/<id>' }),
    outcome: h('select', { id: 'f-outcome', name: 'outcome' }, ['', 'success', 'denied', 'failure'].map((o) => h('option', { value: o }, o || 'any'))),
    from: h('input', { id: 'f-from', name: 'from', type: 'datetime-local', step: 1 }),
    to: h('input', { id: 'f-to', name: 'to', type: 'datetime-local', step: 1 }),
    actor_kind: h('select', { id: 'f-kind', name: 'actor_kind' }, ['', 'user', 'token', 'guest', 'agent', 'system'].map((o) => h('option', { value: o }, o || 'any'))),
  };
  const chain = h('div', { class: 'chain', id: 'chain-badge', 'aria-live': 'polite' }, badge('verifying…', 'neutral'));
  const cpBtn = h('button', { class: 'btn', id: 'checkpoint', type: 'button' }, 'Download signed checkpoint');
  const err = h('div');
  const count = h('p', { class: 'muted small', id: 'audit-count' }, '\u00a0');
  const tbody = h('tbody', { id: 'audit-rows' });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    field('Type', f.type), field('Actor', f.actor), field('Stream', f.stream), field('Outcome', f.outcome), field('Actor kind', f.actor_kind),
    field('From', f.from), field('Until', f.to),
    h('div', { class: 'filter-actions' },
      h('button', { class: 'btn btn-primary', type: 'submit' }, 'Apply'),
      h('button', { class: 'btn btn-ghost', type: 'reset' }, 'Clear')));
  clear(root,
    h('div', { class: 'row between wrap' }, h('h1', {}, 'Audit log'), h('div', { class: 'row' }, chain, cpBtn)),
    err,
    h('section', { class: 'card' }, form),
    h('section', { class: 'card' }, count,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'table', 'aria-describedby': 'audit-count' },
          h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'Seq'), h('th', {}, 'When'), h('th', {}, 'Type'), h('th', {}, 'Actor'), h('th', {}, 'Stream'), h('th', {}, 'Outcome'), h('th', {}, 'Data'))),
          tbody))));

  async function verify() {
    try {
      const v = await api('GET', '/api/v1/audit/verify');
      clear(chain, v.ok
        ? badge(`chain verified to #${v.head_seq}`, 'ok')
        : badge(`chain broken at #${v.first_bad_seq}`, 'err'));
      chain.dataset.ok = String(v.ok);
      chain.dataset.head = String(v.head_seq);
      chain.title = v.head_hash ? `head hash ${v.head_hash}` : '';
    } catch (e) {
      clear(chain, badge('chain not verified', 'warn'));
      clear(err, errorBox(e));
    }
  }

  async function load() {
    clear(err);
    const params = Object.fromEntries(Object.entries(f).map(([k, el]) => [k, el.value.trim()]));
    // datetime-local is local time without a zone; the API takes RFC 3339.
    for (const k of ['from', 'to']) if (params[k]) params[k] = new Date(params[k]).toISOString();
    let after = 0;
    let rows = [];
    try {
      for (let i = 0; i < 20; i++) {
        const r = await api('GET', `/api/v1/audit${qs({ ...params, after, limit: 1000 })}`);
        rows = rows.concat(r.events);
        if (rows.length > SHOWN) rows = rows.slice(-SHOWN);
        if (r.next_after == null || !r.events.length) break;
        after = r.next_after;
      }
    } catch (e) {
      clear(err, errorBox(e));
      return;
    }
    rows.reverse();
    count.textContent = rows.length ? `${rows.length} event${rows.length === 1 ? '' : 's'}, newest first${rows.length >= SHOWN ? ` (the latest ${SHOWN})` : ''}` : 'No events match.';
    clear(tbody, rows.map(row));
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  form.addEventListener('reset', () => setTimeout(load, 0));
  cpBtn.addEventListener('click', async () => {
    cpBtn.disabled = true;
    try {
      const cp = await api('GET', '/api/v1/audit/checkpoint');
      const blob = new Blob([JSON.stringify(cp, null, 2) + '\n'], { type: 'application/json' });
      const a = h('a', { href: URL.createObjectURL(blob), download: `serverbox-checkpoint-${cp.seq}.json` });
      document.body.append(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    } catch (e) {
      clear(err, errorBox(e));
    } finally {
      cpBtn.disabled = false;
    }
  });
  verify();
  load();
}

function field(label, input) {
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input);
}

function row(e) {
  return h('tr', { dataset: { seq: e.seq, type: e.type } },
    h('td', { class: 'num' }, e.seq),
    h('td', { class: 'nowrap' }, fmtTime(e.occurred_at)),
    h('td', {}, h('code', {}, e.type)),
    h('td', {}, e.actor?.name || '—', h('span', { class: 'muted small' }, ` ${e.actor?.kind || ''}`)),
    h('td', { class: 'ellipsis', title: e.stream }, e.stream),
    h('td', {}, outcomeBadge(e.outcome)),
    h('td', { class: 'wide-sm' }, h('details', {}, h('summary', {}, 'view'), h('pre', { class: 'json' }, JSON.stringify(e.data, null, 2)))));
}
