// Users: list, create, change role, disable/enable, delete. Every decision
// (password rules, last-admin protection) is the core's; its message is shown.
import { api } from '../api.js';
import { h, clear, errorBox, fmtTime, badge, confirmDialog, toast } from '../ui.js';

let ROLES = ['admin', 'operator', 'viewer'];

export function render(root, ctx) {
  const err = h('div');
  const formErr = h('div');
  const tbody = h('tbody', { id: 'user-rows' });
  const username = h('input', { id: 'u-name', required: true, autocomplete: 'off', pattern: '[a-z0-9][a-z0-9._\\-]{0,63}' });
  const password = h('input', { id: 'u-pass', type: 'password', required: true, autocomplete: 'new-password', minlength: 12 });
  const role = h('select', { id: 'u-role' }, ROLES.map((r) => h('option', { value: r, selected: r === 'viewer' }, r)));
  const form = h('form', { class: 'inline-form' },
    h('div', { class: 'field' }, h('label', { for: 'u-name' }, 'Username'), username),
    h('div', { class: 'field' }, h('label', { for: 'u-pass' }, 'Password (12+ characters)'), password),
    h('div', { class: 'field' }, h('label', { for: 'u-role' }, 'Role'), role),
    h('div', { class: 'filter-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Create user')));
  clear(root, h('h1', {}, 'Users'), err,
    h('section', { class: 'card' }, h('h2', {}, 'New user'), formErr, form),
    h('section', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Username'), h('th', {}, 'Role'), h('th', {}, 'Status'), h('th', {}, 'Created'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
      tbody))));

  async function load() {
    try {
      // Custom roles too, when the caller may read them.
      try { ROLES = (await api('GET', '/api/v1/roles')).roles.map((x) => x.name); } catch { /* the built-in ones */ }
      if (role.options.length !== ROLES.length) clear(role, ROLES.map((r) => h('option', { value: r, selected: r === 'viewer' }, r)));
      const r = await api('GET', '/api/v1/users');
      clear(tbody, r.users.map(row));
      clear(err);
    } catch (e) { clear(err, errorBox(e)); }
  }

  function row(u) {
    const sel = h('select', { 'aria-label': `Role of ${u.username}` }, ROLES.map((r) => h('option', { value: r, selected: r === u.role }, r)));
    sel.addEventListener('change', () => patch(u, { role: sel.value }, `${u.username} is now ${sel.value}`));
    return h('tr', { dataset: { user: u.username } },
      h('td', {}, u.username, u.id === ctx.me.user_id ? h('span', { class: 'muted small' }, ' (you)') : null),
      h('td', {}, sel),
      h('td', {}, u.disabled ? badge('disabled', 'warn') : badge('active', 'ok')),
      h('td', { class: 'nowrap' }, fmtTime(u.created_at)),
      h('td', { class: 'actions' },
        u.totp_enabled ? h('button', { class: 'btn btn-small totp-reset', onclick: async () => {
          if (!(await confirmDialog(`Reset ${u.username}'s 2FA?`, 'They log in with their password alone and can enroll a new device.', 'Reset 2FA'))) return;
          try { await api('DELETE', `/api/v1/users/${u.id}/totp`); toast(`${u.username}'s 2FA reset`); } catch (e) { clear(err, errorBox(e)); }
          load();
        } }, 'Reset 2FA') : null,
        h('button', { class: 'btn btn-small', onclick: () => patch(u, { disabled: !u.disabled }, `${u.username} ${u.disabled ? 'enabled' : 'disabled'}`) }, u.disabled ? 'Enable' : 'Disable'),
        h('button', { class: 'btn btn-small btn-danger', onclick: async () => {
          if (!(await confirmDialog(`Delete ${u.username}?`, 'Their sessions and API tokens stop working at once. This cannot be undone.', 'Delete user'))) return;
          try { await api('DELETE', `/api/v1/users/${u.id}`); toast(`${u.username} deleted`); } catch (e) { clear(err, errorBox(e)); }
          load();
        } }, 'Delete')));
  }

  async function patch(u, body, done) {
    try { await api('PATCH', `/api/v1/users/${u.id}`, body); toast(done); clear(err); } catch (e) { clear(err, errorBox(e)); }
    load();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/api/v1/users', { username: username.value.trim(), password: password.value, role: role.value });
      toast(`${username.value.trim()} created`);
      form.reset();
      clear(formErr);
      load();
    } catch (e2) { clear(formErr, errorBox(e2)); }
  });
  load();
}
