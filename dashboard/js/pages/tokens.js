// API tokens: the secret is shown once, right after creation.
import { api } from '../api.js';
import { h, clear, errorBox, fmtTime, badge, confirmDialog, copyText, toast } from '../ui.js';

export function render(root, ctx) {
  const err = h('div');
  const formErr = h('div');
  const secret = h('div', { id: 'token-secret' });
  const tbody = h('tbody', { id: 'token-rows' });
  const name = h('input', { id: 't-name', required: true, maxlength: 100, autocomplete: 'off' });
  const builtin = ['admin', 'operator', 'viewer'].filter((r) => ctx.me.role === 'admin' || r !== 'admin');
  // A custom role's holder makes tokens of that role (the core refuses more).
  const roles = builtin.includes(ctx.me.role) ? builtin : [ctx.me.role, ...builtin];
  const role = h('select', { id: 't-role' }, roles.map((r) => h('option', { value: r, selected: r === ctx.me.role }, r)));
  const expires = h('select', { id: 't-exp' }, [['', 'never'], [3600, '1 hour'], [86400, '1 day'], [2592000, '30 days'], [31536000, '1 year']].map(([v, l]) => h('option', { value: v, selected: v === 2592000 }, l)));
  const form = h('form', { class: 'inline-form' },
    h('div', { class: 'field' }, h('label', { for: 't-name' }, 'Name'), name),
    h('div', { class: 'field' }, h('label', { for: 't-role' }, 'Role'), role),
    h('div', { class: 'field' }, h('label', { for: 't-exp' }, 'Expires'), expires),
    h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Create token')));
  clear(root, h('h1', {}, 'API tokens'), err,
    h('section', { class: 'card' }, h('h2', {}, 'New token'), formErr, form, secret),
    h('section', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Owner'), h('th', {}, 'Role'), h('th', {}, 'Expires'), h('th', {}, 'Last used'), h('th', {}, 'Status'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
      tbody))));

  async function load() {
    try {
      const r = await api('GET', '/api/v1/tokens');
      clear(tbody, r.tokens.map((t) => h('tr', { dataset: { token: t.name } },
        h('td', {}, t.name), h('td', {}, t.username || '—'), h('td', {}, t.role),
        h('td', { class: 'nowrap' }, t.expires_at ? fmtTime(t.expires_at) : 'never'),
        h('td', { class: 'nowrap' }, fmtTime(t.last_used_at)),
        h('td', {}, t.revoked_at ? badge('revoked', 'err') : t.expires_at && Date.parse(t.expires_at) < Date.now() ? badge('expired', 'warn') : badge('active', 'ok')),
        h('td', { class: 'actions' }, t.revoked_at ? null : h('button', { class: 'btn btn-small btn-danger', onclick: async () => {
          if (!(await confirmDialog(`Revoke ${t.name}?`, 'Anything using this token stops working at once.', 'Revoke'))) return;
          try { await api('DELETE', `/api/v1/tokens/${t.id}`); toast(`${t.name} revoked`); } catch (e) { clear(err, errorBox(e)); }
          load();
        } }, 'Revoke')))));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const body = { name: name.value.trim(), role: role.value, expires_in: expires.value ? Number(expires.value) : null };
      const t = await api('POST', '/api/v1/tokens', body);
      const copy = h('button', { class: 'btn btn-small', type: 'button', onclick: () => copyText(t.token, copy) }, 'Copy');
      clear(secret, h('div', { class: 'alert alert-ok' }, h('p', {}, 'Copy the token now: it is not shown again.'),
        h('div', { class: 'row' }, h('code', { class: 'secret' }, t.token), copy)));
      form.reset();
      clear(formErr);
      load();
    } catch (e2) { clear(formErr, errorBox(e2)); }
  });
  load();
}
