// Shared widgets: the badges every page shows, the confirmation dialog, the
// "reload when an event says so" loop (coalesced: one load at a time, and an
// event that arrives during a load causes exactly one more), and the column
// names that phones show beside each table cell. Pages use these instead of
// copies of their own.
import { h, badge, confirmDialog } from './ui.js';
import { onEvent } from './live.js';

export { badge, confirmDialog };

// ---- badges -------------------------------------------------------------------

const CONTAINER_KIND = { running: 'ok', paused: 'warn', restarting: 'warn', exited: 'err', dead: 'err' };
// A container's state as the engine reports it.
export function containerStateBadge(state) {
  return badge(state || 'unknown', CONTAINER_KIND[state] || 'neutral');
}

// A status the API answers for a credential (token, guest link, session):
// active, expired, revoked; the browser never works it out itself.
export function credentialBadge(status) {
  return badge(status || 'unknown', { active: 'ok', current: 'accent', expired: 'warn', revoked: 'err' }[status] || 'neutral');
}

// ---- reloading ------------------------------------------------------------------

// Wraps an async load so that calls never overlap: a call made while one
// runs is remembered and makes one more run when it ends (so nothing that
// changed meanwhile is lost), however many calls came in.
export function coalesced(load) {
  let running = false, again = false;
  const run = async () => {
    if (running) { again = true; return; }
    running = true;
    try {
      do { again = false; await load(); } while (again);
    } finally { running = false; }
  };
  return run;
}

// Reloads (coalesced, after `delay` ms of quiet) whenever a logged event
// matches: `match` is a type prefix ('container.'), an array of them, or a
// function(event) → bool. Returns {reload, off}; reload() loads now.
export function reloadOnEvent(load, match, { delay = 150 } = {}) {
  const run = coalesced(load);
  const test = typeof match === 'function' ? match
    : (e) => typeof e.type === 'string' && [].concat(match).some((p) => e.type.startsWith(p));
  let t = null;
  const offEv = onEvent((e) => {
    if (!test(e)) return;
    clearTimeout(t);
    t = setTimeout(run, delay);
  });
  return { reload: run, off: () => { clearTimeout(t); offEv(); } };
}

// ---- tables on phones --------------------------------------------------------------

// Every table cell gets its column's name (data-label), which the phone
// layout shows before it once the header row is hidden.
function labelTable(table) {
  const ths = table.tHead?.rows[0]?.cells;
  if (!ths) return;
  const names = [...ths].map((th) => th.textContent.trim());
  for (const body of table.tBodies) {
    for (const tr of body.rows) {
      if (tr.dataset.labelled === names.length.toString()) continue;
      [...tr.cells].forEach((td, i) => { if (names[i] && td.colSpan === 1 && !td.hasAttribute('data-label')) td.dataset.label = names[i]; });
      tr.dataset.labelled = String(names.length);
    }
  }
}

export function labelTables(root) {
  const pending = new Set();
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    for (const t of pending) if (t.isConnected) labelTable(t);
    pending.clear();
  };
  const obs = new MutationObserver((records) => {
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : null;
      if (!el) continue;
      const tag = el.tagName;
      if (tag === 'TBODY' || tag === 'TABLE' || tag === 'TR') { const t = el.closest('table'); if (t) pending.add(t); continue; }
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        if (n.tagName === 'TABLE') pending.add(n);
        else for (const t of n.querySelectorAll?.('table') || []) pending.add(t);
      }
    }
    if (pending.size && !scheduled) { scheduled = true; queueMicrotask(flush); }
  });
  obs.observe(root, { childList: true, subtree: true });
  return () => obs.disconnect();
}

// A small "empty state" box: a title, words, and optional actions.
export function emptyState(id, title, text, ...actions) {
  return h('div', { class: 'empty-state', id },
    h('h2', {}, title), [].concat(text).map((t) => h('p', { class: 'muted' }, t)),
    actions.length ? h('div', { class: 'row wrap' }, actions) : null);
}

// ---- guest scopes ---------------------------------------------------------------------

// The guest-link scopes that grant something a guest can open, with the page
// each one opens (app.js GUEST_PAGES). view:logs works inside the Containers
// page, so it is only useful with view:containers.
export const GUEST_SCOPES = [
  { scope: 'view:audit', label: 'Audit log', page: '/audit' },
  { scope: 'view:metrics', label: 'Nodes and their metrics', page: '/nodes' },
  { scope: 'view:containers', label: 'Containers', page: '/containers' },
  { scope: 'view:logs', label: 'Container logs (with Containers)', page: null },
  { scope: 'view:stacks', label: 'Stacks', page: '/stacks' },
  { scope: 'view:recordings', label: 'Terminal recordings', page: '/recordings' },
];
export const scopeLabel = (s) => GUEST_SCOPES.find((x) => x.scope === s)?.label || s;
