// Guest links: read-only, time-limited views for auditors. The link (and its
// token) is shown once, at creation.
import { api } from '../api.js';
import { h, clear, errorBox, fmtTime, badge, copyText, toast } from '../ui.js';
import { GUEST_SCOPES, confirmDialog } from '../widgets.js';

// Only scopes that open something (widgets.js); none that grants nothing.
const SCOPES = GUEST_SCOPES.map((s) => [s.scope, s.label]);
const TTLS = [[900, '15 minutes'], [3600, '1 hour'], [86400, '1 day'], [604800, '7 days']];

export function render(root) {
  const err = h('div');
  const formErr = h('div');
  const created = h('div', { id: 'guest-link-created' });
  const tbody = h('tbody', { id: 'guest-link-rows' });
  const boxes = SCOPES.map(([v, l]) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'scope', value: v, checked: v === 'view:audit' }), l));
  const ttl = h('select', { id: 'g-ttl' }, TTLS.map(([v, l]) => h('option', { value: v, selected: v === 86400 }, l)));
  const custom = h('input', { id: 'g-ttl-custom', type: 'number', min: 1, max: 604800, placeholder: 'seconds' });
  const note = h('input', { id: 'g-note', maxlength: 200, placeholder: 'who is it for?' });
  const form = h('form', { class: 'stack' },
    h('fieldset', {}, h('legend', {}, 'Scopes'), h('div', { class: 'checks' }, boxes)),
    h('div', { class: 'inline-form' },
      h('div', { class: 'field' }, h('label', { for: 'g-ttl' }, 'Valid for'), ttl),
      h('div', { class: 'field' }, h('label', { for: 'g-ttl-custom' }, 'or seconds'), custom),
      h('div', { class: 'field grow' }, h('label', { for: 'g-note' }, 'Note'), note),
      h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Create link'))));
  clear(root, h('h1', {}, 'Guest links'), err,
    h('section', { class: 'card' }, h('h2', {}, 'New guest link'), h('p', { class: 'muted small' }, 'A guest link grants read-only access to the chosen pages until it expires or is revoked. Every request made with it is audited.'), formErr, form, created),
    h('section', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Note'), h('th', {}, 'Scopes'), h('th', {}, 'Created'), h('th', {}, 'Expires'), h('th', {}, 'Status'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
      tbody))));

  async function load() {
    try {
      const r = await api('GET', '/api/v1/guest-links');
      const links = [...r.guest_links].reverse();
      clear(tbody, links.map((g) => {
        const expired = Date.parse(g.expires_at) <= Date.now();
        return h('tr', { dataset: { id: g.id } },
          h('td', {}, g.note || '—'),
          h('td', {}, (g.scopes || []).map((s) => badge(s, 'accent'))),
          h('td', { class: 'nowrap' }, fmtTime(g.created_at)),
          h('td', { class: 'nowrap' }, fmtTime(g.expires_at)),
          h('td', {}, g.revoked_at ? badge('revoked', 'err') : expired ? badge('expired', 'warn') : badge('active', 'ok')),
          h('td', { class: 'actions' }, g.revoked_at || expired ? null : h('button', { class: 'btn btn-small btn-danger', onclick: async () => {
            if (!(await confirmDialog('Revoke this guest link?', 'Anyone holding it loses access at once.', 'Revoke'))) return;
            try { await api('DELETE', `/api/v1/guest-links/${g.id}`); toast('Guest link revoked'); } catch (e) { clear(err, errorBox(e)); }
            load();
          } }, 'Revoke')));
      }));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(created);
    const scopes = boxes.map((b) => b.firstChild).filter((i) => i.checked).map((i) => i.value);
    const body = { scopes, ttl_seconds: Number(custom.value || ttl.value) };
    if (note.value.trim()) body.note = note.value.trim();
    try {
      const g = await api('POST', '/api/v1/guest-links', body);
      const url = new URL(g.url, location.origin).href;
      const copy = h('button', { class: 'btn btn-small', type: 'button', id: 'copy-guest-link', onclick: () => copyText(url, copy) }, 'Copy link');
      clear(created, h('div', { class: 'alert alert-ok' },
        h('p', {}, `Link created, valid until ${fmtTime(g.expires_at)}. Copy it now: it is not shown again.`),
        h('div', { class: 'row' }, h('code', { class: 'secret', id: 'guest-link-url' }, url), copy)));
      clear(formErr);
      custom.value = '';
      load();
    } catch (e2) { clear(formErr, errorBox(e2)); }
  });
  load();
}
